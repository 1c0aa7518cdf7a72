"""Source artifacts: ignore rules, deterministic tarballs, revisions and on-disk storage."""

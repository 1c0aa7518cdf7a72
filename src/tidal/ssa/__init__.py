"""Server-side apply of a set of objects as Flux's ssa package does it: staged, drift-checked
by dry-run, never writing an object that has not changed, pruning only what it owns."""

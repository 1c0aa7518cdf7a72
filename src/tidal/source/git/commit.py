"""What a fetch returns: the commit the ref resolved to, and the annotated tag if any.

The raw object bytes are kept whole, and split into the signed payload and the signature,
so verification works on exactly the bytes that were signed (Flux's Encoded/Signature).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from dulwich.objects import Commit as DulwichCommit
from dulwich.objects import Tag as DulwichTag


def _when(seconds: int, offset: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).astimezone(timezone(timedelta(seconds=offset)))


def _text(value: bytes | None, encoding: bytes | None = None) -> str:
    codec = (encoding or b"utf-8").decode("ascii", "replace")
    try:
        return (value or b"").decode(codec, "replace")
    except LookupError:
        return (value or b"").decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Tag:
    """An annotated tag object."""

    hash: str
    name: str
    tagger: str
    tag_time: datetime | None
    message: str
    raw: bytes = field(repr=False)  # the whole tag object
    payload: bytes = field(repr=False)  # what the signature covers
    signature: bytes | None = field(repr=False)

    @classmethod
    def from_object(cls, tag: DulwichTag) -> Tag:
        payload, signature, _ = tag.extract_signature()
        return cls(
            hash=tag.id.decode("ascii"),
            name=_text(tag.name),
            tagger=_text(tag.tagger),
            tag_time=_when(tag.tag_time, tag.tag_timezone) if tag.tagger else None,
            message=_text(payload_message(tag)),
            raw=tag.as_raw_string(),
            payload=payload,
            signature=signature,
        )

    def __str__(self) -> str:
        return f"{self.name}@{self.hash}"  # Flux's AnnotatedTag.String()


def payload_message(tag: DulwichTag) -> bytes:
    # dulwich keeps the signature inside the message of a tag; cut it off.
    message = tag.message or b""
    signature = tag.signature
    if signature and message.endswith(signature):
        message = message[: -len(signature)]
    return message


@dataclass(frozen=True, slots=True)
class Commit:
    """A resolved commit. `revision` is what goes into status.artifact.revision."""

    hash: str
    reference: str  # the full ref it was reached through ("" for a bare commit)
    revision: str
    message: str
    author: str
    author_time: datetime
    committer: str
    commit_time: datetime
    raw: bytes = field(repr=False)  # the whole commit object
    payload: bytes = field(repr=False)  # the commit without its gpgsig header
    signature: bytes | None = field(repr=False)
    tag: Tag | None = None

    @classmethod
    def from_object(
        cls, commit: DulwichCommit, *, reference: str, revision: str, tag: Tag | None = None
    ) -> Commit:
        payload, signature, _ = commit.extract_signature()
        return cls(
            hash=commit.id.decode("ascii"),
            reference=reference,
            revision=revision,
            message=_text(commit.message, commit.encoding),
            author=_text(commit.author, commit.encoding),
            author_time=_when(commit.author_time, commit.author_timezone),
            committer=_text(commit.committer, commit.encoding),
            commit_time=_when(commit.commit_time, commit.commit_timezone),
            raw=commit.as_raw_string(),
            payload=payload,
            signature=signature,
            tag=tag,
        )

    @property
    def short_message(self) -> str:
        """The subject cut at 50 characters, as Flux shows it in events."""
        subject = self.message.split("\n", 1)[0]
        return subject if len(subject) <= 50 else subject[:50] + "..."

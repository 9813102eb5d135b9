"""The chaos run's independent checker: what went in against what came out. Pure.

It knows nothing of the bridge's services, topics or counters. Its inputs are the run's
own record of what was sent in (buyer messages the platform pushed and ingest accepted,
seller replies the reply front accepted with 250) and what the outside world received:
the mail sink's mailbox (digests, in arrival order) and the sandbox buyers' views (reply
parts, in arrival order). Every buyer message and every reply word carries a marker that
names its conversation and its place, so the checker needs no help from the bridge to
count:

- digests: a buyer message in no digest is *lost*; in more than one (distinct Message-IDs)
  *duplicated*; one that reaches the mailbox after a later message of its conversation
  *reordered*. The same Message-ID delivered more than once with the same content is the
  documented window (the relay took the mail, the mailer died before recording its
  outcome, the restarted mailer sent it again) and is counted on its own;
- reply parts: a part delivered twice is *duplicated*, one delivered after a later part of
  its conversation (a later word of the same reply, or a later reply) *reordered*, and
  every run of a reply's words that never reached the buyer counts as one *lost* part (a
  run is at least one part; the checker does not split replies itself);
- the longest stall: the longest time the outside world saw no progress while something
  sent in was still owed to it.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

BUYER_MARKER = re.compile(r"\bbm-(\d+)-(\d+)\b")
REPLY_MARKER = re.compile(r"\brp-(\d+)-(\d+)-(\d+)\b")


def buyer_text(conversation_id: str, seq: int) -> str:
    """The text of buyer message ``seq`` (0-based) of a conversation."""
    return f"Hello, question bm-{conversation_id}-{seq} about my order"


def reply_words(conversation_id: str, reply_no: int, count: int) -> list[str]:
    """The marker words of reply ``reply_no`` of a conversation, in order."""
    return [f"rp-{conversation_id}-{reply_no}-{i}" for i in range(count)]


@dataclass(frozen=True, slots=True)
class Digest:
    """One mail as the sink holds it: its Message-ID and the buyer markers of its plain
    body, in body order."""

    message_id: str
    markers: tuple[tuple[str, int], ...]


def parse_digest(raw: bytes) -> Digest:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    return Digest(
        str(msg.get("Message-ID", "")),
        tuple((conv, int(seq)) for conv, seq in BUYER_MARKER.findall(text)),
    )


@dataclass(frozen=True, slots=True)
class ReplyMailed:
    conversation_id: str
    reply_no: int
    words: int


@dataclass
class Counts:
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    unexpected: int = 0  # markers the run never sent (should never happen)
    documented_window: int = 0  # digests only: same Message-ID, same content, again
    longest_stall_s: float = 0.0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.duplicated or self.reordered or self.unexpected)

    def line(self) -> str:
        return (
            f"lost={self.lost} duplicated={self.duplicated} reordered={self.reordered} "
            f"longest_stall={self.longest_stall_s:.1f}s"
        )

    def note(self, what: str, example: str, keep: int = 10) -> None:
        found = self.examples.setdefault(what, [])
        if len(found) < keep:
            found.append(example)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def check_digests(
    sent: Mapping[str, int], mails: Sequence[Digest], posted: Mapping[str, int] | None = None
) -> Counts:
    """``sent``: buyer messages per conversation (seq 0..n-1, accepted by ingest);
    ``mails``: the sink's mails in arrival order (mails without buyer markers are ignored:
    notices, activation mails); ``posted``: messages the platform took, acknowledged or not
    (one whose acknowledgement the run did not see may appear, once, but is owed nothing)."""
    posted = posted or sent
    counts = Counts(expected=sum(sent.values()))
    by_id: dict[str, Digest] = {}
    for mail in mails:
        if not mail.markers:
            continue
        first = by_id.get(mail.message_id)
        if first is None:
            by_id[mail.message_id] = mail
        elif first.markers == mail.markers:
            counts.documented_window += 1
            counts.note("documented_window", mail.message_id)
        else:  # the same id with other content is no replay of one send
            counts.duplicated += len(mail.markers)
            counts.note("duplicated", f"{mail.message_id} sent with other content")
    seen: Counter[tuple[str, int]] = Counter()
    latest: dict[str, int] = {}
    for digest in by_id.values():  # first arrivals, in arrival order
        for conv, seq in digest.markers:
            key = (conv, seq)
            if seq >= max(sent.get(conv, 0), posted.get(conv, 0)):
                counts.unexpected += 1
                counts.note("unexpected", f"bm-{conv}-{seq} in {digest.message_id}")
                continue
            seen[key] += 1
            if seen[key] > 1:
                counts.duplicated += 1
                counts.note("duplicated", f"bm-{conv}-{seq} again in {digest.message_id}")
                continue
            if seq < latest.get(conv, -1):
                counts.reordered += 1
                counts.note("reordered", f"bm-{conv}-{seq} after bm-{conv}-{latest[conv]}")
            latest[conv] = max(seq, latest.get(conv, -1))
    counts.delivered = len(seen)
    for conv, n in sent.items():
        for seq in range(n):
            if (conv, seq) not in seen:
                counts.lost += 1
                counts.note("lost", f"bm-{conv}-{seq}")
    return counts


def check_reply_parts(mailed: Iterable[ReplyMailed], views: Mapping[str, Sequence[str]]) -> Counts:
    """``mailed``: replies the reply front accepted, each conversation's in the order of
    their 250s; ``views``: the text of each part each buyer received, in order."""
    expected: dict[str, dict[int, int]] = defaultdict(dict)
    for reply in mailed:
        expected[reply.conversation_id][reply.reply_no] = reply.words
    counts = Counts(expected=sum(w for r in expected.values() for w in r.values()))
    words_seen: set[tuple[str, int, int]] = set()
    for conv, parts in views.items():
        seen_parts: set[tuple[tuple[int, int], ...]] = set()
        latest = (-1, -1)
        for text in parts:
            words = [(int(r), int(w)) for c, r, w in REPLY_MARKER.findall(text) if c == conv]
            if not words:
                continue
            counts.delivered += 1
            ident = tuple(words)
            if ident in seen_parts:
                counts.duplicated += 1
                counts.note("duplicated", f"part rp-{conv}-{words[0][0]}-{words[0][1]}.. again")
                continue
            seen_parts.add(ident)
            if words[0] < latest:
                counts.reordered += 1
                counts.note(
                    "reordered",
                    f"part rp-{conv}-{words[0][0]}-{words[0][1]}.. after "
                    f"rp-{conv}-{latest[0]}-{latest[1]}",
                )
            if any(b <= a for a, b in zip(words, words[1:], strict=False)):
                counts.reordered += 1
                counts.note("reordered", f"words out of order in a part of {conv}")
            latest = max(latest, words[-1])
            for reply_no, word in words:
                if word >= expected.get(conv, {}).get(reply_no, 0):
                    counts.unexpected += 1
                    counts.note("unexpected", f"rp-{conv}-{reply_no}-{word}")
                words_seen.add((conv, reply_no, word))
    for conv, replies in expected.items():
        for reply_no, n in replies.items():
            missing_run = False
            for word in range(n):
                gone = (conv, reply_no, word) not in words_seen
                if gone and not missing_run:
                    counts.lost += 1
                    counts.note("lost", f"rp-{conv}-{reply_no}-{word}..")
                missing_run = gone
    return counts


def longest_stall(samples: Sequence[tuple[float, int, int]]) -> float:
    """Longest time between two samples ``(t, delivered, owed)`` during which ``delivered``
    did not grow while ``owed`` (sent in and due, not delivered yet) was above zero."""
    longest = 0.0
    since: float | None = None
    last_delivered = -1
    for t, delivered, owed in samples:
        if owed <= 0:
            since, last_delivered = None, delivered
        elif since is None or delivered != last_delivered:
            since, last_delivered = t, delivered
        else:
            longest = max(longest, t - since)
    return longest

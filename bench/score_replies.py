"""Score reply extraction on a labelled corpus, ours beside the best off-the-shelf extractor.

Usage (from the repo root)::

    python bench/score_replies.py DIR

DIR holds ``NAME.input.eml`` or ``NAME.input.txt`` with ``NAME.expected.txt`` (subdirectories
are searched too). Ours runs the parser's pipeline without a shop context, so an ``.eml`` the
bridge does not deliver (automated, a loop, no new text) scores as the empty text: an empty
``NAME.expected.txt`` says "nothing reaches the buyer". Printed: one line per failing case with a short diff, the off-the-shelf
figures with the ratio ours/theirs, and LAST our own figures as
``exact=NN.N% f1=0.NNN n=NN``.

Normalisation before comparing (same for expected and actual, same for every extractor):
CRLF/CR -> LF, trailing whitespace removed from every line, runs of blank lines collapsed to
one, leading/trailing blank lines and outer whitespace stripped. "exact" is equality after
that. f1 is token-level F1 (tokens = whitespace-separated words, compared as multisets),
averaged over cases; two empty texts score 1.0.
"""

from __future__ import annotations

import argparse
import difflib
import email
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reply_parser.extract import (  # noqa: E402
    _find_body,
    _part_text,
    extract_from_text,
)
from reply_parser.inbound_pipeline import (  # noqa: E402
    OwnIdentity,
    PipelineConfig,
    decide,
)
from reply_parser.reply_parser_settings import ReplyParserSettings  # noqa: E402
from shared.events import InboundEnvelope, ShopSettings  # noqa: E402

_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Case:
    """One labelled reply: its input (raw message bytes or a plain body) and expectation."""

    name: str
    raw: bytes | None
    body: str | None
    expected: str


@dataclass(frozen=True)
class Score:
    exact: float
    f1: float
    n: int
    failures: tuple[tuple[str, str, str], ...]  # (name, expected, got)


def normalise(text: str) -> str:
    """The comparison form described in the module docstring."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def token_f1(expected: str, got: str) -> float:
    """Token-level F1 between two texts (multiset of whitespace-separated tokens)."""
    want, have = Counter(expected.split()), Counter(got.split())
    if not want and not have:
        return 1.0
    common = sum((want & have).values())
    if not common:
        return 0.0
    precision, recall = common / sum(have.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def load_cases(root: Path) -> list[Case]:
    """All cases under *root*, recursively, sorted by relative name."""
    cases: list[Case] = []
    for expected_path in sorted(root.rglob("*.expected.txt")):
        stem = expected_path.name[: -len(".expected.txt")]
        name = str(expected_path.parent.relative_to(root) / stem)
        expected = expected_path.read_bytes().decode("utf-8", errors="replace")
        eml = expected_path.with_name(f"{stem}.input.eml")
        txt = expected_path.with_name(f"{stem}.input.txt")
        if eml.exists():
            cases.append(Case(name, eml.read_bytes(), None, expected))
        elif txt.exists():
            cases.append(
                Case(name, None, txt.read_bytes().decode("utf-8", errors="replace"), expected)
            )
    return cases


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


_SETTINGS = ReplyParserSettings()
_OWN = OwnIdentity(_SETTINGS.message_id_domain, _SETTINGS.reply_domain_base)
_SHOP = ShopSettings(shop_id="score", destination_email=_SETTINGS.default_destination_email)
_ENV = InboundEnvelope(
    mail_id="score",
    shop_id="score",
    conversation_id="score",
    mail_from="",
    rcpt_to="",
    received_at_ms=0,
)
# No shop context: what any shop's buyer would receive (sender authorization skipped).
_CONFIG = PipelineConfig(check_sender=False, envelope_known=False)


def ours(case: Case) -> str:
    """What the buyer receives: the parser's own pipeline (classification, extraction, the
    body check); automated or refused mail delivers nothing (an empty expected text)."""
    if case.raw is not None:
        decision = decide(case.raw, _ENV, _SHOP, _OWN, config=_CONFIG)
        return decision.text if decision.reply is not None else ""
    return extract_from_text(case.body or "")


def plain_body(case: Case) -> str:
    """The body an off-the-shelf text extractor gets: text/plain, else the raw HTML part."""
    if case.body is not None:
        return case.body
    msg = parse(case.raw or b"")
    part = _find_body(msg, "plain") or _find_body(msg, "html")
    return _part_text(part) if part is not None else ""


def off_the_shelf() -> Iterator[tuple[str, Callable[[Case], str]]]:
    """Installed PyPI extractors, as (name, function)."""
    try:
        from mailparser_reply import EmailReplyParser as MailParserReply

        def mail_parser_reply(case: Case) -> str:
            parser = MailParserReply(languages=["en", "de", "fr", "es", "it", "nl", "pl", "sv"])
            return parser.parse_reply(text=plain_body(case)) or ""

        yield "mail-parser-reply", mail_parser_reply
    except ImportError:
        pass
    try:
        from email_reply_parser import EmailReplyParser

        def email_reply_parser(case: Case) -> str:
            return EmailReplyParser.parse_reply(plain_body(case)) or ""

        yield "email-reply-parser", email_reply_parser
    except ImportError:
        pass


def score(cases: list[Case], extractor: Callable[[Case], str]) -> Score:
    """Run *extractor* over *cases*; exceptions count as an empty answer."""
    exact = 0
    f1_total = 0.0
    failures: list[tuple[str, str, str]] = []
    for case in cases:
        try:
            got = normalise(extractor(case))
        except Exception as exc:  # noqa: BLE001 - a crash is a wrong answer, not a stop
            got = f"<error: {exc!r}>"
        want = normalise(case.expected)
        if got == want:
            exact += 1
        else:
            failures.append((case.name, want, got))
        f1_total += token_f1(want, got)
    n = len(cases)
    return Score(exact / n if n else 0.0, f1_total / n if n else 0.0, n, tuple(failures))


def short_diff(want: str, got: str, limit: int = 12) -> str:
    lines = list(
        difflib.unified_diff(want.split("\n"), got.split("\n"), "expected", "got", lineterm="", n=1)
    )[2:]
    shown = [f"      {line[:160]}" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"      ... {len(lines) - limit} more diff lines")
    return "\n".join(shown)


def figures(result: Score) -> str:
    return f"exact={result.exact * 100:.1f}% f1={result.f1:.3f} n={result.n}"


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("corpus", type=Path, help="directory of NAME.input.* / NAME.expected.txt")
    ns = args.parse_args(argv)
    cases = load_cases(ns.corpus)
    if not cases:
        print(f"no cases under {ns.corpus}", file=sys.stderr)
        return 2
    mine = score(cases, ours)
    print(f"failures ({len(mine.failures)}):")
    for name, want, got in mine.failures:
        print(f"  {name}")
        print(short_diff(want, got))
    best: tuple[str, Score] | None = None
    for name, extractor in off_the_shelf():
        theirs = score(cases, extractor)
        print(f"off-the-shelf {name}: {figures(theirs)}")
        if best is None or (theirs.exact, theirs.f1) > (best[1].exact, best[1].f1):
            best = (name, theirs)
    if best is not None:
        name, theirs = best
        ratio_exact = mine.exact / theirs.exact if theirs.exact else float("inf")
        ratio_f1 = mine.f1 / theirs.f1 if theirs.f1 else float("inf")
        print(
            f"best off-the-shelf: {name} {figures(theirs)}; "
            f"ours/theirs exact x{ratio_exact:.2f} f1 x{ratio_f1:.2f}"
        )
    print(figures(mine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Links in a reply's text: the buyer sees the link text, never the address. Pure.

Chat shows no hyperlinks (design.md, "Inbound replies"), so addresses are taken out of the
text in every form mail clients write them:

* Outlook's plain text: ``page<https://…>`` and ``name@x.example<mailto:name@x.example>``;
* Gmail, Apple Mail, Thunderbird and others: ``page [https://…]``, ``page ( https://… )``,
  ``page (https://…)``, Markdown-ish ``[page](https://…)``;
* addresses typed bare: ``https://track.example.com/abc123``, ``www.example.com/x``.

The text around a link stays; a line that held nothing but an address goes. Bare domains
without a scheme or ``www.`` ("Amazon.com") are words, not links, and stay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Possessive quantifiers: an address is taken whole or not at all, so a line of ten thousand
# half-links costs one pass, not one rescan per start.
_ADDRESS = r"(?:https?://|ftp://|www\.|mailto:|tel:)[^\s<>()\[\]]{1,2000}+"
# "text<https://…>" (Outlook), with or without a space before the bracket.
_ANGLE = rf"\s?<\s*+(?P<angle>{_ADDRESS})\s*+>"
# "text [https://…]", "text (https://…)", "text ( https://… )".
_BRACKET = rf"\s?\[\s*+(?P<square>{_ADDRESS})\s*+\]|\s?\(\s*+(?P<round>{_ADDRESS})\s*+\)"
# "[text](https://…)": keep the text.
_MARKDOWN = rf"\[(?P<md_text>[^\[\]\n]{{1,300}}+)\]\(\s*+(?P<md>{_ADDRESS})\s*+\)"
# Typed bare; sentence punctuation it swallowed at its end is given back by _replacement.
_BARE = (
    r"(?:[ \t](?=https?://|ftp://|www\.)|(?<![\w@/.]))"
    r"(?P<bare>(?:https?://|ftp://|www\.)[^\s<>\"]{1,2000}+)"
)
_TRAILING_PUNCTUATION = ".,;:!?)]'\""

LINK_RE = re.compile(f"{_MARKDOWN}|{_ANGLE}|{_BRACKET}|{_BARE}", re.IGNORECASE)
_QUICK = re.compile(r"https?://|ftp://|www\.|mailto:|tel:", re.IGNORECASE)
_SPACES = re.compile(r"(?<=\S)[ \t]{2,}")
_PUNCTUATION_ONLY = re.compile(r"^\s*[.,;:!?。，]+\s*$")


@dataclass(frozen=True, slots=True)
class LinkFree:
    """Text with its link addresses removed, and the addresses that were removed."""

    text: str
    removed: tuple[str, ...] = ()


def strip_links(text: str) -> LinkFree:
    """Remove link addresses from *text*, keeping link texts. Pure, linear time."""
    if not _QUICK.search(text):
        return LinkFree(text)
    removed: list[str] = []
    out: list[str] = []
    for line in text.split("\n"):
        if not _QUICK.search(line):
            out.append(line)
            continue
        new = LINK_RE.sub(lambda m: _replacement(m, removed), line)
        if new == line:
            out.append(line)
            continue
        new = _SPACES.sub(" ", new).rstrip()
        if new[:1].isspace() and not line[:1].isspace():
            new = new.lstrip()
        if _PUNCTUATION_ONLY.match(new) and out and out[-1].strip():
            out[-1] += new.strip()  # "text\n<https://…>." wrapped: the stop joins the text
        elif new.strip() or not line.strip():
            out.append(new)
    return LinkFree("\n".join(out), tuple(removed))


def _replacement(match: re.Match[str], removed: list[str]) -> str:
    if match.group("md") is not None:
        removed.append(match.group("md"))
        return match.group("md_text")
    for name in ("angle", "square", "round"):
        address = match.group(name)
        if address is not None:
            removed.append(address)
            return ""
    bare = match.group("bare")
    address = bare.rstrip(_TRAILING_PUNCTUATION)
    if not address or address.endswith(("://", "www.")):
        return match.group(0)
    removed.append(address)
    return bare[len(address) :]
    return match.group(0)  # pragma: no cover - every alternative names its group

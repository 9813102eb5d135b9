"""The platform's emoticon codes (``[smile]``) as Unicode emoji: the one table. Pure.

TikTok writes its own emoticons as bracketed names in text (``[smile]``, ``[laughwithtears]``,
the names its comment and chat pickers show). No public reference lists them with an
emoji; the pairs below are ours (docs/tiktok-shop-contract.md s.2, "EMOTICONS"). A code not
in the table is shown as its name, never with the brackets.
"""

from __future__ import annotations

import re

__all__ = ["EMOTICON_EMOJI", "emoticon_name", "emoticon_text"]

EMOTICON_EMOJI: dict[str, str] = {
    "smile": "\U0001f642",
    "happy": "\U0001f60a",
    "angry": "\U0001f620",
    "cry": "\U0001f622",
    "embarrassed": "\U0001f633",
    "surprised": "\U0001f62e",
    "wronged": "\U0001f97a",
    "shout": "\U0001f62b",
    "flushed": "\U0001f633",
    "yummy": "\U0001f60b",
    "complacent": "\U0001f60c",
    "drool": "\U0001f924",
    "scream": "\U0001f631",
    "weep": "\U0001f62d",
    "speechless": "\U0001f636",
    "funnyface": "\U0001f61c",
    "laughwithtears": "\U0001f602",
    "wicked": "\U0001f608",
    "facewithrollingeyes": "\U0001f644",
    "sulk": "\U0001f612",
    "thinking": "\U0001f914",
    "lovely": "\U0001f970",
    "greedy": "\U0001f911",
    "wow": "\U0001f62f",
    "joyful": "\U0001f601",
    "hehe": "\U0001f604",
    "slap": "\U0001f44b",
    "tears": "\U0001f972",
    "stun": "\U0001f635",
    "cute": "\U0001f97a",
    "blink": "\U0001f609",
    "disdain": "\U0001f612",
    "astonish": "\U0001f632",
    "rage": "\U0001f621",
    "cool": "\U0001f60e",
    "excited": "\U0001f929",
    "proud": "\U0001f60f",
    "smileface": "\U0001f603",
    "evil": "\U0001f47f",
    "angel": "\U0001f607",
    "laugh": "\U0001f606",
    "pride": "\U0001f60f",
    "nap": "\U0001f634",
    "loveface": "\U0001f60d",
    "awkward": "\U0001f605",
    "shock": "\U0001f628",
    "heart": "\u2764\ufe0f",
    "like": "\U0001f44d",
    "thumbsup": "\U0001f44d",
    "ok": "\U0001f44c",
    "rose": "\U0001f339",
    "gift": "\U0001f381",
}

# A code: letters, digits, "_" or "-" in brackets (a bracketed sentence is left alone).
_CODE = re.compile(r"\[([A-Za-z0-9_-]{1,40})\]")


def _emoji_or_name(match: re.Match[str]) -> str:
    name = match.group(1)
    return EMOTICON_EMOJI.get(name.lower(), f" {name} ")  # a name stands apart as a word


def emoticon_text(value: str) -> str:
    """``value`` with every ``[code]`` replaced by its emoji, or by its bare name when the
    code is not in the table; a bare code (``smile``) is looked up too."""
    stripped = value.strip()
    if stripped and "[" not in stripped:
        return EMOTICON_EMOJI.get(stripped.lower(), stripped)
    return " ".join(_CODE.sub(_emoji_or_name, value).split())


def emoticon_name(value: str) -> str:
    """The code's name when ``value`` is one code (``[smile]`` or ``smile``), else ""."""
    stripped = value.strip()
    if match := _CODE.fullmatch(stripped):
        return match.group(1)
    return stripped if _CODE.fullmatch(f"[{stripped}]") else ""

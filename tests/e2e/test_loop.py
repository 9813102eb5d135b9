"""The whole chat -> email -> chat loop over real parts (Tansu, aiosmtpd, HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from tests.conftest import WINDOW_S, Stack
from tests.polling import eventually

pytestmark = pytest.mark.integration
T = TypeVar("T")


def text_of(msg) -> str:  # type: ignore[no-untyped-def]
    return msg.get_body(("plain",)).get_content()


async def test_three_buyer_messages_make_one_digest_one_window_after_the_last(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    await stack.onboard(shop)
    texts = ["Hi! Is the blue kettle in stock?", "Do you ship to Lyon?", "Thanks 🙏"]
    for i, text in enumerate(texts):
        if i:
            await asyncio.sleep(1.0)  # shorter than the window: the debounce keeps waiting
        await stack.buyer_says(shop, conv, text, buyer_name="Ana")
    last_sent = time.monotonic()

    mails = await eventually(lambda: stack.mails_for(conv), timeout_s=WINDOW_S + 20)
    waited = time.monotonic() - last_sent
    assert waited >= WINDOW_S - 0.5, f"digest came {waited:.1f}s after the last message"
    assert waited < WINDOW_S + 8, f"digest came {waited:.1f}s after the last message"
    await asyncio.sleep(WINDOW_S + 1)  # nothing else may follow for this burst
    mails = stack.mails_for(conv)
    assert len(mails) == 1, stack.logs()
    digest = mails[0]
    assert digest["Subject"] == "A new message from TikTok Shop customer Ana"
    assert "TikTok Shop" in str(digest["From"])
    body = text_of(digest)
    positions = [body.index(t) for t in texts]
    assert positions == sorted(positions), "messages out of order in the digest"
    assert digest.get_body(("html",)) is not None


async def test_gmail_reply_with_quoted_history_reaches_the_buyer_as_new_text_only(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    await stack.onboard(shop)
    await stack.buyer_says(shop, conv, "Where is my order #5791?", buyer_name="Bo")
    digest = (await eventually(lambda: stack.mails_for(conv), timeout_s=WINDOW_S + 20))[0]
    n = stack.sink_number(digest["Message-ID"])
    answer = "It left our warehouse today, tracking follows 📦"
    resp = await stack.http.post(f"{stack.sink_url}/messages/{n}/reply", json={"text": answer})
    assert resp.status_code == 200, resp.text

    received = await eventually(lambda: stack.buyer_view(conv), timeout_s=30)
    assert [r["content"]["content"] for r in received] == [answer]


async def test_reply_of_4500_chars_arrives_as_three_ordered_parts_within_the_limit(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    await stack.onboard(shop)
    await stack.buyer_says(shop, conv, "Can you explain the warranty?", buyer_name="Chi")
    first = (await eventually(lambda: stack.mails_for(conv), timeout_s=WINDOW_S + 20))[0]
    n = stack.sink_number(first["Message-ID"])
    words = [f"word{i:04d}" for i in range(500)]  # 500 x 9 chars = 4,500 with spaces
    answer = " ".join(words)[:4500]
    resp = await stack.http.post(f"{stack.sink_url}/messages/{n}/reply", json={"text": answer})
    assert resp.status_code == 200, resp.text

    await eventually(lambda: _when(stack.buyer_view(conv), lambda r: len(r) >= 3), timeout_s=30)
    await asyncio.sleep(1)  # a fourth part, if one were wrongly sent, would show up now
    received = await stack.buyer_view(conv)
    parts = [r["content"]["content"] for r in received]
    assert len(parts) == 3, parts
    assert all(len(p) <= 2000 for p in parts)
    assert " ".join(parts).split() == answer.split()  # in order, nothing lost, no word cut


async def test_second_burst_makes_a_second_digest_with_only_new_messages_threaded_to_the_first(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    await stack.onboard(shop)
    await stack.buyer_says(shop, conv, "First question: size M?", buyer_name="Dee")
    first = (await eventually(lambda: stack.mails_for(conv), timeout_s=WINDOW_S + 20))[0]
    await stack.buyer_says(shop, conv, "Second question: colour red?", buyer_name="Dee")
    mails = await eventually(lambda: _at_least(stack.mails_for(conv), 2), timeout_s=WINDOW_S + 20)
    second = mails[1]
    body = text_of(second)
    assert "Second question" in body and "First question" not in body
    assert second["In-Reply-To"] == first["Message-ID"]
    assert first["Message-ID"] in str(second["References"])
    assert second["Message-ID"] != first["Message-ID"]


async def _when(value: Awaitable[T], check: Callable[[T], bool]) -> T | None:
    result = await value
    return result if check(result) else None


def _at_least(items: list[T], n: int) -> list[T] | None:
    return items if len(items) >= n else None

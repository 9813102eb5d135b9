"""Rendering of digest emails: golden files per content kind, escaping and URL safety.

Golden files live in ``tests/golden/digest/<case>.html`` and ``<case>.txt``. After an
intended change to the rendering, rewrite them and review the diff::

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_render.py -q -p no:cacheprovider

Without ``UPDATE_GOLDEN`` a missing or different golden file fails the test.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from mailer.render import (
    DigestLinks,
    RenderedDigest,
    parse_image_hosts,
    render_digest,
    render_digest_reference,
    safe_http_url,
)
from shared.events import ChatContent, ContentKind, Digest, DigestMessage

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "digest"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"

LINKS = DigestLinks(
    chat_url="https://seller.example.com/chat/conv-42?shop=shop-7",
    settings_url="https://seller.example.com/settings/notifications",
    marketplace_name="TikTok Shop",
    image_hosts=frozenset({"cdn.example.com"}),  # the platform's image host in these cases
)
T0 = 1_764_070_000_000  # 2025-11-25 11:26:40 UTC


def make_digest(
    *contents: ChatContent, buyer_name: str = "Alice Buyer", time_zone: str = ""
) -> Digest:
    """A digest of the given contents, one minute apart, in a fixed shop and conversation
    of region "us" (times in its zone unless ``time_zone`` names another)."""
    return Digest(
        time_zone=time_zone,
        digest_id="dg-0001",
        shop_id="shop-7",
        conversation_id="conv-42",
        buyer_id="buyer-9",
        buyer_name=buyer_name,
        shop_name="Sunny Socks",
        messages=tuple(
            DigestMessage(message_id=f"m{i}", sent_at_ms=T0 + i * 60_000, content=c)
            for i, c in enumerate(contents)
        ),
    )


CASES: dict[str, tuple[ChatContent, ...]] = {
    "text": (ChatContent(text="Hi! Is this <b>in stock</b> & ready?\nSecond line\n\nThird"),),
    "emoji": (
        ChatContent(
            kind=ContentKind.EMOJI,
            text="\U0001f44d\U0001f3fd\U0001f468\u200d\U0001f469\u200d\U0001f467",
        ),
    ),
    "image": (
        ChatContent(
            kind=ContentKind.IMAGE,
            url="https://cdn.example.com/p/full.jpg",
            thumbnail_url="https://cdn.example.com/p/thumb.jpg",
        ),
    ),
    "product_card": (
        ChatContent(
            kind=ContentKind.PRODUCT_CARD,
            title="Wool socks \u201cCosy\u201d 3-pack",
            price="$12.99",
            url="https://shop.example.com/product/123",
            thumbnail_url="https://cdn.example.com/product/123.jpg",
        ),
        ChatContent(kind=ContentKind.PRODUCT_CARD, title="Name only"),
    ),
    "order_card": (
        ChatContent(kind=ContentKind.ORDER_CARD, order_id="576460752303423", status="Shipped"),
        ChatContent(kind=ContentKind.ORDER_CARD, order_id="576460752303424"),
        ChatContent(  # as the order lookup fills it in
            kind=ContentKind.ORDER_CARD,
            order_id="576460752303425",
            status="Awaiting shipment",
            item_names=("Wool socks 3-pack", "Laundry bag <large>"),
        ),
    ),
    "product_card_by_id": (  # the lookup failed or was slow: the id, never a blank card
        ChatContent(kind=ContentKind.PRODUCT_CARD, product_id="1729384756"),
    ),
    "return_refund_card": (
        ChatContent(
            kind=ContentKind.RETURN_REFUND_CARD, order_id="576460752303426", sku_id="45678"
        ),
        ChatContent(
            kind=ContentKind.RETURN_REFUND_CARD,
            order_id="576460752303427",
            status="Delivered",
            item_names=("Wool socks 3-pack",),
        ),
    ),
    "logistics_card": (
        ChatContent(kind=ContentKind.LOGISTICS_CARD, order_id="576460752303428", package_id="321"),
        ChatContent(kind=ContentKind.LOGISTICS_CARD, order_id="576460752303429"),
    ),
    "coupon_card": (
        ChatContent(kind=ContentKind.COUPON_CARD, coupon_id="7262992004278206762"),
        ChatContent(kind=ContentKind.COUPON_CARD, coupon_id="7262992004278206763", title="10% off"),
    ),
    "emoticon": (
        ChatContent(kind=ContentKind.EMOTICON, text="\U0001f642", title="smile"),
        ChatContent(kind=ContentKind.EMOTICON, text="wink_custom", title="wink_custom"),
        ChatContent(
            kind=ContentKind.EMOTICON,
            text="\U0001f60d",
            title="loveface",
            url="https://cdn.example.com/e/loveface.png",
        ),
    ),
    "video": (
        ChatContent(
            kind=ContentKind.VIDEO,
            url="https://cdn.example.com/v/clip.mp4",
            thumbnail_url="https://cdn.example.com/v/poster.jpg",
        ),
        ChatContent(kind=ContentKind.VIDEO, url="https://cdn.example.com/v/noposter.mp4"),
    ),
    "sticker": (
        ChatContent(kind=ContentKind.STICKER, url="https://cdn.example.com/s/1.png", text="wave"),
    ),
    "notice": (
        ChatContent(kind=ContentKind.NOTICE, text="The buyer cancelled order 576460752303423"),
    ),
    "unknown_kind": (
        ChatContent(kind="poll", platform_type="POLL_MESSAGE"),
        ChatContent(kind=ContentKind.OTHER, platform_type="COUPON", text="10% off"),
    ),
    "foreign_images": (  # not on the platform's image hosts: no <img>, a link to the chat
        ChatContent(
            kind=ContentKind.IMAGE,
            url="https://tracker.example.net/px.gif",
            thumbnail_url="https://tracker.example.net/px-thumb.gif",
        ),
        ChatContent(kind=ContentKind.STICKER, url="https://tracker.example.net/s.png", text="wave"),
        ChatContent(
            kind=ContentKind.VIDEO,
            url="https://cdn.example.com/v/clip.mp4",
            thumbnail_url="https://tracker.example.net/poster.jpg",
        ),
        ChatContent(
            kind=ContentKind.PRODUCT_CARD,
            title="Socks",
            thumbnail_url="https://tracker.example.net/p.jpg",
        ),
    ),
    "unsafe_urls": (
        ChatContent(kind=ContentKind.IMAGE, url="javascript:alert(1)"),
        ChatContent(kind=ContentKind.VIDEO, url="data:video/mp4;base64,AAAA"),
    ),
}
CASES["all_kinds"] = tuple(c for name in CASES for c in CASES[name])


# Cases shown in a zone other than region "us"'s.
CASES["time_zone_jakarta"] = (ChatContent(text="Jam berapa toko buka?"),)
CASE_ZONES = {"time_zone_jakarta": "Asia/Jakarta"}


def render_case(name: str) -> RenderedDigest:
    return render_digest(make_digest(*CASES[name], time_zone=CASE_ZONES.get(name, "")), LINKS)


def check_golden(path: Path, actual: str) -> None:
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"missing golden {path}; run with UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(encoding="utf-8"), (
        f"{path.name} differs from its golden; if intended, rerun with UPDATE_GOLDEN=1"
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_html_matches_golden(case: str) -> None:
    check_golden(GOLDEN_DIR / f"{case}.html", render_case(case).html)


@pytest.mark.parametrize("case", sorted(CASES))
def test_text_matches_golden(case: str) -> None:
    check_golden(GOLDEN_DIR / f"{case}.txt", render_case(case).text)


def urls_in(html: str) -> list[str]:
    tree = HTMLParser(html)
    return [
        node.attributes[attr] or "" for attr in ("href", "src") for node in tree.css(f"[{attr}]")
    ]


def test_buyer_text_is_escaped_and_line_breaks_kept() -> None:
    html = render_digest(make_digest(ChatContent(text="<script>x()</script>\nnext")), LINKS).html
    assert "<script>" not in html
    assert "&lt;script&gt;x()&lt;/script&gt;<br>next" in html


def test_buyer_and_shop_names_are_escaped_in_header() -> None:
    digest = make_digest(ChatContent(text="hi"), buyer_name='<img src=x onerror="a()">')
    html = render_digest(digest, LINKS).html
    assert all(not node.attributes.get("onerror") for node in HTMLParser(html).css("img"))
    # Text nodes are re-serialised by the inliner: "<" stays escaped, quotes need not be.
    assert '&lt;img src=x onerror="a()"&gt;' in html


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "vbscript:msgbox(1)",
        "//evil.example.com/x.png",
        "/relative.png",
        "ftp://files.example.com/x.png",
        'https://ok.example.com/x.png" onerror="alert(1)',
        "https://ok.example.com/a b.png",
        "https://ok.example.com/\nx.png",
        "http://",
        "https://[::1",
    ],
)
def test_non_http_or_malformed_urls_are_never_emitted(url: str) -> None:
    contents = (
        ChatContent(kind=ContentKind.IMAGE, url=url, thumbnail_url=url),
        ChatContent(kind=ContentKind.VIDEO, url=url, thumbnail_url=url),
        ChatContent(kind=ContentKind.STICKER, url=url),
        ChatContent(kind=ContentKind.PRODUCT_CARD, title="P", url=url, thumbnail_url=url),
    )
    rendered = render_digest(make_digest(*contents), LINKS)
    assert safe_http_url(url) == ""
    for emitted in urls_in(rendered.html):
        assert emitted.startswith(("https://seller.example.com/", "https://cdn.")), emitted
    assert "open the chat to view" in rendered.text  # the message itself is not dropped


def test_unsafe_chat_link_drops_the_button_but_keeps_an_instruction() -> None:
    links = DigestLinks("javascript:alert(1)", "https://s.example.com", "TikTok Shop")
    rendered = render_digest(make_digest(ChatContent(text="hi")), links)
    assert "javascript:" not in rendered.html
    assert "Open the TikTok Shop chat to reply." in rendered.text


def test_unknown_kind_becomes_a_fallback_line_with_its_text() -> None:
    content = ChatContent(kind="hologram", platform_type="HOLO_3D", text="look!")
    rendered = render_digest(make_digest(content), LINKS)
    label = "[Unsupported message type: HOLO_3D \u2014 open the chat to view]"
    assert label in rendered.html and label in rendered.text
    assert "look!" in rendered.text


def test_messages_appear_in_platform_time_order() -> None:
    digest = make_digest(ChatContent(text="first"), ChatContent(text="second"))
    shuffled = dataclasses.replace(digest, messages=digest.messages[::-1])
    text = render_digest(shuffled, LINKS).text
    assert text.index("first") < text.index("second")


def test_html_is_fluid_600px_with_dark_mode_rules_kept_after_inlining() -> None:
    html = render_case("text").html
    tree = HTMLParser(html)
    assert attribute(tree, 'meta[name="color-scheme"]', "content") == "light dark"
    style = tree.css_first("style")
    assert style is not None
    assert "@media (prefers-color-scheme: dark)" in style.text()
    assert "!important" in style.text()
    container_style = attribute(tree, "table.container", "style")
    assert "max-width: 600px" in container_style
    assert "width: 100%" in container_style
    # Plain rules were inlined (css-inline), so clients that strip <style> still get them.
    assert "background-color: #fe2c55" in attribute(tree, "a.button", "style")


def attribute(tree: HTMLParser, selector: str, name: str) -> str:
    node = tree.css_first(selector)
    assert node is not None, f"no {selector} in the HTML"
    return node.attributes.get(name) or ""


def test_header_shows_buyer_and_shop_and_each_message_time_in_the_region_zone_named() -> None:
    rendered = render_case("order_card")  # region "us", no zone of its own
    for part in (rendered.html, rendered.text):
        assert "Alice Buyer" in part
        assert "Sunny Socks" in part
        assert "25 Nov 2025, 03:26 GMT-8, America/Los_Angeles" in part
        assert "25 Nov 2025, 03:27 GMT-8, America/Los_Angeles" in part
        assert "UTC" not in part


def test_message_times_show_in_the_shops_own_zone_named() -> None:
    rendered = render_case("time_zone_jakarta")
    for part in (rendered.html, rendered.text):
        assert "25 Nov 2025, 18:26 GMT+7, Asia/Jakarta" in part


def test_text_part_stands_alone_with_link_and_reply_instructions() -> None:
    text = render_case("all_kinds").text
    assert f"Reply in chat: {LINKS.chat_url}" in text
    assert "reply to this email" in text
    assert "Attachments, files, videos and links are not shown to the buyer." in " ".join(
        text.split()
    )
    assert "Wool socks \u201cCosy\u201d 3-pack \u2014 $12.99" in text
    assert "  [Order 576460752303423]\n  Status: Shipped\n" in text
    assert "View: https://cdn.example.com/v/clip.mp4" in text
    # No markup leaks: the only "<" are the buyer's and the item name's own.
    assert "<" not in text.replace("<b>", "").replace("</b>", "").replace("<large>", "")


def _card_box_texts(html: str) -> list[list[str]]:
    """Each card box's paragraphs, in order (heading, title, details)."""
    tree = HTMLParser(html)
    return [
        [p.text(strip=True) for p in box.css("p")]
        for box in tree.css("table.product td.product-cell")
    ]


def test_return_refund_and_logistics_cards_are_labelled_apart_from_order_cards() -> None:
    html = render_case("all_kinds").html
    boxes = _card_box_texts(html)
    assert ["Order", "Order 576460752303424"] in boxes
    assert ["Return/refund request", "Order 576460752303426", "Item (SKU): 45678"] in boxes
    assert ["Logistics", "Order 576460752303428", "Package: 321"] in boxes
    text = render_case("all_kinds").text
    assert "  [Return/refund request: Order 576460752303426]\n  Item (SKU): 45678\n" in text
    assert "  [Logistics: Order 576460752303428]\n  Package: 321\n" in text
    assert "  [Order 576460752303424]\n\n" in text


def test_coupon_card_has_its_own_rendering_not_unsupported() -> None:
    rendered = render_case("coupon_card")
    assert "Unsupported" not in rendered.html and "Unsupported" not in rendered.text
    boxes = _card_box_texts(rendered.html)
    assert ["Coupon", "Coupon 7262992004278206762"] in boxes
    assert ["Coupon", "10% off", "Coupon id: 7262992004278206763"] in boxes
    assert "  [Coupon 7262992004278206762]\n" in rendered.text


def test_order_card_lists_looked_up_status_and_item_names_escaped() -> None:
    rendered = render_case("order_card")
    boxes = _card_box_texts(rendered.html)
    assert [
        "Order",
        "Order 576460752303425",
        "Status: Awaiting shipment",
        "Items: Wool socks 3-pack, Laundry bag <large>",
    ] in boxes
    assert "Laundry bag &lt;large&gt;" in rendered.html and "<large>" not in rendered.html
    assert "  Items: Wool socks 3-pack, Laundry bag <large>\n" in rendered.text


def test_product_card_without_a_known_name_shows_its_id() -> None:
    rendered = render_case("product_card_by_id")
    assert "Product 1729384756" in rendered.html
    assert "[Product: Product 1729384756]" in rendered.text


def test_emoticon_shows_its_emoji_or_picture_or_name_never_brackets() -> None:
    rendered = render_case("emoticon")
    assert "\U0001f642" in rendered.html and "\U0001f642" in rendered.text
    assert "wink_custom" in rendered.text and "[wink_custom]" not in rendered.text
    images = {
        img.attributes["src"]: img.attributes.get("alt")
        for img in HTMLParser(rendered.html).css("img")
    }
    assert images["https://cdn.example.com/e/loveface.png"] == "\U0001f60d"
    assert "[" not in rendered.text.split("Reply in chat")[0].split("\n", 3)[3]


def test_emoticon_picture_off_the_image_hosts_is_never_fetched() -> None:
    digest = make_digest(
        ChatContent(
            kind=ContentKind.EMOTICON,
            text="",
            title="pixel",
            url="https://tracker.example.net/e.png",
        )
    )
    rendered = render_digest(digest, LINKS)
    assert "tracker.example.net" not in rendered.html
    assert "pixel" in rendered.html and "pixel" in rendered.text


def test_each_kind_shows_its_key_field_in_html() -> None:
    html = render_case("all_kinds").html
    tree = HTMLParser(html)
    assert "Wool socks \u201cCosy\u201d 3-pack" in html and "$12.99" in html
    assert "Order 576460752303423" in html and "Shipped" in html
    view = [a for a in tree.css("a") if a.text(strip=True) == "View video"]
    assert [a.attributes["href"] for a in view] == [
        "https://cdn.example.com/v/clip.mp4",
        "https://cdn.example.com/v/noposter.mp4",
        "https://cdn.example.com/v/clip.mp4",  # the foreign_images case's video
    ]
    images = {img.attributes["src"]: img.attributes.get("alt") for img in tree.css("img")}
    assert images["https://cdn.example.com/p/thumb.jpg"] == "Picture sent by the buyer"
    assert images["https://cdn.example.com/v/poster.jpg"] == "Video preview"
    assert images["https://cdn.example.com/s/1.png"] == "wave"
    assert "The buyer cancelled order" in html


def _img_sources(html: str) -> list[str]:
    return [str(img.attributes.get("src")) for img in HTMLParser(html).css("img")]


def test_image_on_a_foreign_host_is_a_link_to_the_chat_not_a_remote_img() -> None:
    tracker = ChatContent(
        kind=ContentKind.IMAGE,
        url="https://tracker.example.net/px.gif",
        thumbnail_url="https://tracker.example.net/t.gif",
    )
    rendered = render_digest(make_digest(tracker), LINKS)
    assert _img_sources(rendered.html) == []
    assert "tracker.example.net" not in rendered.html + rendered.text
    links = [
        a
        for a in HTMLParser(rendered.html).css("a")
        if a.text(strip=True) == "View picture in chat"
    ]
    assert [a.attributes["href"] for a in links] == [LINKS.chat_url]


def test_image_on_an_allowed_host_keeps_its_img() -> None:
    picture = ChatContent(
        kind=ContentKind.IMAGE,
        url="https://cdn.example.com/p/full.jpg",
        thumbnail_url="https://cdn.example.com/p/thumb.jpg",
    )
    assert _img_sources(render_digest(make_digest(picture), LINKS).html) == [
        "https://cdn.example.com/p/thumb.jpg"
    ]
    # The same digest with no hosts allowed (the default) shows no remote image at all.
    no_hosts = dataclasses.replace(LINKS, image_hosts=frozenset())
    assert _img_sources(render_digest(make_digest(picture), no_hosts).html) == []


@pytest.mark.parametrize(
    ("setting", "url", "shown"),
    [
        ("cdn.example.com", "https://CDN.example.com/a.jpg", True),
        ("cdn.example.com", "https://x.cdn.example.com/a.jpg", False),
        (".cdn.example.com", "https://p16.cdn.example.com/a.jpg", True),
        (".cdn.example.com", "https://evilcdn.example.com/a.jpg", False),
        ("cdn.example.com", "https://cdn.example.com.evil.example/a.jpg", False),
        ("cdn.example.com", "https://cdn.example.com@evil.example/a.jpg", False),
        (" 127.0.0.1 , cdn.example.com", "http://127.0.0.1:8300/sandbox/images/1.png", True),
        ("", "https://cdn.example.com/a.jpg", False),
    ],
)
def test_image_hosts_setting_matches_host_names_exactly_or_by_dot_suffix(
    setting: str, url: str, shown: bool
) -> None:
    links = dataclasses.replace(LINKS, image_hosts=parse_image_hosts(setting))
    picture = ChatContent(kind=ContentKind.IMAGE, url=url)
    assert bool(_img_sources(render_digest(make_digest(picture), links).html)) is shown


@pytest.mark.parametrize(
    "bidi",
    [
        "\u202e",
        "\u202d",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\u202a",
        "\u202b",
        "\u202c",
        "\u200e",
        "\u200f",
        "\u061c",
    ],
)
def test_names_lose_bidi_controls_in_html_and_text(bidi: str) -> None:
    digest = dataclasses.replace(
        make_digest(ChatContent(text="hi"), buyer_name=f"Ana{bidi}gpj.exe"),
        shop_name=f"Sunny{bidi} Socks",
    )
    links = dataclasses.replace(LINKS, marketplace_name=f"Tik{bidi}Tok")
    rendered = render_digest(digest, links)
    for body in (rendered.html, rendered.text):
        assert bidi not in body
        assert "Anagpj.exe" in body and "Sunny Socks" in body and "TikTok" in body


def test_blank_buyer_name_falls_back_to_buyer() -> None:
    rendered = render_digest(make_digest(ChatContent(text="x"), buyer_name="  \n"), LINKS)
    assert "1 new message from Buyer" in rendered.text


contents = st.builds(
    ChatContent,
    kind=st.sampled_from([*ContentKind, "weird", ""]),
    text=st.text(max_size=200),
    url=st.one_of(st.text(max_size=60), st.just("https://a.example/x")),
    thumbnail_url=st.text(max_size=60),
    title=st.text(max_size=60),
    price=st.text(max_size=20),
    order_id=st.text(max_size=20),
    status=st.text(max_size=20),
    platform_type=st.text(max_size=20),
    product_id=st.text(max_size=20),
    sku_id=st.text(max_size=20),
    package_id=st.text(max_size=20),
    coupon_id=st.text(max_size=20),
    item_names=st.lists(st.text(max_size=30), max_size=3).map(tuple),
)


_image_urls = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "https://cdn.example.com/a.jpg",
            "http://cdn.example.com:8080/b.png",
            "https://tracker.example.net/px.gif",
            "https://cdn.example.com.evil.example/c.jpg",
            "https://cdn.example.com@evil.example/d.jpg",
            "//cdn.example.com/e.jpg",
            "javascript:x",
        ]
    ),
)
_picture_contents = st.builds(
    ChatContent,
    kind=st.sampled_from([*ContentKind, "weird"]),
    text=st.text(max_size=20),
    url=_image_urls,
    thumbnail_url=_image_urls,
    title=st.text(max_size=20),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_picture_contents, min_size=1, max_size=4))
def test_no_img_ever_points_off_the_allowed_hosts(items: list[ChatContent]) -> None:
    for src in _img_sources(render_digest(make_digest(*items), LINKS).html):
        assert urlsplit(src).hostname == "cdn.example.com"


@settings(max_examples=150, deadline=None)
@given(st.lists(contents, min_size=1, max_size=4), st.text(max_size=80))
def test_any_content_renders_without_crash_and_only_http_urls(
    items: list[ChatContent], buyer: str
) -> None:
    rendered = render_digest(make_digest(*items, buyer_name=buyer, time_zone="UTC"), LINKS)
    for url in urls_in(rendered.html):
        assert url.startswith(("http://", "https://"))
    # One meta line per message in the text part: nothing dropped.
    assert rendered.text.count("UTC):") == len(items)


# Text and URLs full of what escaping and re-serialising could get wrong: markup
# characters, quotes, no-break spaces, CR/LF, controls, non-BMP characters.
tricky_text = st.lists(
    st.sampled_from(
        list("ab <>&\"'=;#\r\n\t\x00\x0c\x85\u00a0\u00b7\u2028\ufffd\ue000\ue001")
        + ["\U0001f9e6", "&amp;", "&nbsp;", "<br>", "-->", "\ue0000\ue001"]
    ),
    max_size=20,
).map("".join)
tricky_url = st.one_of(
    tricky_text,
    st.builds(
        lambda q: "https://a.example/p?" + q,
        st.text(alphabet=st.sampled_from(list("ab&=;#%?\u00a0\u00e9")), max_size=20),
    ),
)
tricky_contents = st.builds(
    ChatContent,
    kind=st.sampled_from([*ContentKind, "weird", ""]),
    text=tricky_text,
    url=tricky_url,
    thumbnail_url=tricky_url,
    title=tricky_text,
    price=tricky_text,
    order_id=tricky_text,
    status=tricky_text,
    platform_type=tricky_text,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(tricky_contents, min_size=1, max_size=5),
    tricky_text,
    tricky_text,
    tricky_url,
    tricky_url,
    tricky_text,
)
def test_shapes_inlined_once_give_exactly_the_whole_document_inlining(
    items: list[ChatContent],
    buyer: str,
    shop: str,
    chat_url: str,
    settings_url: str,
    marketplace: str,
) -> None:
    digest = dataclasses.replace(make_digest(*items, buyer_name=buyer), shop_name=shop)
    links = DigestLinks(chat_url, settings_url, marketplace)
    assert render_digest(digest, links) == render_digest_reference(digest, links)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_cases_render_the_same_as_whole_document_inlining(case: str) -> None:
    digest = make_digest(*CASES[case])
    assert render_digest(digest, LINKS) == render_digest_reference(digest, LINKS)


def _parsed_safe_http_url(url: str) -> str:
    """safe_http_url's check done wholly by urlsplit (before its no-parse fast path)."""
    candidate = url.strip()
    if not candidate or re.search(r"[\x00-\x20\x7f-\x9f\"'<>\\`]", candidate):
        return ""
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    return candidate


_URL_LIKE = st.tuples(
    st.sampled_from(
        [
            "http",
            "https",
            "HTTPS",
            "hTtP",
            "httpſ",
            "httpѕ",
            "ftp",
            "javascript",
            "data",
            "",
            " https",
        ]
    ),
    st.sampled_from(["://", ":/", ":", "//", ":///", "://@", "://user:pw@"]),
    st.text(alphabet=st.sampled_from(list("aZK.-09:[]@ſé%_ ")), max_size=12),
    st.sampled_from(["", "/", "/p?q=1", "?x", "#f", ":80/", ":x/", "\\", "/a b", "\t"]),
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(_URL_LIKE | st.text(max_size=40))
@example("httpſ://a.example/")  # "ſ" matches "s" case-insensitively; not a scheme letter
@example("HTTPS://a.example:8443")
@example("http://user@a.example/")
def test_url_check_fast_path_agrees_with_parsing_the_url(url: str) -> None:
    assert safe_http_url(url) == _parsed_safe_http_url(url)

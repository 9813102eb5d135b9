"""Show what the bridge would do with one inbound email.

Usage (from the repo root)::

    python bench/inspect_reply.py FILE.eml [--shop-settings JSON|@FILE] [--rcpt ADDRESS]
                                           [--mail-from ADDRESS] [--peer IP]

Prints ONE JSON object: ``class`` (reply / auto_reply / bounce / loop / rejected), ``reason``,
``text`` (what the buyer would receive), ``parts`` (the chat text messages), plus
``image_parts``, ``source``, ``inline_images``, ``withheld``, ``notices`` and ``auth``.

It runs the parser's own pipeline (``inbound_pipeline.decide``): classification, extraction,
content policy, split. Without a shop context the token and sender checks are skipped; with
``--shop-settings`` (a ShopSettings JSON object) and/or ``--rcpt`` (a reply address, checked
with the configured token keys) they run as in production, DNS excepted (no network: the
authentication verdict comes from trusted Authentication-Results only). Never crashes: an
unreadable file or a mail beyond the parsing limits is reported as ``rejected``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reply_parser.inbound_pipeline import (  # noqa: E402
    InboundDecision,
    OwnIdentity,
    config_from,
    decide,
)
from reply_parser.mime_limits import MailTooComplex  # noqa: E402
from reply_parser.reply_parser_settings import ReplyParserSettings  # noqa: E402
from shared.codec import DecodeError, from_dict  # noqa: E402
from shared.errors import BridgeError  # noqa: E402
from shared.events import InboundEnvelope, ShopSettings  # noqa: E402
from shared.tokens import TokenError, parse_keys, split_reply_address, verify_token  # noqa: E402


class ContextError(BridgeError, ValueError):
    """The shop context given on the command line is unusable."""


def _shop_from(spec: str | None, shop_id: str) -> ShopSettings | None:
    if not spec:
        return None
    text = Path(spec[1:]).read_text() if spec.startswith("@") else spec
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContextError(f"--shop-settings is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContextError("--shop-settings must be a JSON object")
    data.setdefault("shop_id", shop_id)
    try:
        return from_dict(ShopSettings, data)  # lists become tuples there
    except DecodeError as exc:
        raise ContextError(f"--shop-settings: {exc}") from None


def inspect(
    raw: bytes,
    *,
    shop_settings: str | None = None,
    rcpt: str | None = None,
    mail_from: str | None = None,
    peer: str = "",
) -> dict[str, object]:
    """The JSON-ready verdict for one raw message."""
    cfg = ReplyParserSettings()
    shop_id, conversation_id = "inspect", "inspect"
    if rcpt:
        try:
            token, _region = split_reply_address(rcpt, cfg.reply_domain_base)
            reply = verify_token(
                token, parse_keys(cfg.token_keys.get_secret_value()), now_s=time.time()
            )
        except TokenError as exc:
            return _verdict(InboundDecision("rejected", f"recipient refused: {exc}"))
        shop_id, conversation_id = reply.shop_id, reply.conversation_id
    shop = _shop_from(shop_settings, shop_id)
    context = shop is not None or rcpt is not None
    if shop is None:
        shop = ShopSettings(shop_id=shop_id, destination_email=cfg.default_destination_email)
    pipeline = dataclasses.replace(
        config_from(cfg), check_sender=context, envelope_known=mail_from is not None
    )
    env = InboundEnvelope(
        mail_id="inspect",
        shop_id=shop_id,
        conversation_id=conversation_id,
        mail_from=mail_from or "",
        rcpt_to=rcpt or "",
        received_at_ms=0,
        peer=peer,
    )
    try:
        decision = decide(
            raw,
            env,
            shop,
            OwnIdentity(cfg.message_id_domain, cfg.reply_domain_base),
            config=pipeline,
        )
    except MailTooComplex as exc:
        decision = InboundDecision("rejected", f"mail beyond parsing limits: {exc}")
    except Exception as exc:  # noqa: BLE001 - the command reports, never crashes
        decision = InboundDecision("rejected", f"unparseable mail: {exc.__class__.__name__}: {exc}")
    return _verdict(decision)


def _verdict(decision: InboundDecision) -> dict[str, object]:
    reply = decision.reply
    extraction = decision.extraction
    return {
        "class": str(decision.classification),
        "reason": decision.reason,
        "text": decision.text if reply is not None else "",
        "parts": [p.text for p in reply.parts if p.text] if reply is not None else [],
        "image_parts": [
            {
                "index": p.index,
                "content_type": p.image_content_type,
                "filename": p.image_filename,
                "base64_chars": len(p.image_b64),
            }
            for p in (reply.parts if reply is not None else ())
            if p.image_b64
        ],
        "source": extraction.source if extraction is not None else "",
        "inline_images": [
            {
                "content_type": i.content_type,
                "filename": i.filename,
                "content_id": i.content_id,
                "bytes": len(i.data),
            }
            for i in (extraction.inline_images if extraction is not None else ())
        ],
        "withheld": list(decision.withheld),
        "notices": [
            {
                "kind": n.kind,
                "to": n.to_address,
                "notice_id": n.notice_id,
                "auto_submitted": n.auto_submitted,
            }
            for n in decision.notices
        ],
        "auth": decision.auth.summary() if decision.auth is not None else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--shop-settings", help="ShopSettings as JSON, or @FILE holding it")
    parser.add_argument("--rcpt", help="the reply address the mail was sent to")
    parser.add_argument("--mail-from", help="SMTP envelope sender (MAIL FROM), when known")
    parser.add_argument("--peer", default="", help="IP of the sending SMTP client")
    ns = parser.parse_args(argv)
    try:
        raw = ns.file.read_bytes()
        result = inspect(
            raw, shop_settings=ns.shop_settings, rcpt=ns.rcpt, mail_from=ns.mail_from, peer=ns.peer
        )
    except (OSError, ContextError) as exc:
        print(
            json.dumps(
                {"class": "rejected", "reason": f"cannot inspect: {exc}", "text": "", "parts": []},
                ensure_ascii=False,
            )
        )
        return 2
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

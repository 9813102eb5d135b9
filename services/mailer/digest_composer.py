"""A digest to its envelope and message bytes: the mailer's CPU work, free of I/O.

Used on the event loop and in the compose helper processes
(:mod:`mailer.compose_process`), so both produce the same mail for the same digest.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from mailer.compose import ComposeContext, compose_digest_bytes
from mailer.dkim_signing import DkimSigner, load_dkim_signer
from mailer.mailer_settings import MailerSettings
from mailer.render import DigestLinks, parse_image_hosts
from shared.events import Digest
from shared.tokens import mint_token, parse_keys, reply_address

__all__ = ["DigestComposer", "load_signer"]

_VERP_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")


class DigestComposer:
    """Composes digests with one configuration's reply keys, links and (optional) DKIM key."""

    def __init__(self, cfg: MailerSettings, signer: DkimSigner | None) -> None:
        self.cfg = cfg
        self.signer = signer
        self._keys = parse_keys(cfg.token_keys.get_secret_value())
        self._image_hosts = parse_image_hosts(cfg.digest_image_hosts)

    def compose(self, digest: Digest) -> tuple[str, str, bytes]:
        """(envelope sender, recipient, unsigned message bytes) for a digest."""
        cfg = self.cfg
        token = mint_token(
            digest.shop_id,
            digest.conversation_id,
            self._keys,
            now_s=time.time(),
            ttl_s=cfg.token_ttl_days * 86400,
        )
        address = reply_address(token, digest.region, cfg.reply_domain_base)
        to = digest.destination_email or cfg.default_destination_email
        links = DigestLinks(
            chat_url=f"{cfg.chat_deep_link_base}/{digest.shop_id}/{digest.conversation_id}",
            settings_url=cfg.settings_link_template.format(shop_id=digest.shop_id),
            marketplace_name=cfg.marketplace_name,
            image_hosts=self._image_hosts,
        )
        ctx = ComposeContext(
            marketplace_name=cfg.marketplace_name,
            from_address=address,
            to_address=to,
            message_id_domain=cfg.message_id_domain,
            links=links,
            list_unsubscribe_url=links.settings_url,
            now=datetime.now(UTC),
        )
        return self.envelope_sender(digest, address), to, compose_digest_bytes(digest, ctx)

    def compose_signed(self, digest: Digest) -> tuple[str, str, bytes]:
        """As :meth:`compose`, DKIM-signed here when there is a key."""
        sender, to, raw = self.compose(digest)
        return sender, to, raw if self.signer is None else self.signer.sign(raw)

    def envelope_sender(self, digest: Digest, reply_address: str) -> str:
        """VERP return path ``bounce+<digest id>@<bounce domain>`` when configured, so a
        bounce names its digest; otherwise the reply address."""
        if not self.cfg.bounce_domain:
            return reply_address
        return f"bounce+{_VERP_UNSAFE.sub('_', digest.digest_id)[:120]}@{self.cfg.bounce_domain}"


def load_signer(cfg: MailerSettings) -> DkimSigner | None:
    """The DKIM signer when a key file is configured; unsigned mail only for local runs."""
    if not cfg.dkim_key_file:
        return None
    return load_dkim_signer(cfg.dkim_selector, cfg.dkim_domain, cfg.dkim_key_file)

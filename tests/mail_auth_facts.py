"""What the parser's edge finds about a mail's sender, for tests of the pure pipeline."""

from __future__ import annotations

from reply_parser.inbound_pipeline import PipelineConfig, parse_mail
from reply_parser.mail_auth import AuthResult, DnsResolver, evaluate
from shared.events import InboundEnvelope


def auth_facts(
    raw: bytes, env: InboundEnvelope, resolver: DnsResolver, config: PipelineConfig | None = None
) -> AuthResult:
    """DKIM/SPF/DMARC of ``raw`` through ``resolver``, as the parser looks them up before
    :func:`reply_parser.inbound_pipeline.conclude` (``decide(..., auth=...)``)."""
    trusted = (config or PipelineConfig()).trusted_authserv_ids
    return evaluate(
        raw,
        parse_mail(raw),
        peer_ip=env.peer,
        mail_from=env.mail_from,
        resolver=resolver,
        trusted_ids=trusted,
    )

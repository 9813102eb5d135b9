"""The SMTP front's process: aiosmtpd server + Kafka producer + /metrics."""

from __future__ import annotations

from reply_parser.reply_parser_settings import ReplyParserSettings
from reply_parser.smtp_front import ReplyFrontHandler, SessionLimits, start_smtp_front
from shared.kafka import start_producer
from shared.service_runtime import ServiceRuntime
from shared.tokens import parse_keys
from shared.topics import INBOUND_RECORD_LIMIT

SERVICE = "reply_front"


async def main(runtime: ServiceRuntime, cfg: ReplyParserSettings) -> None:
    """The front's parts, started in order on the runtime (stopped in reverse)."""
    producer = await runtime.producer(start_producer(cfg, max_request_size=INBOUND_RECORD_LIMIT))
    handler = ReplyFrontHandler(
        producer,
        parse_keys(cfg.token_keys.get_secret_value()),
        cfg.reply_domain_base,
        kafka_timeout_s=2 * cfg.kafka_request_timeout_ms / 1000,
        max_conversations=cfg.inbound_max_conversations_per_mail,
    )
    server = await start_smtp_front(
        handler,
        cfg.inbound_smtp_host,
        cfg.inbound_smtp_port,
        cfg.inbound_max_bytes,
        SessionLimits.from_settings(cfg),
    )
    runtime.on_stop_sync(server.close)
    runtime.serve_ops(cfg.http_host, cfg.reply_front_port)
    await server.serve_forever()

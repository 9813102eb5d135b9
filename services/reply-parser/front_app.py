"""The SMTP front's process: aiosmtpd server + Kafka producer + /metrics."""

from __future__ import annotations

import asyncio

from reply_parser.smtp_front import ReplyFrontHandler, SessionLimits, start_smtp_front
from shared.config import get_settings
from shared.kafka import kafka_healthy, start_producer
from shared.metrics import UP
from shared.ops_http import build_ops_app, serve_ops
from shared.tokens import parse_keys
from shared.topics import INBOUND_RECORD_LIMIT

SERVICE = "reply_front"


async def main() -> None:
    cfg = get_settings()
    producer = await start_producer(cfg, max_request_size=INBOUND_RECORD_LIMIT)
    handler = ReplyFrontHandler(producer, parse_keys(cfg.token_keys.get_secret_value()),
                                cfg.reply_domain_base,
                                kafka_timeout_s=2 * cfg.kafka_request_timeout_ms / 1000,
                                max_conversations=cfg.inbound_max_conversations_per_mail)
    server = await start_smtp_front(handler, cfg.inbound_smtp_host, cfg.inbound_smtp_port,
                                    cfg.inbound_max_bytes, SessionLimits.from_settings(cfg))
    ops = await serve_ops(build_ops_app(SERVICE, lambda: kafka_healthy(producer)), cfg.http_host,
                          cfg.reply_front_port)
    UP.labels(SERVICE).set(1)
    try:
        await server.serve_forever()
    finally:
        UP.labels(SERVICE).set(0)
        ops.cancel()
        server.close()
        await producer.stop()


def run() -> None:
    asyncio.run(main())

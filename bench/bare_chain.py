"""The bare-library chain the end-to-end bench compares the stack's CPU against.

``python bench/bare_chain.py CONFIG.json`` serves, in one process, the hops the stack makes
with nothing but the libraries it is built on:

1. FastAPI answers a webhook POST after an ``acks=all`` aiokafka send to ``events_topic``;
2. a raw aiokafka consumer reads ``events_topic`` and, once a conversation has had
   ``messages`` messages, produces one record to ``digests_topic``;
3. a raw consumer of ``digests_topic`` sends a prepared (composed, signed) digest with
   aiosmtplib over ``connections`` connections;
4. for the conversations picked to be answered, one httpx POST of a signed Send Message to
   the sandbox (the chat hop of a reply).

It prints ``ready`` once serving. No validation, no state beyond a counter, no outcome
records: the floor under what the stack's services do on the same hops.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aiosmtplib
import httpx
import orjson
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI, Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.chat_platform.tiktok_signing import sign_request  # noqa: E402


async def main(cfg: dict, raw_digest: bytes) -> None:  # type: ignore[type-arg]
    producer = AIOKafkaProducer(bootstrap_servers=cfg["bootstrap"], acks="all")
    await producer.start()
    app = FastAPI()

    @app.post("/webhooks/tiktok")
    async def webhook(request: Request) -> Response:
        body = await request.body()
        data = orjson.loads(body)
        key = f"{data['shop_id']}:{data['data']['conversation_id']}".encode()
        await producer.send_and_wait(cfg["events_topic"], body, key=key)
        return Response(status_code=200)

    async def consume_produce() -> None:
        consumer = AIOKafkaConsumer(
            cfg["events_topic"],
            bootstrap_servers=cfg["bootstrap"],
            group_id=cfg["group"] + "-events",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        seen: dict[bytes, int] = {}
        async for record in consumer:
            key = record.key or b""
            seen[key] = seen.get(key, 0) + 1
            if seen[key] == cfg["messages"]:
                await producer.send(cfg["digests_topic"], key, key=key)

    replied = set(cfg["replied"])
    http = httpx.AsyncClient(timeout=30)

    async def post_part(conv: str) -> None:
        path = f"/customer_service/202309/conversations/{conv}/messages"
        body = orjson.dumps(
            {"type": "TEXT", "content": orjson.dumps({"content": f"bare reply {conv}"}).decode()}
        )
        query = {"app_key": cfg["app_key"], "timestamp": str(int(time.time()))}
        query["sign"] = sign_request(path, query, body, cfg["app_secret"])
        await http.post(
            f"{cfg['sandbox']}{path}",
            params=query,
            content=body,
            headers={
                "x-tts-access-token": cfg["access_token"],
                "content-type": "application/json",
                "x-bridge-idempotency-key": f"bare-{conv}",
            },
        )

    async def send_digests() -> None:
        consumer = AIOKafkaConsumer(
            cfg["digests_topic"],
            bootstrap_servers=cfg["bootstrap"],
            group_id=cfg["group"] + "-digests",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        queue: asyncio.Queue[str] = asyncio.Queue()

        async def sender() -> None:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=cfg["smtp_port"], timeout=60)
            await client.connect()
            while True:
                conv = await queue.get()
                await client.sendmail(
                    "bounce@bridge.example", ["seller@shop.localhost"], raw_digest
                )
                if conv in replied:
                    await post_part(conv)

        senders = [asyncio.create_task(sender()) for _ in range(cfg["connections"])]
        async for record in consumer:
            queue.put_nowait((record.value or b"").decode().partition(":")[2])
        await asyncio.gather(*senders)

    tasks = [asyncio.create_task(consume_produce()), asyncio.create_task(send_digests())]
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=cfg["http_port"], log_level="warning", access_log=False
        )
    )
    serve = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.gather(serve, *tasks)


if __name__ == "__main__":
    config = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(main(config, Path(config["digest_file"]).read_bytes()))

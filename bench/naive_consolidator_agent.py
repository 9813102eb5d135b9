"""The baseline the consolidator bench compares against: a per-event faust agent.

One table read and one table write per record, state as orjson dicts, the way
the consolidator worked before batching. Run by bench/bench_consolidator.py as
``python bench/naive_consolidator_agent.py worker``; /count reports records seen.
"""

from __future__ import annotations

import logging
import os

import faust
import orjson
from faust.web import Request, Response, View

logging.getLogger("aiokafka").setLevel(logging.WARNING)
app = faust.App(
    "bench-naive-consolidator",
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP']}",
    store="memory://",
    topic_partitions=8,
    topic_replication_factor=1,
    broker_session_timeout=6,
    broker_heartbeat_interval=2,
    producer_linger=0.01,
    web_port=int(os.environ["BENCH_WEB_PORT"]),
    web_in_thread=False,
)
events = app.topic(
    "chat.events", key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
states = app.Table("naive-state", default=None, partitions=8)
seen = 0


@app.agent(events)
async def consolidate(stream: faust.StreamT[bytes]) -> None:
    global seen
    async for event in stream.events():
        ev = orjson.loads(event.value)
        key = event.key.decode()
        st = states.get(key) or {"pending": [], "due": 0}
        st["pending"].append([ev["message_id"], ev["sent_at_ms"], ev.get("content")])
        st["due"] = ev["received_at_ms"] + 900_000
        states[key] = st
        seen += 1


@app.page("/count")
class Count(View):
    async def get(self, request: Request) -> Response:
        return self.json({"seen": seen})


if __name__ == "__main__":
    app.main()

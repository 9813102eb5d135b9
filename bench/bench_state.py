"""Start-up replay time and resident memory of each state holder, per shop and per key.

One command: ``.venv/bin/python bench/bench_state.py [--shops 10000,100000,1000000]
[--keys 1000000,10000000] [--users-per-shop 3] [--traced-up-to N] [--bootstrap HOST:PORT]
[--holders NAME,...] [--changed-share 0.01] [--json out.json]``.

Starts a private embedded broker (Tansu, in memory) unless ``--bootstrap`` names a fresh
one (e.g. Apache Kafka from ``scripts/kafka.sh start``), then for each size in turn tops
the topics up to that size with a bulk producer (big batches, linger) and starts each
holder in a fresh Python process, the way its service does:

- ``settings-view``: :class:`shared.settings_view.ShopSettingsView` over ``shop.settings``;
- ``admin-directory``: the ingest's :class:`ingest.admin_feeds.AdminFeeds` feeding an
  :class:`ingest.admin_directory.AdminDirectory` from ``admin.users`` (``--users-per-shop``
  users per shop) and ``shop.settings``, in its disk store: twice per size, a first start
  (empty store: every record read) and a restart on that store after
  ``--changed-share`` of the shops were written again (only those records read);
- ``mailer-ledger``: :class:`mailer.outcome_ledger.OutcomeLedger` over ``mail.outcomes``,
  read whole (``BRIDGE_LEDGER_READ_ALL``, or a ledger with too few partitions);
- ``fanout-log``: :class:`fanout.delivery_log.DeliveryLog` over ``chat.deliveries``, read
  whole likewise;
- ``mailer-ledger-2of8``, ``fanout-log-2of8``: the same as one replica of four holds them,
  assigned input partitions 0 and 1: started, then ``hold({0, 1})`` (what it reads and
  keeps; per key held).

Each child measures its own RSS after constructing the holder (imports done, nothing
read), times ``start`` to ready (wall clock, and the process's CPU time: on a shared
machine the replay also waits for a core), and measures RSS again: ``ready`` is that difference
(what the process holds while it serves, fetch buffers included), ``kept`` the
difference after the reader is stopped and freed memory handed back (``malloc_trim``),
i.e. what the holder's own structures keep. Sizes up to ``--traced-up-to`` are replayed
a second time under tracemalloc: ``traced`` is what Python allocated during that replay
and still holds (allocator slack excluded). Sizes are cumulative (the 100k run reads
the 10k shops plus 90k more). Before each size the broker's memory growth per record
so far is projected: a size that would not fit in half the machine's available memory
is skipped and its figures are extrapolated linearly from the largest size measured,
printed as such.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from process_stats import process_rss_bytes  # noqa: E402

HOLDERS = (
    "settings-view",
    "admin-directory",
    "mailer-ledger",
    "fanout-log",
    "mailer-ledger-2of8",
    "fanout-log-2of8",
)
SHOP_HOLDERS = HOLDERS[:2]
KEY_HOLDERS = HOLDERS[2:]
MB = 1024 * 1024
# The input partitions one replica of four is assigned (of 8): its share of a ledger.
SHARE = (0, 1)


# --- the records -----------------------------------------------------------------


def shop_id(i: int) -> str:
    return f"shop-{i:08d}"


def settings_record(i: int, now_ms: int) -> tuple[bytes, bytes]:
    from shared.codec import encode
    from shared.events import ShopSettings

    sid = shop_id(i)
    value = ShopSettings(
        shop_id=sid,
        alerts_enabled=True,
        destination_email=f"support@{sid}.example.com",
        destination_kind="zendesk" if i % 3 == 0 else "mailbox",
        region="us" if i % 2 else "gb",
        shop_name=f"Shop number {i}",
        authorized_senders=tuple(f"{n}@{sid}.example.com" for n in ("owner", "admin", "agent")),
        updated_at_ms=now_ms,
        updated_by=f"owner@{sid}.example.com",
    )
    return sid.encode(), encode(value)


def user_records(i: int, users: int, now_ms: int) -> list[tuple[bytes, bytes]]:
    from shared.codec import encode
    from shared.events import ShopUser, UserRole, UserStatus

    sid = shop_id(i)
    roles = [UserRole.MAIN_ACCOUNT, UserRole.ADMINISTRATOR] + [UserRole.CS_AGENT] * users
    out = []
    for n in range(users):
        email = f"user{n}@{sid}.example.com"
        user = ShopUser(
            shop_id=sid,
            email=email,
            role=roles[n],
            status=UserStatus.ACTIVE,
            activation_nonce=f"{i:011d}{n:011d}",
            activation_expires_at_ms=now_ms + 120 * 3600 * 1000,
            invited_at_ms=now_ms - n,
            invited_by=f"user0@{sid}.example.com",
            activated_at_ms=now_ms,
            updated_at_ms=now_ms,
        )
        out.append((f"{sid}:{email}".encode(), encode(user)))
    return out


def outcome_record(k: int, now_ms: int) -> tuple[bytes, bytes]:
    from shared.codec import encode
    from shared.events import MailOutcome

    sid, conv = shop_id(k % 1_000_000), f"conv-{k:010d}"
    digest_id = f"{sid}:{conv}:{now_ms - k}"
    value = MailOutcome(
        digest_id=digest_id,
        shop_id=sid,
        conversation_id=conv,
        status="sent",
        message_id_header=f"<{digest_id}@chat-seller-us.example.com>",
        smtp_code=250,
        attempts=1,
        at_ms=now_ms,
    )
    return digest_id.encode(), encode(value)


def delivery_record(k: int, now_ms: int) -> tuple[bytes, bytes]:
    from shared.codec import encode
    from shared.events import PartDelivery

    reply, index = k // 2, k % 2  # two parts per reply
    reply_id = f"r{reply:031d}"
    value = PartDelivery(
        reply_id=reply_id,
        shop_id=shop_id(reply % 1_000_000),
        conversation_id=f"conv-{reply:010d}",
        index=index,
        status="delivered",
        platform_message_id=f"m{k:020d}",
        attempts=1,
        at_ms=now_ms,
    )
    return f"{reply_id}:{index}".encode(), encode(value)


# --- the parent: write, then measure each holder in a child ----------------------


async def produce(bootstrap: str, topic: str, partitions: int, records, counts=None) -> int:  # type: ignore[no-untyped-def]
    """Write ``records`` (key, value) in whole batches of about 1 MB, one per partition at a
    time (the key's partition as the default partitioner picks it), a few in flight;
    ``counts`` (partition -> records) is added to."""
    from aiokafka import AIOKafkaProducer

    from shared.kafka import default_partition

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
        acks=1,
        enable_idempotence=False,
    )
    await producer.start()
    count = 0
    try:
        batches = [producer.create_batch() for _ in range(partitions)]
        in_flight: list[asyncio.Future[object]] = []

        async def flush(p: int) -> None:
            in_flight.append(await producer.send_batch(batches[p], topic, partition=p))
            batches[p] = producer.create_batch()
            if len(in_flight) >= 8:
                await asyncio.gather(*in_flight)
                in_flight.clear()

        for key, value in records:
            p = default_partition(key, partitions)
            if counts is not None:
                counts[p] = counts.get(p, 0) + 1
            if batches[p].append(key=key, value=value, timestamp=None) is None:
                await flush(p)
                batches[p].append(key=key, value=value, timestamp=None)
            count += 1
        for p in range(partitions):
            if batches[p].record_count():
                await flush(p)
        await asyncio.gather(*in_flight)
    finally:
        await producer.stop()
    return count


def measure(
    holder: str, bootstrap: str, expect: int, traced: bool = False, store: str = ""
) -> dict[str, float]:
    env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "BRIDGE_DEV_MODE": "true"}
    env["BRIDGE_LOG_LEVEL"] = "WARNING"
    from devstack.stack import DEV_MODE_ENV

    env.update(DEV_MODE_ENV)
    out = subprocess.run(
        [sys.executable, str(Path(__file__)), "--child", holder, "--bootstrap", bootstrap]
        + (["--traced"] if traced else [])
        + (["--store", store] if store else []),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{holder} child failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["entries"] < expect:
        raise RuntimeError(f"{holder} holds {result['entries']} entries, expected {expect}")
    return result


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


async def run(args: argparse.Namespace) -> list[dict[str, object]]:
    from devstack.broker import EmbeddedBroker
    from shared.kafka import ensure_topics
    from shared.topics import ADMIN_USERS, ALL_TOPICS, CHAT_DELIVERIES, MAIL_OUTCOMES, SHOP_SETTINGS

    broker = None
    broker_pid: int | None = None
    if args.bootstrap:
        bootstrap = args.bootstrap
        await ensure_topics(bootstrap, ALL_TOPICS)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench-state-"))
        broker = EmbeddedBroker(log_path=str(tmp / "broker.log"))
        await broker.start_with_topics()
        bootstrap, broker_pid = broker.bootstrap, broker.pid
    rows: list[dict[str, object]] = []
    now_ms = int(time.time() * 1000)
    try:
        written = {"records": 0}
        per_partition: dict[str, dict[int, int]] = {
            MAIL_OUTCOMES.name: {},
            CHAT_DELIVERIES.name: {},
        }

        def expected(holder: str, size: int) -> int:
            if not holder.endswith("-2of8"):
                return size
            topic = MAIL_OUTCOMES.name if holder.startswith("mailer") else CHAT_DELIVERIES.name
            return sum(per_partition[topic].get(p, 0) for p in SHARE)

        base_rss = process_rss_bytes(broker_pid) if broker_pid else 0

        def fits(more_records: int) -> bool:
            if not broker_pid or not written["records"]:
                return True
            per = (process_rss_bytes(broker_pid) - base_rss) / written["records"]
            need = per * more_records
            ok = need < available_bytes() / 2
            if not ok:
                print(
                    f"   broker would need ~{need / MB:,.0f} MB more "
                    f"({per:,.0f} B/record so far), over half of the "
                    f"{available_bytes() / MB:,.0f} MB available: skipped, extrapolated",
                    flush=True,
                )
            return ok

        async def grow(kind: str, have: int, size: int) -> None:
            started = time.monotonic()
            if kind == "shops":
                n = await produce(
                    bootstrap,
                    SHOP_SETTINGS.name,
                    SHOP_SETTINGS.partitions,
                    (settings_record(i, now_ms) for i in range(have, size)),
                )
                n += await produce(
                    bootstrap,
                    ADMIN_USERS.name,
                    ADMIN_USERS.partitions,
                    (
                        rec
                        for i in range(have, size)
                        for rec in user_records(i, args.users_per_shop, now_ms)
                    ),
                )
            else:
                n = await produce(
                    bootstrap,
                    MAIL_OUTCOMES.name,
                    MAIL_OUTCOMES.partitions,
                    (outcome_record(k, now_ms) for k in range(have, size)),
                    per_partition[MAIL_OUTCOMES.name],
                )
                n += await produce(
                    bootstrap,
                    CHAT_DELIVERIES.name,
                    CHAT_DELIVERIES.partitions,
                    (delivery_record(k, now_ms) for k in range(have, size)),
                    per_partition[CHAT_DELIVERIES.name],
                )
            written["records"] += n
            took = time.monotonic() - started
            print(f"   wrote {n:,} records in {took:.0f} s ({n / took:,.0f}/s)", flush=True)

        async def change(size: int) -> int:
            """Write ``--changed-share`` of the shops again (settings and users, later)."""
            step = max(1, round(1 / args.changed_share))
            changed = range(0, size, step)
            later = now_ms + 1000
            n = await produce(
                bootstrap,
                SHOP_SETTINGS.name,
                SHOP_SETTINGS.partitions,
                (settings_record(i, later) for i in changed),
            )
            n += await produce(
                bootstrap,
                ADMIN_USERS.name,
                ADMIN_USERS.partitions,
                (rec for i in changed for rec in user_records(i, args.users_per_shop, later)),
            )
            written["records"] += n
            print(f"   changed {len(changed):,} shops: {n:,} records written", flush=True)
            return n

        def add_row(holder: str, start: str, size: int, result: dict[str, float]) -> None:
            row = {"holder": holder, "start": start, "size": size, "unit": "shop", **result}
            row["measured"] = True
            rows.append(row)
            last[f"{holder} {start}"] = row
            print_row(row)

        holders_wanted = set(args.holders)
        plan = [
            ("keys", k, tuple(h for h in KEY_HOLDERS if h in holders_wanted)) for k in args.keys
        ]
        plan += [
            ("shops", s, tuple(h for h in SHOP_HOLDERS if h in holders_wanted)) for s in args.shops
        ]
        have = {"shops": 0, "keys": 0}
        last: dict[str, dict[str, object]] = {}
        for kind, size, holders in plan:
            per_unit = (1 + args.users_per_shop) if kind == "shops" else 2
            print(f"\n## {size:,} {kind}", flush=True)
            if not fits((size - have[kind]) * per_unit):
                for holder in holders:
                    ref = last.get(holder)
                    if ref is not None:
                        rows.append(extrapolate(ref, size))
                continue
            if not holders:
                continue
            await grow(kind, have[kind], size)
            have[kind] = size
            for holder in holders:
                if holder == "admin-directory":
                    store = tempfile.mkdtemp(prefix="bench-directory-")
                    try:
                        first = measure(holder, bootstrap, size, store=store)
                        add_row(holder, "first start", size, first)
                        expect_read = await change(size)
                        again = measure(holder, bootstrap, size, store=store)
                        if again["records_read"] > expect_read:
                            raise RuntimeError(
                                f"restart read {again['records_read']:,} records, "
                                f"{expect_read:,} were written since"
                            )
                        add_row(holder, "restart", size, again)
                    finally:
                        shutil.rmtree(store, ignore_errors=True)
                    continue
                result = measure(holder, bootstrap, expected(holder, size))
                if size <= args.traced_up_to:  # a second replay, under tracemalloc
                    traced = measure(holder, bootstrap, expected(holder, size), traced=True)
                    result["traced_bytes"] = traced["traced_bytes"]
                row = {"holder": holder, "size": size, "unit": kind[:-1], **result}
                row["measured"] = True
                rows.append(row)
                last[holder] = row
                print_row(row)
        for kind, size, holders in [("keys", k, KEY_HOLDERS) for k in args.extrapolate_keys]:
            print(f"\n## {size:,} {kind}: not written (--extrapolate-keys)", flush=True)
            rows.extend(extrapolate(last[h], size) for h in holders if h in last)
    finally:
        if broker is not None:
            broker.stop()
    return rows


def extrapolate(ref: dict[str, object], size: int) -> dict[str, object]:
    factor = size / float(ref["size"])  # type: ignore[arg-type]
    row = dict(ref)
    row.update(
        size=size,
        measured=False,
        entries=int(float(ref["entries"]) * factor),  # type: ignore[arg-type]
        replay_s=float(ref["replay_s"]) * factor,  # type: ignore[arg-type]
        cpu_s=float(ref.get("cpu_s", 0.0)) * factor,  # type: ignore[arg-type]
        ready_bytes=float(ref["ready_bytes"]) * factor,  # type: ignore[arg-type]
        kept_bytes=float(ref["kept_bytes"]) * factor,  # type: ignore[arg-type]
    )
    print_row(row)
    return row


def per_unit(row: dict[str, object]) -> float:
    """What the per-unit figures divide by: a share holder's keys held, else the size."""
    if str(row["holder"]).endswith("-2of8"):
        return max(float(row["entries"]), 1.0)  # type: ignore[arg-type]
    return float(row["size"])  # type: ignore[arg-type]


def print_row(row: dict[str, object]) -> None:
    size = per_unit(row)
    note = "" if row["measured"] else "   EXTRAPOLATED (linear, from the largest size measured)"
    held = f" held of {int(float(row['size'])):,}" if size != float(row["size"]) else ""  # type: ignore[arg-type]
    print(
        f"   {row['holder']:<18} {str(row.get('start', '')):<11} {int(size):>10,} {row['unit']}s{held}  "
        f"replay {float(row['replay_s']):7.1f} s  "  # type: ignore[arg-type]
        f"({size / max(float(row['replay_s']), 1e-9):>9,.0f}/s, "  # type: ignore[arg-type]
        f"cpu {float(row.get('cpu_s', 0.0)):6.1f} s)  "  # type: ignore[arg-type]
        f"ready {float(row['ready_bytes']) / MB:8.1f} MB "  # type: ignore[arg-type]
        f"= {float(row['ready_bytes']) / size:5.0f} B/{row['unit']}  "  # type: ignore[arg-type]
        f"kept {float(row['kept_bytes']) / size:5.0f} B/{row['unit']}"  # type: ignore[arg-type]
        + (
            f"  traced {float(row['traced_bytes']) / size:5.0f} B/{row['unit']}"  # type: ignore[arg-type]
            if "traced_bytes" in row and row["measured"]
            else ""
        )
        + (f"  read {int(row['records_read']):,} records" if "records_read" in row else "")
        + (
            f"  disk {float(row['disk_bytes']) / size:5.0f} B/{row['unit']}"  # type: ignore[arg-type]
            if "disk_bytes" in row
            else ""
        )
        + note,
        flush=True,
    )


# --- the child: one holder, replayed once ------------------------------------------


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def trimmed_rss() -> int:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: RSS as it is
        pass
    return process_rss_bytes(os.getpid())


async def child(
    holder: str, bootstrap: str, traced: bool = False, store: str = ""
) -> dict[str, float]:
    """Replay one holder to ready; its entries, seconds, and RSS growth. ``traced``: also
    the bytes Python allocated in the replay and still holds at the end (tracemalloc,
    which slows the replay: its time is not the figure of record)."""
    import logging
    import tracemalloc

    logging.basicConfig(level=logging.WARNING)
    extra: dict[str, float] = {}
    kept_early: int | None = None
    if holder == "settings-view":
        from shared.config import BridgeSettings
        from shared.settings_view import ShopSettingsView

        view = ShopSettingsView(BridgeSettings())
        before = trimmed_rss()
        if traced:  # from here: what the replay allocates
            tracemalloc.start()
        started, cpu_started = time.monotonic(), time.process_time()
        await view.start(wait_s=3600)
        took, cpu = time.monotonic() - started, time.process_time() - cpu_started
        ready = process_rss_bytes(os.getpid())
        entries = len(view)
        await view.stop()
    elif holder == "admin-directory":
        from ingest.admin_directory import AdminDirectory
        from ingest.admin_feeds import AdminFeeds, SimulationTraces
        from ingest.ingest_settings import IngestSettings
        from shared.topic_state_store import TopicStateStore

        directory = AdminDirectory(TopicStateStore(store))
        feeds = AdminFeeds(IngestSettings(), directory, SimulationTraces())
        before = trimmed_rss()
        if traced:  # from here: what the replay allocates
            tracemalloc.start()
        started, cpu_started = time.monotonic(), time.process_time()
        await feeds.start(wait_s=3600)
        took, cpu = time.monotonic() - started, time.process_time() - cpu_started
        ready = process_rss_bytes(os.getpid())
        await feeds.stop()
        extra["records_read"] = feeds.records_read
        kept_early = trimmed_rss()  # before the walk below fills the store's cache
        entries = directory.count_shops()
        extra["disk_bytes"] = disk_bytes(directory.store.path)
        directory.close()
    else:
        from fanout.delivery_log import DeliveryLog
        from fanout.fanout_settings import FanoutSettings
        from mailer.outcome_ledger import OutcomeLedger
        from shared.idempotency_ledger import IdempotencyLedger
        from shared.topics import MAIL_DIGESTS, MAIL_NOTICES

        share = holder.endswith("-2of8")
        ledger: IdempotencyLedger[object] = (
            OutcomeLedger(  # type: ignore[assignment]
                bootstrap,
                guarded=[MAIL_DIGESTS.name, MAIL_NOTICES.name],
                read_all=not share,
            )
            if holder.startswith("mailer-ledger")
            else DeliveryLog(FanoutSettings(ledger_read_all=not share))
        )
        before = trimmed_rss()
        if traced:  # from here: what the replay allocates
            tracemalloc.start()
        started, cpu_started = time.monotonic(), time.process_time()
        await ledger.start()
        if share:
            await ledger.hold(SHARE, timeout_s=3600)
        took, cpu = time.monotonic() - started, time.process_time() - cpu_started
        ready = process_rss_bytes(os.getpid())
        entries = len(ledger)
        await ledger.stop()
    kept = trimmed_rss() if kept_early is None else kept_early
    out = {
        **extra,
        "entries": entries,
        "replay_s": took,
        "cpu_s": cpu,
        "ready_bytes": ready - before,
        "kept_bytes": kept - before,
    }
    if traced:
        gc.collect()
        out["traced_bytes"] = tracemalloc.get_traced_memory()[0]
    return out


def parse_sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--shops", type=parse_sizes, default=parse_sizes("10000,100000,1000000"))
    ap.add_argument("--keys", type=parse_sizes, default=parse_sizes("100000,1000000"))
    ap.add_argument(
        "--extrapolate-keys",
        type=parse_sizes,
        default=parse_sizes("10000000"),
        help="ledger sizes only extrapolated from the largest --keys measured (time, memory)",
    )
    ap.add_argument("--users-per-shop", type=int, default=3)
    ap.add_argument("--bootstrap", default="", help="a fresh broker to use instead of Tansu")
    ap.add_argument("--json", default="", help="also write the rows here")
    ap.add_argument(
        "--traced-up-to",
        type=int,
        default=1_000_000,
        help="sizes up to this are replayed a second time under tracemalloc (traced B/unit)",
    )
    ap.add_argument(
        "--holders",
        type=lambda text: [h for h in text.split(",") if h],
        default=list(HOLDERS),
        help=f"which holders to measure (default: all of {','.join(HOLDERS)})",
    )
    ap.add_argument(
        "--changed-share",
        type=float,
        default=0.01,
        help="share of the shops written again between the directory's first start and restart",
    )
    ap.add_argument("--store", default="", help=argparse.SUPPRESS)
    ap.add_argument("--child", choices=HOLDERS, help=argparse.SUPPRESS)
    ap.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.bootstrap, args.traced, args.store))))
        return 0
    print(
        f"state holders: shops {args.shops} x {args.users_per_shop} users, "
        f"ledger keys {args.keys}; broker "
        f"{args.bootstrap or 'embedded Tansu (memory)'}; "
        f"{available_bytes() / MB:,.0f} MB available",
        flush=True,
    )
    rows = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The local launcher's supervisor: a process that dies is restarted with a log line and a
growing, capped back-off; a clean shutdown restarts nothing. (Tiny Python processes stand
in for services; the stack itself is killed in tests/e2e/test_chaos.py.)"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from devstack.supervisor import ServiceSpec, Supervisor, describe_exit, stack_specs
from tests.polling import eventually

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")
CRASHER = (sys.executable, "-c", "import sys; sys.exit(3)")


def supervisor(tmp_path: Path, *specs: ServiceSpec, lines: list[str]) -> Supervisor:
    return Supervisor(
        specs,
        tmp_path / "logs",
        backoff_base_s=0.2,
        backoff_max_s=0.8,
        settled_s=30.0,
        poll_s=0.05,
        log=lines.append,
    )


async def test_a_killed_process_is_restarted_with_a_log_line_naming_the_signal(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    sup = supervisor(tmp_path, ServiceSpec("mailer-2", SLEEPER, dict(os.environ)), lines=lines)
    sup.start_all()
    stop = asyncio.Event()
    watching = asyncio.create_task(sup.run(stop))
    try:
        first = sup.pid("mailer-2")
        assert sup.kill("mailer-2") == first
        again = await eventually(lambda: sup.pid("mailer-2") not in (None, first), timeout_s=10)
        assert again
        assert sup.restarts() == {"mailer-2": 1}
        assert len(lines) == 1
        assert lines[0].startswith(
            f"supervisor: mailer-2 (pid {first}) exited with signal SIGKILL after "
        )
        assert "restart 1 in " in lines[0]
    finally:
        stop.set()
        await watching
        sup.stop_all()


async def test_a_process_that_keeps_crashing_backs_off_up_to_the_cap(tmp_path: Path) -> None:
    lines: list[str] = []
    sup = supervisor(tmp_path, ServiceSpec("ingest", CRASHER, dict(os.environ)), lines=lines)
    sup.start_all()
    stop = asyncio.Event()
    watching = asyncio.create_task(sup.run(stop))
    try:
        await eventually(lambda: len(lines) >= 5, timeout_s=30)
    finally:
        stop.set()
        await watching
        sup.stop_all()
    delays = [float(line.rsplit(" in ", 1)[1].removesuffix(" s")) for line in lines[:5]]
    assert all("exit status 3" in line for line in lines)
    ceilings = [min(0.8, 0.2 * 2**i) for i in range(5)]  # 0.2, 0.4, 0.8, 0.8, 0.8
    assert all(c / 2 - 0.05 <= d <= c + 0.05 for d, c in zip(delays, ceilings, strict=True)), delays
    assert max(delays) <= 0.85


async def test_a_clean_shutdown_stops_everything_and_restarts_nothing(tmp_path: Path) -> None:
    lines: list[str] = []
    sup = supervisor(
        tmp_path,
        ServiceSpec("a", SLEEPER, dict(os.environ)),
        ServiceSpec("b", SLEEPER, dict(os.environ)),
        lines=lines,
    )
    sup.start_all()
    stop = asyncio.Event()
    watching = asyncio.create_task(sup.run(stop))
    pids = [sup.pid("a"), sup.pid("b")]
    sup.stop_all(timeout_s=5)
    await asyncio.sleep(0.5)
    stop.set()
    await watching
    assert sup.pid("a") is None and sup.pid("b") is None
    assert lines == [] and sup.restarts() == {"a": 0, "b": 0}
    for pid in pids:
        assert pid is not None
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive


async def test_a_process_that_stayed_up_starts_its_back_off_from_the_beginning(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    sup = Supervisor(
        [ServiceSpec("fanout", SLEEPER, dict(os.environ))],
        tmp_path / "logs",
        backoff_base_s=0.2,
        backoff_max_s=5.0,
        settled_s=0.5,
        poll_s=0.05,
        log=lines.append,
    )
    sup.start_all()
    stop = asyncio.Event()
    watching = asyncio.create_task(sup.run(stop))
    try:
        for n in range(1, 4):
            pid = sup.pid("fanout")
            await asyncio.sleep(0.7)  # longer than settled_s
            sup.kill("fanout")
            await eventually(lambda p=pid: sup.pid("fanout") not in (None, p), timeout_s=10)
            assert len(lines) == n
    finally:
        stop.set()
        await watching
        sup.stop_all()
    delays = [float(line.rsplit(" in ", 1)[1].removesuffix(" s")) for line in lines]
    assert all(d <= 0.2 for d in delays), delays  # every crash is a first crash


def test_exit_descriptions_name_the_signal_or_the_status() -> None:
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"
    assert describe_exit(1) == "exit status 1"


def test_replicas_of_consuming_services_get_their_own_ports_and_data(tmp_path: Path) -> None:
    env = {
        "BRIDGE_INGEST_PORT": "1",
        "BRIDGE_CONSOLIDATOR_PORT": "2",
        "BRIDGE_MAILER_PORT": "3",
        "BRIDGE_REPLY_FRONT_PORT": "4",
        "BRIDGE_REPLY_PARSER_PORT": "5",
        "BRIDGE_FANOUT_PORT": "6",
        "BRIDGE_CONSOLIDATOR_DATA_DIR": str(tmp_path / "c"),
    }
    specs = {s.name: s for s in stack_specs(env, replicas=2, data_dir=tmp_path)}
    assert sorted(specs) == [
        "consolidator-1",
        "consolidator-2",
        "fanout-1",
        "fanout-2",
        "ingest",
        "mailer-1",
        "mailer-2",
        "reply-front",
        "reply-parser-1",
        "reply-parser-2",
    ]
    assert len({s.http_port for s in specs.values()}) == 10
    assert specs["consolidator-1"].env["BRIDGE_CONSOLIDATOR_DATA_DIR"] == str(tmp_path / "c")
    assert specs["consolidator-2"].env["BRIDGE_CONSOLIDATOR_DATA_DIR"] == str(
        tmp_path / "consolidator-2"
    )

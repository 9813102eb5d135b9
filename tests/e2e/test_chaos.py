"""The short chaos run (``python bench/chaos.py --short``) on the leg's broker kind: the
whole stack under load while every service is killed with SIGKILL once, the SMTP sink goes
down and the sandbox's send API storms 5xx (some after storing the message) and 429; the
independent checker (devstack/chaos_checker.py) then finds nothing lost, reordered or
duplicated outside the documented window, and every killed service came back through the
local launcher's supervisor. On Tansu the run has a broker of its own; in the Kafka leg,
a private Apache Kafka node (the services' fixed consumer groups must not meet the session
stack's), which the run also kills with SIGKILL for 3 s and restarts from its log on disk
(Tansu keeps its data in memory only: a restart there is a new, empty broker)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from devstack.chaos import ChaosOptions, ChaosReport, run_chaos, write_report
from devstack.stack import SERVICE_COMMANDS
from tests.private_broker import ON_KAFKA

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def chaos(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ChaosReport]:
    root = tmp_path_factory.mktemp("chaos")
    lines: list[str] = []
    opts = ChaosOptions.short(broker="kafka" if ON_KAFKA else "tansu", seed=14, root=root)
    report = await run_chaos(opts, log=lines.append)
    write_report(report, root / "report.json")
    (root / "run.log").write_text("\n".join(lines))
    yield report


def _logs(report: ChaosReport) -> str:
    return "\n".join([*report.faults, *report.lines()])


async def test_every_service_killed_with_sigkill_is_restarted_by_the_supervisor(
    chaos: ChaosReport,
) -> None:
    killed = {
        m.group(1)
        for line in chaos.faults
        if (m := re.search(r"kill -9 ([\w-]+) \(pid \d+\)", line))
    }
    assert killed == set(SERVICE_COMMANDS), _logs(chaos)
    if ON_KAFKA:
        # A service killed while the broker is down fails its start-up (no broker) and is
        # restarted again, with back-off, until the broker is back.
        assert set(chaos.restarts) == set(SERVICE_COMMANDS), _logs(chaos)
        assert min(chaos.restarts.values()) >= 1, _logs(chaos)
    else:
        assert chaos.restarts == dict.fromkeys(SERVICE_COMMANDS, 1), _logs(chaos)


async def test_on_kafka_the_broker_is_killed_mid_run_and_comes_back(chaos: ChaosReport) -> None:
    broker_faults = [line for line in chaos.faults if "Kafka broker" in line]
    if not ON_KAFKA:
        assert not broker_faults, _logs(chaos)  # a Tansu restart would be an empty broker
        return
    assert any("kill -9 Kafka broker" in line for line in broker_faults), _logs(chaos)
    assert any(re.search(r"Kafka broker \d+ up", line) for line in broker_faults), _logs(chaos)


async def test_short_chaos_run_loses_reorders_and_duplicates_no_digest(chaos: ChaosReport) -> None:
    d = chaos.digests
    assert chaos.not_acknowledged == 0, _logs(chaos)
    assert d.expected == 1200, _logs(chaos)
    assert (d.lost, d.reordered, d.duplicated, d.unexpected) == (0, 0, 0, 0), (
        d.examples,
        chaos.trace,
    )
    assert d.delivered == d.expected


async def test_short_chaos_run_loses_reorders_and_duplicates_no_reply_part(
    chaos: ChaosReport,
) -> None:
    r = chaos.reply_parts
    assert r.expected > 0 and r.delivered > 0, _logs(chaos)  # replies went through the loop
    assert (r.lost, r.reordered, r.duplicated, r.unexpected) == (0, 0, 0, 0), r.examples
    assert chaos.replies_refused == 0, _logs(chaos)


def test_report_json_is_written(chaos: ChaosReport, tmp_path: Path) -> None:
    write_report(chaos, tmp_path / "r.json")
    assert '"documented_window"' in (tmp_path / "r.json").read_text()

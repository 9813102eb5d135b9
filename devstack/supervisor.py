"""Keep the local stack's service processes running: a process that exits unexpectedly is
started again after a capped exponential back-off, with one log line saying which process,
how it ended (exit status or signal) and how often it has been restarted; a clean shutdown
(:meth:`Supervisor.stop_all`) stops every process and restarts none.

Used by ``python -m devstack`` (the local run) and by ``bench/chaos.py``, which kills
processes with SIGKILL behind the supervisor's back and counts on it to bring them back.
A process that stayed up for ``settled_s`` counts as healthy again: its next crash starts
the back-off from the beginning.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devstack.broker import free_port
from devstack.stack import SERVICE_COMMANDS
from shared.backoff import backoff_delay

# The variable that names each service's HTTP port (/healthz, /metrics): a second replica
# of a service needs a port of its own.
PORT_VARIABLES: Mapping[str, str] = {
    "ingest": "BRIDGE_INGEST_PORT",
    "consolidator": "BRIDGE_CONSOLIDATOR_PORT",
    "mailer": "BRIDGE_MAILER_PORT",
    "reply-front": "BRIDGE_REPLY_FRONT_PORT",
    "reply-parser": "BRIDGE_REPLY_PARSER_PORT",
    "fanout": "BRIDGE_FANOUT_PORT",
}
# Services that only consume from Kafka (no listener the outside world dials), so more
# than one replica shares the work through their consumer group.
CONSUMING_SERVICES = ("consolidator", "mailer", "reply-parser", "fanout")


@dataclass(frozen=True)
class ServiceSpec:
    """One process to keep running; ``name`` is unique (``mailer-2`` for a second replica),
    ``http_port`` where it answers /healthz (0: nowhere)."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    http_port: int = 0


def stack_specs(
    env: Mapping[str, str], replicas: int = 1, data_dir: Path | None = None
) -> list[ServiceSpec]:
    """Every service of the stack; ``replicas`` of each consuming service (the first keeps
    the ports in ``env``, the others get free ports and, for the consolidator, a data
    directory of their own in ``data_dir``, which must exist)."""
    specs = []
    for service in SERVICE_COMMANDS:
        count = replicas if service in CONSUMING_SERVICES else 1
        for n in range(1, count + 1):
            own = dict(env)
            name = service if count == 1 else f"{service}-{n}"
            if n > 1:
                own[PORT_VARIABLES[service]] = str(free_port())
                if service == "consolidator":
                    base = Path(data_dir or env.get("BRIDGE_CONSOLIDATOR_DATA_DIR", "var/dev"))
                    own["BRIDGE_CONSOLIDATOR_DATA_DIR"] = str(base / f"consolidator-{n}")
            specs.append(
                ServiceSpec(
                    name,
                    (sys.executable, *SERVICE_COMMANDS[service]),
                    own,
                    int(own[PORT_VARIABLES[service]]),
                )
            )
    return specs


def describe_exit(returncode: int) -> str:
    """``exit status 1`` or ``signal SIGKILL`` (Popen gives -N for a process ended by N)."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


@dataclass
class Supervised:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0  # in all
    crashes_in_a_row: int = 0  # since it last stayed up for settled_s; drives the back-off
    restart_at: float | None = None  # monotonic time of the pending restart


@dataclass
class Supervisor:
    """Start ``specs`` as subprocesses (own session, output appended to ``log_dir/NAME.log``)
    and, while :meth:`run` runs, restart any that exits."""

    specs: Iterable[ServiceSpec]
    log_dir: Path
    backoff_base_s: float = 0.5
    backoff_max_s: float = 15.0
    settled_s: float = 30.0
    poll_s: float = 0.2
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    _procs: dict[str, Supervised] = field(default_factory=dict)
    _stopping: bool = False

    def __post_init__(self) -> None:
        self._procs = {spec.name: Supervised(spec) for spec in self.specs}
        self.log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def names(self) -> list[str]:
        return list(self._procs)

    def spec(self, name: str) -> ServiceSpec:
        return self._procs[name].spec

    def restarts(self) -> dict[str, int]:
        return {name: p.restarts for name, p in self._procs.items()}

    def pid(self, name: str) -> int | None:
        proc = self._procs[name].proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _start(self, item: Supervised) -> None:
        with open(self.log_dir / f"{item.spec.name}.log", "ab") as out:
            item.proc = subprocess.Popen(
                item.spec.argv,
                env=dict(item.spec.env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        item.started_at = time.monotonic()
        item.restart_at = None

    def start_all(self) -> None:
        self._stopping = False
        for item in self._procs.values():
            if item.proc is None or item.proc.poll() is not None:
                self._start(item)

    def check(self) -> None:
        """One round: note processes that have exited, start those whose back-off is over."""
        now = time.monotonic()
        for item in self._procs.values():
            if self._stopping:
                return
            proc = item.proc
            if item.restart_at is None and proc is not None and proc.poll() is not None:
                assert proc.returncode is not None
                # Reap the rest of its process group (helpers of a killed service).
                _kill_group(proc.pid, signal.SIGKILL)
                if now - item.started_at >= self.settled_s:
                    item.crashes_in_a_row = 0
                item.crashes_in_a_row += 1
                delay = backoff_delay(
                    item.crashes_in_a_row, base_s=self.backoff_base_s, max_s=self.backoff_max_s
                )
                item.restart_at = now + delay
                item.restarts += 1
                self.log(
                    f"supervisor: {item.spec.name} (pid {proc.pid}) exited with "
                    f"{describe_exit(proc.returncode)} after {now - item.started_at:.1f} s; "
                    f"restart {item.restarts} in {delay:.1f} s"
                )
            elif item.restart_at is not None and now >= item.restart_at:
                self._start(item)

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and restart until ``stop`` is set."""
        while not stop.is_set() and not self._stopping:
            self.check()
            try:
                await asyncio.wait_for(stop.wait(), self.poll_s)
            except TimeoutError:
                pass

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int | None:
        """Send ``sig`` to the process group of ``name`` as an outside fault would (the
        supervisor then sees an unexpected exit and restarts it); returns the pid."""
        pid = self.pid(name)
        if pid is not None:
            _kill_group(pid, sig)
        return pid

    def stop_all(self, timeout_s: float = 15.0) -> None:
        """A clean shutdown: SIGTERM to every process, SIGKILL to any still up after
        ``timeout_s``; nothing is restarted afterwards."""
        self._stopping = True
        running = [
            p.proc for p in self._procs.values() if p.proc is not None and p.proc.poll() is None
        ]
        for proc in running:
            _kill_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for item in self._procs.values():
            if item.proc is not None:
                _kill_group(item.proc.pid, signal.SIGKILL)
            item.restart_at = None


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass

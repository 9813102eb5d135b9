"""Real Apache Kafka (KRaft) on 127.0.0.1, from Maven Central jars: durable, on disk.

One combined broker/controller node, or a three-node cluster (every node both broker and
controller; replication factor 3, ``min.insync.replicas=2``). The jars come from
``scripts/kafka/pom.xml`` through ``mvn dependency:copy-dependencies`` into ``var/kafka/lib``
(once; Maven's own repository is the download cache). A node keeps its data, port and
cluster id under its directory, so stopping and starting it again keeps every record.

Used by ``scripts/kafka.sh`` (``python -m devstack.kafka start|cluster|stop|status``), by
``python -m devstack --kafka``, and by tests that need a broker of their own in the Kafka leg.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaClient
from aiokafka.client import CoordinationType
from aiokafka.errors import KafkaError

from devstack.broker import free_port
from shared.errors import BridgeError
from shared.kafka import broker_allows_idempotence, ensure_topics
from shared.topics import ALL_TOPICS, INBOUND_RECORD_LIMIT

REPO = Path(__file__).resolve().parent.parent
POM = REPO / "scripts" / "kafka" / "pom.xml"
LOG4J = REPO / "scripts" / "kafka" / "log4j2.properties"
LIB = REPO / "var" / "kafka" / "lib"
SINGLE_DIR = REPO / "var" / "kafka" / "single"
CLUSTER_DIR = REPO / "var" / "kafka" / "cluster"
SERVER_MAIN = "kafka.Kafka"
STORAGE_MAIN = "kafka.tools.StorageTool"
# Modest: the machine has 2 cores and is shared; three of these run in cluster mode.
HEAP = os.environ.get("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m")


class KafkaUnavailable(BridgeError, RuntimeError):
    """Java or Maven is missing, or the jars could not be resolved; the reason says which."""


def missing_tools() -> str | None:
    """Why a local Kafka cannot run here (``None`` when java and mvn are both present)."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not found" if missing else None


def ensure_jars(lib: Path = LIB) -> Path:
    """The broker's runtime classpath in ``lib``, resolved with Maven when not there yet."""
    if any(lib.glob("kafka_2.13-*.jar")):
        return lib
    if reason := missing_tools():
        raise KafkaUnavailable(reason)
    lib.parent.mkdir(parents=True, exist_ok=True)
    partial = lib.with_name(lib.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    log_path = lib.parent / "mvn.log"
    with open(log_path, "wb") as out:
        done = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={partial}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise KafkaUnavailable(f"mvn could not resolve the Kafka jars; see {log_path}")
    partial.rename(lib)  # all or nothing: a half-copied folder is never taken for the cache
    return lib


def _classpath(lib: Path) -> str:
    return f"{lib}/*"


def _new_cluster_id() -> str:
    """A random Kafka Uuid (22 base64url characters); never "-" first, which a command
    line would take for an option (Kafka's own Uuid.randomUuid avoids it the same way)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _is_kafka_process(pid: int, config: Path) -> bool:
    """Is ``pid`` still our broker (not a recycled pid)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return SERVER_MAIN.encode() in cmdline and str(config).encode() in cmdline


@dataclass
class KafkaNode:
    """One combined broker/controller: ``dir`` holds its config, data, log and pid."""

    node_id: int
    dir: Path
    port: int
    controller_port: int

    @property
    def config(self) -> Path:
        return self.dir / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.dir / "kafka.pid"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return pid if _is_kafka_process(pid, self.config) else None


def server_properties(node: KafkaNode, voters: str, nodes: int) -> str:
    """KRaft combined mode on 127.0.0.1; replication settings for 1 or 3 nodes."""
    replicas = min(nodes, 3)
    min_isr = 2 if replicas >= 3 else 1
    props = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": node.data,
        # As production (deploy/k8s/base/kafka/kafka.yaml): raw mail up to 50 MB rides whole
        # on mail.inbound; topics are created by ensure_topics and faust, never implicitly.
        "message.max.bytes": INBOUND_RECORD_LIMIT,
        "replica.fetch.max.bytes": INBOUND_RECORD_LIMIT,
        "auto.create.topics.enable": "false",
        "num.partitions": 1,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        # Small internal topics and no initial rebalance delay: a laptop, not a fleet.
        "offsets.topic.num.partitions": 8,
        "transaction.state.log.num.partitions": 8,
        "group.initial.rebalance.delay.ms": 0,
        # Tests kill consumers and want them noticed within seconds (Kafka's floor is 6 s;
        # Tansu has none); production keeps the default.
        "group.min.session.timeout.ms": 1000,
        "num.network.threads": 2,
        "num.io.threads": 4,
        "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


@dataclass
class KafkaCluster:
    """``nodes`` Kafka processes under ``root``; ``bootstrap`` is what clients dial.

    The first start picks the ports (``port`` for node 1's client listener, free ports for
    the rest) and the cluster id, and writes them to ``root/cluster.json``; later starts
    reuse them, so the same data comes back on the same address.
    """

    root: Path
    nodes: int = 1
    port: int | None = None
    lib: Path = LIB
    _nodes: list[KafkaNode] = field(default_factory=list)
    # Nodes this process started: their liveness comes from the child, not the pid file
    # (a JVM just launched shows an empty command line for a moment).
    _procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        state = self._load_state()
        if state is None:
            ports = [self.port or free_port()] + [free_port() for _ in range(self.nodes - 1)]
            state = {
                "cluster_id": _new_cluster_id(),
                "nodes": [
                    {"node_id": i + 1, "port": ports[i], "controller_port": free_port()}
                    for i in range(self.nodes)
                ],
            }
        elif self.port is not None and state["nodes"][0]["port"] != self.port:
            raise ValueError(
                f"{self.root} was formatted for port {state['nodes'][0]['port']}, "
                f"not {self.port}; stop it and remove the folder to change ports"
            )
        self.nodes = len(state["nodes"])
        self._cluster_id: str = state["cluster_id"]
        self._nodes = [
            KafkaNode(
                n["node_id"], self.root / f"node{n['node_id']}", n["port"], n["controller_port"]
            )
            for n in state["nodes"]
        ]
        self.port = self._nodes[0].port

    @property
    def _state_file(self) -> Path:
        return self.root / "cluster.json"

    def _load_state(self) -> dict | None:  # type: ignore[type-arg]
        try:
            state: dict = json.loads(self._state_file.read_text())  # type: ignore[type-arg]
        except (OSError, ValueError):
            return None
        return state

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self._nodes)

    def _pid(self, node: KafkaNode) -> int | None:
        proc = self._procs.get(node.node_id)
        if proc is not None:
            return proc.pid if proc.poll() is None else None
        return node.pid()

    @property
    def pids(self) -> list[int]:
        return [pid for n in self._nodes if (pid := self._pid(n)) is not None]

    def running(self) -> bool:
        return len(self.pids) == len(self._nodes)

    def node_ports(self) -> dict[int, int]:
        """Each node's client port by node id (the id the brokers' metadata names)."""
        return {n.node_id: n.port for n in self._nodes}

    def kill_node(self, node_id: int) -> int | None:
        """SIGKILL one node, as a crash would (chaos runs); ``start()`` brings it back with
        its data. Returns the pid killed, or None when it was not running."""
        node = next(n for n in self._nodes if n.node_id == node_id)
        pid = self._pid(node)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            self._wait_gone(node, 10.0)
            self._procs.pop(node_id, None)
        return pid

    def start(self) -> None:
        """Format storage where new, then start every node not running (in the background)."""
        lib = ensure_jars(self.lib)
        self.root.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(
            json.dumps(
                {
                    "cluster_id": self._cluster_id,
                    "nodes": [
                        {"node_id": n.node_id, "port": n.port, "controller_port": n.controller_port}
                        for n in self._nodes
                    ],
                },
                indent=1,
            )
        )
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self._nodes)
        for node in self._nodes:
            if self._pid(node) is not None:
                continue
            node.logs.mkdir(parents=True, exist_ok=True)
            node.config.write_text(server_properties(node, voters, self.nodes))
            if not (node.data / "meta.properties").exists():
                self._format(node, lib)
            out = open(node.logs / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
            proc = subprocess.Popen(
                [
                    "java",
                    *HEAP.split(),
                    "-XX:+UseG1GC",
                    "-XX:MaxGCPauseMillis=20",
                    "-Djava.awt.headless=true",
                    f"-Dlog4j2.configurationFile={LOG4J}",
                    f"-Dkafka.logs.dir={node.logs}",
                    "-cp",
                    _classpath(lib),
                    SERVER_MAIN,
                    str(node.config),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            out.close()
            self._procs[node.node_id] = proc
            node.pid_file.write_text(str(proc.pid))

    def _format(self, node: KafkaNode, lib: Path) -> None:
        done = subprocess.run(
            [
                "java",
                "-Xmx256m",
                f"-Dlog4j2.configurationFile={LOG4J}",
                f"-Dkafka.logs.dir={node.logs}",
                "-cp",
                _classpath(lib),
                STORAGE_MAIN,
                "format",
                "-t",
                self._cluster_id,
                "-c",
                str(node.config),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"kafka storage format failed for {node.dir}: "
                f"{done.stdout[-1000:]}{done.stderr[-1000:]}"
            )

    async def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Wait until every node answers a metadata request naming every node, then until
        the cluster serves consumer groups and producer ids (the first FindCoordinator
        creates ``__consumer_offsets``: done here, not in a service's first join)."""
        deadline = time.monotonic() + timeout_s
        last: object = None
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # refusals while it boots
        pending = list(self._nodes)
        while pending and time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"kafka exited; see {self.root}/node*/logs/server.log")
            node = pending[0]
            client = AIOKafkaClient(
                bootstrap_servers=f"127.0.0.1:{node.port}", request_timeout_ms=3000
            )
            try:
                await client.bootstrap()
                registered = len(client.cluster.brokers())
                if registered >= self.nodes:
                    pending.pop(0)
                    continue
                last = f"{registered} of {self.nodes} brokers registered"
            except Exception as exc:  # not up yet
                last = exc
            finally:
                await client.close()
            await asyncio.sleep(0.3)
        if pending:
            raise TimeoutError(f"kafka on {self.bootstrap} not ready: {last}")
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
        await client.bootstrap()
        try:
            while True:
                try:
                    await client.coordinator_lookup(CoordinationType.GROUP, "bridge-ready")
                    break
                except KafkaError as exc:  # coordinator not available yet
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"kafka on {self.bootstrap} serves no groups: {exc}"
                        ) from exc
                    await asyncio.sleep(0.3)
        finally:
            await client.close()
        await broker_allows_idempotence(
            self.bootstrap, timeout_s=max(1.0, deadline - time.monotonic())
        )

    async def start_with_topics(self) -> None:
        self.start()
        await self.wait_ready()
        await ensure_topics(self.bootstrap, ALL_TOPICS)

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM to every node (a clean shutdown), SIGKILL to those still up after
        ``timeout_s`` (the last nodes of a cluster can wait for a quorum that has gone; the
        log is recovered at the next start either way)."""
        running = [(node, pid) for node in self._nodes if (pid := self._pid(node)) is not None]
        for _node, pid in running:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for node, pid in running:
            if not self._wait_gone(node, max(0.0, deadline - time.monotonic())):
                os.kill(pid, signal.SIGKILL)
                self._wait_gone(node, 10.0)
        for node in self._nodes:
            self._procs.pop(node.node_id, None)
            node.pid_file.unlink(missing_ok=True)

    def _wait_gone(self, node: KafkaNode, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._pid(node) is not None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True


def _cluster(args: argparse.Namespace, nodes: int, default_dir: Path) -> KafkaCluster:
    root = Path(args.dir) if args.dir else default_dir
    return KafkaCluster(root, nodes=nodes, port=args.port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/kafka.sh", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["start", "cluster", "stop", "status", "jars"])
    parser.add_argument("--dir", help="node folder (default var/kafka/single or var/kafka/cluster)")
    parser.add_argument("--port", type=int, help="client port of the first node (default: free)")
    args = parser.parse_args(argv)
    try:
        if args.command == "jars":
            print(ensure_jars())
            return 0
        if args.command in ("start", "cluster"):
            cluster = _cluster(
                args,
                3 if args.command == "cluster" else 1,
                CLUSTER_DIR if args.command == "cluster" else SINGLE_DIR,
            )
            try:
                asyncio.run(cluster.start_with_topics())
            except BaseException:
                cluster.stop()
                raise
            print(f"KAFKA_BOOTSTRAP={cluster.bootstrap}")
            return 0
    except (KafkaUnavailable, ValueError) as exc:
        print(f"kafka: {exc}", file=sys.stderr)
        return 2
    roots = [Path(args.dir)] if args.dir else [SINGLE_DIR, CLUSTER_DIR]
    found = [KafkaCluster(r) for r in roots if (r / "cluster.json").exists()]
    if args.command == "stop":
        for cluster in found:
            cluster.stop()
        return 0
    for cluster in found:  # status
        state = (
            "running"
            if cluster.running()
            else (
                f"{len(cluster.pids)} of {cluster.nodes} nodes running"
                if cluster.pids
                else "stopped"
            )
        )
        print(f"{cluster.root}: {state} KAFKA_BOOTSTRAP={cluster.bootstrap}")
    return 0 if any(c.running() for c in found) else 3


if __name__ == "__main__":
    sys.exit(main())

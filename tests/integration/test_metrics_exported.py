"""Every metric the Grafana dashboard and the alerts query is exported by a running service,
after one buyer message went the whole loop (webhook -> digest -> email reply -> chat)
and one bad record was dead-lettered. Scrapes every service's /metrics over loopback."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from shared.topics import MAIL_DIGESTS
from tests.conftest import WINDOW_S, Stack
from tests.polling import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy/k8s/base/monitoring"
METRIC = re.compile(r"\b(bridge_[a-z0-9_]+)")
CONSUMER_GROUPS = ("bridge-consolidator", "bridge-mailer", "bridge-reply-parser", "bridge-fanout")

# Values that appear only on failure, which one clean pass through the loop does not produce.
FAILURE_ONLY_MATCHERS = {("bridge_digests_sent_total", "outcome", "failed")}

Samples = dict[str, list[tuple[str, dict[str, str], float]]]  # service -> samples


def queried_metrics() -> set[str]:
    dashboard = json.loads((MONITORING / "bridge-flow-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]["groups"]
    exprs += [r["expr"] for g in rules for r in g["rules"]]
    return {m for e in exprs for m in METRIC.findall(e)}


async def scrape(stack: Stack) -> Samples:
    out: Samples = {}
    for service, port in stack.ports.http_ports().items():
        resp = await stack.http.get(f"http://127.0.0.1:{port}/metrics")
        resp.raise_for_status()
        out[service] = [
            (s.name, s.labels, s.value)
            for fam in text_string_to_metric_families(resp.text)
            for s in fam.samples
        ]
    return out


@pytest_asyncio.fixture(scope="module")
async def flowed(stack: Stack) -> tuple[Samples, str, str]:
    """Drive one message through the loop and one dead letter, then scrape every service."""
    n = uuid.uuid4().int
    shop = str(7_100_000_000_000_000_000 + n % 10**18)
    conv = str(5_100_000_000_000_000 + n % 10**17)
    await stack.onboard(shop)
    await stack.buyer_says(shop, conv, "Is the metrics kettle in stock?", buyer_name="Mo")

    async def digest_arrived():  # type: ignore[no-untyped-def]
        return stack.mails_for(conv)

    digest = (await eventually(digest_arrived, timeout_s=WINDOW_S + 20, interval_s=0.2))[0]
    number = stack.sink_number(digest["Message-ID"])
    resp = await stack.http.post(
        f"{stack.sink_url}/messages/{number}/reply", json={"text": "Yes, ships today."}
    )
    assert resp.status_code == 200, resp.text
    await eventually(lambda: stack.buyer_view(conv), timeout_s=30, interval_s=0.2)

    producer = AIOKafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP"])
    await producer.start()
    try:  # a record the mailer cannot decode: it must be dead-lettered, not crash the mailer
        await producer.send_and_wait(MAIL_DIGESTS.name, b"{not json", key=f"{shop}:{conv}".encode())
    finally:
        await producer.stop()

    async def dead_letter_and_lag_seen() -> Samples | None:
        samples = await scrape(stack)
        names = {(s[0], s[1].get("group", "")) for v in samples.values() for s in v}
        wanted = {
            ("bridge_dead_letters_total", ""),
            ("bridge_consumer_lag", "bridge-mailer"),
            ("bridge_consumer_lag", "bridge-fanout"),
            ("bridge_consumer_lag", "bridge-reply-parser"),
            ("bridge_consumer_lag", "bridge-consolidator"),
        }
        # Wait for the mailer's own dead letter: other tests in the session may have
        # dead-lettered records in other services already.
        mailer_bad = any(
            n == "bridge_dead_letters_total"
            and lab.get("service") == "mailer"
            and lab.get("reason") == "bad_record"
            and v >= 1
            for n, lab, v in samples.get("mailer", [])
        )
        return samples if wanted <= names and mailer_bad else None

    return await eventually(dead_letter_and_lag_seen, timeout_s=30, interval_s=0.2), shop, conv


def exported(samples: Samples) -> set[str]:
    return {name for service in samples.values() for name, _, _ in service}


@pytest.mark.parametrize("metric", sorted(queried_metrics()))
async def test_metric_queried_by_dashboard_or_alerts_is_exported(
    flowed: tuple[Samples, str, str], metric: str
) -> None:
    samples, _, _ = flowed
    assert metric in exported(samples), f"{metric} is not exported by any service"


async def test_one_message_through_the_loop_moves_the_flow_counters(
    flowed: tuple[Samples, str, str],
) -> None:
    samples, _, _ = flowed

    def total(process: str, name: str, **labels: str) -> float:
        return sum(
            v
            for n, lab, v in samples[process]
            if n == name and all(lab.get(k) == x for k, x in labels.items())
        )

    assert total("ingest", "bridge_events_handled_total", service="ingest", outcome="200") >= 1
    assert total("consolidator", "bridge_digests_emitted_total") >= 1
    assert total("mailer", "bridge_digests_sent_total", outcome="sent") >= 1
    assert total("reply-parser", "bridge_inbound_mail_total", **{"class": "reply"}) >= 1
    assert total("fanout", "bridge_reply_parts_total", outcome="delivered") >= 1
    assert total("mailer", "bridge_dead_letters_total", service="mailer", reason="bad_record") >= 1
    for process in samples:  # the service label spells reply_front/reply_parser with "_"
        assert total(process, "bridge_up", service=process.replace("-", "_")) == 1, process


def label_matchers() -> set[tuple[str, str, str]]:
    """(metric, label, value) for every exact label matcher the dashboard and alerts use."""
    dashboard = json.loads((MONITORING / "bridge-flow-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]["groups"]
    exprs += [r["expr"] for g in rules for r in g["rules"]]
    found = set()
    for expr in exprs:
        for metric, body in re.findall(r"(bridge_[a-z0-9_]+)\{([^}]*)\}", expr):
            for label, value in re.findall(r'(\w+)\s*=\s*"([^"$]*)"', body):
                if label != "namespace":
                    found.add((metric, label, value))
    return found


async def test_label_values_the_queries_filter_on_are_values_the_services_export(
    flowed: tuple[Samples, str, str],
) -> None:
    samples, _, _ = flowed
    seen = {(n, k, v) for items in samples.values() for n, lab, _ in items for k, v in lab.items()}
    missing = {
        m
        for m in label_matchers()
        if m not in seen
        and (m[0] + "_total", m[1], m[2]) not in seen
        and m not in FAILURE_ONLY_MATCHERS
    }
    assert not missing, missing


@pytest.mark.parametrize("group", CONSUMER_GROUPS)
async def test_consumer_lag_is_exported_per_group_and_partition(
    flowed: tuple[Samples, str, str], group: str
) -> None:
    samples, _, _ = flowed
    lag = [
        lab
        for service in samples.values()
        for n, lab, _ in service
        if n == "bridge_consumer_lag" and lab["group"] == group
    ]
    assert lag, f"no bridge_consumer_lag for {group}"
    assert all(lab["partition"].isdigit() and lab["topic"] for lab in lag)


async def test_no_label_value_carries_a_shop_conversation_or_address(
    flowed: tuple[Samples, str, str],
) -> None:
    samples, shop, conv = flowed
    for service, items in samples.items():
        for name, labels, _ in items:
            for value in labels.values():
                assert shop not in value and conv not in value and "@" not in value, (
                    service,
                    name,
                    labels,
                )

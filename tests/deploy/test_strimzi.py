"""The Strimzi resources agree with shared/topics.py and pass a schema check of our own
(kubernetes-validate skips custom kinds; the Strimzi CRDs are not vendored here)."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import jsonschema
import pytest

from shared.topics import ALL_TOPICS
from tests.deploy.conftest import ROOT, Doc, docs_of, named, of_kind, rendered_text

_str_map = {"type": "object", "additionalProperties": {"type": "string"}}
_resources = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"requests": _str_map, "limits": _str_map},
}
_metadata = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
            "maxLength": 253,
        },
        "labels": _str_map,
        "annotations": _str_map,
        "namespace": {"type": "string"},
    },
}
_cluster_label = {
    "type": "object",
    "required": ["labels"],
    "properties": {"labels": {"type": "object", "required": ["strimzi.io/cluster"]}},
}
_config_value = {"type": ["string", "integer", "number", "boolean"]}


def _resource(kind: str, spec: dict[str, Any], *, needs_cluster_label: bool) -> dict[str, Any]:
    meta = {"allOf": [_metadata, _cluster_label]} if needs_cluster_label else _metadata
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "kafka.strimzi.io/v1beta2"},
            "kind": {"const": kind},
            "metadata": meta,
            "spec": spec,
        },
    }


# The subset of Strimzi 0.45's v1beta2 schemas this deployment uses, closed against typos.
SCHEMAS: dict[str, dict[str, Any]] = {
    "KafkaTopic": _resource(
        "KafkaTopic",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["partitions", "replicas"],
            "properties": {
                "topicName": {"type": "string", "pattern": r"^[a-zA-Z0-9._-]{1,249}$"},
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": {"type": "object", "additionalProperties": _config_value},
            },
        },
        needs_cluster_label=True,
    ),
    "KafkaNodePool": _resource(
        "KafkaNodePool",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["replicas", "roles", "storage"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "roles": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"enum": ["controller", "broker"]},
                },
                "storage": {
                    "type": "object",
                    "required": ["type"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"enum": ["jbod", "ephemeral", "persistent-claim"]},
                        "volumes": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["type"],
                                "additionalProperties": False,
                                "properties": {
                                    "id": {"type": "integer", "minimum": 0},
                                    "type": {"enum": ["ephemeral", "persistent-claim"]},
                                    "size": {"type": "string", "pattern": r"^[0-9]+(Ki|Mi|Gi|Ti)$"},
                                    "class": {"type": "string"},
                                    "deleteClaim": {"type": "boolean"},
                                    "kraftMetadata": {"enum": ["shared"]},
                                },
                            },
                        },
                    },
                },
                "resources": _resources,
                "jvmOptions": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"-Xms": {"type": "string"}, "-Xmx": {"type": "string"}},
                },
            },
        },
        needs_cluster_label=True,
    ),
    "Kafka": _resource(
        "Kafka",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["kafka"],
            "properties": {
                "kafka": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["listeners"],
                    "properties": {
                        "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
                        "metadataVersion": {"type": "string"},
                        "listeners": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["name", "port", "type", "tls"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": {"type": "string", "pattern": r"^[a-z0-9]{1,11}$"},
                                    "port": {"type": "integer", "minimum": 9092},
                                    "type": {
                                        "enum": [
                                            "internal",
                                            "route",
                                            "loadbalancer",
                                            "nodeport",
                                            "ingress",
                                            "cluster-ip",
                                        ]
                                    },
                                    "tls": {"type": "boolean"},
                                    "networkPolicyPeers": {
                                        "type": "array",
                                        "items": {"type": "object"},
                                    },
                                },
                            },
                        },
                        "config": {"type": "object", "additionalProperties": _config_value},
                        "resources": _resources,
                    },
                },
                "entityOperator": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "topicOperator": {"type": "object"},
                        "userOperator": {"type": "object"},
                    },
                },
                "kafkaExporter": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "groupRegex": {"type": "string"},
                        "topicRegex": {"type": "string"},
                    },
                },
            },
        },
        needs_cluster_label=False,
    ),
}


def strimzi_errors(doc: Doc) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMAS[doc["kind"]])
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def test_committed_topics_manifest_is_what_the_generator_writes_from_shared_topics() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts/gen_strimzi_topics.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_strimzi_object_passes_the_schema_check(rendered: list[Doc]) -> None:
    strimzi = [d for d in rendered if d["apiVersion"].startswith("kafka.strimzi.io/")]
    assert {d["kind"] for d in strimzi} == set(SCHEMAS)
    errors = {
        f"{d['kind']}/{d['metadata']['name']}": e for d in strimzi if (e := strimzi_errors(d))
    }
    assert not errors, errors


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["spec"].update(partitons=8),
        lambda d: d["spec"].update(partitions="8"),
        lambda d: d["metadata"]["labels"].clear(),
    ],
    ids=["misspelt-field", "wrong-type", "no-cluster-label"],
)
def test_schema_check_rejects_broken_topics(mutate: Any) -> None:
    topic = copy.deepcopy(of_kind(docs_of(rendered_text("prod")), "KafkaTopic")[0])
    mutate(topic)
    assert strimzi_errors(topic)


def test_kafka_topics_match_shared_topics_in_name_partitions_compaction_and_limits(
    rendered: list[Doc],
) -> None:
    declared = {t.name: t for t in ALL_TOPICS}
    manifests = {d["spec"]["topicName"]: d["spec"] for d in of_kind(rendered, "KafkaTopic")}
    assert manifests.keys() == declared.keys()
    for name, spec in declared.items():
        got = manifests[name]
        assert got["partitions"] == spec.partitions, name
        assert got["config"]["cleanup.policy"] == ("compact" if spec.compacted else "delete")
        assert int(got["config"]["max.message.bytes"]) == spec.max_message_bytes, name
        if spec.compacted:
            assert "retention.ms" not in got["config"], name
        else:
            assert int(got["config"]["retention.ms"]) == spec.retention_ms, name


def test_topics_replicate_as_far_as_the_cluster_has_brokers(rendered: list[Doc]) -> None:
    brokers = named(rendered, "KafkaNodePool", "dual-role")["spec"]["replicas"]
    kafka_config = named(rendered, "Kafka", "bridge")["spec"]["kafka"]["config"]
    for topic in of_kind(rendered, "KafkaTopic"):
        spec = topic["spec"]
        assert spec["replicas"] == brokers
        assert int(spec["config"]["min.insync.replicas"]) <= spec["replicas"]
        assert int(spec["config"]["min.insync.replicas"]) == (2 if brokers >= 3 else 1)
    assert kafka_config["offsets.topic.replication.factor"] <= brokers


def test_broker_accepts_and_replicates_the_largest_record_a_topic_allows(
    rendered: list[Doc],
) -> None:
    """mail.inbound carries whole 50 MB mails: the broker must accept and replicate them."""
    largest = max(t.max_message_bytes for t in ALL_TOPICS)
    assert largest > 50 * 1024 * 1024
    config = named(rendered, "Kafka", "bridge")["spec"]["kafka"]["config"]
    assert int(config["message.max.bytes"]) >= largest
    assert int(config["replica.fetch.max.bytes"]) >= largest


def test_services_bootstrap_from_the_strimzi_cluster_service(rendered: list[Doc]) -> None:
    cluster = named(rendered, "Kafka", "bridge")
    plain = next(li for li in cluster["spec"]["kafka"]["listeners"] if li["tls"] is False)
    bootstrap = named(rendered, "ConfigMap", "bridge-config")["data"]["KAFKA_BOOTSTRAP"]
    assert bootstrap == f"{cluster['metadata']['name']}-kafka-bootstrap:{plain['port']}"

#!/usr/bin/env bash
# A real Apache Kafka (KRaft) on 127.0.0.1 from Maven Central jars, durable under var/kafka/.
#   scripts/kafka.sh start [--port N]   one combined broker/controller (var/kafka/single)
#   scripts/kafka.sh cluster            three brokers, RF 3, min.insync.replicas=2 (var/kafka/cluster)
#   scripts/kafka.sh stop | status      every local Kafka this script started
# start/cluster print KAFKA_BOOTSTRAP=...; the topics of shared/topics.py are created.
# Needs java (17+) and mvn; the jars are resolved once into var/kafka/lib (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet -e .
fi
exec .venv/bin/python -m devstack.kafka "$@"

#!/usr/bin/env bash
# Install the bridge with its test tools into .venv and run every test, in two legs:
#   1. tansu: every test, on the embedded Tansu broker (memory storage);
#   2. kafka: the tests that talk to a broker (all but tests/unit, tests/deploy and the pages
#      in tests/browser, whose broker traffic the other suites cover), on a
#      real Apache Kafka started from Maven Central jars (scripts/kafka.sh), skipped with
#      one line where java or mvn is missing. BRIDGE_KAFKA_LEG=off skips it too.
# Arguments go to pytest in both legs. With KAFKA_BOOTSTRAP already set, one leg runs
# against that broker. System packages the browser and spam tests need (Chromium,
# SpamAssassin, promtool) are installed with apt when missing; the rest from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v spamassassin >/dev/null || need_apt+=(spamassassin)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v promtool >/dev/null || need_apt+=(prometheus)
fc-list 2>/dev/null | grep -qi "noto color emoji" || need_apt+=(fonts-noto-color-emoji)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,bench,disk]'
# Lint first: a style break fails fast, before the slower integration tests.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
bash scripts/mypy.sh
# --durations: the slowest tests in the log, to keep the run inside its time budget.
PYTEST=(.venv/bin/python -m pytest -q -p no:cacheprovider --durations=15)
if [ -n "${KAFKA_BOOTSTRAP:-}" ]; then
  exec "${PYTEST[@]}" "$@"
fi

mkdir -p var/test
closing() { grep -E '^=*[ ]*[0-9]+ (passed|failed|error|skipped|deselected)' "$1" | tail -n 1 | tr -d '='; }

set +e
"${PYTEST[@]}" "$@" 2>&1 | tee var/test/tansu.log
tansu_rc=${PIPESTATUS[0]}
set -e

kafka_rc=0
kafka_line="skipped"
if [ "${BRIDGE_KAFKA_LEG:-on}" = "off" ]; then
  echo "kafka leg skipped: BRIDGE_KAFKA_LEG=off"
elif ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  echo "kafka leg skipped: $(command -v java >/dev/null || printf 'java ')$(command -v mvn >/dev/null || printf 'mvn ')not found (install a JDK 17+ and Maven to run it)"
else
  started=$SECONDS
  rm -rf var/kafka/test  # a fresh cluster per run: no groups or records left from the last
  # On any exit: stop the leg's Kafka and any a test started for itself and left running.
  stop_kafkas() {
    for dir in var/kafka/test $(find var/test/tmp-kafka -name cluster.json -printf '%h\n' 2>/dev/null); do
      bash scripts/kafka.sh stop --dir "$dir" >/dev/null 2>&1 || true
    done
  }
  trap stop_kafkas EXIT
  bootstrap=$(bash scripts/kafka.sh start --dir var/kafka/test | sed -n 's/^KAFKA_BOOTSTRAP=//p')
  echo "kafka leg: Apache Kafka on $bootstrap ($((SECONDS - started)) s to start)"
  legs=("$@")
  [ ${#legs[@]} -gt 0 ] || legs=(tests --ignore=tests/unit --ignore=tests/deploy --ignore=tests/browser)
  set +e
  KAFKA_BOOTSTRAP="$bootstrap" "${PYTEST[@]}" --basetemp=var/test/tmp-kafka "${legs[@]}" 2>&1 \
    | tee var/test/kafka.log
  kafka_rc=${PIPESTATUS[0]}
  set -e
  stop_kafkas
  kafka_line="$(closing var/test/kafka.log) (leg: $((SECONDS - started)) s)"
fi
echo "tansu: $(closing var/test/tansu.log)"
echo "kafka: $kafka_line"
[ "$tansu_rc" -eq 0 ] && [ "$kafka_rc" -eq 0 ]

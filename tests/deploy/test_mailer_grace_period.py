"""The mailer's pods are given time to drain on SIGTERM: Kubernetes sends SIGKILL after
``terminationGracePeriodSeconds``, so it must outlast the mailer's own drain
(``BRIDGE_MAILER_SHUTDOWN_DRAIN_S``) plus the stop of its parts, or a rollout would cut
the SMTP tries the drain is there to finish (each then resent by the next owner)."""

from __future__ import annotations

from mailer.mailer_settings import MailerSettings
from tests.deploy.conftest import Doc, named

# Stopping the parts after the drain: consumer leaves its group, producer flushes,
# compose helpers exit.
PARTS_STOP_S = 10.0


def test_mailer_grace_period_outlasts_its_shutdown_drain(rendered: list[Doc]) -> None:
    config = named(rendered, "ConfigMap", "bridge-config")["data"]
    drain_s = float(
        config.get(
            "BRIDGE_MAILER_SHUTDOWN_DRAIN_S",
            MailerSettings.model_fields["mailer_shutdown_drain_s"].default,
        )
    )
    pod = named(rendered, "Deployment", "mailer")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= drain_s + PARTS_STOP_S

"""Simulate a conversation: the status of each step, derived from the events the
real services publish for a reserved simulation conversation id. Pure.

Steps, in order: ``webhook_accepted`` (the buyer message is on chat.events),
``digest_sent`` (mail.outcomes), ``reply_received`` (mail.inbound.results: the
seller's answer was accepted as a reply; its detail shows how the sender was
authenticated, and a refusal says what the destination must set up to pass),
``delivered_to_chat`` (chat.deliveries).
A step is ``ok``, ``pending`` (with what it waits for), ``failed`` (with the
reason) or ``not_reached`` (an earlier step has not succeeded).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from shared.events import (
    ChatEvent,
    DeliveryStatus,
    DestinationKind,
    InboundResult,
    MailOutcome,
    MailStatus,
    ReplyClass,
    ShopSettings,
)
from shared.notification_window import Windows, destination_kind_of, digest_deadline

SIMULATION_PREFIX = "sim-"
# What makes replies from each destination kind authenticate (the set-up guides say how).
AUTH_SETUP_HINTS = {
    DestinationKind.MAILBOX: "Send from the registered address through its own provider, "
    "which must sign with DKIM for its domain or be in the domain's SPF record "
    "(docs/setup-mailbox.md).",
    DestinationKind.ZENDESK: "Zendesk must sign for your support address's domain: publish "
    "the DKIM CNAME records Zendesk shows and enable them (docs/setup-zendesk.md).",
    DestinationKind.SALESFORCE: "Salesforce must sign for your domain: create and activate "
    "a DKIM key for it, or send through your Email Relay (docs/setup-salesforce.md).",
    DestinationKind.GORGIAS: "Gorgias must sign for your domain: verify the domain with its "
    "DKIM records (docs/setup-gorgias.md).",
    DestinationKind.OTHER_HELPDESK: "Your helpdesk must sign for your domain with DKIM, or "
    "its servers be in your domain's SPF record (docs/setup-mailbox.md).",
}
STEPS = ("webhook_accepted", "digest_sent", "reply_received", "delivered_to_chat")


def new_simulation_id() -> str:
    """A conversation id reserved for simulations (real platform ids are numeric)."""
    # Short enough to fit in a reply token beside the shop id (64-character local part).
    return SIMULATION_PREFIX + secrets.token_hex(4)


def is_simulation(conversation_id: str) -> bool:
    return conversation_id.startswith(SIMULATION_PREFIX)


@dataclass
class SimulationTrace:
    """What the services published about one simulated conversation."""

    shop_id: str
    started_at_ms: int = 0
    buyer_message: ChatEvent | None = None
    outcomes: list[MailOutcome] = field(default_factory=list)
    inbound: list[InboundResult] = field(default_factory=list)
    deliveries: dict[tuple[str, int], Any] = field(default_factory=dict)
    start_error: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    state: str  # ok | pending | failed | not_reached
    detail: str
    at_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.name, "state": self.state, "detail": self.detail, "at_ms": self.at_ms}


def simulation_steps(
    trace: SimulationTrace,
    settings: ShopSettings,
    *,
    now_ms: int,
    windows: Windows,
    accept_timeout_ms: int = 30_000,
    digest_grace_ms: int = 60_000,
) -> list[Step]:
    """The four steps' states, each failure with a reason the seller can act on.

    ``windows`` are the shop's notification windows (:mod:`shared.notification_window`):
    the digest is due when the consolidator would send it for one buyer message."""
    steps: list[Step] = []
    # 1. webhook accepted
    if trace.start_error:
        steps.append(Step(STEPS[0], "failed", trace.start_error))
    elif trace.buyer_message is not None:
        steps.append(
            Step(
                STEPS[0],
                "ok",
                "the simulated buyer message is on the event stream",
                trace.buyer_message.received_at_ms,
            )
        )
    elif now_ms - trace.started_at_ms > accept_timeout_ms:
        steps.append(
            Step(
                STEPS[0],
                "failed",
                "the platform's webhook for the simulated buyer "
                "message did not arrive: check the webhook URL and secret",
            )
        )
    else:
        steps.append(Step(STEPS[0], "pending", "waiting for the platform's webhook"))
    # 2. digest sent
    if steps[-1].state != "ok":
        steps.append(Step(STEPS[1], "not_reached", "waiting for step webhook_accepted"))
    else:
        sent = [o for o in trace.outcomes if o.status in (MailStatus.SENT, MailStatus.DUPLICATE)]
        failed = [o for o in trace.outcomes if o.status == MailStatus.FAILED]
        accepted_at = trace.buyer_message.arrived_at_ms if trace.buyer_message else 0
        due_ms = digest_deadline(accepted_at, accepted_at, windows)
        if sent:
            steps.append(
                Step(
                    STEPS[1], "ok", f"digest emailed to {settings.destination_email}", sent[0].at_ms
                )
            )
        elif failed:
            steps.append(
                Step(
                    STEPS[1],
                    "failed",
                    f"the digest could not be delivered to "
                    f"{settings.destination_email}: {failed[-1].reason or 'refused'}",
                    failed[-1].at_ms,
                )
            )
        elif not settings.alerts_enabled:
            steps.append(
                Step(
                    STEPS[1],
                    "failed",
                    "unread message email alerts are off for this "
                    "shop: turn them on to receive digests",
                )
            )
        elif now_ms > due_ms + digest_grace_ms:
            steps.append(
                Step(
                    STEPS[1],
                    "failed",
                    "no digest was sent although the window "
                    "passed: the consolidator or mailer may be down",
                )
            )
        else:
            steps.append(
                Step(
                    STEPS[1],
                    "pending",
                    f"the digest is due "
                    f"{(due_ms - accepted_at) / 1000:g} s after the buyer's "
                    f"message, to {settings.destination_email}",
                    due_ms,
                )
            )
    # 3. reply received
    if steps[-1].state != "ok":
        steps.append(Step(STEPS[2], "not_reached", "waiting for step digest_sent"))
    else:
        replies = [r for r in trace.inbound if r.classification == ReplyClass.REPLY]
        if replies:
            auth = f"; sender authentication: {replies[-1].auth}" if replies[-1].auth else ""
            steps.append(
                Step(
                    STEPS[2],
                    "ok",
                    f"reply accepted ({replies[-1].parts} chat message(s)){auth}",
                    replies[-1].at_ms,
                )
            )
        elif trace.inbound and trace.inbound[-1].classification == ReplyClass.DEFERRED:
            last = trace.inbound[-1]
            steps.append(
                Step(
                    STEPS[2],
                    "pending",
                    f"the reply arrived but its sender could "
                    f"not be authenticated yet: {last.reason}",
                    last.at_ms,
                )
            )
        elif trace.inbound:
            last = trace.inbound[-1]
            hint = (
                f" {AUTH_SETUP_HINTS[destination_kind_of(settings.destination_kind)]}"
                if last.auth_outcome in ("refuse", "defer")
                else ""
            )
            steps.append(
                Step(
                    STEPS[2],
                    "failed",
                    f"the email that came back was not accepted "
                    f"as a reply ({last.classification}): {last.reason}{hint}",
                    last.at_ms,
                )
            )
        else:
            steps.append(
                Step(
                    STEPS[2],
                    "pending",
                    "reply to the digest email from an activated user's address",
                )
            )
    # 4. delivered to chat
    if steps[-1].state != "ok":
        steps.append(Step(STEPS[3], "not_reached", "waiting for step reply_received"))
    else:
        reply = [r for r in trace.inbound if r.classification == ReplyClass.REPLY][-1]
        parts = [trace.deliveries.get((reply.reply_id, i)) for i in range(reply.parts)]
        bad = [p for p in parts if p is not None and p.status == DeliveryStatus.FAILED]
        if bad:
            steps.append(
                Step(
                    STEPS[3],
                    "failed",
                    f"the chat platform refused part {bad[0].index + 1}: {bad[0].reason}",
                    bad[0].at_ms,
                )
            )
        elif parts and all(p is not None for p in parts):
            steps.append(
                Step(
                    STEPS[3],
                    "ok",
                    f"{len(parts)} message(s) delivered to the chat",
                    max(p.at_ms for p in parts if p is not None),
                )
            )
        else:
            done = sum(p is not None for p in parts)
            steps.append(
                Step(STEPS[3], "pending", f"{done} of {len(parts)} message(s) delivered so far")
            )
    return steps

"""What the fan-out does with one reply, decided from facts alone. Pure.

The protocol (carried out by :mod:`fanout.app`): parts with a final record are skipped;
before the first post of a reply an "attempting" marker is written; a reply replayed with a
marker (crash, rebalance) first asks the platform which of its parts are there already, and
so does a post that failed ambiguously (5xx, lost response). A part that cannot be posted
fails, and so do the parts after it (they would arrive out of context).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum

from shared.events import DeliveryStatus

# The platform's create_time is whole seconds on another clock.
CLOCK_SLACK_S = 5


class FirstStep(StrEnum):
    """What comes before posting a reply's pending parts."""

    SKIP = "skip"  # every part has a final record: nothing to post
    WRITE_MARKER = "write_marker"  # first attempt: mark before the first post
    CHECK_PLATFORM = "check_platform"  # replayed after an attempt: look before posting


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    first: FirstStep
    pending: tuple[int, ...]  # part indices without a final record, in posting order


@dataclass(frozen=True, slots=True)
class PartFailure:
    """Why a part is dead-lettered: ``reason`` for the seller and the dead letter,
    ``reason_class`` a fixed word for metrics and operators."""

    reason: str
    reason_class: str
    attempts: int


def plan_reply(
    indices: Sequence[int], delivered: Collection[int], marker_at_ms: int | None
) -> ReplyPlan:
    """The parts still to post (those without a final record, in index order) and the step
    before posting them: ``marker_at_ms`` is the marker an earlier attempt left, if any."""
    pending = tuple(i for i in sorted(indices) if i not in delivered)
    if not pending:
        return ReplyPlan(FirstStep.SKIP, ())
    first = FirstStep.WRITE_MARKER if marker_at_ms is None else FirstStep.CHECK_PLATFORM
    return ReplyPlan(first, pending)


def look_since_s(marker_at_ms: int) -> int:
    """From when (platform seconds) to list messages that an attempt may have posted."""
    return marker_at_ms // 1000 - CLOCK_SLACK_S


def found_beyond_recorded(present: int, recorded: int) -> int:
    """Parts to record as already delivered: of the leading parts the platform shows
    (``present``), those after the ``recorded`` ones that already have a final record."""
    return max(0, present - recorded)


# When the platform cannot be asked whether a part is there: posting again risks a double,
# not posting risks a loss, and a loss is worse for a reply the seller wrote.
FOUND_WHEN_UNCHECKABLE = 0


def posted_status(platform_message_id: str | None) -> DeliveryStatus:
    """The final record of a part whose post ended well: ``None`` means an ambiguous
    failure turned out, on checking, to have posted it after all."""
    return (
        DeliveryStatus.DELIVERED
        if platform_message_id is not None
        else DeliveryStatus.ALREADY_DELIVERED
    )


def part_not_posted(
    index: int, reason: str, attempts: int, *, exhausted: bool, picture: bool = False
) -> PartFailure:
    """The failure of a part the platform refused (``exhausted`` False) or kept failing
    temporarily until the attempts ran out."""
    what = f"picture of part {index}" if picture else f"part {index}"
    if not exhausted:
        refused = f"the picture of part {index}" if picture else f"part {index}"
        return PartFailure(
            f"chat platform refused {refused}: {reason}", "platform_permanent", attempts
        )
    verb = "uploaded" if picture else "accepted"
    return PartFailure(
        f"{what} not {verb} after {attempts} attempts: {reason}", "platform_exhausted", attempts
    )


def failed_records(
    pending: Sequence[int], failed_at: int, reason: str, attempts: int
) -> list[tuple[int, str, int]]:
    """(index, reason, attempts) of every FAILED record when ``pending[failed_at]`` fails
    for ``reason``: that part, and each later part held back because of it."""
    index = pending[failed_at]
    held = [(rest, f"part {index} failed: {reason}", 0) for rest in pending[failed_at + 1 :]]
    return [(index, reason, attempts), *held]

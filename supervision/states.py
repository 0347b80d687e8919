"""A hazard work order's states and the one table of moves between them.

dispatched → accepted → rectifying → awaiting_review → closed, with rejected (the
review sent the rectification back) and reopened (the condition came back or a
supervisor reopened a closed order). A public report starts awaiting review: the
center dispatches it to a unit, closes it, or rejects it as unfounded.
"""

from __future__ import annotations

from enum import StrEnum


class HazardState(StrEnum):
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    RECTIFYING = "rectifying"
    AWAITING_REVIEW = "awaiting_review"
    CLOSED = "closed"
    REJECTED = "rejected"
    REOPENED = "reopened"


class HazardSeverity(StrEnum):
    MAJOR = "major"
    """重大火灾隐患."""
    GENERAL = "general"
    """一般火灾隐患."""


class HazardCategory(StrEnum):
    FAULT_UNREPAIRED = "fault_unrepaired"
    SHIELDED = "shielded"
    PRESSURE_LOW = "pressure_low"
    OFFLINE = "offline"
    FALSE_ALARMS = "false_alarms"
    DUTY_CHECK = "duty_check"
    MANUAL = "manual"
    """Opened by hand from the console."""
    PUBLIC = "public"
    """A citizen's report (火灾隐患举报)."""


class Action(StrEnum):
    DISPATCH = "dispatch"
    ACCEPT = "accept"
    START = "start"
    REPORT_FIXED = "report_fixed"
    APPROVE = "approve"
    REJECT = "reject"
    REOPEN = "reopen"
    NOTE = "note"


S = HazardState
ASSIGNEE, CENTER = "assignee", "center"
"""Who may take an action: the unit or its maintenance company, or the center (operator and up)."""

MOVES: dict[tuple[HazardState, Action], tuple[HazardState, str]] = {
    (S.AWAITING_REVIEW, Action.DISPATCH): (S.DISPATCHED, CENTER),
    (S.DISPATCHED, Action.ACCEPT): (S.ACCEPTED, ASSIGNEE),
    (S.REOPENED, Action.ACCEPT): (S.ACCEPTED, ASSIGNEE),
    (S.ACCEPTED, Action.START): (S.RECTIFYING, ASSIGNEE),
    (S.REJECTED, Action.START): (S.RECTIFYING, ASSIGNEE),
    (S.ACCEPTED, Action.REPORT_FIXED): (S.AWAITING_REVIEW, ASSIGNEE),
    (S.RECTIFYING, Action.REPORT_FIXED): (S.AWAITING_REVIEW, ASSIGNEE),
    (S.REJECTED, Action.REPORT_FIXED): (S.AWAITING_REVIEW, ASSIGNEE),
    (S.AWAITING_REVIEW, Action.APPROVE): (S.CLOSED, CENTER),
    (S.AWAITING_REVIEW, Action.REJECT): (S.REJECTED, CENTER),
    (S.CLOSED, Action.REOPEN): (S.REOPENED, CENTER),
    (S.REJECTED, Action.REOPEN): (S.REOPENED, CENTER),
}
OPEN_STATES = tuple(s for s in HazardState if s is not S.CLOSED)
ASSIGNEE_STATES = (S.DISPATCHED, S.ACCEPTED, S.RECTIFYING, S.REJECTED, S.REOPENED)
"""States in which the deadline runs against the unit and its maintenance company."""


class MoveError(Exception):
    """The action is not possible now; the message says why, for a 409."""


def move(state: str, action: Action, by: str) -> HazardState:
    """The next state, or MoveError; `by` is ASSIGNEE or CENTER (the center may act for an assignee)."""
    current = HazardState(state)
    target = MOVES.get((current, action))
    if target is None:
        allowed = ", ".join(a for (s, a) in MOVES if s is current) or "none"
        raise MoveError(f"an order {current} cannot be {action}ed (possible now: {allowed})")
    nxt, who = target
    if who == CENTER and by != CENTER:
        raise MoveError(f"only the center can {action} an order")
    return nxt

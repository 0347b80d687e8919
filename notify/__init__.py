"""notify: route → roster → escalation → channels. Pages phones until someone acknowledges.

It follows alert changes through the store's audit trail, so it runs inside
`firewatch alerting` (the default) or as its own service (`firewatch notify`).
This is its public surface: the api and the `firewatch` command import only these
names, never notify's modules or its tables.
"""

from firewatch.notify.acklink import AckLinkError, AckSigner, Claim, LinkProblem
from firewatch.notify.acknowledge import AckKind, AckResult, acknowledge, paged_with
from firewatch.notify.channels import Outgoing, try_channels
from firewatch.notify.config import NotifyConfig, notify_config
from firewatch.notify.handoff import HANDED_OFF, HANDOFF_FAILED
from firewatch.notify.metrics import NotifyMetrics
from firewatch.notify.paging import NOBODY_REACHABLE
from firewatch.notify.roster import (
    Duty,
    PersonIn,
    RosterError,
    RosterIn,
    delete_person,
    dump_yaml,
    duty_at,
    duty_now,
    get_roster,
    language_of,
    load_file,
    names,
    person,
    put_person,
    put_roster,
)
from firewatch.notify.service import Nudges, Stage, embedded, run
from firewatch.notify.templates import word

__all__ = [
    "HANDED_OFF",
    "HANDOFF_FAILED",
    "NOBODY_REACHABLE",
    "AckKind",
    "AckLinkError",
    "AckResult",
    "AckSigner",
    "Claim",
    "Duty",
    "LinkProblem",
    "NotifyConfig",
    "NotifyMetrics",
    "Nudges",
    "Outgoing",
    "PersonIn",
    "RosterError",
    "RosterIn",
    "Stage",
    "acknowledge",
    "delete_person",
    "dump_yaml",
    "duty_at",
    "duty_now",
    "embedded",
    "get_roster",
    "language_of",
    "load_file",
    "names",
    "notify_config",
    "paged_with",
    "person",
    "put_person",
    "put_roster",
    "run",
    "try_channels",
    "word",
]

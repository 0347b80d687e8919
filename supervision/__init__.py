"""The supervision part: units and their people, maintenance companies, and hazard work orders
(隐患整改闭环) opened from the alert store, verified from the platform's data, escalated when overdue."""

from firewatch.supervision.config import SupervisionConfig, load
from firewatch.supervision.credit_code import CreditCodeError, validate
from firewatch.supervision.draws import Draw, Inspection, InspectionResult, draw, replay
from firewatch.supervision.hazards import Acted, act, history, still_failing
from firewatch.supervision.indicators import (
    TZ,
    Indicators,
    Period,
    PressureFloor,
    compute,
    day,
    kind_floor,
    month,
    rolling30,
)
from firewatch.supervision.links import HazardLinks, HazardPass, LinkGone, LinkRevoked
from firewatch.supervision.messages import Messenger, Outgoing
from firewatch.supervision.models import (
    Contact,
    HazardLink,
    HazardOrder,
    MaintenanceCompany,
    TokenScope,
    Unit,
    UnitSite,
)
from firewatch.supervision.monthly import MonthlyReports, MonthlyRun, stored_report
from firewatch.supervision.photos import PhotoError, PhotoStore
from firewatch.supervision.registry import (
    CSV_COLUMNS,
    CompanyIn,
    ContactIn,
    ContactRole,
    UnitCategory,
    UnitIn,
    read_csv,
)
from firewatch.supervision.reports import (
    DistrictMonth,
    ReportError,
    UnitMonth,
    gather_district,
    gather_units,
    render_district,
    render_unit,
)
from firewatch.supervision.scores import Grade, Score, StoredScore, Trend, month_scores
from firewatch.supervision.states import (
    ASSIGNEE,
    ASSIGNEE_STATES,
    CENTER,
    OPEN_STATES,
    Action,
    HazardCategory,
    HazardSeverity,
    HazardState,
    MoveError,
)
from firewatch.supervision.supervisor import Supervisor

__all__ = [
    "ASSIGNEE",
    "ASSIGNEE_STATES",
    "CENTER",
    "CSV_COLUMNS",
    "OPEN_STATES",
    "TZ",
    "Acted",
    "Action",
    "CompanyIn",
    "Contact",
    "ContactIn",
    "ContactRole",
    "CreditCodeError",
    "DistrictMonth",
    "Draw",
    "Grade",
    "HazardCategory",
    "HazardLink",
    "HazardLinks",
    "HazardOrder",
    "HazardPass",
    "HazardSeverity",
    "HazardState",
    "Indicators",
    "Inspection",
    "InspectionResult",
    "LinkGone",
    "LinkRevoked",
    "MaintenanceCompany",
    "Messenger",
    "MonthlyReports",
    "MonthlyRun",
    "MoveError",
    "Outgoing",
    "Period",
    "PhotoError",
    "PhotoStore",
    "PressureFloor",
    "ReportError",
    "Score",
    "StoredScore",
    "SupervisionConfig",
    "Supervisor",
    "TokenScope",
    "Trend",
    "Unit",
    "UnitCategory",
    "UnitIn",
    "UnitMonth",
    "UnitSite",
    "act",
    "compute",
    "day",
    "draw",
    "gather_district",
    "gather_units",
    "history",
    "kind_floor",
    "load",
    "month",
    "month_scores",
    "read_csv",
    "render_district",
    "render_unit",
    "replay",
    "rolling30",
    "still_failing",
    "stored_report",
    "validate",
]

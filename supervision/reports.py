"""Monthly reports in Chinese as PDF: per unit (indicators, charts, alarms, faults, hazards, score and reasons) and
per district (units ranked, red units, overdue hazards, grades and trends, the month's draws).

Charts are drawn by matplotlib (Agg) and the PDF laid out by reportlab: both are maintained,
both are plain wheels with no system libraries (weasyprint would need Pango and cairo), and
reportlab embeds a subset of a TrueType font, so the text stays text (a test extracts it). The
CJK font is Debian's fonts-wqy-microhei (文泉驿微米黑), used by both. The numbers are the
API's: the same `month_scores` and the same rounding.

Gathering is async (the store); rendering is CPU work, run off the event loop by the caller.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import matplotlib
import numpy as np
from matplotlib import font_manager
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image as PILImage
from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy import select

from firewatch.contract.db import Alert, District, Store
from firewatch.contract.influx import Influx
from firewatch.contract.rules import rule_labels
from firewatch.supervision.config import SupervisionConfig
from firewatch.supervision.draws import Draw
from firewatch.supervision.indicators import (
    DAY_MS,
    FAULT_RULES,
    TZ,
    Period,
    PressureFloor,
    kind_floor,
)
from firewatch.supervision.models import HazardOrder, Unit, UnitSite
from firewatch.supervision.scores import Grade, Score, Trend, month_scores

FONT_FILE = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
"""Debian's fonts-wqy-microhei (scripts/setup.sh installs it)."""
FONT = "wqy-microhei"
GRADE_COLOUR = {Grade.GREEN: "#1e9e4a", Grade.YELLOW: "#d9a400", Grade.RED: "#d62828"}
INDICATOR_ZH = {"integrity": "设施完好", "repair": "故障修复", "false_alarms": "误报控制", "offline": "在线率",
                "shielded": "屏蔽管理", "pressure": "水压达标", "duty_checks": "查岗应答", "hazards": "隐患整改"}
SEVERITY_ZH = {"major": "重大", "general": "一般"}
RULE_LABELS = rule_labels()
T = TypeVar("T")


class ReportError(RuntimeError):
    """A report cannot be made (no font, no such unit): the message says which."""


@cache
def _fonts() -> str:
    if not FONT_FILE.exists():
        raise ReportError(f"the CJK font {FONT_FILE} is missing: install Debian's fonts-wqy-microhei")
    rl_config.useA85 = 0  # binary streams: reportlab's pure-Python ASCII85 of the charts cost ~0.1 s a report
    pdfmetrics.registerFont(TTFont(FONT, str(FONT_FILE), subfontIndex=0))
    font_manager.fontManager.addfont(str(FONT_FILE))
    name = font_manager.FontProperties(fname=str(FONT_FILE)).get_name()
    matplotlib.rcParams.update({"font.family": name, "axes.unicode_minus": False})
    return FONT


def _style(size: float = 10, bold_colour: str = "#000000", leading: float | None = None) -> ParagraphStyle:
    return ParagraphStyle(f"s{size}{bold_colour}", fontName=_fonts(), fontSize=size, textColor=bold_colour,
                          leading=leading or size * 1.4, wordWrap="CJK")


def _table(rows: list[list[Any]], widths: list[float]) -> Table:
    t = Table([[Paragraph(str(c), _style(9)) for c in r] for r in rows], colWidths=widths, repeatRows=1)
    t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                           ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                           ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    return t


class _Picture(Flowable):
    """A chart's pixels as they are: handing reportlab a PNG cost an encode and a decode per chart."""

    def __init__(self, image: PILImage.Image, width: float, height: float) -> None:
        super().__init__()
        self.image, self.width, self.height = image, width, height

    def wrap(self, _avail_width: float, _avail_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        self.canv.drawImage(ImageReader(self.image), 0, 0, self.width, self.height)


def _image(fig: Figure) -> Flowable:
    """A figure drawn by Agg without pyplot (no global state), as a flowable 170 mm wide."""
    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(110)
    canvas.draw()
    return _pixels(canvas, fig)


def _pixels(canvas: FigureCanvasAgg, fig: Figure) -> Flowable:
    rgba = canvas.buffer_rgba()
    pixels = PILImage.frombuffer("RGBA", (rgba.shape[1], rgba.shape[0]), rgba, "raw", "RGBA", 0, 1).convert("RGB")
    w, h = fig.get_size_inches()
    return _Picture(pixels, 170 * mm, 170 * mm * h / w)


def _when(ms: int | None) -> str:
    return "—" if ms is None else datetime.fromtimestamp(ms / 1000, TZ).strftime("%m-%d %H:%M")


def _month_zh(p: Period) -> str:
    start = datetime.fromtimestamp(p.start_ms / 1000, TZ)
    return f"{start.year}年{start.month}月"


def _fmt(v: float | None, pattern: str = "{:.1f}") -> str:
    return "—" if v is None else pattern.format(v)


def indicator_rows(x: dict[str, Any]) -> list[list[str]]:
    """The unit report's indicator table: what a supervisor reads, in Chinese, with the API's figures."""
    pct = "{:.1%}"
    return [
        ["指标", "数值"],
        ["监测设备数", str(x["devices"])],
        ["设施完好率", _fmt(x["integrity_rate"], pct)],
        ["故障次数 / 月末未修复", f"{x['faults']} / {x['faults_open']}"],
        ["平均修复时间 / 最长（小时）", f"{_fmt(x['repair_mean_h'])} / {_fmt(x['repair_worst_h'])}"],
        ["误报次数 / 日均 / 超限天数",
         f"{x['false_alarms']} / {x['false_alarms_per_day']:.2f} / {x['false_alarm_days_over']}"],
        ["离线率", _fmt(x["offline_rate"], pct)],
        ["屏蔽时长（点·小时）", _fmt(x["shielded_h"])],
        ["水压达标率（读数）", f"{_fmt(x['pressure_ok_rate'], pct)}（{x['pressure_readings']}）"],
        ["查岗应答 / 次数", f"{x['duty_answered']} / {x['duty_checks']}"],
        ["查岗平均响应（秒）", _fmt(x["duty_response_mean_s"])],
        ["隐患新增 / 关闭 / 按期关闭 / 逾期",
         f"{x['hazards_opened']} / {x['hazards_closed']} / {x['hazards_closed_on_time']} / {x['hazards_overdue']}"],
        ["火警 / 未及时响应", f"{x['fire_alarms']} / {x['missed_fire_responses']}"],
        ["中心平均处置时间（秒）", _fmt(x["alarm_handling_mean_s"])],
    ]


@dataclass(slots=True)
class UnitMonth:
    unit: Unit
    period: Period
    score: Score
    district_name: str
    """The unit's district as people say it (锦江区), from the district registry; its code when unnamed."""
    alerts: list[Alert] = field(default_factory=list)
    hazards: list[HazardOrder] = field(default_factory=list)


@dataclass(slots=True)
class DistrictMonth:
    district: str
    name: str
    period: Period
    units: dict[int, Unit]
    scores: list[Score]
    hazards: list[HazardOrder]
    draws: list[Draw]


async def gather_units(store: Store, influx: Influx | None, config: SupervisionConfig, period: Period,
                       district: str | None = None, unit_ids: list[int] | None = None,
                       floor: PressureFloor = kind_floor, scores: list[Score] | None = None) -> list[UnitMonth]:
    """Each unit's month (its score as the API gives it, its alerts and orders of the month); `scores`: the
    month's scores of exactly those units, already computed (the monthly job scores the city once)."""
    if scores is None:
        scores = await month_scores(store, influx, config, period, district, unit_ids, floor=floor)
    ids = [s.unit_id for s in scores]
    async with store.session() as s:
        units = {u.id: u for u in (await s.execute(select(Unit).where(Unit.id.in_(ids)))).scalars()}
        alerts = (await s.execute(
            select(UnitSite.unit_id, Alert).join(UnitSite, UnitSite.site == Alert.site)
            .where(UnitSite.unit_id.in_(ids), Alert.started_ms >= period.start_ms,
                   Alert.started_ms < period.end_ms).order_by(Alert.started_ms))).all()
        hazards = (await s.execute(select(HazardOrder).where(
            HazardOrder.unit_id.in_(ids), HazardOrder.opened_ms < period.end_ms)
            .order_by(HazardOrder.opened_ms))).scalars().all()
        names = dict((await s.execute(select(District.code, District.name).where(
            District.code.in_({u.district for u in units.values()})))).all())
    out = {x.unit_id: UnitMonth(units[x.unit_id], period, x, names.get(units[x.unit_id].district)
                                or units[x.unit_id].district) for x in scores}
    for u, a in alerts:
        out[u].alerts.append(a)
    for h in hazards:
        if h.closed_ms is None or h.closed_ms >= period.start_ms:
            out[h.unit_id].hazards.append(h)  # type: ignore[index]
    return list(out.values())


async def gather_district(store: Store, influx: Influx | None, config: SupervisionConfig, period: Period,
                          district: str, floor: PressureFloor = kind_floor,
                          scores: list[Score] | None = None) -> DistrictMonth:
    if scores is None:
        scores = await month_scores(store, influx, config, period, district, floor=floor)
    async with store.session() as s:
        units = {u.id: u for u in (await s.execute(select(Unit).where(
            Unit.id.in_([x.unit_id for x in scores])))).scalars()}
        named = await s.get(District, district)
        overdue = (await s.execute(select(HazardOrder).where(
            HazardOrder.district == district, HazardOrder.opened_ms < period.end_ms,
            HazardOrder.deadline_ms < period.end_ms,
            (HazardOrder.closed_ms.is_(None)) | (HazardOrder.closed_ms >= period.end_ms))
            .order_by(HazardOrder.deadline_ms))).scalars().all()
        draws = (await s.execute(select(Draw).where(
            Draw.district == district, Draw.drawn_ms >= period.start_ms, Draw.drawn_ms < period.end_ms)
            .order_by(Draw.id))).scalars().all()
    return DistrictMonth(district, named.name if named else district, period, units, scores, list(overdue),
                         list(draws))


def _rule_zh(a: Alert) -> str:
    """The alert said in Chinese, from the rule catalogue's label, with where it is."""
    label = RULE_LABELS.get(f"{a.kind}.{a.rule}", {}).get("zh", a.rule)
    return f"{label} {a.zone}".strip()


DAILY_GROUPS = {"火警": ("fire",), "故障": FAULT_RULES, "离线": ("offline",), "其他": ()}
"""The daily chart's stacks: alerts by what they mean, the rest as other."""
DAILY_COLOURS = ("#d62828", "#f77f00", "#6c757d", "#4c6ef5")


class _Blitted:
    """A chart whose axes, ticks, labels and legend are drawn once per look and kept as pixels (Agg's
    `copy_from_bbox`); a unit's report restores them and draws only its own bars and title on top.

    Laying out the text of a fresh figure was most of a report's time (`firewatch bench supervision`,
    docs/supervision.md); a few looks repeat across thousands of units.
    """

    MAX_LOOKS = 64

    def __init__(self, fig: Figure, own: list[Artist]) -> None:
        self.fig, self.own = fig, own
        self.canvas = FigureCanvasAgg(fig)
        fig.set_dpi(110)
        for a in own:
            a.set_animated(True)  # left out of the background, drawn per report
        self.looks: dict[tuple[Any, ...], Any] = {}

    def draw(self, look: tuple[Any, ...], set_look: Callable[[], None]) -> Flowable:
        """`set_look` sets what the background shows; the axes' limits are the caller's to set every time."""
        ax = self.own[0].axes
        if look not in self.looks:
            if len(self.looks) >= self.MAX_LOOKS:
                self.looks.clear()
            set_look()
            self.canvas.draw()
            self.looks[look] = self.canvas.copy_from_bbox(self.fig.bbox), ax.get_legend()
        background, legend = self.looks[look]
        self.canvas.restore_region(background)
        for a in self.own:
            ax.draw_artist(a)
        if legend is not None:
            ax.draw_artist(legend)  # over the bars, as a figure drawn whole has it
        return _pixels(self.canvas, self.fig)


class _DailyChart(_Blitted):
    """Alarms and faults per day of a month of `days` days, stacked by group."""

    def __init__(self, days: int) -> None:
        _fonts()
        self.days = days
        fig = Figure(figsize=(8, 2.6))
        ax = self.ax = fig.subplots()
        self.bars = {g: ax.bar(range(1, days + 1), np.zeros(days), label=g, color=colour)
                     for g, colour in zip(DAILY_GROUPS, DAILY_COLOURS, strict=True)}
        self.empty = ax.text(0.5, 0.5, "本月无报警与故障", transform=ax.transAxes, ha="center", va="center",
                             color="#555555")
        ax.set_xlabel("日")
        ax.set_ylabel("次数")
        ax.set_xlim(0.5, days + 0.5)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.subplots_adjust(left=0.07, right=0.98, top=0.86, bottom=0.18)
        super().__init__(fig, [r for bars in self.bars.values() for r in bars])

    def render(self, m: UnitMonth) -> Flowable:
        counts = {g: np.zeros(self.days) for g in DAILY_GROUPS}
        for a in m.alerts:
            d = min(self.days - 1, int((a.started_ms - m.period.start_ms) // DAY_MS))
            g = next((g for g, rules in DAILY_GROUPS.items() if a.rule in rules), "其他")
            counts[g][d] += 1
        bottom = np.zeros(self.days)
        for g, bars in self.bars.items():
            for rect, b, c in zip(bars, bottom, counts[g], strict=True):
                rect.set_y(b)
                rect.set_height(c)
            bottom += counts[g]
        top = int(bottom.max())
        shown = tuple(g for g in DAILY_GROUPS if counts[g].any())
        title = f"每日报警与故障（{_month_zh(m.period)}）"

        def look() -> None:
            self.empty.set_visible(not top)
            if shown:
                self.ax.legend(handles=[self.bars[g] for g in shown], ncol=4, fontsize=8,
                               loc="upper right").set_animated(True)
            else:
                self.ax.legend_ = None  # not removed: another look keeps it
            self.ax.set_title(title)

        self.ax.set_ylim(0, top * 1.05 if top else 1)
        return self.draw((title, top, shown), look)


class _BreakdownChart(_Blitted):
    """Points kept per indicator against its weight."""

    def __init__(self, weights: dict[str, float]) -> None:
        _fonts()
        fig = Figure(figsize=(8, 2.8))
        ax = self.ax = fig.subplots()
        labels = [INDICATOR_ZH[n] for n in weights]
        ax.barh(labels, list(weights.values()), color="#e9ecef", label="满分")
        self.kept = ax.barh(labels, np.zeros(len(weights)), label="得分")
        self.names = list(weights)
        ax.invert_yaxis()
        self.title = ax.set_title(" ")
        self.legend = ax.legend(fontsize=8, loc="lower right")
        self.legend.set_animated(True)
        fig.subplots_adjust(left=0.12, right=0.98, top=0.88, bottom=0.1)
        super().__init__(fig, [*self.kept, self.title])

    def render(self, score: Score) -> Flowable:
        colour = GRADE_COLOUR[score.grade]
        for rect, n in zip(self.kept, self.names, strict=True):
            rect.set_width(score.breakdown[n])
            rect.set_color(colour)
        self.title.set_text(f"得分构成：{score.score:.1f} 分（{score.grade.zh}色）")
        self.legend.legend_handles[1].set_color(colour)
        return self.draw((), lambda: None)


_charts = threading.local()
"""Each thread's charts: a figure is not safe to draw from two threads at once (the api renders in a pool)."""


def _chart(key: tuple[Any, ...], make: Callable[[], T]) -> T:
    built = _charts.__dict__.setdefault("built", {})
    if key not in built:
        built[key] = make()
    return built[key]


def render_unit(m: UnitMonth, config: SupervisionConfig) -> bytes:
    """One unit's monthly report as PDF bytes."""
    s, u = m.score, m.unit
    weights, days = config.scores.weights.model_dump(), round(m.period.days)
    story: list[Any] = [
        Paragraph(f"{u.name} 消防安全月度报告（{_month_zh(m.period)}）", _style(16)),
        Paragraph(f"统一社会信用代码 {u.credit_code}　辖区 {m.district_name}　地址 {u.address or '—'}", _style(9)),
        Spacer(1, 4 * mm),
        Paragraph(f"综合评分 {s.score:.1f} 分　等级 {s.grade.zh}色　趋势 {s.trend.zh}"
                  + (f"（上月 {s.previous:.1f} 分）" if s.previous is not None else ""),
                  _style(13, GRADE_COLOUR[s.grade])),
        Paragraph(f"数据版本 {s.inputs_version}（截至月末，由平台记录计算）", _style(8, "#555555")),
        Spacer(1, 3 * mm),
        Paragraph("扣分原因", _style(12)),
        *([Paragraph(f"· {r.zh}", _style(10)) for r in s.reasons] or [Paragraph("无扣分项。", _style(10))]),
        Spacer(1, 3 * mm),
        _chart(("breakdown", *weights.items()), lambda: _BreakdownChart(weights)).render(s),
        Paragraph("本月指标", _style(12)),
        _table(indicator_rows(s.indicators), [90 * mm, 80 * mm]),
        Spacer(1, 3 * mm),
        _chart(("daily", days), lambda: _DailyChart(days)).render(m),
        Paragraph("报警与故障", _style(12)),
    ]
    alarms = [a for a in m.alerts if a.rule in ("fire", "fault", "main_power", "backup_power", "offline",
                                                 "pressure_low", "shield_left_on", "duty_check_missed")]
    story.append(_table([["时间", "设备", "类型", "恢复"]] + [
        [_when(a.started_ms), a.device_id, _rule_zh(a), _when(a.resolved_ms)] for a in alarms[:60]],
        [30 * mm, 30 * mm, 80 * mm, 30 * mm]) if alarms else Paragraph("本月无报警与故障。", _style(10)))
    if len(alarms) > 60:
        story.append(Paragraph(f"另有 {len(alarms) - 60} 条未列出。", _style(9)))
    story.append(Paragraph("隐患工单", _style(12)))
    story.append(_table([["编号", "隐患", "级别", "开立", "期限", "关闭"]] + [
        [str(h.id), h.title[:200], SEVERITY_ZH.get(h.severity, h.severity), _when(h.opened_ms), _when(h.deadline_ms),
         _when(h.closed_ms) if h.closed_ms is not None and h.closed_ms < m.period.end_ms else "未关闭"]
        for h in m.hazards], [14 * mm, 66 * mm, 14 * mm, 26 * mm, 26 * mm, 24 * mm])
        if m.hazards else Paragraph("本月无隐患工单。", _style(10)))
    return _pdf(story, f"{u.name} {m.period.label}")


def render_district(d: DistrictMonth, config: SupervisionConfig) -> bytes:
    """A district's monthly report as PDF bytes: ranking, red units, overdue orders, grades, draws."""
    order = list(Grade)
    ranked = sorted(d.scores, key=lambda x: (order.index(x.grade), -x.score, x.unit_id))
    counts = {g: sum(x.grade == g for x in d.scores) for g in Grade}
    story: list[Any] = [
        Paragraph(f"{d.name if d.name != d.district else ''}（{d.district}）社会单位消防安全月度报告（{_month_zh(d.period)}）", _style(15)),
        Paragraph(f"单位 {len(d.scores)} 家：绿色 {counts[Grade.GREEN]}　黄色 {counts[Grade.YELLOW]}　"
                  f"红色 {counts[Grade.RED]}", _style(11)),
        Spacer(1, 3 * mm),
    ]
    fig = Figure(figsize=(8, 2.6))
    left, right = fig.subplots(1, 2)
    left.bar(["绿", "黄", "红"], [counts[g] for g in Grade], color=[GRADE_COLOUR[g] for g in Grade])
    left.set_title("等级分布")
    for ax in (left, right):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.bar([t.zh for t in Trend], [sum(x.trend == t for x in d.scores) for t in Trend], color="#4c6ef5")
    right.set_title("较上月趋势")
    fig.subplots_adjust(left=0.06, right=0.98, top=0.86, bottom=0.12, wspace=0.2)
    story.append(_image(fig))
    story.append(Paragraph("单位排名", _style(12)))
    story.append(_table([["名次", "单位", "评分", "等级", "趋势"]] + [
        [str(i), d.units[x.unit_id].name, f"{x.score:.1f}", x.grade.zh, x.trend.zh]
        for i, x in enumerate(ranked, 1)], [14 * mm, 86 * mm, 22 * mm, 18 * mm, 30 * mm]))
    story.append(Paragraph("红色单位及原因", _style(12)))
    reds = [x for x in ranked if x.grade == Grade.RED]
    story += [Paragraph(f"· {d.units[x.unit_id].name}（{x.score:.1f} 分）：" + "；".join(r.zh for r in x.reasons[:3]),
                        _style(10)) for x in reds] or [Paragraph("无红色单位。", _style(10))]
    story.append(Paragraph("逾期未整改隐患", _style(12)))
    story.append(_table([["编号", "单位", "隐患", "级别", "期限"]] + [
        [str(h.id), d.units[h.unit_id].name if h.unit_id in d.units else "—", h.title[:200],
         SEVERITY_ZH.get(h.severity, h.severity), _when(h.deadline_ms)] for h in d.hazards],
        [14 * mm, 46 * mm, 70 * mm, 14 * mm, 26 * mm]) if d.hazards else Paragraph("无。", _style(10)))
    story.append(Paragraph("本月随机抽查（双随机）", _style(12)))
    for dr in d.draws:
        names = "、".join(d.units[u].name if u in d.units else str(u) for u in dr.result)
        story.append(Paragraph(f"· 抽查 {dr.id}：{_when(dr.drawn_ms)} 由 {dr.drawn_by} 抽取，种子 {dr.seed}，"
                               f"候选 {len(dr.candidates)} 家，排除 {len(dr.excluded)} 家；抽中 {names}", _style(10)))
    if not d.draws:
        story.append(Paragraph("本月无抽查记录。", _style(10)))
    return _pdf(story, f"{d.name} {d.period.label}")


def _pdf(story: list[Any], title: str) -> bytes:
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                            bottomMargin=16 * mm, title=title, author="firewatch")
    doc.build(story)
    return buf.getvalue()

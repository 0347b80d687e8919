"""Message texts in Chinese (default) and English: what, where, how bad, since when, how to acknowledge.

Short lines first: a phone's lock screen shows the title and two lines, so the
severity, the place and the value come before everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from firewatch.contract.db import Alert
from firewatch.contract.payload import one_line
from firewatch.contract.rules import reason_zh, summary_zh


class Purpose(StrEnum):
    PAGE = "page"
    REMINDER = "reminder"
    ALL_CLEAR = "all_clear"
    HANDOVER = "handover"
    HANDOFF = "handoff"
    """A confirmed fire handed to the 119 command center."""


TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "fire": "火警",
        "critical": "严重",
        "warning": "预警",
        "info": "提示",
        "page": "【{severity}】{what}",
        "reminder": "【提醒·{severity}】{what}（已确认，尚未解除）",
        "all_clear": "【已解除】{what}",
        "handoff": "【真实火警·请出警】{what}",
        "confirmed": "确认：{by} 于 {at} 确认为真实火警",
        "where": "地点：{where}",
        "address": "地址：{address}",
        "zone": "区域：{zone}",
        "point": "点位：{loop}回路{point}号",
        "value": "数值：{value}{unit}（阈值 {threshold}{unit}）",
        "since": "开始：{since}",
        "resolved": "解除：{resolved}",
        "probable": "疑似真实火情，火警概率 {score:.0%}：{reasons}",
        "more": "另有 {count} 条同类告警",
        "acked": "确认人：{by}",
        "link": "一键确认：{link}",
        "device": "设备：{device}",
        "ack": "确认",
        "on_way": "马上到",
        "false_alarm": "误报",
        "real_fire": "真实火警",
        "handover": "【交接班】{group}：您现在值班，未解除告警 {count} 条",
        "handover_line": "{severity}｜{what}｜{where}｜开始 {since}｜{state}",
        "open_unacked": "未确认",
        "open_acked": "{by} 已确认",
        "test_title": "【测试】firewatch 通知测试",
        "test_body": "这是一条测试消息，收到即说明此通道可用，无需处理。",
    },
    "en": {
        "fire": "FIRE",
        "critical": "CRITICAL",
        "warning": "WARNING",
        "info": "INFO",
        "page": "[{severity}] {what}",
        "reminder": "[Reminder · {severity}] {what} (acknowledged, not resolved)",
        "all_clear": "[All clear] {what}",
        "handoff": "[CONFIRMED FIRE · dispatch] {what}",
        "confirmed": "Confirmed a real fire by {by} at {at}",
        "where": "Where: {where}",
        "address": "Address: {address}",
        "zone": "Zone: {zone}",
        "point": "Point: loop {loop}, point {point}",
        "value": "Value: {value}{unit} (threshold {threshold}{unit})",
        "since": "Since: {since}",
        "resolved": "Resolved: {resolved}",
        "probable": "Probably a real fire, fire score {score:.0%}: {reasons}",
        "more": "{count} more alerts like this",
        "acked": "Acknowledged by: {by}",
        "link": "Acknowledge: {link}",
        "device": "Device: {device}",
        "ack": "Acknowledge",
        "on_way": "On my way",
        "false_alarm": "False alarm",
        "real_fire": "Real fire",
        "handover": "[Handover] {group}: you are on duty; {count} open alerts",
        "handover_line": "{severity} | {what} | {where} | since {since} | {state}",
        "open_unacked": "not acknowledged",
        "open_acked": "acknowledged by {by}",
        "test_title": "[Test] firewatch notification test",
        "test_body": "A test message: if you read it, this channel works. Nothing to do.",
    },
}


@dataclass(frozen=True, slots=True)
class Text:
    title: str
    body: str


def word(language: str, key: str) -> str:
    return TEXTS.get(language, TEXTS["zh"])[key]


def _clock(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M:%S")


def _number(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")


def what(alert: Alert, language: str) -> str:
    """The alert in the message's language, on one line (`contract.rules.summary_zh` for zh)."""
    return one_line(alert.summary or alert.rule if language == "en" else summary_zh(alert))


def reasons(alert: Alert, language: str) -> str:
    """Correlation's reasons, translated for zh."""
    return one_line("; ".join(r if language == "en" else reason_zh(r) for r in alert.reasons))


def render(
    alert: Alert,
    purpose: Purpose,
    language: str,
    zone: ZoneInfo,
    *,
    address: str = "",
    link: str = "",
    more: int = 0,
) -> Text:
    t = TEXTS.get(language, TEXTS["zh"])
    # Every text a device or the registry supplied goes on one line: a line break in it would
    # pose as a line of the message (a forged "resolved" or link line in an SMS).
    title = t[purpose.value].format(severity=t.get(alert.severity, alert.severity), what=what(alert, language))
    where = one_line(" · ".join(x for x in (alert.site, alert.district) if x))
    lines = [t["where"].format(where=where)] if where else []
    if address:
        lines.append(t["address"].format(address=one_line(address)))
    if alert.zone:
        lines.append(t["zone"].format(zone=one_line(alert.zone)))
    if alert.loop is not None and alert.point is not None:
        lines.append(t["point"].format(loop=alert.loop, point=alert.point))
    if alert.device_id:
        lines.append(t["device"].format(device=f"{alert.device_id} ({alert.kind})" if alert.kind else alert.device_id))
    if alert.value is not None:
        threshold = _number(alert.threshold) if alert.threshold is not None else "-"
        lines.append(t["value"].format(value=_number(alert.value), unit=alert.unit, threshold=threshold))
    lines.append(t["since"].format(since=_clock(alert.started_ms, zone)))
    if purpose is Purpose.ALL_CLEAR and alert.resolved_ms:
        lines.append(t["resolved"].format(resolved=_clock(alert.resolved_ms, zone)))
    if alert.probable:
        lines.append(t["probable"].format(score=alert.score, reasons=reasons(alert, language)))
    if more:
        lines.append(t["more"].format(count=more))
    if alert.acknowledged_by and purpose is not Purpose.PAGE:
        lines.append(t["acked"].format(by=alert.acknowledged_by))
    if link:
        lines.append(t["link"].format(link=link))
    return Text(title, "\n".join(lines))


def render_handover(
    group: str, alerts: list[tuple[Alert, str]], language: str, zone: ZoneInfo
) -> Text:
    """What the officer taking over must know: every open alert, worst first, with a link for the unacknowledged."""
    t = TEXTS.get(language, TEXTS["zh"])
    lines = []
    for alert, link in alerts:
        state = t["open_acked"].format(by=alert.acknowledged_by) if alert.state == "acknowledged" else t["open_unacked"]
        lines.append(t["handover_line"].format(
            severity=t.get(alert.severity, alert.severity), what=what(alert, language),
            where=one_line(" · ".join(x for x in (alert.site, alert.district) if x)) or "-",
            since=_clock(alert.started_ms, zone), state=state,
        ))
        if link:
            lines.append(t["link"].format(link=link))
    return Text(t["handover"].format(group=group, count=len(alerts)), "\n".join(lines))

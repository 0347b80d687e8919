"""The one-tap acknowledge page a duty officer opens from a phone message; no login.

The signed link (notify.acklink) is the credential: it names one alert
and one person and expires. The page shows the alert, the place and a small
chart of the readings, with three buttons: Acknowledge, On my way, False alarm
(with a note). A tap acknowledges the alert and the ones paged with it, stops
the escalation, and writes who, when and how into the audit trail, from which
the console's live stream and the alerting lifecycle learn of it. ntfy's
action buttons POST to `/ack/{id}/{token}/{how}` and do the same without a page.
A link that is expired, edited, or pasted onto another alert gets a page that
says which, and changes nothing.
"""

from __future__ import annotations

import html
from datetime import datetime
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from firewatch.api.context import Context, Ctx
from firewatch.api.readings import readings
from firewatch.contract.db import Alert, AlertState, Device, District, Severity, now_ms
from firewatch.contract.kinds import SPECS
from firewatch.contract.rules import reason_zh, summary_zh
from firewatch.notify import (
    AckKind,
    AckLinkError,
    AckSigner,
    Claim,
    LinkProblem,
    NotifyConfig,
    acknowledge,
    language_of,
    names,
    notify_config,
    paged_with,
    word,
)

router = APIRouter(tags=["acknowledge"], include_in_schema=False)
NOTE_MAX = 1000
FORM_MAX = 16 * 1024

PAGE_TEXT = {
    "zh": {
        "title": "告警确认", "state_firing": "未确认", "state_acknowledged": "已确认", "state_resolved": "已解除",
        "by": "{by} 于 {at} 确认", "note": "备注（误报请说明原因）", "done_ack": "已确认，升级通知已停止",
        "done_on_way": "已确认：您正在赶往现场，升级通知已停止", "done_false_alarm": "已记录为误报，升级通知已停止",
        "done_real_fire": "已确认为真实火警，正在移交119指挥中心；升级通知已停止",
        "already": "此告警已由 {by} 确认；您的操作已记录。", "resolved": "此告警已解除，无需操作。",
        "expired": "此确认链接已过期，未做任何更改。请在值班平台或最新消息中确认。",
        "tampered": "此确认链接无效（已被修改或不完整），未做任何更改。",
        "other_alert": "此确认链接属于告警 #{other}，不能用于告警 #{alert}，未做任何更改。",
        "missing": "告警不存在。", "bad_how": "未知操作，未做任何更改。", "since": "开始", "value": "数值",
        "threshold": "阈值", "score": "火情评分", "more": "同组告警 {n} 条一并确认", "chart": "最近读数",
        "you": "本链接发给",
    },
    "en": {
        "title": "Acknowledge alert", "state_firing": "not acknowledged", "state_acknowledged": "acknowledged",
        "state_resolved": "resolved", "by": "acknowledged by {by} at {at}", "note": "Note (why it is a false alarm)",
        "done_ack": "Acknowledged. Escalation stopped.", "done_on_way": "Acknowledged: you are on your way. Escalation stopped.",
        "done_false_alarm": "Recorded as a false alarm. Escalation stopped.",
        "done_real_fire": "Confirmed a real fire: it is being handed to the 119 command center. Escalation stopped.",
        "already": "Already acknowledged by {by}; your tap is recorded too.", "resolved": "This alert is resolved; nothing to do.",
        "expired": "This acknowledge link has expired. Nothing was changed. Acknowledge from the console or a newer message.",
        "tampered": "This acknowledge link is not valid (edited or cut off). Nothing was changed.",
        "other_alert": "This link belongs to alert #{other}, not alert #{alert}. Nothing was changed.",
        "missing": "No such alert.", "bad_how": "Unknown action. Nothing was changed.", "since": "Since", "value": "Value",
        "threshold": "threshold", "score": "Fire score", "more": "{n} grouped alerts are acknowledged with it",
        "chart": "Recent readings", "you": "Sent to",
    },
}

CSS = """
*{box-sizing:border-box}body{margin:0;font:17px/1.45 system-ui,-apple-system,"PingFang SC","Noto Sans CJK SC",sans-serif;
background:#f4f4f5;color:#18181b}main{max-width:480px;margin:0 auto;padding:16px}
.card{background:#fff;border-radius:14px;padding:16px;margin-bottom:14px;box-shadow:0 1px 3px #0002}
.sev{display:inline-block;padding:2px 10px;border-radius:99px;color:#fff;font-weight:700}
.fire{background:#dc2626}.critical{background:#ea580c}.warning{background:#ca8a04}.info{background:#2563eb}
h1{font-size:21px;margin:10px 0 6px}dl{margin:0}dt{color:#71717a;font-size:14px}dd{margin:0 0 8px}
button{display:block;width:100%;min-height:56px;margin:10px 0;border:0;border-radius:12px;font-size:19px;font-weight:700;color:#fff}
.ack{background:#16a34a}.on_way{background:#2563eb}.false_alarm{background:#52525b}.real_fire{background:#b91c1c}
textarea{width:100%;min-height:64px;font-size:16px;border:1px solid #d4d4d8;border-radius:10px;padding:8px}
.msg{font-size:19px;font-weight:700}.ok{color:#15803d}.bad{color:#b91c1c}svg{width:100%;height:90px}
.state{color:#71717a}
"""


def _config(request: Request, c: Context) -> NotifyConfig:
    cfg = getattr(request.app.state, "notify_config", None)
    if cfg is None:
        cfg = request.app.state.notify_config = notify_config(c.settings)
    return cfg


def _t(lang: str) -> dict[str, str]:
    return PAGE_TEXT.get(lang, PAGE_TEXT["zh"])


def _page(lang: str, inner: str, status: int = 200) -> HTMLResponse:
    doc = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex"><meta name="referrer" content="no-referrer">'
        f"<title>{_t(lang)['title']}</title><style>{CSS}</style></head><body><main>{inner}</main></body></html>"
    )
    return HTMLResponse(doc, status_code=status, headers={"Cache-Control": "no-store"})


def _problem(lang: str, err: AckLinkError, alert_id: int) -> HTMLResponse:
    text = _t(lang)[err.problem.value]
    if err.problem is LinkProblem.OTHER_ALERT and err.claim is not None:
        text = text.format(other=err.claim.alert_id, alert=alert_id)
    status = 410 if err.problem is LinkProblem.EXPIRED else 403
    return _page(lang, f'<div class="card"><p class="msg bad" id="problem">{html.escape(text)}</p></div>', status)


def _clock(ms: int | None, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%m-%d %H:%M:%S") if ms else "-"


async def _language(c: Context, config: NotifyConfig, person: str) -> str:
    return await language_of(c.store, person) or config.language


async def _sparkline(c: Context, alert: Alert, device: Device | None) -> str:
    """An inline SVG of the alert's metric around its start, threshold dashed; empty when there is nothing to draw."""
    if device is None or device.kind not in SPECS or alert.metric not in SPECS[device.kind].metrics:
        return ""
    start = alert.started_ms - 60 * 60_000
    end = max(alert.last_seen_ms, alert.started_ms) + 10 * 60_000
    try:
        got = await readings(c, [device], start, end, None, "max", [alert.metric])
    except Exception:  # noqa: BLE001 - the page must work when InfluxDB does not answer
        return ""
    pts = [(t, v) for s in got.series for t, v in zip(s.times, s.values.get(alert.metric, []), strict=False)
           if v is not None]
    if len(pts) < 2:
        return ""
    values = [v for _, v in pts] + ([alert.threshold] if alert.threshold is not None else [])
    lo, hi = min(values), max(values)
    span_v = (hi - lo) or 1.0
    t0, t1 = pts[0][0], pts[-1][0]
    span_t = (t1 - t0) or 1

    def xy(t: float, v: float) -> str:
        return f"{(t - t0) / span_t * 300:.1f},{85 - (v - lo) / span_v * 80:.1f}"

    line = " ".join(xy(t, v) for t, v in pts)
    limit = ""
    if alert.threshold is not None:
        y = xy(t0, alert.threshold).split(",")[1]
        limit = f'<line x1="0" x2="300" y1="{y}" y2="{y}" stroke="#dc2626" stroke-dasharray="4 4"/>'
    return (
        f'<svg id="chart" viewBox="0 0 300 90" preserveAspectRatio="none" role="img">{limit}'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="2" points="{line}"/></svg>'
    )


async def _view(c: Context, config: NotifyConfig, claim: Claim, lang: str, result: str = "") -> HTMLResponse:
    t = _t(lang)
    zone = config.zone
    async with c.store.session() as s:
        alert = await s.get(Alert, claim.alert_id)
        device = await s.get(Device, alert.device_id) if alert and alert.device_id else None
        district = await s.get(District, alert.district) if alert and alert.district else None
    group = await paged_with(c.store, claim.alert_id)
    if alert is None:
        return _page(lang, f'<div class="card"><p class="msg bad">{t["missing"]}</p></div>', 404)
    e = html.escape
    place = (district.name_en or district.name if lang == "en" else district.name) if district else alert.district
    where = " · ".join(x for x in (alert.site, place) if x)  # 锦江区, not 510104
    rows = [("📍", where), ("", device.address if device else ""), ("", alert.zone)]
    facts = "".join(f"<dd>{e(icon + ' ' if icon else '')}{e(v)}</dd>" for icon, v in rows if v)
    if alert.value is not None:
        thr = f" ({t['threshold']} {alert.threshold:g}{e(alert.unit)})" if alert.threshold is not None else ""
        facts += f"<dt>{t['value']}</dt><dd>{alert.value:g}{e(alert.unit)}{thr}</dd>"
    facts += f"<dt>{t['since']}</dt><dd>{_clock(alert.started_ms, zone)}</dd>"
    if alert.probable or alert.score:
        # the score is 0..1: ".0f" printed 0.3 as "0"
        reasons = [reason_zh(r) for r in alert.reasons] if lang == "zh" else alert.reasons
        facts += f"<dt>{t['score']}</dt><dd>{alert.score:.1f} · {e('; '.join(reasons))}</dd>"
    who = await names(c.store, claim.person, alert.acknowledged_by)
    state = t.get(f"state_{alert.state}", alert.state)
    if alert.state == AlertState.ACKNOWLEDGED:
        state += " · " + t["by"].format(by=e(who[alert.acknowledged_by]), at=_clock(alert.acknowledged_ms, zone))
    chart = await _sparkline(c, alert, device)
    chart_card = f'<div class="card"><p class="state">{t["chart"]}</p>{chart}</div>' if chart else ""
    more = f"<p>{t['more'].format(n=group - 1)}</p>" if group > 1 else ""
    if result:
        action = f'<div class="card"><p class="msg ok" id="result">{e(result)}</p>{more}</div>'
    elif alert.state == AlertState.RESOLVED:
        action = f'<div class="card"><p class="msg" id="result">{t["resolved"]}</p></div>'
    else:
        def button(how: str) -> str:
            return f'<button class="{how}" name="how" value="{how}" type="submit">{word(lang, how)}</button>'

        note = f'<textarea name="note" maxlength="{NOTE_MAX}" placeholder="{t["note"]}"></textarea>'
        # someone already took it: no 确认 again, but "on my way" and "false alarm" still tell the center something
        first = "" if alert.state == AlertState.ACKNOWLEDGED else button("ack")
        # on the spot, the officer confirms a fire: the center hands it to 119 at once
        real = button("real_fire") if alert.severity == Severity.FIRE else ""
        action = (
            f'<form class="card" method="post">{more}{first}{button("on_way")}{real}'
            f'{note}{button("false_alarm")}</form>'
        )
    head = (
        f'<div class="card"><span class="sev {e(alert.severity)}">{e(_severity(lang, alert.severity))}</span>'
        f' <span class="state" id="state">{state}</span>'
        f"<h1>{e(summary_zh(alert) if lang == 'zh' else alert.summary or alert.rule)}</h1><dl>{facts}</dl>"
        f'<p class="state">{t["you"]}: {e(who[claim.person])}</p></div>'
    )
    return _page(lang, head + action + chart_card)


def _verify(config: NotifyConfig, alert_id: int, token: str) -> Claim:
    return AckSigner(config.secret, config.public_url).verify(alert_id, token, now_ms())


@router.get("/ack/{alert_id}/{token}", response_class=HTMLResponse)
async def ack_page(alert_id: int, token: str, request: Request, c: Ctx) -> HTMLResponse:
    config = _config(request, c)
    try:
        claim = _verify(config, alert_id, token)
    except AckLinkError as err:
        return _problem(config.language, err, alert_id)
    return await _view(c, config, claim, await _language(c, config, claim.person))


@router.post("/ack/{alert_id}/{token}", response_class=HTMLResponse)
async def ack_form(alert_id: int, token: str, request: Request, c: Ctx) -> HTMLResponse:
    return await _act(request, c, alert_id, token, None)


@router.post("/ack/{alert_id}/{token}/{how}", response_class=HTMLResponse)
async def ack_action(alert_id: int, token: str, how: str, request: Request, c: Ctx) -> HTMLResponse:
    return await _act(request, c, alert_id, token, how)


async def _act(request: Request, c: Context, alert_id: int, token: str, how: str | None) -> HTMLResponse:
    """`how` from the path (ntfy's buttons) or, when None, from the page's form, read only for a genuine link."""
    config = _config(request, c)
    try:
        claim = _verify(config, alert_id, token)
    except AckLinkError as err:
        return _problem(config.language, err, alert_id)
    note = ""
    if how is None:
        body = await request.body()
        form = parse_qs(body[:FORM_MAX].decode("utf-8", "replace"))
        how = (form.get("how") or ["ack"])[0]
        note = (form.get("note") or [""])[0]
    lang = await _language(c, config, claim.person)
    t = _t(lang)
    if how not in set(AckKind):
        return _page(lang, f'<div class="card"><p class="msg bad" id="problem">{t["bad_how"]}</p></div>', 422)
    async with c.store.session() as s:
        alert = await s.get(Alert, alert_id)
    if alert is None or alert.state == AlertState.RESOLVED:
        return await _view(c, config, claim, lang)
    note = note.replace("\x00", "")[:NOTE_MAX]
    result = await acknowledge(c.store, config, alert_id, claim.person, how, note, now_ms())
    message = t[f"done_{how}"]
    if result.already_by and result.already_by != claim.person:
        message = t["already"].format(by=(await names(c.store, result.already_by))[result.already_by])
    c.feed.poke()
    return await _view(c, config, claim, lang, result=message)


def _severity(lang: str, severity: str) -> str:
    return word(lang, severity) if severity in set(Severity) else severity

// Chinese by default, English as a switch; the choice is kept in localStorage.
const TEXT = {
  zh: {
    title: "城市火灾预警监控中心", online_rate: "在线率", district: "区域", kind: "类型", all: "全部",
    sound_on: "开启声音", sound_off: "声音已开", logout: "退出", queue: "报警队列", token: "API 令牌",
    login: "登录", bad_token: "令牌无效或已吊销", ack: "确认", resolve: "处置完成", false_alarm: "误报",
    real_fire: "真实火警", note: "备注", note_placeholder: "输入备注后回车", acknowledged_by: "已确认：",
    firing: "未确认", acknowledged: "已确认", resolved: "已处置", online: "在线", offline: "离线",
    unknown: "未上报", score: "火警概率", site: "单位", address: "地址", status: "状态", fw: "固件",
    open_alerts: "当前报警", readings: "近期数据", events: "近期事件", devices: "设备", no_data: "暂无数据",
    ago_s: "秒前", ago_m: "分钟前", ago_h: "小时前", ago_d: "天前", live: "实时连接", reconnecting: "重新连接中…",
    history: "处理记录", warning_level: "预警", alarm_level: "报警", empty_queue: "暂无报警", failed: "操作失败：",
    range_6h: "6小时", range_24h: "24小时", range_7d: "7天", probable: "疑似真实火警",
    stats: "统计", online_by_area: "各区域在线率", alerts_per_day: "近7天每日报警", time_to_ack: "平均确认时间（30天）",
    false_points: "误报最多的点位（30天）", day: "日期", rule: "规则", count: "次数", total: "总数", rate: "在线率",
    mean: "平均", seconds: "秒", hazards: "隐患整改", scores: "单位评分", wall: "大屏模式", sound_blocked: "声音已设为开启，但浏览器尚未允许播放：点击屏幕任意处恢复报警声音",
    stream_down: "实时连接中断：自", stream_down_after: "起未收到推送，正在自动重连…（报警队列可能不是最新）",
    "actor.alerting": "报警引擎", "actor.notify": "消息推送",
    "act.fired": "报警触发", "act.updated": "报警更新", "act.resolved": "自动恢复", "act.acknowledge": "确认",
    "act.resolve": "处置完成", "act.comment": "备注", "act.notify_ack": "手机确认", "act.notify_on_way": "手机确认：马上到",
    "act.notify_false_alarm": "手机报告：误报", "act.not_paged": "未推送", "act.not_acknowledged": "多轮推送无人确认",
    "act.nobody_reachable": "无人可达，已转呼兜底", unreachable: "无人可达：值班无人接收报警",
    unreachable_paged: "已转呼 ", unreachable_none: "兜底组也无人可呼", unreachable_ack: "请立即处理并确认", list_sep: "、",
    "act.handed_to_119": "已移交119指挥中心", "act.handoff_failed": "移交119失败", "act.notify_real_fire": "手机确认：真实火警",
    handoff_done: "已移交119指挥中心", handoff_took: "用时", handoff_failed: "移交119失败：", handoff_call: "请立即电话报警 119",
    "outcome.real_fire": "真实火警", "outcome.false_alarm": "误报", "outcome.fault": "设备故障", "outcome.test": "测试",
    "outcome.other": "其他",
    "kind.unregistered": "未登记设备", at_district: "无坐标/未登记（画在所属区）",
    duty_check: "查岗", duty_sent: "查岗已发送：", duty_scope_all: "全部在线装置", duty_results: "查岗结果",
    duty_time: "发送时间", duty_result: "结果", duty_response: "应答用时", "duty.pending": "等待应答",
    "duty.answered": "已应答", "duty.missed": "未应答", "duty.unreachable": "未送达", duty_this_site: "对本单位查岗",
    "kind.electrical": "电气火灾", "kind.hydrant": "消火栓", "kind.panel": "火灾报警控制器", "kind.pump": "消防泵房",
    "sev.fire": "火警", "sev.critical": "严重", "sev.warning": "警告", "sev.info": "提示",
  },
  en: {
    title: "City Fire Warning Center", online_rate: "Online", district: "District", kind: "Kind", all: "All",
    sound_on: "Enable sound", sound_off: "Sound on", logout: "Log out", queue: "Alarm queue", token: "API token",
    login: "Log in", bad_token: "Unknown or revoked token", ack: "Acknowledge", resolve: "Resolve",
    false_alarm: "False alarm", real_fire: "Real fire", note: "Note", note_placeholder: "Type a note, press Enter",
    acknowledged_by: "Acknowledged by ", firing: "new", acknowledged: "acknowledged", resolved: "resolved",
    online: "online", offline: "offline", unknown: "never reported", score: "fire likelihood", site: "Site",
    address: "Address", status: "Status", fw: "Firmware", open_alerts: "Open alerts", readings: "Recent readings",
    events: "Recent events", devices: "Devices", no_data: "No data", ago_s: "s ago", ago_m: "min ago",
    ago_h: "h ago", ago_d: "d ago", live: "live", reconnecting: "reconnecting…", history: "History",
    warning_level: "warning", alarm_level: "alarm", empty_queue: "No alarms", failed: "Failed: ",
    range_6h: "6 h", range_24h: "24 h", range_7d: "7 d", probable: "probably a real fire",
    stats: "Statistics", online_by_area: "Online rate by district", alerts_per_day: "Alerts per day (7 days)",
    time_to_ack: "Mean time to acknowledge (30 days)", false_points: "Most false alarms (30 days)", day: "Day",
    rule: "Rule", count: "Count", total: "Total", rate: "Rate", mean: "Mean", seconds: "s", hazards: "Hazards", scores: "Unit scores", wall: "Wall screen",
    sound_blocked: "Sound is set to on but the browser has not allowed it yet: click anywhere to restore the alarm sound",
    stream_down: "Live stream down since ", stream_down_after: "; reconnecting by itself… (the queue may be out of date)",
    "actor.alerting": "alerting", "actor.notify": "notify",
    "act.fired": "fired", "act.updated": "updated", "act.resolved": "cleared", "act.acknowledge": "acknowledged",
    "act.resolve": "resolved", "act.comment": "noted", "act.notify_ack": "acknowledged by phone",
    "act.notify_on_way": "on the way (phone)", "act.notify_false_alarm": "false alarm (phone)", "act.not_paged": "not paged",
    "act.not_acknowledged": "nobody acknowledged", "act.nobody_reachable": "nobody reachable; fallback paged",
    unreachable: "NOBODY REACHABLE: no one on duty received this alarm", unreachable_paged: "paged ",
    unreachable_none: "the fallback has nobody either", unreachable_ack: "handle and acknowledge now", list_sep: ", ",
    "act.handed_to_119": "handed to the 119 command center", "act.handoff_failed": "hand-off to 119 failed",
    "act.notify_real_fire": "real fire (phone)", handoff_done: "Handed to the 119 command center", handoff_took: "took",
    handoff_failed: "Hand-off to 119 FAILED: ", handoff_call: "call 119 now",
    "outcome.real_fire": "real fire", "outcome.false_alarm": "false alarm",
    "outcome.fault": "device fault", "outcome.test": "test", "outcome.other": "other",
    "kind.unregistered": "Unregistered", at_district: "no coordinates / unregistered (at its district)",
    duty_check: "Duty check", duty_sent: "Duty check sent: ", duty_scope_all: "all connected devices",
    duty_results: "Duty check results", duty_time: "Sent", duty_result: "Result", duty_response: "Answered in",
    "duty.pending": "waiting", "duty.answered": "answered", "duty.missed": "not answered",
    "duty.unreachable": "not delivered", duty_this_site: "Duty check this site",
    "kind.electrical": "Electrical", "kind.hydrant": "Hydrant", "kind.panel": "Alarm panel", "kind.pump": "Pump room",
    "sev.fire": "FIRE", "sev.critical": "critical", "sev.warning": "warning", "sev.info": "info",
  },
};

let lang = localStorage.getItem("firewatch.lang") === "en" ? "en" : "zh";

export function t(key) {
  return TEXT[lang][key] ?? TEXT.zh[key] ?? key;
}

export function language() {
  return lang;
}

export function setLanguage(next) {
  lang = next === "en" ? "en" : "zh";
  localStorage.setItem("firewatch.lang", lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

export function ago(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${Math.floor(s)}${lang === "en" ? " " : ""}${t("ago_s")}`;
  if (s < 3600) return `${Math.floor(s / 60)}${lang === "en" ? " " : ""}${t("ago_m")}`;
  if (s < 86400) return `${Math.floor(s / 3600)}${lang === "en" ? " " : ""}${t("ago_h")}`;
  return `${Math.floor(s / 86400)}${lang === "en" ? " " : ""}${t("ago_d")}`;
}

const LOCALE = { zh: "zh-CN", en: "en-GB" };

/** A moment as the screen's language writes it, 24-hour clock: a night shift reads 03:12, not 3:12 AM. */
export function when(ms, { date = true } = {}) {
  const d = new Date(ms);
  return date ? d.toLocaleString(LOCALE[lang], { hour12: false }) : d.toLocaleTimeString(LOCALE[lang], { hour12: false });
}

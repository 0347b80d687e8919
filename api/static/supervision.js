// Shared by the hazard board, the unit page, the phone page and the public report page:
// texts in Chinese first (English as a switch), a JSON fetch that shows the api's message, sign-in.
export const TEXT = {
  zh: {
    board: "隐患整改看板", units: "单位", unit: "单位", district: "区域", all: "全部", lang: "English",
    "state.dispatched": "已派发", "state.accepted": "已接收", "state.rectifying": "整改中",
    "state.awaiting_review": "待审核", "state.closed": "已闭环", "state.rejected": "已驳回", "state.reopened": "已重开",
    "sev.major": "重大", "sev.general": "一般",
    "cat.fault_unrepaired": "故障超时未修复", "cat.shielded": "点位长期屏蔽", "cat.pressure_low": "消防水压不足",
    "cat.offline": "设备长期离线", "cat.false_alarms": "误报过多", "cat.duty_check": "查岗未应答",
    "cat.manual": "检查发现", "cat.public": "群众举报",
    "act.dispatch": "派发", "act.accept": "接收", "act.start": "开始整改", "act.report_fixed": "提交整改",
    "act.approve": "审核通过", "act.reject": "驳回", "act.reopen": "重新打开", "act.note": "备注",
    "act.open": "创建", "act.escalate": "超期上报", "act.dispatch_sent": "已通知",
    "act.create": "登记", "act.update": "修改", "act.import": "导入", "act.retire": "注销", "act.escalate_failed": "上报失败",
    deadline: "整改期限", overdue: "已超期", left: "剩余", history: "处理记录", note: "说明", photo: "现场照片",
    submit: "提交", token: "登录令牌", login: "登录", logout: "退出", bad_token: "令牌无效或已吊销",
    my_orders: "我的隐患工单", none: "暂无工单", open_hazards: "未闭环隐患", sites: "场所", devices: "设备",
    open_alerts: "当前报警", contacts: "联系人", company: "维保单位", department: "行业主管部门",
    category: "单位类别", "ucat.key": "重点单位", "ucat.high_risk": "火灾高危单位", "ucat.general": "一般单位",
    "role.responsible": "消防安全责任人", "role.manager": "消防安全管理人", "role.control_room": "消防控制室",
    "role.engineer": "维保工程师", address: "地址", grid: "网格", map: "单位分布（按未闭环隐患着色）",
    legend_none: "无隐患", legend_general: "一般隐患", legend_major: "重大或超期", failed: "操作失败：",
    report_title: "火灾隐患举报", phone: "手机号码", where: "地点（地址）", locate: "使用我的位置",
    located: "已获取位置", report_note: "隐患描述", report_photos: "照片（最多3张，每张不超过5MB）",
    report_send: "提交举报", receipt: "回执码", receipt_hint: "请保存回执码，用于查询处理结果",
    follow: "查询处理结果", follow_go: "查询", outcome: "处理结果", state: "状态", back_console: "返回监控台",
    urgent: "如遇火情请立即拨打 119", opened: "发现时间", unit_page: "单位详情", count: "数量",
  },
  en: {
    board: "Hazard board", units: "Units", unit: "Unit", district: "District", all: "All", lang: "中文",
    "state.dispatched": "dispatched", "state.accepted": "accepted", "state.rectifying": "rectifying",
    "state.awaiting_review": "awaiting review", "state.closed": "closed", "state.rejected": "rejected",
    "state.reopened": "reopened", "sev.major": "major", "sev.general": "general",
    "cat.fault_unrepaired": "fault unrepaired", "cat.shielded": "points shielded", "cat.pressure_low": "low water pressure",
    "cat.offline": "device offline", "cat.false_alarms": "too many false alarms", "cat.duty_check": "missed duty check",
    "cat.manual": "inspection finding", "cat.public": "public report",
    "act.dispatch": "Dispatch", "act.accept": "Accept", "act.start": "Start work", "act.report_fixed": "Report fixed",
    "act.approve": "Approve", "act.reject": "Reject", "act.reopen": "Reopen", "act.note": "Note",
    "act.open": "Opened", "act.escalate": "Escalated", "act.dispatch_sent": "Notified",
    "act.create": "Registered", "act.update": "Changed", "act.import": "Imported", "act.retire": "Retired",
    "act.escalate_failed": "Escalation failed",
    deadline: "Deadline", overdue: "overdue", left: "left", history: "History", note: "Note", photo: "Photo",
    submit: "Submit", token: "Sign-in token", login: "Sign in", logout: "Sign out", bad_token: "Unknown or revoked token",
    my_orders: "My hazard orders", none: "No orders", open_hazards: "Open hazards", sites: "Sites", devices: "Devices",
    open_alerts: "Open alerts", contacts: "Contacts", company: "Maintenance company", department: "Supervising department",
    category: "Category", "ucat.key": "key unit", "ucat.high_risk": "high fire risk", "ucat.general": "general",
    "role.responsible": "Responsible person", "role.manager": "Fire-safety manager", "role.control_room": "Control room",
    "role.engineer": "Engineer", address: "Address", grid: "Grid", map: "Units by open hazards",
    legend_none: "none", legend_general: "general", legend_major: "major or overdue", failed: "Failed: ",
    report_title: "Report a fire hazard", phone: "Phone number", where: "Where (address)", locate: "Use my location",
    located: "Location found", report_note: "What is wrong", report_photos: "Photos (up to 3, 5 MB each)",
    report_send: "Send report", receipt: "Receipt code", receipt_hint: "Keep the receipt code to follow the outcome",
    follow: "Follow a report", follow_go: "Look up", outcome: "Outcome", state: "State", back_console: "Console",
    urgent: "If there is a fire, call 119 now", opened: "Found", unit_page: "Unit", count: "Count",
  },
};

export let lang = localStorage.getItem("firewatch.lang") === "en" ? "en" : "zh";
export const t = (key) => TEXT[lang][key] ?? TEXT.zh[key] ?? key;
export const $ = (sel, root = document) => root.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

export function translate(root = document) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const n of root.querySelectorAll("[data-i18n]")) n.textContent = t(n.dataset.i18n);
  for (const n of root.querySelectorAll("[data-i18n-placeholder]")) n.placeholder = t(n.dataset.i18nPlaceholder);
}

export function switchLang(render) {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("firewatch.lang", lang);
  translate();
  render();
}

export class ApiFailure extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options });
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) throw new ApiFailure(res.status, body?.message ?? res.statusText);
  return body;
}

export const post = (path, body) => api(path, {
  method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
});

export function when(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

// Against the supervisor's clock (`due_in_ms`, event time), not the browser's: a replayed month reads right.
export function deadline(order) {
  if (order.state === "closed") return "";
  const hours = Math.round(Math.abs(order.due_in_ms) / 3600000);
  return order.overdue ? `${t("overdue")} ${hours} h` : `${t("left")} ${order.due_in_ms < 0 ? 0 : hours} h`;
}

// Sign in with a token (the console's cookie), then call `start`; a 401 shows the dialog again.
export async function signedIn(start) {
  const dialog = $("#login");
  const tryStart = async () => {
    try {
      const me = await api("/api/v1/session");
      dialog.close?.();
      await start(me);
    } catch (e) {
      if (e.status === 401 || e.status === 403) { if (!dialog.open) dialog.showModal(); }
      else throw e;
    }
  };
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await post("/api/v1/session", { token: $("#token").value.trim() });
      $("#login-error").textContent = "";
      await tryStart();
    } catch (e) {
      $("#login-error").textContent = t("bad_token");
    }
  });
  await tryStart();
}

export function historyList(steps) {
  return el("ol", { class: "history" }, steps.map((h) => el("li", {},
    el("time", {}, when(h.at_ms)), " ", el("b", {}, h.actor), " ", t(`act.${h.action}`),
    h.after && h.after !== h.before ? el("span", { class: `state s-${h.after}` }, t(`state.${h.after}`)) : null,
    h.note ? el("div", { class: "note" }, h.note) : null)));
}

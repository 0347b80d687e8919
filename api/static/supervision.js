// Shared by the hazard board, the unit page, the phone page and the public report page:
// texts in Chinese first (English as a switch), a JSON fetch that shows the api's message, sign-in.
// key: [Chinese, English]; one list of keys, so no text is missing in either language.
export const TEXT = {
  board: ["隐患整改看板", "Hazard board"], units: ["单位", "Units"], unit: ["单位", "Unit"], district: ["区域", "District"],
  all: ["全部", "All"], lang: ["English", "中文"], "state.dispatched": ["已派发", "dispatched"],
  "state.accepted": ["已接收", "accepted"], "state.rectifying": ["整改中", "rectifying"],
  "state.awaiting_review": ["待审核", "awaiting review"], "state.closed": ["已闭环", "closed"],
  "state.rejected": ["已驳回", "rejected"], "state.reopened": ["已重开", "reopened"], "sev.major": ["重大", "major"],
  "sev.general": ["一般", "general"], "cat.fault_unrepaired": ["故障超时未修复", "fault unrepaired"],
  "cat.shielded": ["点位长期屏蔽", "points shielded"], "cat.pressure_low": ["消防水压不足", "low water pressure"],
  "cat.offline": ["设备长期离线", "device offline"], "cat.false_alarms": ["误报过多", "too many false alarms"],
  "cat.duty_check": ["查岗未应答", "missed duty check"], "cat.manual": ["检查发现", "inspection finding"],
  "cat.public": ["群众举报", "public report"], "act.dispatch": ["派发", "Dispatch"], "act.accept": ["接收", "Accept"],
  "act.start": ["开始整改", "Start work"], "act.report_fixed": ["提交整改", "Report fixed"],
  "act.approve": ["审核通过", "Approve"], "act.reject": ["驳回", "Reject"], "act.reopen": ["重新打开", "Reopen"],
  "act.note": ["备注", "Note"], "act.open": ["创建", "Opened"], "act.escalate": ["超期上报", "Escalated"],
  "act.dispatch_sent": ["已通知", "Notified"], "act.create": ["登记", "Registered"], "act.update": ["修改", "Changed"],
  "act.import": ["导入", "Imported"], "act.retire": ["注销", "Retired"],
  "act.escalate_failed": ["上报失败", "Escalation failed"], deadline: ["整改期限", "Deadline"], overdue: ["已超期", "overdue"],
  left: ["剩余", "left"], history: ["处理记录", "History"], note: ["说明", "Note"], photo: ["现场照片", "Photo"],
  submit: ["提交", "Submit"], token: ["登录令牌", "Sign-in token"], login: ["登录", "Sign in"], logout: ["退出", "Sign out"],
  bad_token: ["令牌无效或已吊销", "Unknown or revoked token"], my_orders: ["我的隐患工单", "My hazard orders"],
  none: ["暂无工单", "No orders"], open_hazards: ["未闭环隐患", "Open hazards"], sites: ["场所", "Sites"],
  devices: ["设备", "Devices"], open_alerts: ["当前报警", "Open alerts"], contacts: ["联系人", "Contacts"],
  company: ["维保单位", "Maintenance company"], department: ["行业主管部门", "Supervising department"],
  category: ["单位类别", "Category"], "ucat.key": ["重点单位", "key unit"], "ucat.high_risk": ["火灾高危单位", "high fire risk"],
  "ucat.general": ["一般单位", "general"], "role.responsible": ["消防安全责任人", "Responsible person"],
  "role.manager": ["消防安全管理人", "Fire-safety manager"], "role.control_room": ["消防控制室", "Control room"],
  "role.engineer": ["维保工程师", "Engineer"], address: ["地址", "Address"], grid: ["网格", "Grid"],
  map: ["单位分布（按未闭环隐患着色）", "Units by open hazards"], legend_none: ["无隐患", "none"],
  legend_general: ["一般隐患", "general"], legend_major: ["重大或超期", "major or overdue"], failed: ["操作失败：", "Failed: "],
  report_title: ["火灾隐患举报", "Report a fire hazard"], phone: ["手机号码", "Phone number"],
  where: ["地点（地址）", "Where (address)"], locate: ["使用我的位置", "Use my location"], located: ["已获取位置", "Location found"],
  report_note: ["隐患描述", "What is wrong"], report_photos: ["照片（最多3张，每张不超过5MB）", "Photos (up to 3, 5 MB each)"],
  report_send: ["提交举报", "Send report"], receipt: ["回执码", "Receipt code"],
  receipt_hint: ["请保存回执码，用于查询处理结果", "Keep the receipt code to follow the outcome"],
  follow: ["查询处理结果", "Follow a report"], follow_go: ["查询", "Look up"], outcome: ["处理结果", "Outcome"],
  state: ["状态", "State"], back_console: ["返回监控台", "Console"],
  place_map: ["或在地图上点选地点", "or tap the place on the map"], placed: ["已选择地点", "Place chosen"],
  urgent: ["如遇火情请立即拨打 119", "If there is a fire, call 119 now"], opened: ["发现时间", "Found"],
  unit_page: ["单位详情", "Unit"], count: ["数量", "Count"],
  links: ["已发送的一键链接", "One-tap links sent"], sent: ["发送于", "sent"], revoke: ["撤销链接", "Revoke"],
  revoked: ["已撤销", "revoked"], revoke_reason: ["撤销原因（如：人员离职）", "Reason (e.g. left the company)"],
  "lrole.unit": ["单位人员", "unit"], "lrole.maintenance": ["维保单位", "maintenance"],
  "act.revoke_link": ["撤销链接", "Link revoked"],
  link_gone: ["此工单链接已失效（已过期或已被监控中心撤销）。请使用最新消息中的链接，或用登录令牌登录。",
    "This order link no longer works (expired, or revoked by the center). Use the link in a newer message, or sign in with a token."],
};

export let lang = localStorage.getItem("firewatch.lang") === "en" ? "en" : "zh";
export const t = (key) => TEXT[key]?.[lang === "zh" ? 0 : 1] ?? key;
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

// The language switch every page has in its header: it relabels itself and redraws the page.
export function langButton(render = () => {}) {
  const b = $("#lang");
  b.textContent = t("lang");
  b.addEventListener("click", () => switchLang(() => { b.textContent = t("lang"); render(); }));
}

// The token dialog, made here once for every signed-in page (board, unit page, phone page).
function loginDialog() {
  const dialog = el("dialog", { id: "login" }, el("form", { id: "login-form" },
    el("label", {}, el("span", { "data-i18n": "token" }, t("token")), el("input", { id: "token", type: "password", required: true })),
    el("p", { id: "login-error", class: "error" }),
    el("button", { type: "submit", class: "primary", "data-i18n": "login" }, t("login"))));
  document.body.append(dialog);
  return dialog;
}

// Sign in with a token (the console's cookie) or a tapped one-tap link, then call `start`; a 401 shows
// the dialog again.
export async function signedIn(start) {
  const dialog = loginDialog();
  const tryStart = async () => {
    try {
      const me = await api("/api/v1/session");
      dialog.close?.();
      await start(me);
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        // a phone whose one-tap link expired or was revoked by the center is told so, not just asked for a token
        if (e.message.includes("one-tap link")) $("#login-error").textContent = t("link_gone");
        if (!dialog.open) dialog.showModal();
      } else throw e;
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

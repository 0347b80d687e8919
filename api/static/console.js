// The monitoring-center console: city map, live alarm queue, drill-down, one-click handling.
// Plain ES modules, no build step, no network beyond this server.

import { ago, language, setLanguage, t, when } from "./i18n.js";
import { CityMap, COLOURS } from "./map.js";
import { drawChart } from "./chart.js";

const $ = (sel) => document.querySelector(sel);
const SEVERITY_RANK = { fire: 0, critical: 1, warning: 2, info: 3 };
const state = {
  me: null,
  alerts: new Map(),        // open alerts by id
  byDevice: new Map(),      // device id -> Set of open alert ids
  filter: { district: "", kind: "" },
  notes: new Map(),         // alert id -> draft note while its note box is open
  unreachable: new Map(),   // alert id -> the nobody_reachable audit row: 无人可达 until acknowledged
  handoffs: new Map(),      // alert id -> its handed_to_119 / handoff_failed audit row
  cursor: 0,
  source: null,
  started: false,
};
let map;

const districts = new Map(); // code -> registry entry
/** A district as people call it (锦江区), the code where the registry has no name for it. */
const place = (code) => {
  const d = districts.get(code);
  return (d && (language() === "en" ? d.name_en || d.name : d.name)) || code || "";
};

let ruleLabels = {}; // "kind.rule" -> {en, zh, unit}
const num = (v) => String(Number(Number(v).toPrecision(4)));
/** The alert in the screen's language: alerting's summary for en, said from the rule and its numbers for zh. */
const summaryOf = (a) => {
  const l = ruleLabels[`${a.kind}.${a.rule}`];
  if (!l) return a.summary || a.rule;
  if (language() === "en") return a.summary || l.en;
  const why = a.summary && a.summary.startsWith(`${l.en}: `) ? explainOf(a.summary.slice(l.en.length + 2)) : null;
  if (why !== null) return `${l.zh}：${why}`;
  const unit = a.unit || l.unit;
  if (a.value != null && a.threshold != null) return `${l.zh}：${num(a.value)} ${unit}（阈值 ${num(a.threshold)} ${unit}）`;
  if (a.kind === "panel" && a.zone) return `${l.zh}：${a.zone}`;
  return l.zh;
};
let reasonLabels = []; // [RegExp, Chinese with $1…]: correlation's reasons for a zh screen
let explainLabels = []; // [RegExp (global), Chinese with $1…]: the learned detectors' explanations, in turn
let metricLabels = {};  // metric label -> Chinese: chart titles
/** A learned detector's explanation in Chinese (contract.rules.explain_zh); null when it is not one. */
const explainOf = (why) => {
  const said = explainLabels.reduce((s, [re, zh]) => s.replace(re, zh), why);
  if (said === why) return null;
  return Object.keys(metricLabels).sort((x, y) => y.length - x.length)
    .reduce((s, en) => s.split(en).join(metricLabels[en]), said);
};
/** A correlation reason in the screen's language (alerting says them in English). */
const reasonOf = (r) => {
  if (language() === "en") return r;
  const hit = reasonLabels.find(([re]) => re.test(r));
  return hit ? r.replace(hit[0], hit[1]) : r;
};
const metricOf = (label) => (language() === "en" ? label : metricLabels[label] || label);
const people = new Map(); // roster person id -> name: "已确认：王值班", not "wang"
const person = (id) => {
  if (people.has(id)) return people.get(id);
  const system = t("actor." + id); // the platform's own parts: alerting, notify
  return system === "actor." + id ? id || "" : system;
};
/** An audit action as a verb of the screen's language; an unknown one as it is. */
const verb = (action) => {
  const v = t("act." + action);
  return v === "act." + action ? action : v;
};

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function api(path, { method = "GET", body } = {}) {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (res.status === 401) {
    showLogin();
    throw new Error(t("bad_token"));
  }
  const data = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(data?.message || res.statusText);
  return data;
}

// --- login -------------------------------------------------------------------

function showLogin(message = "") {
  state.source?.close();
  $("#login-error").textContent = message;
  if (!$("#login").open) $("#login").showModal();
}

async function login(event) {
  event.preventDefault();
  if (localStorage.getItem(SOUND_KEY) !== "off") unlockSound(); // the login click may start the sound

  const res = await fetch("/api/v1/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: $("#token").value.trim() }),
  });
  if (!res.ok) {
    $("#login-error").textContent = t("bad_token");
    return;
  }
  $("#token").value = "";
  $("#login").close();
  start(await res.json());
}

// --- sound and flash ---------------------------------------------------------
// Sound and wall-screen mode are remembered per screen (localStorage), so a wall screen
// reloaded at night comes back loud. Browsers start audio only after a click unless the
// kiosk runs with --autoplay-policy=no-user-gesture-required; until then a banner says so.

const SOUND_KEY = "firewatch.sound";
const WALL_KEY = "firewatch.wall";
let audio = null;

function soundWanted() {
  return localStorage.getItem(SOUND_KEY) === "on";
}

function showSound() {
  const running = audio?.state === "running";
  $("#sound").textContent = t(running ? "sound_off" : "sound_on");
  $("#sound").classList.toggle("on", running);
  $("#sound-blocked").hidden = !(soundWanted() && !running);
}

function unlockSound() {
  localStorage.setItem(SOUND_KEY, "on");
  audio = audio || new AudioContext();
  audio.onstatechange = showSound;
  if (audio.state === "suspended") audio.resume().then(showSound, showSound);
  showSound();
}

function toggleSound() {
  if (audio?.state === "running") {
    localStorage.setItem(SOUND_KEY, "off");
    audio.suspend().then(showSound);
  } else {
    unlockSound();
  }
}

function wallMode() {
  return localStorage.getItem(WALL_KEY) === "1";
}

function setWall(on) {
  localStorage.setItem(WALL_KEY, on ? "1" : "0");
  document.body.classList.toggle("wall", on);
  $("#wall").classList.toggle("on", on);
}

function beep() {
  if (!audio || audio.state !== "running") return;
  const t0 = audio.currentTime;
  for (let k = 0; k < 6; k++) {
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.type = "square";
    osc.frequency.value = k % 2 ? 660 : 990;
    gain.gain.setValueAtTime(0.0001, t0 + k * 0.25);
    gain.gain.exponentialRampToValueAtTime(0.25, t0 + k * 0.25 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + k * 0.25 + 0.22);
    osc.connect(gain).connect(audio.destination);
    osc.start(t0 + k * 0.25);
    osc.stop(t0 + k * 0.25 + 0.24);
  }
}

function fireAlarm() {
  beep();
  const flash = $("#flash");
  flash.classList.remove("on");
  void flash.offsetWidth;
  flash.classList.add("on");
  map.flash();
}

// --- state -------------------------------------------------------------------

function visibleAlert(a) {
  const f = state.filter;
  return (!f.district || a.district === f.district) && (!f.kind || a.kind === f.kind);
}

function worstSeverity(deviceId) {
  let best = "";
  for (const id of state.byDevice.get(deviceId) || []) {
    const s = state.alerts.get(id)?.severity;
    if (s && (best === "" || SEVERITY_RANK[s] < SEVERITY_RANK[best])) best = s;
  }
  return best;
}

function putAlert(a) {
  const before = state.alerts.get(a.id);
  const open = a.state === "firing" || a.state === "acknowledged";
  if (before) state.byDevice.get(before.device_id)?.delete(a.id);
  if (open) {
    state.alerts.set(a.id, a);
    if (a.device_id) {
      if (!state.byDevice.has(a.device_id)) state.byDevice.set(a.device_id, new Set());
      state.byDevice.get(a.device_id).add(a.id);
    }
  } else {
    state.alerts.delete(a.id);
    state.notes.delete(a.id);
  }
  if (a.device_id) map.setSeverity(a.device_id, worstSeverity(a.device_id));
  if (before?.device_id && before.device_id !== a.device_id) map.setSeverity(before.device_id, worstSeverity(before.device_id));
  scheduleQueue();
  return { before, open };
}

function sortedAlerts() {
  return [...state.alerts.values()].filter(visibleAlert).sort((a, b) =>
    (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9) ||
    Number(a.state !== "firing") - Number(b.state !== "firing") ||
    Number(b.probable) - Number(a.probable) || b.score - a.score || b.started_ms - a.started_ms || b.id - a.id);
}

// --- queue -------------------------------------------------------------------

let queueQueued = false;

function scheduleQueue() {
  if (queueQueued) return;
  queueQueued = true;
  requestAnimationFrame(() => {
    queueQueued = false;
    renderQueue();
  });
}

function actions(a) {
  if (!state.me || state.me.role === "viewer") return "";
  const b = (act, label, cls = "") => `<button type="button" data-act="${act}" class="${cls}">${esc(t(label))}</button>`;
  const out = [];
  if (a.state === "firing") out.push(b("ack", "ack", "primary"));
  if (a.severity === "fire") out.push(b("real", "real_fire", "danger"), b("false", "false_alarm"));
  else out.push(b("resolve", "resolve"));
  out.push(b("note", "note"));
  return `<div class="actions">${out.join("")}</div>`;
}

function renderQueue() {
  const list = $("#queue");
  const focused = document.activeElement?.closest?.("li[data-id]")?.dataset.id;
  const items = sortedAlerts();
  const fires = items.filter((a) => a.severity === "fire" && a.state === "firing").length;
  document.title = fires ? `🔥 ${fires} · ${t("title")}` : t("title");
  renderUnreachable();
  $("#queue-count").textContent = items.length ? `(${items.length})` : "";
  if (!items.length) {
    list.innerHTML = `<li class="empty">${esc(t("empty_queue"))}</li>`;
    return;
  }
  list.innerHTML = items.map((a) => {
    const where = [a.site, a.zone, a.device_id, place(a.district)].filter(Boolean).map(esc).join(" · ");
    const reasons = (a.reasons || []).map((r) => `<li>${esc(reasonOf(r))}</li>`).join("");
    const note = state.notes.has(a.id)
      ? `<input class="note" placeholder="${esc(t("note_placeholder"))}" value="${esc(state.notes.get(a.id))}">` : "";
    const score = a.score ? `<div class="score"><span style="width:${Math.round(Math.min(1, a.score) * 100)}%"></span><em>${esc(t("score"))} ${Math.round(a.score * 100)}%${a.probable ? " · " + esc(t("probable")) : ""}</em></div>` : "";
    const h = state.handoffs.get(a.id);
    const handoff = h ? `<div class="handoff ${h.action === "handed_to_119" ? "ok" : "bad"}">${esc(handoffText(h))}</div>` : "";
    const acked = a.state === "acknowledged" ? `<div class="acked">${esc(t("acknowledged_by"))}${esc(person(a.acknowledged_by))}</div>` : "";
    return `<li data-id="${a.id}" class="alert sev-${esc(a.severity)} state-${esc(a.state)}">
      <div class="head"><span class="sev">${esc(t("sev." + a.severity))}</span>
        <b class="what">${esc(summaryOf(a))}</b><span class="age">${esc(ago(a.started_ms))}</span></div>
      <div class="where">${where}</div>${score}${reasons ? `<ul class="reasons">${reasons}</ul>` : ""}${acked}${handoff}
      ${actions(a)}${note}</li>`;
  }).join("");
  const input = focused && list.querySelector(`li[data-id="${focused}"] input.note`);
  if (input) {
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }
}

// A step that reached nobody paged the fallback: a loud bar on every screen until someone acknowledges.
function renderUnreachable() {
  const bar = $("#unreachable");
  for (const id of state.unreachable.keys()) if (state.alerts.get(id)?.state !== "firing") state.unreachable.delete(id);
  const rows = [...state.unreachable.values()];
  bar.hidden = !rows.length;
  if (!rows.length) return;
  const first = state.alerts.get(Number(rows[0].subject.slice(6)));
  const paged = [...new Set(rows.flatMap((r) => r.detail.paged || []))].map(person);
  bar.dataset.id = first.id;
  bar.textContent = [
    `${t("unreachable")}${rows.length > 1 ? ` ×${rows.length}` : ""}`,
    [summaryOf(first), first.site, place(first.district)].filter(Boolean).join(" · "),
    paged.length ? `${t("unreachable_paged")}${paged.join(t("list_sep"))}` : t("unreachable_none"),
    t("unreachable_ack"),
  ].join(" — ");
}

/** A 119 hand-off as the operator reads it: 已移交119指挥中心（用时 0.4 秒） or the failure and what to do. */
const handoffText = (h) => h.action === "handed_to_119"
  ? `${t("handoff_done")}（${t("handoff_took")} ${(h.detail.elapsed_ms / 1000).toFixed(1)} ${t("seconds")}）`
  : `${t("handoff_failed")}${t("handoff_call")}`;

function handoff(alert, audit) {
  state.handoffs.set(alert.id, audit);
  const where = [alert.site, alert.zone, place(alert.district)].filter(Boolean).join(" · ");
  if (audit.action === "handed_to_119") {
    toast(`${handoffText(audit)}：${where}`);
    return;
  }
  const bar = $("#handoff-failed");
  bar.textContent = `${t("handoff_failed")}${where} — ${t("handoff_call")}`;
  bar.hidden = false;
  beep();
}

async function act(a, what) {
  const path = `/api/v1/alerts/${a.id}`;
  try {
    if (what === "ack") putAlert(await api(`${path}/acknowledge`, { method: "POST", body: {} }));
    else if (what === "resolve") putAlert(await api(`${path}/resolve`, { method: "POST", body: {} }));
    else if (what === "real") putAlert(await api(`${path}/resolve`, { method: "POST", body: { outcome: "real_fire" } }));
    else if (what === "false") putAlert(await api(`${path}/resolve`, { method: "POST", body: { outcome: "false_alarm" } }));
  } catch (err) {
    toast(`${t("failed")}${err.message}`);
  }
}

function wireQueue() {
  const list = $("#queue");
  list.addEventListener("click", (e) => {
    const li = e.target.closest("li[data-id]");
    if (!li) return;
    const a = state.alerts.get(Number(li.dataset.id));
    if (!a) return;
    const button = e.target.closest("button[data-act]");
    if (button) {
      e.stopPropagation();
      if (button.dataset.act === "note") {
        if (!state.notes.has(a.id)) state.notes.set(a.id, "");
        renderQueue();
        li.ownerDocument.querySelector(`li[data-id="${a.id}"] input.note`)?.focus();
      } else {
        act(a, button.dataset.act);
      }
      return;
    }
    if (e.target.closest("input")) return;
    if (a.device_id) map.focus(a.device_id);
    showAlert(a.id);
  });
  list.addEventListener("input", (e) => {
    const li = e.target.closest("li[data-id]");
    if (li && e.target.matches("input.note")) state.notes.set(Number(li.dataset.id), e.target.value);
  });
  list.addEventListener("keydown", async (e) => {
    const li = e.target.closest("li[data-id]");
    if (!li || !e.target.matches("input.note")) return;
    const id = Number(li.dataset.id);
    if (e.key === "Escape") { state.notes.delete(id); renderQueue(); }
    if (e.key !== "Enter" || !e.target.value.trim()) return;
    try {
      await api(`/api/v1/alerts/${id}/comments`, { method: "POST", body: { text: e.target.value.trim() } });
      state.notes.delete(id);
      renderQueue();
    } catch (err) {
      toast(`${t("failed")}${err.message}`);
    }
  });
}

function toast(text) {
  const el = document.createElement("div");
  el.className = "toast";
  el.textContent = text;
  document.body.append(el);
  setTimeout(() => el.remove(), 5000);
}

// --- online rate and filters -------------------------------------------------

let rateQueued = false;

function scheduleRate() {
  if (rateQueued) return;
  rateQueued = true;
  setTimeout(() => {
    rateQueued = false;
    let on = 0, off = 0, total = 0;
    for (let i = 0; i < map.n; i++) {
      if (!map.kinds[i] || !map.visible(i)) continue;
      total += 1;
      if (map.status[i] === 1) on += 1; else if (map.status[i] === 2) off += 1;
    }
    $("#online-rate").textContent = on + off ? `${((100 * on) / (on + off)).toFixed(1)}%` : "–";
    $("#online-count").textContent = `${on.toLocaleString()}/${total.toLocaleString()}`;
  }, 300);
}

function fillFilters(cols) {
  const codes = new Set(cols.district);
  for (const code of districts.keys()) codes.add(code);
  const districtList = [...codes].filter(Boolean).sort();
  const kinds = [...new Set(cols.kind)].sort();
  const opts = (sel, values, label) => {
    const el = $(sel);
    el.length = 1;
    for (const v of values) el.add(new Option(label(v), v));
  };
  opts("#f-district", districtList, place);
  opts("#f-kind", kinds, (k) => t("kind." + k));
}

function applyFilter() {
  const before = state.filter.district;
  state.filter = { district: $("#f-district").value, kind: $("#f-kind").value };
  const { district, kind } = state.filter;
  map.setFilter((i) => (!district || map.districts[i] === district) && (!kind || map.kinds[i] === kind));
  map.focusDistrict = district;
  if (district !== before) map.fit(Boolean(district)); // choosing a district zooms to it, clearing shows the city
  scheduleQueue();
  scheduleRate();
}

function renderLegend() {
  const items = ["fire", "critical", "warning", "online", "offline", "unknown"];
  $("#legend").innerHTML = items.map((k) =>
    `<span><i style="background:${COLOURS[k]}"></i>${esc(k in SEVERITY_RANK ? t("sev." + k) : t(k))}</span>`).join("")
    + `<span><i class="hollow"></i>${esc(t("at_district"))}</span>`;
}

// --- drill-down ----------------------------------------------------------------

const HOUR = 3600000;
let drillRange = 6 * HOUR;

function openDrill(html) {
  $("#drill-body").innerHTML = html;
  $("#drill").hidden = false;
}

function table(rows) {
  return `<table class="facts">${rows.filter(([, v]) => v !== "" && v != null)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join("")}</table>`;
}

function rangeButtons() {
  return `<div class="ranges">${[[6 * HOUR, "range_6h"], [24 * HOUR, "range_24h"], [168 * HOUR, "range_7d"]]
    .map(([ms, k]) => `<button type="button" data-range="${ms}" class="${ms === drillRange ? "on" : ""}">${esc(t(k))}</button>`).join("")}</div>`;
}

function chartsFor(readings) {
  const parts = [];
  for (const s of readings.series) {
    if (!s.metrics.length) {
      const rows = s.events.slice(0, 50).map((e) =>
        `<tr><td>${esc(when(e.t))}</td><td>${esc(e.event)}</td><td>${esc([e.loop, e.point].filter((x) => x != null).join("-"))}</td><td>${esc(e.zone || "")}</td></tr>`).join("");
      parts.push(`<h3>${esc(t("events"))} · ${esc(s.device_id)}</h3>${rows ? `<table class="events">${rows}</table>` : `<p>${esc(t("no_data"))}</p>`}`);
      continue;
    }
    for (const m of s.metrics) {
      if (!s.values[m.name]?.some((v) => v != null)) continue;
      parts.push({ s, m });
    }
  }
  return parts;
}

function renderCharts(container, readings, extraLevel) {
  const parts = chartsFor(readings);
  container.innerHTML = parts.map((p, k) => typeof p === "string" ? p
    : `<h3>${esc(metricOf(p.m.label))} (${esc(p.m.unit)}) · ${esc(p.s.device_id)}</h3><canvas class="chart" data-k="${k}"></canvas>`).join("")
    || `<p>${esc(t("no_data"))}</p>`;
  parts.forEach((p, k) => {
    if (typeof p === "string") return;
    const levels = (p.s.levels[p.m.name] || []).map((l) => ({
      level: l.level, value: l.value, label: `${t(l.level === "alarm" ? "alarm_level" : "warning_level")}`,
    }));
    if (extraLevel && extraLevel.metric === p.m.name && !levels.some((l) => l.value === extraLevel.value)) levels.push(extraLevel);
    drawChart(container.querySelector(`canvas[data-k="${k}"]`), {
      lines: [{ label: p.s.device_id, times: p.s.times, values: p.s.values[p.m.name] }],
      levels, unit: p.m.unit, start: readings.start_ms, end: readings.end_ms,
    });
  });
}

async function showDevice(id) {
  const [d, readings] = await Promise.all([
    api(`/api/v1/devices/${encodeURIComponent(id)}`),
    api(`/api/v1/devices/${encodeURIComponent(id)}/readings?start=${Date.now() - drillRange}`),
  ]);
  const status = d.status ? `${t(d.status.online ? "online" : "offline")} · ${ago(d.status.ts_ms)}` : t("unknown");
  const open = [...(state.byDevice.get(id) || [])].map((aid) => state.alerts.get(aid)).filter(Boolean);
  openDrill(`<h2>${esc(d.id)} <small>${esc(t("kind." + d.kind))}</small></h2>
    ${table([[t("district"), esc(place(d.district))], [t("site"), d.site ? `<a href="#" data-site="${esc(d.site)}">${esc(d.site)}</a>` : ""],
      [t("address"), esc(d.address)], [t("status"), esc(status)], [t("fw"), esc(d.status?.fw || "")]])}
    ${open.length ? `<h3>${esc(t("open_alerts"))}</h3><ul class="mini">${open.map((a) =>
      `<li><a href="#" data-alert="${a.id}">${esc(t("sev." + a.severity))} · ${esc(summaryOf(a))}</a></li>`).join("")}</ul>` : ""}
    <h3>${esc(t("readings"))}</h3>${rangeButtons()}<div class="charts"></div>`);
  $("#drill").dataset.view = `device:${id}`;
  renderCharts($("#drill .charts"), readings);
}

async function showSite(site) {
  const [devices, readings] = await Promise.all([
    api(`/api/v1/devices?site=${encodeURIComponent(site)}&limit=500`),
    api(`/api/v1/sites/${encodeURIComponent(site)}/readings?start=${Date.now() - drillRange}`),
  ]);
  openDrill(`<h2>${esc(site)} <button type="button" data-duty-site="${esc(site)}">${esc(t("duty_this_site"))}</button></h2><h3>${esc(t("devices"))} (${devices.total})</h3>
    <ul class="mini">${devices.items.map((d) => `<li><a href="#" data-device="${esc(d.id)}">${esc(d.id)}</a> ${esc(t("kind." + d.kind))} ·
      ${esc(d.status ? t(d.status.online ? "online" : "offline") : t("unknown"))}${worstSeverity(d.id) ? ` · <b class="sev-${esc(worstSeverity(d.id))}">${esc(t("sev." + worstSeverity(d.id)))}</b>` : ""}</li>`).join("")}</ul>
    <h3>${esc(t("readings"))}</h3>${rangeButtons()}<div class="charts"></div>`);
  $("#drill").dataset.view = `site:${site}`;
  renderCharts($("#drill .charts"), readings);
}

async function showAlert(id) {
  const { alert: a, history, readings } = await api(`/api/v1/alerts/${id}`);
  openDrill(`<h2 class="sev-${esc(a.severity)}">${esc(t("sev." + a.severity))} · ${esc(summaryOf(a))}</h2>
    ${table([[t("status"), esc(t(a.state))], [t("site"), a.site ? `<a href="#" data-site="${esc(a.site)}">${esc(a.site)}</a>` : ""],
      ["ID", a.device_id ? `<a href="#" data-device="${esc(a.device_id)}">${esc(a.device_id)}</a>` : ""],
      [t("district"), esc(place(a.district))], [t("score"), a.score ? `${Math.round(a.score * 100)}%` : ""]])}
    ${(a.reasons || []).length ? `<ul class="reasons">${a.reasons.map((r) => `<li>${esc(reasonOf(r))}</li>`).join("")}</ul>` : ""}
    <h3>${esc(t("history"))}</h3><ul class="history">${history.map((h) =>
      `<li><time>${esc(when(h.at_ms))}</time> <b>${esc(person(h.actor))}</b> ${esc(verb(h.action))} ${esc(h.detail.note || h.detail.text || (h.detail.outcome ? t("outcome." + h.detail.outcome) : "") || h.detail.reason || "")}</li>`).join("")}</ul>
    <h3>${esc(t("readings"))}</h3><div class="charts"></div>`);
  $("#drill").dataset.view = `alert:${id}`;
  if (readings) {
    const extra = a.metric && a.threshold != null ? { metric: a.metric, value: a.threshold, level: "alarm", label: a.rule } : null;
    renderCharts($("#drill .charts"), readings, extra);
  } else {
    $("#drill .charts").innerHTML = `<p>${esc(t("no_data"))}</p>`;
  }
}

function grid(headers, rows) {
  if (!rows.length) return `<p>${esc(t("no_data"))}</p>`;
  return `<table class="grid"><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`).join("")}</table>`;
}

async function showStats() {
  const week = Date.now() - 7 * 86400000;
  const offset = -new Date().getTimezoneOffset();
  const [online, perDay, ack, falseAlarms] = await Promise.all([
    api("/api/v1/stats/online"),
    api(`/api/v1/stats/alerts-per-day?since=${week}&utc_offset_minutes=${offset}`),
    api("/api/v1/stats/time-to-acknowledge"),
    api("/api/v1/stats/false-alarms?limit=10"),
  ]);
  const pct = (r) => (r == null ? "–" : `${(100 * r).toFixed(1)}%`);
  openDrill(`<h2>${esc(t("stats"))}</h2>
    <h3>${esc(t("online_by_area"))}</h3>${grid([t("district"), t("kind"), t("total"), t("online"), t("offline"), t("rate")],
      online.map((r) => [place(r.district), t("kind." + r.kind), r.total, r.online, r.offline, pct(r.rate)]))}
    <h3>${esc(t("alerts_per_day"))}</h3>${grid([t("day"), t("rule"), t("kind"), t("count")],
      perDay.map((r) => [r.day, `${t("sev." + r.severity)} · ${r.rule}`, r.kind ? t("kind." + r.kind) : "", r.count]))}
    <h3>${esc(t("time_to_ack"))}</h3>${grid(["", t("count"), `${t("mean")} (${t("seconds")})`],
      ack.map((r) => [t("sev." + r.severity), r.acknowledged, r.mean_s == null ? "–" : Math.round(r.mean_s)]))}
    <h3>${esc(t("false_points"))}</h3>${grid([t("site"), "", "ID", t("count")],
      falseAlarms.map((p) => [p.site, p.zone, p.device_id, p.count]))}`);
  $("#drill").dataset.view = "stats";
}

// --- duty checks (查岗): ask control rooms to answer, watch who does ------------
async function dutyCheck(scope) {
  const sent = await api("/api/v1/duty-checks", { method: "POST", body: scope });
  toast(`${t("duty_sent")}${scope.site || scope.district || t("duty_scope_all")}`);
  await showDuty(sent.request_id);
}

async function showDuty(requestId) {
  const rows = await api(`/api/v1/duty-checks?request_id=${encodeURIComponent(requestId)}`);
  openDrill(`<h2>${esc(t("duty_results"))}</h2>${grid(["ID", t("district"), t("duty_time"), t("duty_result"), t("duty_response")],
    rows.map((r) => [r.device_id, r.district, new Date(r.sent_ms).toLocaleTimeString(), t("duty." + r.result),
      r.response_s == null ? "–" : `${r.response_s.toFixed(1)} ${t("seconds")}`]))}`);
  $("#drill").dataset.view = `duty:${requestId}`;
  if (!rows.length || rows.some((r) => r.result === "pending")) {
    setTimeout(() => { if ($("#drill").dataset.view === `duty:${requestId}` && !$("#drill").hidden) showDuty(requestId).catch(() => {}); }, 3000);
  }
}

function wireDrill() {
  $("#drill-close").addEventListener("click", () => { $("#drill").hidden = true; });
  $("#drill").addEventListener("click", (e) => {
    const link = e.target.closest("[data-device],[data-site],[data-alert],[data-range],[data-duty-site]");
    if (!link) return;
    e.preventDefault();
    const fail = (err) => toast(`${t("failed")}${err.message}`);
    if (link.dataset.dutySite) dutyCheck({ site: link.dataset.dutySite }).catch(fail);
    else if (link.dataset.device) { map.focus(link.dataset.device); showDevice(link.dataset.device).catch(fail); }
    else if (link.dataset.site) showSite(link.dataset.site).catch(fail);
    else if (link.dataset.alert) showAlert(Number(link.dataset.alert)).catch(fail);
    else if (link.dataset.range) {
      drillRange = Number(link.dataset.range);
      const [kind, ...rest] = $("#drill").dataset.view.split(":");
      (kind === "site" ? showSite : showDevice)(rest.join(":")).catch(fail);
    }
  });
}

// --- live stream ---------------------------------------------------------------
// The stream reconnects by itself for as long as it takes (an api restart, a network cut):
// only a token that no longer works shows the login. While it is down a red bar says since when.

let retryMs = 1000;
let downSince = 0;

function streamDown() {
  $("#link").className = "link down";
  $("#link").title = t("reconnecting");
  if (!downSince) downSince = Date.now();
  const bar = $("#stream-down");
  setTimeout(() => {
    if (!downSince) return;
    bar.textContent = `${t("stream_down")} ${when(downSince, { date: false })}${t("stream_down_after")}`;
    bar.hidden = false;
  }, 2500);
}

function streamUp() {
  downSince = 0;
  retryMs = 1000;
  $("#link").className = "link live";
  $("#link").title = t("live");
  $("#stream-down").hidden = true;
}

async function reconnect() {
  try {
    await api("/api/v1/session");
  } catch (err) {
    if ($("#login").open) return; // the token no longer works: the login is showing
    retryMs = Math.min(retryMs * 2, 15000);
    setTimeout(reconnect, retryMs);
    return;
  }
  connect();
}

function connect() {
  state.source?.close();
  const source = new EventSource(`/api/v1/stream?since=${state.cursor}`);
  state.source = source;
  source.addEventListener("open", streamUp);
  source.addEventListener("error", () => {
    streamDown();
    if (source.readyState === EventSource.CLOSED && state.source === source) setTimeout(reconnect, retryMs);
  });
  source.addEventListener("alert", (e) => {
    const { alert, audit } = JSON.parse(e.data);
    state.cursor = Number(e.lastEventId) || state.cursor;
    const { before, open } = putAlert(alert);
    if (open && alert.severity === "fire" && alert.state === "firing" && before?.severity !== "fire") fireAlarm();
    if (audit.action === "handed_to_119" || audit.action === "handoff_failed") {
      handoff(alert, audit);
      scheduleQueue();
    }
    if (audit.action === "nobody_reachable" && alert.state === "firing") {
      if (!state.unreachable.has(alert.id)) beep();
      state.unreachable.set(alert.id, audit);
      scheduleQueue();
    }
  });
  source.addEventListener("device", (e) => {
    const { device, device_id: id, online, district } = JSON.parse(e.data);
    state.cursor = Number(e.lastEventId) || state.cursor;
    if (device) map.upsertDevice(device, online ?? undefined);
    else if (map.index.has(id)) map.setOnline(id, online);
    else map.upsertDevice({ id, kind: "unregistered", district, site: "" }, online ?? undefined);
    scheduleRate();
  });
  source.addEventListener("cursor", (e) => { state.cursor = Number(e.lastEventId) || state.cursor; });
}

// --- start ---------------------------------------------------------------------

async function start(me) {
  state.me = me;
  $("#who").textContent = `${me.name} (${me.role})`;
  const snap = await api("/api/v1/console/snapshot");
  state.cursor = snap.cursor;
  if (!state.started) {
    map = new CityMap($("#map"), {
      tileUrl: snap.map_tile_url,
      onPick: (id) => showDevice(id).catch((err) => toast(`${t("failed")}${err.message}`)),
      onHover: (id, x, y) => {
        const tip = $("#tip");
        if (!id) { tip.hidden = true; return; }
        const i = map.index.get(id);
        tip.hidden = false;
        tip.style.left = `${x + 12}px`;
        tip.style.top = `${y + 12}px`;
        tip.textContent = [id, t("kind." + map.kinds[i]), map.sites[i], place(map.districts[i])].filter(Boolean).join(" · ");
      },
    });
    $("#map").cityMap = map; // reachable for tools and tests, like any widget from its element
    wireQueue();
    wireDrill();
    state.started = true;
  }
  districts.clear();
  for (const d of snap.districts) districts.set(d.code, d);
  ruleLabels = snap.rule_labels || {};
  reasonLabels = (snap.reason_labels || []).map(([pattern, zh]) => [new RegExp(pattern), zh]);
  explainLabels = (snap.explain_labels || []).map(([pattern, zh]) => [new RegExp(pattern, "g"), zh]);
  metricLabels = snap.metric_labels || {};
  api("/api/v1/roster").then((r) => {
    people.clear();
    for (const p of r.people) people.set(p.id, p.name);
    scheduleQueue();
  }).catch(() => {}); // names are a courtesy: ids still say who
  map.setDistricts(snap.districts.map((d) => ({ ...d, label: place(d.code) })));
  if (snap.map_layer && !map.polygons.length) {
    try { map.setLayer(await api("/api/v1/map/layer")); } catch (err) { toast(`${t("failed")}${err.message}`); }
  }
  map.setDevices(snap.devices);
  state.alerts.clear();
  state.byDevice.clear();
  for (const a of snap.alerts) putAlert(a);
  state.unreachable.clear();
  for (const r of snap.unreachable || []) state.unreachable.set(Number(r.subject.slice(6)), r);
  state.handoffs.clear();
  for (const r of snap.handoffs || []) state.handoffs.set(Number(r.subject.slice(6)), r);
  fillFilters(snap.devices);
  applyFilter();
  renderLegend();
  map.draw();
  renderQueue();
  performance.mark("fw-first-render");
  document.body.dataset.ready = "1";
  connect();
}

function init() {
  setLanguage(language());
  $("#lang").textContent = language() === "zh" ? "English" : "中文";
  $("#lang").addEventListener("click", () => {
    setLanguage(language() === "zh" ? "en" : "zh");
    $("#lang").textContent = language() === "zh" ? "English" : "中文";
    showSound();
    if (state.started) {
      map.setDistricts([...districts.values()].map((d) => ({ ...d, label: place(d.code) })));
      fillFiltersKeep();
      renderLegend();
      renderQueue();
    }
  });
  $("#sound").addEventListener("click", toggleSound);
  $("#unreachable").addEventListener("click", (e) => showAlert(Number(e.currentTarget.dataset.id)));
  $("#handoff-failed").addEventListener("click", (e) => { e.currentTarget.hidden = true; });
  if (soundWanted()) unlockSound();
  if (new URLSearchParams(location.search).get("wall") === "1") setWall(true);
  setWall(wallMode());
  $("#wall").addEventListener("click", () => setWall(!wallMode()));
  // A wall screen renews its session every hour, so it is never signed out while its token is valid.
  setInterval(() => wallMode() && state.started && api("/api/v1/session").catch(() => {}), 3600000);
  $("#stats").addEventListener("click", () => showStats().catch((err) => toast(`${t("failed")}${err.message}`)));
  $("#duty").addEventListener("click", () => {
    const district = $("#f-district").value;
    dutyCheck(district ? { district } : {}).catch((err) => toast(`${t("failed")}${err.message}`));
  });
  document.addEventListener("pointerdown", () => {
    if (audio?.state === "suspended" && soundWanted()) audio.resume().then(showSound);
  });
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", async () => {
    await fetch("/api/v1/session", { method: "DELETE" });
    showLogin();
  });
  $("#f-district").addEventListener("change", applyFilter);
  $("#f-kind").addEventListener("change", applyFilter);
  setInterval(() => state.alerts.size && scheduleQueue(), 15000);
  api("/api/v1/session").then(start).catch(() => showLogin());
}

function fillFiltersKeep() {
  const keep = { ...state.filter };
  fillFilters({ district: map.districts.slice(0, map.n), kind: map.kinds.slice(0, map.n) });
  $("#f-district").value = keep.district;
  $("#f-kind").value = keep.kind;
}

init();

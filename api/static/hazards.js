// The center's hazard board: orders by state and deadline per district and unit, the units on a map
// coloured by their open hazards, and one order's history with the center's moves.
import { LayerView, mark } from "./citylayer.js";
import { $, api, deadline, el, historyList, langButton, post, signedIn, t, translate, when } from "./supervision.js";

const COLUMNS = ["dispatched", "accepted", "rectifying", "rejected", "reopened", "awaiting_review", "closed"];
const CENTER_ACTIONS = { awaiting_review: ["approve", "reject", "dispatch"], closed: ["reopen"], rejected: ["reopen"] };
let orders = [], units = [], mapUnits = [], selected = null, layer = null;

function filtered() {
  const d = $("#f-district").value, u = $("#f-unit").value;
  return orders.filter((o) => (!d || o.district === d) && (!u || String(o.unit_id) === u));
}

function card(o) {
  return el("div", {
    class: `card ${o.severity} ${o.overdue ? "overdue" : ""}`, "data-id": o.id, onclick: () => show(o.id),
  },
  el("div", {}, el("b", {}, `#${o.id} `), t(`cat.${o.category}`), " · ", t(`sev.${o.severity}`)),
  el("div", {}, o.unit || o.address || o.site || "—"),
  el("div", { class: "meta" }, o.device_id ? `${o.device_id} · ` : "", `${t("deadline")} ${when(o.deadline_ms)} `,
    el("span", { class: o.overdue ? "late" : "" }, deadline(o))));
}

function renderBoard() {
  const list = filtered();
  $("#board").replaceChildren(...COLUMNS.map((s) => {
    const here = list.filter((o) => o.state === s).sort((a, b) => a.deadline_ms - b.deadline_ms);
    return el("div", { class: "col", "data-state": s },
      el("h2", {}, `${t(`state.${s}`)} `, el("small", {}, here.length)), here.slice(0, 200).map(card));
  }));
}

// 单位分布: the units on the city's district layer, labelled, coloured by their open hazards.
function renderMap() {
  const pts = mapUnits.filter((u) => u.latitude != null);
  const view = new LayerView($("#units-map"), layer).fit(pts.map((u) => [u.latitude, u.longitude]));
  view.draw(...pts.flatMap((u) => {
    const [x, y] = view.xy(u.latitude, u.longitude), r = 6 + Math.min(10, u.open_hazards * 2);
    const colour = u.major_open || u.overdue ? "#ff2d2d" : u.open_hazards ? "#ffd21a" : "#2ecc71";
    const c = mark("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r, fill: colour, "fill-opacity": "0.85",
      "data-unit": u.id, style: "cursor:pointer" });
    c.addEventListener("click", () => { location.href = `/static/unit.html#${u.id}`; });
    c.append(mark("title", {}, `${u.name}: ${t("open_hazards")} ${u.open_hazards}`));
    const label = mark("text", { class: "unit-label", x: (x + r + 3).toFixed(1), y: (y + 4).toFixed(1) },
      u.open_hazards ? `${u.name} (${u.open_hazards})` : u.name);
    return [c, label];
  }));
}

async function show(id) {
  selected = id;
  const o = await api(`/api/v1/hazards/${id}`);
  const note = el("textarea", { id: "act-note", rows: 2, placeholder: t("note") });
  const unitPick = el("select", { id: "act-unit" }, units.map((u) => el("option", { value: u.id, selected: u.id === o.unit_id }, u.name)));
  const msg = el("p", { class: "error", id: "act-msg" });
  const moves = (CENTER_ACTIONS[o.state] || []).map((a) => el("button", {
    type: "button", class: a === "approve" ? "primary" : a === "reject" ? "danger" : "", "data-action": a,
    onclick: async () => {
      try {
        const body = { action: a, note: note.value };
        if (a === "dispatch") body.unit_id = Number(unitPick.value);
        await post(`/api/v1/hazards/${id}/actions`, body);
        await load();
        await show(id);
      } catch (e) { msg.textContent = t("failed") + e.message; }
    },
  }, t(`act.${a}`)));
  $("#detail").replaceChildren(el("section", { class: "panel", id: "order" },
    el("h2", {}, `#${o.id} ${o.title}`),
    el("div", {}, el("span", { class: `state s-${o.state}` }, t(`state.${o.state}`)), " ", t(`sev.${o.severity}`),
      " · ", o.unit_id ? el("a", { href: `/static/unit.html#${o.unit_id}` }, o.unit) : o.address),
    el("div", { class: "muted" }, `${t("opened")} ${when(o.opened_ms)} · ${t("deadline")} ${when(o.deadline_ms)} `,
      el("span", { class: o.overdue ? "late error" : "" }, deadline(o))),
    o.note ? el("p", {}, o.note) : null,
    el("div", {}, o.photos.map((p) => el("img", { src: `/api/v1/hazards/${o.id}/photos/${p}`, height: 80, alt: t("photo") }))),
    moves.length ? el("div", {}, note, o.state === "awaiting_review" ? unitPick : null, el("div", { class: "actions" }, moves), msg) : null,
    await sentLinks(id),
    el("h3", {}, t("history")), historyList(o.history)));
}

// The one-tap links sent for the order, each revocable on its own (an engineer who left); operators only.
async function sentLinks(id) {
  const links = await api(`/api/v1/hazards/${id}/links`).catch(() => []);
  if (!links.length) return null;
  const reason = el("input", { id: "revoke-reason", placeholder: t("revoke_reason"), maxlength: 200 });
  const msg = el("p", { class: "error" });
  const line = (l) => el("li", { "data-link": l.id, class: l.revoked_ms ? "revoked" : "" },
    el("b", {}, l.person), ` · ${t(`lrole.${l.role}`)} · ${t("sent")} ${when(l.sent_ms)} · `,
    l.revoked_ms ? el("span", { class: "muted" }, `${t("revoked")} ${when(l.revoked_ms)} ${l.revoked_by}`)
      : el("button", { type: "button", class: "danger", "data-revoke": l.id, onclick: async () => {
        try {
          await post(`/api/v1/hazards/${id}/links/${l.id}/revoke`, { reason: reason.value });
          await show(id);
        } catch (e) { msg.textContent = t("failed") + e.message; }
      } }, t("revoke")));
  return el("div", { id: "links" }, el("h3", {}, t("links")), el("ul", { class: "links" }, links.map(line)), reason, msg);
}

async function load() {
  // the console's offline layer of the city; without one ([api] map_layer unset) the units stand alone
  layer ??= await api("/api/v1/map/layer").catch(() => ({ features: [] }));
  [orders, units, mapUnits] = await Promise.all([
    api("/api/v1/hazards?limit=5000"), api("/api/v1/units"), api("/api/v1/units-map")]);
  const districts = [...new Set(units.map((u) => u.district))].sort();
  const keep = [$("#f-district").value, $("#f-unit").value];
  $("#f-district").replaceChildren(el("option", { value: "" }, t("all")), districts.map((d) => el("option", { value: d }, d)));
  $("#f-unit").replaceChildren(el("option", { value: "" }, t("all")), units.map((u) => el("option", { value: u.id }, u.name)));
  [$("#f-district").value, $("#f-unit").value] = keep;
  renderBoard();
  renderMap();
}

translate();
$("#f-district").addEventListener("change", renderBoard);
$("#f-unit").addEventListener("change", renderBoard);
langButton(() => { renderBoard(); renderMap(); if (selected) show(selected); });
signedIn(async () => {
  await load();
  const wanted = Number(location.hash.slice(1));
  if (wanted) await show(wanted);
  setInterval(load, 15000);
});

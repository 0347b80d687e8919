// The phone page of a unit's manager or a maintenance company's engineer: their orders, accept,
// report rectification with a note and a photo, and each order's history.
import { $, api, deadline, el, historyList, langButton, post, signedIn, t, translate, when } from "./supervision.js";

const MOVES = { dispatched: ["accept"], reopened: ["accept"], accepted: ["start", "report_fixed"],
  rectifying: ["report_fixed"], rejected: ["start", "report_fixed"] };
let orders = [], current = null;

function renderList() {
  const open = orders.filter((o) => o.state !== "closed").sort((a, b) => a.deadline_ms - b.deadline_ms);
  const done = orders.filter((o) => o.state === "closed");
  const item = (o) => el("div", { class: `card ${o.severity} ${o.overdue ? "overdue" : ""}`, "data-id": o.id,
    onclick: () => { location.hash = `hazard=${o.id}`; } },
  el("div", {}, el("b", {}, `#${o.id} ${t(`cat.${o.category}`)}`), " ", el("span", { class: `state s-${o.state}` }, t(`state.${o.state}`))),
  el("div", {}, o.unit, o.device_id ? ` · ${o.device_id}` : ""),
  el("div", { class: "meta" }, `${t("deadline")} ${when(o.deadline_ms)} `, el("span", { class: o.overdue ? "late" : "" }, deadline(o))));
  $("#list").replaceChildren(...(open.length ? open.map(item) : [el("p", { class: "muted" }, t("none"))]),
    done.length ? el("h3", {}, t("state.closed")) : "", ...done.slice(0, 20).map(item));
}

async function renderDetail(id) {
  const o = await api(`/api/v1/hazards/${id}`);
  current = o;
  const note = el("textarea", { id: "note", rows: 3, placeholder: t("note") });
  const photo = el("input", { id: "photo", type: "file", accept: "image/jpeg,image/png,image/webp", capture: "environment" });
  const msg = el("p", { id: "msg", class: "error" });
  const buttons = (MOVES[o.state] || []).map((a) => el("button", {
    type: "button", class: a === "report_fixed" ? "primary" : "", "data-action": a,
    onclick: async () => {
      msg.textContent = "";
      try {
        const photos = [];
        if (photo.files[0]) {
          const up = await api("/api/v1/photos", { method: "POST", headers: { "Content-Type": photo.files[0].type }, body: photo.files[0] });
          photos.push(up.name);
        }
        await post(`/api/v1/hazards/${o.id}/actions`, { action: a, note: note.value, photos });
        await refresh();
      } catch (e) { msg.textContent = t("failed") + e.message; }
    },
  }, t(`act.${a}`)));
  $("#detail").replaceChildren(el("section", { class: "panel", id: "order" },
    el("h2", {}, `#${o.id} ${o.title}`),
    el("div", {}, el("span", { class: `state s-${o.state}` }, t(`state.${o.state}`)), " ", t(`sev.${o.severity}`), " · ", o.unit),
    el("div", { class: "muted" }, `${t("deadline")} ${when(o.deadline_ms)} `, el("span", { class: o.overdue ? "error" : "" }, deadline(o))),
    o.outcome ? el("p", {}, `${t("outcome")}：${o.outcome}`) : null,
    buttons.length ? el("div", {}, el("label", {}, t("note"), note), el("label", {}, t("photo"), photo),
      el("div", { class: "actions" }, buttons), msg) : null,
    el("div", {}, o.photos.map((p) => el("img", { src: `/api/v1/hazards/${o.id}/photos/${p}`, height: 90, alt: t("photo") }))),
    el("h3", {}, t("history")), historyList(o.history)));
}

async function refresh() {
  orders = await api("/api/v1/hazards?limit=500");
  renderList();
  const m = location.hash.match(/hazard=(\d+)/);
  if (m) await renderDetail(Number(m[1]));
}

translate();
langButton(refresh);
window.addEventListener("hashchange", refresh);
signedIn(async (me) => { $("#who").textContent = me.name; await refresh(); });

// A unit's page: who answers for it, its sites and devices, open alerts, hazard orders and history.
import { $, api, deadline, el, langButton, signedIn, t, translate, when } from "./supervision.js";

let data = null;

function render() {
  if (!data) return;
  const u = data.unit;
  $("#unit-name").textContent = u.name;
  document.title = `${u.name} · firewatch`;
  const row = (k, v) => el("tr", {}, el("th", {}, t(k)), el("td", {}, v));
  $("#page").replaceChildren(
    el("section", { class: "panel", id: "facts" }, el("h2", {}, u.name, " ", el("span", { class: "state" }, t(`ucat.${u.category}`))),
      el("table", {},
        row("address", u.address), row("district", `${u.district} · ${t("grid")} ${u.grid || "—"}`),
        el("tr", {}, el("th", {}, "统一社会信用代码"), el("td", {}, u.credit_code)),
        row("company", u.company || "—"), row("department", u.department || "—"),
        row("open_hazards", `${u.open_hazards}（${t("sev.major")} ${u.major_open}，${t("overdue")} ${u.overdue}）`),
        row("sites", u.sites.join("、") || "—"))),
    el("section", { class: "panel", id: "contacts" }, el("h2", {}, t("contacts")),
      el("table", {}, u.contacts.map((c) => el("tr", {}, el("td", {}, t(`role.${c.role}`)), el("td", {}, c.name), el("td", {}, c.phone))))),
    el("section", { class: "panel", id: "hazards" }, el("h2", {}, t("board"), " ", el("small", {}, data.hazards.length)),
      el("table", {}, data.hazards.map((o) => el("tr", {},
        el("td", {}, el("a", { href: `/static/hazards.html#${o.id}` }, `#${o.id}`)), el("td", {}, t(`cat.${o.category}`)),
        el("td", {}, el("span", { class: `state s-${o.state}` }, t(`state.${o.state}`))),
        el("td", {}, when(o.deadline_ms)), el("td", { class: o.overdue ? "error" : "" }, deadline(o)))))),
    el("section", { class: "panel", id: "alerts" }, el("h2", {}, t("open_alerts"), " ", el("small", {}, data.open_alerts.length)),
      el("table", {}, data.open_alerts.map((a) => el("tr", {}, el("td", {}, a.device_id), el("td", {}, a.rule),
        el("td", {}, a.summary), el("td", {}, when(a.started_ms)))))),
    el("section", { class: "panel", id: "devices" }, el("h2", {}, t("devices"), " ", el("small", {}, data.devices.length)),
      el("table", {}, data.devices.map((d) => el("tr", {}, el("td", {}, d.id), el("td", {}, d.kind), el("td", {}, d.site))))),
    el("section", { class: "panel", id: "history" }, el("h2", {}, t("history")),
      el("table", {}, data.history.map((h) => el("tr", {}, el("td", {}, when(h.at_ms)), el("td", {}, h.actor),
        el("td", {}, t(`act.${h.action}`)), el("td", {}, h.subject), el("td", {}, h.note))))),
  );
}

translate();
langButton(render);
signedIn(async () => {
  data = await api(`/api/v1/units/${Number(location.hash.slice(1))}`);
  render();
});

// Unit scores of a month (lowest first), their monthly PDF reports, and a random inspection draw with its replay.
import { $, api, el, lang, post, signedIn } from "./supervision.js";

const S = {
  zh: { title: "单位评分与双随机抽查", month: "月份", district: "区域", show: "查看", district_pdf: "下载区域月报 (PDF)",
    hazards: "隐患整改", back: "返回监控台", rank: "名次", unit: "单位", score: "评分", grade: "等级", trend: "趋势",
    reasons: "主要原因", report: "月报", draw: "随机抽查", count: "抽取数量", seed: "随机种子（可空）", do_draw: "抽取",
    pdf: "PDF", none: "无扣分", drawn: "抽中", replay_ok: "按记录重新抽取，结果一致", replay_bad: "重新抽取结果不一致",
    need_district: "请先填写区域", grade_green: "绿", grade_yellow: "黄", grade_red: "红",
    trend_up: "上升", trend_down: "下降", trend_flat: "持平", trend_new: "首次评分" },
  en: { title: "Unit scores and random inspections", month: "Month", district: "District", show: "Show",
    district_pdf: "District report (PDF)", hazards: "Hazards", back: "Console", rank: "#", unit: "Unit", score: "Score",
    grade: "Grade", trend: "Trend", reasons: "Main reasons", report: "Report", draw: "Random inspection",
    count: "Units", seed: "Seed (optional)", do_draw: "Draw", pdf: "PDF", none: "nothing lost", drawn: "Drawn",
    replay_ok: "replayed from its record: the same units", replay_bad: "replay differs", need_district: "district first",
    grade_green: "green", grade_yellow: "yellow", grade_red: "red",
    trend_up: "up", trend_down: "down", trend_flat: "flat", trend_new: "new" },
};
const s = (k) => S[lang][k] ?? k;
const COLOUR = { green: "#1e9e4a", yellow: "#d9a400", red: "#d62828" };
let names = {};

function previousMonth() {
  const d = new Date();
  d.setDate(1);
  d.setMonth(d.getMonth() - 1);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;
}

let asked = 0;  // the latest load: an earlier month's answer arriving after it must not replace it

async function load() {
  const month = $("#month").value, district = $("#district").value.trim();
  const q = new URLSearchParams({ month, ...(district ? { district } : {}) });
  const mine = ++asked;
  const rows = await api(`/api/v1/scores?${q}`);
  if (mine !== asked) return;
  rows.sort((a, b) => ["green", "yellow", "red"].indexOf(a.grade) - ["green", "yellow", "red"].indexOf(b.grade)
    || b.score - a.score);
  names = Object.fromEntries(rows.map((r) => [r.unit_id, r.unit]));
  $("#scores tbody").replaceChildren(...rows.map((r, i) => el("tr", { "data-unit": r.unit_id, "data-grade": r.grade },
    el("td", {}, String(i + 1)), el("td", {}, r.unit), el("td", { class: "num" }, r.score.toFixed(1)),
    el("td", {}, el("b", { style: `color:${COLOUR[r.grade]}` }, s(`grade_${r.grade}`))),
    el("td", {}, s(`trend_${r.trend}`)),
    el("td", {}, r.reasons.slice(0, 2).map((x) => x[lang]).join("；") || s("none")),
    el("td", {}, el("a", { href: `/api/v1/reports/units/${r.unit_id}.pdf?month=${month}`, download: "" }, s("pdf"))))));
  const link = $("#district-pdf");
  link.hidden = !district;
  link.href = `/api/v1/reports/districts/${district}.pdf?month=${month}`;
}

async function draw() {
  const district = $("#district").value.trim();
  if (!district) { $("#draw-result").textContent = s("need_district"); return; }
  const seed = $("#seed").value;
  const d = await post("/api/v1/inspections/draws", { district, count: Number($("#count").value),
    ...(seed !== "" ? { seed: Number(seed) } : {}) });
  const again = await api(`/api/v1/inspections/draws/${d.id}/replay`);
  $("#draw-result").textContent = `#${d.id} seed ${d.seed} · ${s("drawn")}: ${d.result.map((u) => names[u] ?? u).join("、")}`
    + ` · ${again.same ? s("replay_ok") : s("replay_bad")}`;
}

function texts() {
  document.querySelectorAll("[data-s]").forEach((n) => { n.textContent = s(n.dataset.s); });
  $("#lang").textContent = lang === "zh" ? "English" : "中文";
}

$("#lang").addEventListener("click", () => {
  localStorage.setItem("firewatch.lang", lang === "zh" ? "en" : "zh");
  location.reload();
});
$("#month").value = previousMonth();
$("#load").addEventListener("click", load);
$("#draw").addEventListener("click", draw);
texts();
signedIn(load);

// The public hazard-report page: no sign-in; a phone, an address or the phone's position, a note, photos.
import { $, api, switchLang, t, translate, when } from "./supervision.js";

const MAX_PHOTOS = 3, MAX_BYTES = 5 * 1024 * 1024;

$("#locate").addEventListener("click", () => {
  navigator.geolocation?.getCurrentPosition((p) => {
    $("#report").latitude.value = p.coords.latitude.toFixed(6);
    $("#report").longitude.value = p.coords.longitude.toFixed(6);
    $("#located").textContent = t("located");
  });
});

$("#report").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.target, msg = $("#report-msg");
  msg.textContent = "";
  const files = [...form.photos.files];
  // The server refuses these too; saying so here saves a phone the upload.
  if (files.length > MAX_PHOTOS || files.some((f) => f.size > MAX_BYTES)) { msg.textContent = t("report_photos"); return; }
  try {
    const r = await api("/api/v1/public/hazard-reports", { method: "POST", body: new FormData(form) });
    $("#receipt").textContent = r.receipt;
    $("#done").hidden = false;
    form.hidden = true;
  } catch (e) { msg.textContent = e.message; }
});

$("#follow").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = $("#follow-out");
  try {
    const r = await api(`/api/v1/public/hazard-reports/${encodeURIComponent(ev.target.receipt.value.trim().toUpperCase())}`);
    out.className = "";
    out.textContent = `${t("state")}：${t(`state.${r.state}`)}　${when(r.submitted_ms)}　${r.outcome ? `${t("outcome")}：${r.outcome}` : ""}`;
  } catch (e) { out.className = "error"; out.textContent = e.message; }
});

translate();
$("#lang").textContent = t("lang");
$("#lang").addEventListener("click", () => switchLang(() => { $("#lang").textContent = t("lang"); }));

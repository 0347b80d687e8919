// The public hazard-report page: no sign-in; a phone, an address or the phone's position, a note, photos.
import { LayerView, mark } from "./citylayer.js";
import { $, api, langButton, t, translate, when } from "./supervision.js";

const MAX_PHOTOS = 3, MAX_BYTES = 5 * 1024 * 1024;

$("#locate").addEventListener("click", () => {
  navigator.geolocation?.getCurrentPosition((p) => {
    $("#report").latitude.value = p.coords.latitude.toFixed(6);
    $("#report").longitude.value = p.coords.longitude.toFixed(6);
    $("#located").textContent = t("located");
    place = [p.coords.latitude, p.coords.longitude];
    drawPlace();
  });
});

// A place chosen by a tap on the city's district layer: the first tap zooms in on it, each tap places it.
let view = null, place = null;
function drawPlace() {
  if (!view) return;
  const marks = [];
  if (place) {
    const [x, y] = view.xy(...place);
    marks.push(mark("circle", { id: "place-mark", cx: x.toFixed(1), cy: y.toFixed(1), r: 7 }));
    $("#located").textContent = `${t("placed")} ${place[0].toFixed(5)}, ${place[1].toFixed(5)}`;
  }
  view.draw(...marks);
}
api("/api/v1/public/map-layer").then((layer) => {
  const svg = $("#place-map");
  view = new LayerView(svg, layer).fit([]);
  svg.addEventListener("click", (ev) => {
    place = view.latlon(ev);
    if (view.view.scale < 4 * view.base) view.zoomAt(...place, 4);
    $("#report").latitude.value = place[0].toFixed(6);
    $("#report").longitude.value = place[1].toFixed(6);
    drawPlace();
  });
  view.base = view.view.scale;
  drawPlace();
}).catch(() => { $("#place-map").hidden = true; });

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
langButton(drawPlace);

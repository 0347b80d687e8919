// A small time-series chart on canvas: one or more lines, horizontal warning/alarm
// levels, and the time axis. Hand-drawn to ship no third-party file.

const LINE_COLOURS = ["#4db8ff", "#2ecc71", "#c38fff", "#ff9ff3", "#f8c291", "#7efff5"];
const LEVEL_COLOURS = { warning: "#ffd21a", alarm: "#ff2d2d" };

function niceTicks(lo, hi, count = 5) {
  const span = hi - lo || Math.abs(hi) || 1;
  const step0 = span / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

function timeLabel(ms, span) {
  const d = new Date(ms);
  const hm = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  return span > 2 * 86400000 ? `${d.getMonth() + 1}/${d.getDate()} ${hm}` : hm;
}

const LABEL_GAP = 12;

// The baselines of the level labels: each beside its line where it can be, but a warning and
// an alarm level close together (0.14 and 0.10 MPa on a wide axis) never print on each other,
// and none leaves the plot. `ys` are the wanted baselines, in any order.
export function labelRows(ys, top, bottom, gap = LABEL_GAP) {
  const order = ys.map((y, i) => i).sort((a, b) => ys[a] - ys[b]);
  const rows = [];
  order.forEach((i, k) => { rows[i] = Math.max(ys[i], top, k ? rows[order[k - 1]] + gap : -Infinity); });
  for (let k = order.length - 1; k >= 0; k--) {
    const below = k < order.length - 1 ? rows[order[k + 1]] - gap : bottom;
    rows[order[k]] = Math.min(rows[order[k]], below, bottom);
  }
  return rows;
}

// lines: [{label, times, values}], levels: [{label, level, value}]
export function drawChart(canvas, { lines, levels = [], unit = "", start, end, marks = [] }) {
  const r = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * r;
  canvas.height = h * r;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(r, 0, 0, r, 0, 0);
  ctx.fillStyle = "#0f1b26";
  ctx.fillRect(0, 0, w, h);
  const pad = { l: 52, r: 10, t: 10, b: 22 };
  let lo = Infinity, hi = -Infinity;
  for (const l of lines) for (const v of l.values) if (v != null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  for (const lv of levels) { lo = Math.min(lo, lv.value); hi = Math.max(hi, lv.value); }
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#8aa0b4";
  if (lo === Infinity) {
    ctx.textAlign = "center";
    ctx.fillText("—", w / 2, h / 2);
    return;
  }
  const margin = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
  lo -= margin; hi += margin;
  const X = (t) => pad.l + ((t - start) / (end - start)) * (w - pad.l - pad.r);
  const Y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#1f3040";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  for (const v of niceTicks(lo, hi)) {
    ctx.beginPath(); ctx.moveTo(pad.l, Y(v) + 0.5); ctx.lineTo(w - pad.r, Y(v) + 0.5); ctx.stroke();
    ctx.fillText(`${v}`, pad.l - 4, Y(v) + 4);
  }
  ctx.textAlign = "center";
  for (let k = 0; k <= 4; k++) {
    const t = start + ((end - start) * k) / 4;
    ctx.fillText(timeLabel(t, end - start), Math.min(w - 30, Math.max(pad.l + 20, X(t))), h - 6);
  }
  ctx.textAlign = "left";
  if (unit) ctx.fillText(unit, 4, pad.t + 8);
  const rows = labelRows(levels.map((lv) => Y(lv.value) - 3), pad.t + LABEL_GAP, h - pad.b - 3);
  levels.forEach((lv, k) => {
    ctx.strokeStyle = LEVEL_COLOURS[lv.level] || "#aaa";
    ctx.setLineDash([6, 4]);
    ctx.beginPath(); ctx.moveTo(pad.l, Y(lv.value)); ctx.lineTo(w - pad.r, Y(lv.value)); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText(`${lv.label} ${lv.value}`, pad.l + 4, rows[k]);
  });
  for (const m of marks) {
    ctx.strokeStyle = "#ff2d2d";
    ctx.beginPath(); ctx.moveTo(X(m) + 0.5, pad.t); ctx.lineTo(X(m) + 0.5, h - pad.b); ctx.stroke();
  }
  lines.forEach((l, k) => {
    ctx.strokeStyle = LINE_COLOURS[k % LINE_COLOURS.length];
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    let pen = false;
    l.times.forEach((t, j) => {
      const v = l.values[j];
      if (v == null) { pen = false; return; }
      if (pen) ctx.lineTo(X(t), Y(v)); else ctx.moveTo(X(t), Y(v));
      pen = true;
    });
    ctx.stroke();
    if (lines.length > 1) {
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillText(l.label, w - pad.r - 120, pad.t + 12 + 12 * k);
    }
  });
}

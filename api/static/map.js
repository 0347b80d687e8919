// The city map: every device drawn on one canvas from its coordinates (Web Mercator),
// coloured by state, with pan and zoom. No tile server is needed: district boundaries
// and roads come from the GeoJSON layer the server ships ([api] map_layer), and when a
// tile URL is set ({z}/{x}/{y}) tiles are drawn underneath. Devices live in typed arrays
// so 20,000 of them redraw in a few milliseconds; zoomed out, healthy devices are drawn
// as one counted circle per cell so the city stays readable, while every device with an
// open alert is always drawn on its own. A device without coordinates (or reporting
// without being registered) is drawn hollow at its district's centre.

export const COLOURS = {
  fire: "#ff2d2d", critical: "#ff8c1a", warning: "#ffd21a", info: "#4db8ff",
  online: "#2ecc71", offline: "#7f8c8d", unknown: "#3d4a57",
};
const SEVERITY_ORDER = ["", "info", "warning", "critical", "fire"];
const CLUSTER_MIN = 1500;
/** Healthy devices in view above which they are drawn as counted cells of this many pixels. */
const CLUSTER_PX = 26;

export function mercator(lat, lon) {
  const s = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
  return [(lon + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
}

export class CityMap {
  constructor(canvas, { tileUrl = "", onPick = () => {}, onHover = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.tileUrl = tileUrl;
    this.tiles = new Map();
    this.onPick = onPick;
    this.onHover = onHover;
    this.n = 0;
    this.visible = () => true;
    this.view = { x: 0.5, y: 0.5, scale: 1024 };
    this.dirty = true;
    this.flashUntil = 0;
    this.polygons = [];     // [{district, ring: Float64Array x,y,...}]
    this.roads = [];        // [{kind, line: Float64Array}]
    this.names = new Map(); // district code -> {name, x, y}
    this.focusDistrict = "";
    this._wire();
    new ResizeObserver(() => this._resize()).observe(canvas.parentElement);
    this._resize();
    const frame = () => {
      if (this.dirty || this.flashUntil > performance.now()) this.draw();
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }

  // Columns as the snapshot sends them; status: 0 unknown, 1 online, 2 offline.
  setDevices(cols) {
    const n = cols.id.length;
    this.n = n;
    this.ids = cols.id;
    this.kinds = cols.kind;
    this.districts = cols.district;
    this.sites = cols.site;
    this.wx = new Float64Array(n);
    this.wy = new Float64Array(n);
    this.placed = new Uint8Array(n);
    this.approx = new Uint8Array(n);
    this.spiral = new Map();
    this.status = new Uint8Array(n);
    this.severity = new Uint8Array(n);
    this.index = new Map();
    for (let i = 0; i < n; i++) {
      this.index.set(cols.id[i], i);
      this._place(i, cols.latitude[i], cols.longitude[i]);
      this.status[i] = cols.online[i] === true ? 1 : cols.online[i] === false ? 2 : 0;
    }
    this.fit();
  }

  _place(i, lat, lon) {
    this.approx[i] = 0;
    if (lat == null || lon == null) {
      const c = this.names.get(this.districts[i]);
      if (!c || c.x == null) return;
      // a golden-angle spiral round the district's centre: each such device findable on its own
      const k = (this.spiral.get(this.districts[i]) || 0) + 1;
      this.spiral.set(this.districts[i], k);
      const r = 1.2e-5 * Math.sqrt(k), a = k * 2.399963;
      this.wx[i] = c.x + r * Math.cos(a);
      this.wy[i] = c.y + r * Math.sin(a);
      this.approx[i] = 1;
      this.placed[i] = 1;
      return;
    }
    const [x, y] = mercator(lat, lon);
    this.wx[i] = x;
    this.wy[i] = y;
    this.placed[i] = 1;
  }

  /** The district registry: names for labels, centres for devices without coordinates. */
  setDistricts(list) {
    this.names = new Map(list.map((d) => {
      const [x, y] = d.latitude == null || d.longitude == null ? [null, null] : mercator(d.latitude, d.longitude);
      return [d.code, { name: d.label, x, y }];
    }));
    this.dirty = true;
  }

  /** A GeoJSON FeatureCollection: Polygons with a `district` property, LineStrings as roads. */
  setLayer(geojson) {
    const project = (coords) => {
      const out = new Float64Array(coords.length * 2);
      coords.forEach(([lon, lat], k) => { [out[2 * k], out[2 * k + 1]] = mercator(lat, lon); });
      return out;
    };
    this.polygons = [];
    this.roads = [];
    for (const f of geojson.features || []) {
      const g = f.geometry || {}, p = f.properties || {};
      const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
      for (const poly of polys) this.polygons.push({ district: String(p.district ?? ""), ring: project(poly[0]) });
      const lines = g.type === "LineString" ? [g.coordinates] : g.type === "MultiLineString" ? g.coordinates : [];
      for (const line of lines) this.roads.push({ kind: p.road || "", line: project(line) });
    }
    this.dirty = true;
  }

  upsertDevice(d, online) {
    let i = this.index.get(d.id);
    if (i === undefined) {
      i = this.n;
      this._grow();
      this.index.set(d.id, i);
      this.ids.push(d.id);
      this.kinds.push(d.kind);
      this.districts.push(d.district);
      this.sites.push(d.site);
      this.n += 1;
    }
    this.kinds[i] = d.kind;
    this.districts[i] = d.district;
    this.sites[i] = d.site;
    this.placed[i] = 0;
    this._place(i, d.latitude, d.longitude);
    if (d.retired_ms) {
      // A retired device keeps its slot but has no kind: neither drawn nor counted.
      this.placed[i] = 0;
      this.kinds[i] = "";
    }
    if (online !== undefined) this.setOnline(d.id, online);
    this.dirty = true;
  }

  _grow() {
    const grow = (a, T) => {
      const b = new T(a.length + 1024);
      b.set(a);
      return b;
    };
    if (this.n < this.wx.length) return;
    this.wx = grow(this.wx, Float64Array);
    this.wy = grow(this.wy, Float64Array);
    this.placed = grow(this.placed, Uint8Array);
    this.approx = grow(this.approx, Uint8Array);
    this.status = grow(this.status, Uint8Array);
    this.severity = grow(this.severity, Uint8Array);
  }

  setOnline(id, online) {
    const i = this.index.get(id);
    if (i === undefined) return;
    this.status[i] = online === true ? 1 : online === false ? 2 : 0;
    this.dirty = true;
  }

  // The worst open alert severity per device ("" for none).
  setSeverity(id, severity) {
    const i = this.index.get(id);
    if (i === undefined) return;
    this.severity[i] = Math.max(0, SEVERITY_ORDER.indexOf(severity));
    this.dirty = true;
  }

  setFilter(visible) {
    this.visible = visible;
    this.dirty = true;
  }

  flash(ms = 4000) {
    this.flashUntil = performance.now() + ms;
  }

  focus(id) {
    const i = this.index.get(id);
    if (i === undefined || !this.placed[i]) return;
    this.view.x = this.wx[i];
    this.view.y = this.wy[i];
    this.view.scale = Math.max(this.view.scale, 2 ** 20);
    this.selected = i;
    this.dirty = true;
  }

  /** Fit the view to the devices shown (all when `onlyVisible` is false), else to the focused district. */
  fit(onlyVisible = false) {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    const take = (x, y) => {
      x0 = Math.min(x0, x); x1 = Math.max(x1, x);
      y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    };
    for (let i = 0; i < this.n; i++) {
      if (!this.placed[i] || (onlyVisible && !this.visible(i))) continue;
      take(this.wx[i], this.wy[i]);
    }
    if (x0 === Infinity) {
      // no device to show: the focused district's boundary, so the screen still says where it is
      for (const p of this.polygons) {
        if (!this.focusDistrict || p.district !== this.focusDistrict) continue;
        for (let k = 0; k < p.ring.length; k += 2) take(p.ring[k], p.ring[k + 1]);
      }
    }
    if (x0 === Infinity) return;
    const w = this.canvas.clientWidth || 800, h = this.canvas.clientHeight || 600;
    this.view.x = (x0 + x1) / 2;
    this.view.y = (y0 + y1) / 2;
    this.view.scale = Math.min(2 ** 24, 0.9 * Math.min(w / Math.max(x1 - x0, 1e-9), h / Math.max(y1 - y0, 1e-9)));
    this.dirty = true;
  }

  _resize() {
    const r = window.devicePixelRatio || 1;
    const { clientWidth: w, clientHeight: h } = this.canvas;
    this.canvas.width = Math.max(1, Math.round(w * r));
    this.canvas.height = Math.max(1, Math.round(h * r));
    this.ctx.setTransform(r, 0, 0, r, 0, 0);
    this.dirty = true;
  }

  _screen(i) {
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    return [(this.wx[i] - this.view.x) * this.view.scale + w / 2, (this.wy[i] - this.view.y) * this.view.scale + h / 2];
  }

  draw() {
    const { ctx } = this;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    this.dirty = false;
    ctx.fillStyle = "#0d1620";
    ctx.fillRect(0, 0, w, h);
    if (this.tileUrl) this._drawTiles(w, h);
    else if (!this.polygons.length) this._drawGrid(w, h);
    this._drawLayer(w, h);
    if (!this.n) return;
    const { x: vx, y: vy, scale } = this.view;
    const hw = w / 2, hh = h / 2;
    const size = Math.max(2, Math.min(6, Math.log2(scale) - 14));
    const buckets = [[], [], [], [], [], [], []];
    const hollow = [];
    const pulse = this.flashUntil > performance.now() ? 0.6 + 0.4 * Math.sin(performance.now() / 120) : 1;
    const labels = new Map();
    let healthy = 0;
    for (let i = 0; i < this.n; i++) {
      if (!this.placed[i] || !this.visible(i)) continue;
      const sx = (this.wx[i] - vx) * scale + hw, sy = (this.wy[i] - vy) * scale + hh;
      if (sx < -10 || sy < -10 || sx > w + 10 || sy > h + 10) continue;
      const sev = this.severity[i];
      if (!sev) healthy += 1;
      buckets[sev ? 2 + sev : this.status[i]].push(sx, sy, i);
      const d = this.districts[i];
      const l = labels.get(d) || labels.set(d, [0, 0, 0]).get(d);
      l[0] += sx; l[1] += sy; l[2] += 1;
    }
    const colours = [COLOURS.unknown, COLOURS.online, COLOURS.offline, COLOURS.info, COLOURS.warning, COLOURS.critical, COLOURS.fire];
    ctx.font = "bold 14px 'Noto Sans CJK SC', 'WenQuanYi Micro Hei', sans-serif";
    ctx.fillStyle = "rgba(200,220,240,0.55)";
    ctx.textAlign = "center";
    for (const [d, [x, y, c]] of labels) {
      const known = this.names.get(d);
      const at = known?.x != null ? [(known.x - vx) * scale + hw, (known.y - vy) * scale + hh - 14] : [x / c, y / c];
      ctx.fillText(known?.name || d, at[0], at[1]);
    }
    this.clustered = healthy > CLUSTER_MIN;
    if (this.clustered) this._drawClusters(buckets.slice(0, 3), colours);
    for (let b = this.clustered ? 3 : 0; b < buckets.length; b++) {
      const pts = buckets[b];
      if (!pts.length) continue;
      const s = b >= 5 ? size * 2.2 : b >= 3 ? size * 1.5 : size;
      ctx.fillStyle = colours[b];
      ctx.globalAlpha = b === 6 ? pulse : 1;
      ctx.beginPath();
      for (let k = 0; k < pts.length; k += 3) {
        if (this.approx[pts[k + 2]]) hollow.push(pts[k], pts[k + 1], s, colours[b]);
        else ctx.rect(pts[k] - s / 2, pts[k + 1] - s / 2, s, s);
      }
      ctx.fill();
      if (b === 6) {
        ctx.strokeStyle = COLOURS.fire;
        ctx.lineWidth = 2;
        ctx.beginPath();
        for (let k = 0; k < pts.length; k += 3) {
          ctx.moveTo(pts[k] + s * 2, pts[k + 1]);
          ctx.arc(pts[k], pts[k + 1], s * 2, 0, 2 * Math.PI);
        }
        ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
    ctx.lineWidth = 1.5;
    for (let k = 0; k < hollow.length; k += 4) {
      const s = hollow[k + 2] + 2;
      ctx.strokeStyle = hollow[k + 3];
      ctx.strokeRect(hollow[k] - s / 2, hollow[k + 1] - s / 2, s, s);
    }
    if (this.selected !== undefined && this.placed[this.selected]) {
      const [sx, sy] = this._screen(this.selected);
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 2;
      ctx.strokeRect(sx - 8, sy - 8, 16, 16);
    }
  }

  _drawLayer(w, h) {
    const { ctx } = this;
    const { x: vx, y: vy, scale } = this.view;
    const path = (pts, close) => {
      ctx.beginPath();
      for (let k = 0; k < pts.length; k += 2) {
        const sx = (pts[k] - vx) * scale + w / 2, sy = (pts[k + 1] - vy) * scale + h / 2;
        if (k) ctx.lineTo(sx, sy); else ctx.moveTo(sx, sy);
      }
      if (close) ctx.closePath();
    };
    for (const p of this.polygons) {
      const focused = this.focusDistrict && p.district === this.focusDistrict;
      path(p.ring, true);
      ctx.fillStyle = focused ? "rgba(60,130,200,0.16)" : "rgba(40,70,100,0.10)";
      ctx.fill();
      ctx.strokeStyle = focused ? "#6cc3ff" : "#4a7598";
      ctx.lineWidth = focused ? 2.5 : 1.4;
      ctx.setLineDash(focused ? [] : [6, 4]);
      ctx.stroke();
    }
    ctx.setLineDash([]);
    for (const r of this.roads) {
      path(r.line, false);
      ctx.strokeStyle = r.kind === "ring" ? "#2b3b4b" : "#223140";
      ctx.lineWidth = r.kind === "ring" ? 4 : 2.5;
      ctx.stroke();
    }
  }

  /** Healthy devices (never-reported, online, offline) as one circle per cell, sized and counted. */
  _drawClusters(buckets, colours) {
    const { ctx } = this;
    const cells = new Map();
    buckets.forEach((pts, b) => {
      for (let k = 0; k < pts.length; k += 3) {
        const key = `${Math.floor(pts[k] / CLUSTER_PX)},${Math.floor(pts[k + 1] / CLUSTER_PX)}`;
        let c = cells.get(key);
        if (!c) cells.set(key, (c = { x: 0, y: 0, n: [0, 0, 0] }));
        c.x += pts[k]; c.y += pts[k + 1]; c.n[b] += 1;
      }
    });
    ctx.font = "11px sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    for (const c of cells.values()) {
      const total = c.n[0] + c.n[1] + c.n[2];
      const x = c.x / total, y = c.y / total, r = Math.min(CLUSTER_PX / 2, 3 + 2.2 * Math.log2(total + 1));
      // offline outweighs online: a cell with many offline devices must not look healthy
      const b = c.n[2] * 4 >= total ? 2 : c.n[1] ? 1 : 0;
      ctx.fillStyle = colours[b];
      ctx.globalAlpha = 0.85;
      ctx.beginPath();
      ctx.arc(x, y, r, 0, 2 * Math.PI);
      ctx.fill();
      ctx.globalAlpha = 1;
      if (total >= 10) {
        ctx.fillStyle = "#08110a";
        ctx.fillText(String(total), x, y);
      }
    }
    ctx.textBaseline = "alphabetic";
  }

  _drawGrid(w, h) {
    const { ctx } = this;
    const step = 2 ** Math.round(Math.log2(120 / this.view.scale));
    const x0 = this.view.x - w / 2 / this.view.scale, y0 = this.view.y - h / 2 / this.view.scale;
    ctx.strokeStyle = "#15222e";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let gx = Math.floor(x0 / step) * step; gx < x0 + w / this.view.scale; gx += step) {
      const sx = Math.round((gx - x0) * this.view.scale) + 0.5;
      ctx.moveTo(sx, 0); ctx.lineTo(sx, h);
    }
    for (let gy = Math.floor(y0 / step) * step; gy < y0 + h / this.view.scale; gy += step) {
      const sy = Math.round((gy - y0) * this.view.scale) + 0.5;
      ctx.moveTo(0, sy); ctx.lineTo(w, sy);
    }
    ctx.stroke();
  }

  _drawTiles(w, h) {
    const z = Math.max(0, Math.min(19, Math.round(Math.log2(this.view.scale / 256))));
    const n = 2 ** z, px = this.view.scale / n;
    const x0 = this.view.x - w / 2 / this.view.scale, y0 = this.view.y - h / 2 / this.view.scale;
    for (let tx = Math.floor(x0 * n); tx < (x0 + w / this.view.scale) * n; tx++) {
      for (let ty = Math.max(0, Math.floor(y0 * n)); ty < Math.min(n, (y0 + h / this.view.scale) * n); ty++) {
        const key = `${z}/${tx}/${ty}`;
        let img = this.tiles.get(key);
        if (!img) {
          img = new Image();
          img.onload = () => (this.dirty = true);
          img.src = this.tileUrl.replace("{z}", z).replace("{x}", ((tx % n) + n) % n).replace("{y}", ty);
          this.tiles.set(key, img);
          if (this.tiles.size > 500) this.tiles.delete(this.tiles.keys().next().value);
        }
        if (img.complete && img.naturalWidth) {
          this.ctx.drawImage(img, (tx / n - x0) * this.view.scale, (ty / n - y0) * this.view.scale, px + 0.5, px + 0.5);
        }
      }
    }
  }

  nearest(mx, my, radius = 8) {
    let best = -1, bestD = radius * radius;
    for (let i = 0; i < this.n; i++) {
      if (!this.placed[i] || !this.visible(i)) continue;
      const [sx, sy] = this._screen(i);
      const d = (sx - mx) ** 2 + (sy - my) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }

  _zoomAt(px, py, k) {
    const mx = px - this.canvas.clientWidth / 2, my = py - this.canvas.clientHeight / 2;
    const wx = this.view.x + mx / this.view.scale, wy = this.view.y + my / this.view.scale;
    this.view.scale = Math.max(256, Math.min(2 ** 28, this.view.scale * k));
    this.view.x = wx - mx / this.view.scale;
    this.view.y = wy - my / this.view.scale;
    this.dirty = true;
  }

  _wire() {
    const c = this.canvas;
    let drag = null, moved = false, hoverQueued = false;
    c.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY };
      moved = false;
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener("pointermove", (e) => {
      if (drag) {
        const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 2) moved = true;
        this.view.x -= dx / this.view.scale;
        this.view.y -= dy / this.view.scale;
        drag = { x: e.clientX, y: e.clientY };
        this.dirty = true;
        return;
      }
      if (hoverQueued) return;
      hoverQueued = true;
      requestAnimationFrame(() => {
        hoverQueued = false;
        const r = c.getBoundingClientRect();
        const i = this.nearest(e.clientX - r.left, e.clientY - r.top);
        this.onHover(i >= 0 ? this.ids[i] : null, e.clientX - r.left, e.clientY - r.top);
      });
    });
    c.addEventListener("pointerup", (e) => {
      drag = null;
      if (moved) return;
      const r = c.getBoundingClientRect();
      const i = this.nearest(e.clientX - r.left, e.clientY - r.top);
      if (i >= 0 && this.clustered && !this.severity[i]) {
        this._zoomAt(e.clientX - r.left, e.clientY - r.top, 4); // a counted cell: look closer
      } else if (i >= 0) {
        this.selected = i;
        this.dirty = true;
        this.onPick(this.ids[i]);
      }
    });
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = c.getBoundingClientRect();
      this._zoomAt(e.clientX - r.left, e.clientY - r.top, Math.exp(-e.deltaY * 0.0015));
    }, { passive: false });
    c.addEventListener("dblclick", () => this.fit());
  }
}

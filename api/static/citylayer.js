// The console's offline GeoJSON layer of the demo city ([api] map_layer: district boundaries, roads) drawn
// as SVG, with places on it: the hazard board's units, labelled, and the public report page's tapped place.
// The projection is the console map's (Web Mercator, map.js), so a place sits where the console draws it.
import { mercator } from "./map.js";

const NS = "http://www.w3.org/2000/svg";

export function mark(tag, attrs = {}, text = "") {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

function unmercator(x, y) {
  return [(Math.atan(Math.sinh(Math.PI * (1 - 2 * y))) * 180) / Math.PI, x * 360 - 180];
}

export class LayerView {
  constructor(svg, layer) {
    this.svg = svg;
    this.features = layer?.features || [];
    const box = svg.viewBox.baseVal;
    [this.w, this.h] = [box?.width || 400, box?.height || 300];
    this.view = { x: 0.5, y: 0.5, scale: 1 };
  }

  /** Fit on these [lat, lon] places, at least `span` degrees across; with none, on the whole layer. */
  fit(places, span = 0.08) {
    const pts = places.map(([lat, lon]) => mercator(lat, lon));
    if (!pts.length) for (const f of this.features) for (const [lon, lat] of ring(f.geometry)) pts.push(mercator(lat, lon));
    if (!pts.length) return this;
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const least = places.length ? mercator(0, span)[0] - mercator(0, 0)[0] : 0;
    const [cx, cy] = [(Math.min(...xs) + Math.max(...xs)) / 2, (Math.min(...ys) + Math.max(...ys)) / 2];
    const dx = Math.max(Math.max(...xs) - Math.min(...xs), least), dy = Math.max(Math.max(...ys) - Math.min(...ys), least);
    this.view = { x: cx, y: cy, scale: 0.85 * Math.min(this.w / Math.max(dx, 1e-9), this.h / Math.max(dy, 1e-9)) };
    return this;
  }

  xy(lat, lon) {
    const [x, y] = mercator(lat, lon);
    return [(x - this.view.x) * this.view.scale + this.w / 2, (y - this.view.y) * this.view.scale + this.h / 2];
  }

  /** The [lat, lon] under a pointer event on the SVG. */
  latlon(event) {
    const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(this.svg.getScreenCTM().inverse());
    return unmercator((p.x - this.w / 2) / this.view.scale + this.view.x, (p.y - this.h / 2) / this.view.scale + this.view.y);
  }

  zoomAt(lat, lon, k) {
    [this.view.x, this.view.y] = mercator(lat, lon);
    this.view.scale *= k;
  }

  /** The layer (districts with their names, roads), then `marks` on top. */
  draw(...marks) {
    const line = (coords) => coords.map(([lon, lat]) => this.xy(lat, lon).map((v) => v.toFixed(1)).join(",")).join(" ");
    const layer = [], names = [];
    for (const f of this.features) {
      const g = f.geometry || {}, p = f.properties || {};
      if (g.type === "Polygon" || g.type === "MultiPolygon") {
        for (const poly of g.type === "Polygon" ? [g.coordinates] : g.coordinates) {
          layer.push(mark("polygon", { class: "district", "data-district": p.district ?? "", points: line(poly[0]) }));
        }
        const pts = ring(g).map(([lon, lat]) => this.xy(lat, lon));
        const cx = pts.reduce((s, q) => s + q[0], 0) / pts.length, cy = pts.reduce((s, q) => s + q[1], 0) / pts.length;
        if (p.name) names.push(mark("text", { class: "district-name", x: cx.toFixed(1), y: cy.toFixed(1) }, p.name));
      } else if (g.type === "LineString") {
        layer.push(mark("polyline", { class: `road ${p.road || ""}`, points: line(g.coordinates) }));
      }
    }
    this.svg.replaceChildren(mark("g", { class: "layer" }, ""), ...marks);
    this.svg.firstChild.append(...layer, ...names);
  }
}

function ring(g) {
  if (!g) return [];
  if (g.type === "Polygon") return g.coordinates[0];
  if (g.type === "MultiPolygon") return g.coordinates.flatMap((p) => p[0]);
  if (g.type === "LineString") return g.coordinates;
  return [];
}

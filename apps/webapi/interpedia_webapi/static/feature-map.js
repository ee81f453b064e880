// The feature map: tens of thousands of points on one canvas, drawn into a pixel buffer.
//
// Every frame writes each visible point as a small square straight into an ImageData
// (a Uint32Array view), then puts it on the canvas once: no DOM node and no path per
// point, so a 65k-point map redraws in a few milliseconds and panning stays smooth.
// Highlights, the selection, the hovered point and the lasso/box are drawn on top with
// the 2-D API (they are few). A uniform grid over the data finds the point under the
// cursor without scanning every point.
//
// new FeatureMap(canvas, {x, y, index}, {onHover, onClick, onSelect})
//   .setColours(Uint32Array of ABGR colours, one per point)
//   .setHighlight(Set of point numbers), .setSelection(Set), .setMode("pan"|"box"|"lasso")

const GRID = 256; // grid cells per side for hit testing
const HIT_RADIUS = 7; // pixels

export class FeatureMap {
  constructor(canvas, points, handlers = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.x = Float32Array.from(points.x);
    this.y = Float32Array.from(points.y);
    this.index = Int32Array.from(points.index);
    this.n = this.x.length;
    this.handlers = handlers;
    this.colours = new Uint32Array(this.n).fill(0xff888888);
    this.highlight = new Set();
    this.selection = new Set();
    this.hovered = -1;
    this.mode = "pan";
    this.frames = 0; // frames drawn: the bench reads it to measure frames per second
    this.lastFrameMs = 0;
    this._pending = false;
    this._bounds();
    this._buildGrid();
    this._resize();
    this.reset();
    this._listen();
    new ResizeObserver(() => { this._resize(); this.draw(); }).observe(canvas);
  }

  _bounds() {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < this.n; i++) {
      const x = this.x[i], y = this.y[i];
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
    this.box = { x0, x1, y0, y1 };
  }

  // Points bucketed by grid cell (counting sort: one pass to count, one to place).
  _buildGrid() {
    const { x0, x1, y0, y1 } = this.box;
    this.cellW = (x1 - x0) / GRID; this.cellH = (y1 - y0) / GRID;
    const cell = new Int32Array(this.n);
    const start = new Int32Array(GRID * GRID + 1);
    for (let i = 0; i < this.n; i++) {
      const cx = Math.min(GRID - 1, Math.floor((this.x[i] - x0) / this.cellW));
      const cy = Math.min(GRID - 1, Math.floor((this.y[i] - y0) / this.cellH));
      cell[i] = cy * GRID + cx;
      start[cell[i] + 1]++;
    }
    for (let c = 0; c < GRID * GRID; c++) start[c + 1] += start[c];
    const fill = start.slice(0, GRID * GRID);
    const order = new Int32Array(this.n);
    for (let i = 0; i < this.n; i++) order[fill[cell[i]]++] = i;
    this.cellStart = start; this.cellOrder = order;
  }

  _resize() {
    const ratio = window.devicePixelRatio || 1;
    const rect = this.canvas.getBoundingClientRect();
    this.ratio = ratio;
    this.width = Math.max(1, Math.round(rect.width * ratio));
    this.height = Math.max(1, Math.round(rect.height * ratio));
    if (this.canvas.width !== this.width || this.canvas.height !== this.height) {
      this.canvas.width = this.width; this.canvas.height = this.height;
    }
    this.image = this.ctx.createImageData(this.width, this.height);
    this.pixels = new Uint32Array(this.image.data.buffer);
  }

  // View: screen = (data - centre) * scale + half the canvas (y grows upwards on screen).
  reset() {
    const { x0, x1, y0, y1 } = this.box;
    this.cx = (x0 + x1) / 2; this.cy = (y0 + y1) / 2;
    this.scale = this.fitScale = 0.92 * Math.min(this.width / (x1 - x0), this.height / (y1 - y0));
    this.draw();
  }

  toScreen(i) {
    return [
      (this.x[i] - this.cx) * this.scale + this.width / 2,
      this.height / 2 - (this.y[i] - this.cy) * this.scale,
    ];
  }

  toData(px, py) {
    return [(px - this.width / 2) / this.scale + this.cx, (this.height / 2 - py) / this.scale + this.cy];
  }

  setColours(colours) { this.colours = colours; this.draw(); return this; }
  setHighlight(points) { this.highlight = points; this.draw(); return this; }
  setSelection(points) { this.selection = points; this.draw(); return this; }
  setMode(mode) { this.mode = mode; this.canvas.dataset.mode = mode; return this; }

  panBy(dx, dy) { this.cx -= dx * this.ratio / this.scale; this.cy += dy * this.ratio / this.scale; this.draw(); }

  zoomAt(px, py, factor) {
    const [dx, dy] = this.toData(px, py);
    this.scale *= factor;
    this.cx = dx - (px - this.width / 2) / this.scale;
    this.cy = dy - (this.height / 2 - py) / this.scale;
    this.draw();
  }

  // Centre on one point (jump-to) and mark it as hovered.
  focus(i, scale) {
    this.cx = this.x[i]; this.cy = this.y[i];
    if (scale) this.scale = Math.max(this.scale, scale);
    this.hovered = i;
    this.draw();
  }

  draw() {
    if (this._pending) return;
    this._pending = true;
    requestAnimationFrame(() => { this._pending = false; this.render(); });
  }

  render() {
    const started = performance.now();
    const { width: w, height: h, pixels } = this;
    pixels.fill(0xfffafaf8); // the page's panel background, ABGR
    // Bigger squares for small maps and when zoomed in; 2 px keeps 65k points apart.
    const base = this.n < 2000 ? 4 : this.n < 20000 ? 3 : 2;
    const zoom = this.scale / this.fitScale;
    const size = Math.min(8, base + (zoom > 8 ? 2 : zoom > 3 ? 1 : 0)) * Math.round(this.ratio);
    const half = size >> 1;
    const sx = this.scale, ox = w / 2 - this.cx * sx, oy = h / 2 + this.cy * sx;
    const xs = this.x, ys = this.y, colours = this.colours;
    for (let i = 0; i < this.n; i++) {
      const px = (xs[i] * sx + ox) | 0, py = (oy - ys[i] * sx) | 0;
      if (px < half || py < half || px >= w - size || py >= h - size) continue;
      const colour = colours[i];
      let row = (py - half) * w + px - half;
      for (let dy = 0; dy < size; dy++, row += w) {
        for (let dx = 0; dx < size; dx++) pixels[row + dx] = colour;
      }
    }
    this.ctx.putImageData(this.image, 0, 0);
    this._overlay();
    this.frames++;
    this.lastFrameMs = performance.now() - started;
    if (this.frames === 1) performance.mark("feature-map-painted");
  }

  _ring(i, radius, stroke, fill) {
    const [px, py] = this.toScreen(i);
    const ctx = this.ctx;
    ctx.beginPath();
    ctx.arc(px, py, radius * this.ratio, 0, Math.PI * 2);
    if (fill) { ctx.fillStyle = fill; ctx.fill(); }
    ctx.lineWidth = 1.5 * this.ratio; ctx.strokeStyle = stroke; ctx.stroke();
  }

  _overlay() {
    for (const i of this.selection) this._ring(i, 3.5, "#2563eb", "rgba(37, 99, 235, 0.35)");
    for (const i of this.highlight) this._ring(i, 4, "#111", "rgba(234, 88, 12, 0.9)");
    if (this.hovered >= 0) this._ring(this.hovered, 7, "#111");
    const ctx = this.ctx, drag = this._drag;
    if (!drag || this.mode === "pan") return;
    ctx.lineWidth = 1.5 * this.ratio; ctx.strokeStyle = "#2563eb"; ctx.fillStyle = "rgba(37, 99, 235, 0.08)";
    ctx.beginPath();
    if (this.mode === "box") {
      const [a, b] = [drag.path[0], drag.path[drag.path.length - 1]];
      ctx.rect(a[0], a[1], b[0] - a[0], b[1] - a[1]);
    } else {
      drag.path.forEach(([px, py], k) => (k ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
      ctx.closePath();
    }
    ctx.fill(); ctx.stroke();
  }

  // The point nearest to a canvas position (device pixels), or -1 beyond HIT_RADIUS.
  pick(px, py) {
    const [dx, dy] = this.toData(px, py);
    const r = HIT_RADIUS * this.ratio / this.scale;
    const { x0, y0 } = this.box;
    const cx0 = Math.max(0, Math.floor((dx - r - x0) / this.cellW));
    const cx1 = Math.min(GRID - 1, Math.floor((dx + r - x0) / this.cellW));
    const cy0 = Math.max(0, Math.floor((dy - r - y0) / this.cellH));
    const cy1 = Math.min(GRID - 1, Math.floor((dy + r - y0) / this.cellH));
    let best = -1, bestD = r * r;
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        const c = cy * GRID + cx;
        for (let k = this.cellStart[c]; k < this.cellStart[c + 1]; k++) {
          const i = this.cellOrder[k];
          const d = (this.x[i] - dx) ** 2 + (this.y[i] - dy) ** 2;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  // Points inside a screen rectangle or polygon (device pixels).
  _inside(path) {
    const xs = path.map(p => p[0]), ys = path.map(p => p[1]);
    const left = Math.min(...xs), right = Math.max(...xs), top = Math.min(...ys), bottom = Math.max(...ys);
    const polygon = this.mode === "lasso" && path.length > 2;
    const found = [];
    for (let i = 0; i < this.n; i++) {
      const [px, py] = this.toScreen(i);
      if (px < left || px > right || py < top || py > bottom) continue;
      if (!polygon || insidePolygon(px, py, path)) found.push(i);
    }
    return found;
  }

  _position(event) {
    const rect = this.canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) * this.ratio, (event.clientY - rect.top) * this.ratio];
  }

  _listen() {
    const canvas = this.canvas;
    canvas.addEventListener("pointerdown", event => {
      canvas.setPointerCapture(event.pointerId);
      const at = this._position(event);
      this._drag = { path: [at], start: at, moved: false, last: [event.clientX, event.clientY] };
    });
    canvas.addEventListener("pointermove", event => {
      const drag = this._drag;
      if (!drag) {
        const i = this.pick(...this._position(event));
        if (i !== this.hovered) {
          this.hovered = i; this.draw();
        }
        this.handlers.onHover?.(i, event);
        return;
      }
      const at = this._position(event);
      drag.moved ||= Math.hypot(at[0] - drag.start[0], at[1] - drag.start[1]) > 4 * this.ratio;
      if (this.mode === "pan") {
        this.panBy(event.clientX - drag.last[0], event.clientY - drag.last[1]);
        drag.last = [event.clientX, event.clientY];
      } else {
        drag.path.push(at); this.draw();
      }
    });
    canvas.addEventListener("pointerup", event => {
      const drag = this._drag;
      this._drag = null;
      if (!drag) return;
      if (!drag.moved) {
        const i = this.pick(...this._position(event));
        if (i >= 0) this.handlers.onClick?.(i, event);
      } else if (this.mode !== "pan") {
        this.handlers.onSelect?.(this._inside(drag.path));
      }
      this.draw();
    });
    canvas.addEventListener("pointerleave", () => {
      if (this.hovered >= 0 && !this._drag) { this.hovered = -1; this.draw(); }
      this.handlers.onHover?.(-1);
    });
    canvas.addEventListener("wheel", event => {
      event.preventDefault();
      this.zoomAt(...this._position(event), Math.exp(-event.deltaY * 0.0015));
    }, { passive: false });
  }
}

function insidePolygon(px, py, path) {
  let inside = false;
  for (let a = 0, b = path.length - 1; a < path.length; b = a++) {
    const [xa, ya] = path[a], [xb, yb] = path[b];
    if ((ya > py) !== (yb > py) && px < ((xb - xa) * (py - ya)) / (yb - ya) + xa) inside = !inside;
  }
  return inside;
}

// Colours as the canvas stores them (little-endian RGBA = 0xAABBGGRR).
export function abgr(r, g, b) {
  return (0xff << 24 | b << 16 | g << 8 | r) >>> 0;
}

// A perceptual ramp (viridis at 6 stops) for densities, and a palette for clusters.
const RAMP = [[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]];
export function ramp(t) {
  const u = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
  const k = Math.min(RAMP.length - 2, Math.floor(u)), f = u - k;
  const [a, b] = [RAMP[k], RAMP[k + 1]];
  return [0, 1, 2].map(c => Math.round(a[c] + (b[c] - a[c]) * f));
}
export const PALETTE = [
  [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
  [240, 50, 230], [210, 245, 60], [0, 128, 128], [170, 110, 40], [128, 0, 0], [0, 0, 128],
  [128, 128, 0], [255, 225, 25], [220, 190, 255], [170, 255, 195],
];

// The source page (templates/source.html): the feature map, jump-to, search within the
// source, features that fire on a text, and adding a selection to a list.
import { FeatureMap, PALETTE, abgr, ramp } from "/static/feature-map.js";

const page = document.getElementById("source-page");
const modelId = page.dataset.model, sourceId = page.dataset.source;
const dSae = Number(page.dataset.dSae);
const featureUrl = index => `/${encodeURIComponent(modelId)}/${encodeURIComponent(sourceId)}/${index}`;
const $ = id => document.getElementById(id);

const mapUrl = `/api/umap/${encodeURIComponent(modelId)}/${encodeURIComponent(sourceId)}`;

let map = null;
let points = null; // columns of typed arrays, one entry per point; descriptions come later
let pointOf = new Map(); // feature index -> point number on the map
let selected = new Set(); // point numbers

// --- the map ---------------------------------------------------------------------------

const LOW = -6, HIGH = -0.5; // log10 density shown from one in a million to about a third

function densityColours() {
  const out = new Uint32Array(points.count);
  const dead = abgr(200, 200, 200);
  points.logDensity.forEach((v, i) => {
    out[i] = Number.isNaN(v) ? dead : abgr(...ramp((v - LOW) / (HIGH - LOW)));
  });
  return out;
}

function clusterColours() {
  const out = new Uint32Array(points.count);
  const none = abgr(215, 215, 215);
  points.cluster.forEach((c, i) => { out[i] = c < 0 ? none : abgr(...PALETTE[c % PALETTE.length]); });
  return out;
}

// Each cluster's label: the words its features' explanations use most, relative to the map.
const STOP = new Set("the and for with that this from are was were its into when which word words token tokens text mentions mention related about".split(" "));
function clusterLabels() {
  const total = new Map(), byCluster = new Map(), sizes = new Map();
  points.description.forEach((text, i) => {
    const c = points.cluster[i];
    sizes.set(c, (sizes.get(c) || 0) + 1);
    if (c < 0 || !text) return;
    const counts = byCluster.get(c) || new Map();
    byCluster.set(c, counts);
    for (const w of new Set(text.toLowerCase().match(/[a-z]{3,}/g) || [])) {
      if (STOP.has(w)) continue;
      counts.set(w, (counts.get(w) || 0) + 1);
      total.set(w, (total.get(w) || 0) + 1);
    }
  });
  const labels = new Map();
  for (const [c, counts] of byCluster) {
    const scored = [...counts].filter(([, n]) => n > 1)
      .map(([w, n]) => [w, n * Math.log(points.count / total.get(w))])
      .sort((a, b) => b[1] - a[1]).slice(0, 3).map(([w]) => w);
    labels.set(c, scored.join(", "));
  }
  return { labels, sizes };
}

function legend(mode) {
  const box = $("map-legend");
  box.textContent = "";
  if (mode === "density") {
    const bar = document.createElement("span");
    bar.className = "ramp";
    bar.style.background = `linear-gradient(to right, ${[0, 0.2, 0.4, 0.6, 0.8, 1].map(t => `rgb(${ramp(t)})`).join(",")})`;
    box.append("density 1e-6 ", bar, " 0.3 · grey: never fired");
    return;
  }
  const { labels, sizes } = clusterLabels();
  [...sizes].filter(([c]) => c >= 0).sort((a, b) => b[1] - a[1]).slice(0, 12).forEach(([c, size]) => {
    const item = document.createElement("span");
    const [r, g, b] = PALETTE[c % PALETTE.length];
    item.innerHTML = `<i style="background: rgb(${r},${g},${b})"></i>`;
    item.append(`${labels.get(c) || "cluster " + c} (${size})`);
    box.append(item);
  });
}

function colourBy(mode) {
  map.setColours(mode === "cluster" ? clusterColours() : densityColours());
  legend(mode);
}

let hovering = null; // [point, event] under the cursor, to fill in once explanations arrive

function tooltip(i, event) {
  const tip = $("map-tooltip");
  hovering = i < 0 || !event ? null : [i, event];
  if (!hovering) { tip.hidden = true; return; }
  const density = Number.isNaN(points.logDensity[i]) ? "never fired" : `density ${Math.pow(10, points.logDensity[i]).toExponential(1)}`;
  const text = points.explained ? points.description[i] || "no explanation" : "loading explanation…";
  tip.innerHTML = `<b>#${points.index[i]}</b> <span class="muted">${density}</span><div>${Interpedia.escape(text)}</div>`;
  const rect = map.canvas.getBoundingClientRect();
  tip.style.left = `${event.clientX - rect.left + 14}px`;
  tip.style.top = `${event.clientY - rect.top + 14}px`;
  tip.hidden = false;
}

function showSelection() {
  $("selection-count").textContent = selected.size;
  const list = $("selection-list");
  list.textContent = "";
  [...selected].slice(0, 200).forEach(i => {
    const row = document.createElement("div");
    row.className = "result";
    row.innerHTML = `<a href="${featureUrl(points.index[i])}">#${points.index[i]}</a> ${Interpedia.escape(points.description[i] || "")}`;
    list.append(row);
  });
  if (selected.size > 200) list.append(`… and ${selected.size - 200} more`);
  map.setSelection(selected);
}

// The coordinates answer: for n points, n little-endian entries of each column in turn
// (index int32, x, y float32, cluster int32, log10 density float32, NaN: never fired).
function unpack(buffer) {
  const n = buffer.byteLength / 20;
  return {
    count: n,
    index: new Int32Array(buffer, 0, n),
    x: new Float32Array(buffer, 4 * n, n),
    y: new Float32Array(buffer, 8 * n, n),
    cluster: new Int32Array(buffer, 12 * n, n),
    logDensity: new Float32Array(buffer, 16 * n, n),
    description: new Array(n).fill(null),
    explained: false,
  };
}

// The explanations (the larger part of the map's data) after the first paint: then
// whatever shows them is refreshed (cluster labels, the highlight, the tooltip, the selection).
async function loadExplanations() {
  const response = await fetch(`${mapUrl}/explanations`, { credentials: "same-origin" });
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) { $("map-status").textContent = body.detail || `HTTP ${response.status}`; return; }
  body.index.forEach((index, k) => {
    const i = pointOf.get(index);
    if (i !== undefined) points.description[i] = body.description[k];
  });
  points.explained = true;
  legend($("map-colour").value);
  if ($("map-filter").value.trim()) $("map-filter").dispatchEvent(new Event("input"));
  if (hovering) tooltip(...hovering);
  if (selected.size) showSelection();
  map.canvas.dataset.explained = "true"; // for the browser tests
}

async function loadMap() {
  const canvas = $("feature-map");
  if (!canvas) return;
  const status = $("map-status");
  // A plain GET (no key header), so the page's <link rel="preload"> of it is reused.
  const response = await fetch(`${mapUrl}/coordinates`, { credentials: "same-origin", mode: "cors" });
  if (!response.ok) {
    const body = await response.json().catch(() => ({ detail: response.statusText }));
    status.textContent = body.detail || `HTTP ${response.status}`;
    return;
  }
  points = unpack(await response.arrayBuffer());
  points.index.forEach((index, i) => pointOf.set(index, i));
  map = new FeatureMap(canvas, points, {
    onHover: tooltip,
    onClick: i => { window.location.href = featureUrl(points.index[i]); },
    onSelect: found => {
      found.forEach(i => selected.add(i));
      showSelection();
    },
  });
  window.featureMap = map; // for the browser tests and the bench
  colourBy($("map-colour").value);
  status.textContent = `${points.count.toLocaleString()} features · drag to pan, scroll to zoom, click a point to open it`;
  $("map-colour").addEventListener("change", e => colourBy(e.target.value));
  document.querySelectorAll("#map-modes button").forEach(button => button.addEventListener("click", () => {
    document.querySelectorAll("#map-modes button").forEach(b => b.classList.toggle("active", b === button));
    map.setMode(button.dataset.mode);
  }));
  $("map-reset").addEventListener("click", () => map.reset());
  // Typing highlights every feature whose explanation contains the text.
  $("map-filter").addEventListener("input", e => {
    const needle = e.target.value.trim().toLowerCase();
    const hits = new Set();
    if (needle) points.description.forEach((d, i) => { if (d && d.toLowerCase().includes(needle)) hits.add(i); });
    map.setHighlight(hits);
    status.textContent = !needle ? "" : points.explained
      ? `${hits.size.toLocaleString()} features match “${e.target.value.trim()}”` : "explanations still loading…";
  });
  loadExplanations();
}

function highlightFeatures(indices) {
  if (!map) return;
  map.setHighlight(new Set(indices.map(i => pointOf.get(Number(i))).filter(i => i !== undefined)));
}

// --- jump to, search in this source --------------------------------------------------------

$("jump-form").addEventListener("submit", e => {
  e.preventDefault();
  const index = Number($("jump-index").value);
  if (!Number.isInteger(index) || index < 0 || index >= dSae) {
    $("jump-error").textContent = `an index from 0 to ${dSae - 1}`;
    return;
  }
  window.location.href = featureUrl(index);
});

function resultRow(index, text, extra) {
  const row = document.createElement("div");
  row.className = "result";
  row.innerHTML = `<a href="${featureUrl(index)}">#${index}</a> ${Interpedia.escape(text || "no explanation")}` +
    (extra ? ` <span class="muted">${extra}</span>` : "");
  row.addEventListener("mouseenter", () => { const i = pointOf.get(Number(index)); if (map && i !== undefined) map.focus(i); });
  return row;
}

$("search-form").addEventListener("submit", async e => {
  e.preventDefault();
  const query = $("search-query").value.trim();
  const out = $("search-results");
  if (!query) return;
  out.innerHTML = '<p class="muted">Searching…</p>';
  try {
    const r = await Interpedia.api("/explanation/search", {
      query, modelId, layers: [sourceId], mode: $("search-mode").value, limit: 50,
    });
    out.textContent = "";
    if (!r.results.length) out.innerHTML = '<p class="muted">No explanation matches.</p>';
    r.results.forEach(hit => out.append(resultRow(hit.index, hit.description)));
    highlightFeatures(r.results.map(hit => hit.index));
  } catch (err) { out.innerHTML = `<p class="error">${Interpedia.escape(err.message)}</p>`; }
});

// --- features that fire on a text: a token strip, each token's top features ----------------

let byToken = null;

function showToken(k) {
  document.querySelectorAll("#token-strip .strip-token").forEach((el, j) => el.classList.toggle("active", j === k));
  const out = $("token-features");
  out.textContent = "";
  const result = byToken.results[k];
  const title = document.createElement("h3");
  title.textContent = `Top features at “${result.token}” (position ${result.position})`;
  out.append(title);
  if (!result.topFeatures.length) out.append("No feature below the density threshold fires here.");
  result.topFeatures.forEach(f => {
    const density = f.feature?.frac_nonzero == null ? "density unknown" : `density ${(f.feature.frac_nonzero * 100).toPrecision(2)}%`;
    const explanation = f.feature?.description;
    out.append(resultRow(f.featureIndex, explanation, `${f.activationValue.toFixed(2)} · ${density}`));
  });
  highlightFeatures(result.topFeatures.map(f => f.featureIndex));
}

$("text-form").addEventListener("submit", async e => {
  e.preventDefault();
  const text = $("text-input").value;
  const strip = $("token-strip"), out = $("token-features");
  if (!text.trim()) return;
  strip.textContent = ""; out.innerHTML = '<p class="muted">Running…</p>';
  try {
    byToken = await Interpedia.api("/search-topk-by-token", {
      modelId, source: sourceId, text, numResults: 10,
      densityThreshold: Number($("density-threshold").value || 0),
    });
    out.textContent = "";
    byToken.results.forEach((result, k) => {
      const token = document.createElement("button");
      token.type = "button";
      token.className = "strip-token";
      token.textContent = result.token;
      const top = result.topFeatures[0];
      token.title = top ? `#${top.featureIndex}: ${top.feature?.description || ""}` : "";
      token.addEventListener("click", () => showToken(k));
      strip.append(token);
    });
    if (byToken.results.length) showToken(0);
  } catch (err) { out.innerHTML = `<p class="error">${Interpedia.escape(err.message)}</p>`; }
});

// --- the selection into a list (lists belong to an API key) ---------------------------------

if (Interpedia.signedIn() && $("list-select")) {
  Interpedia.api("/list/list", {}).then(lists => lists.forEach(l => $("list-select").add(new Option(l.name, l.id)))).catch(() => {});
}
$("clear-selection")?.addEventListener("click", () => { selected = new Set(); showSelection(); });
$("add-selection")?.addEventListener("click", async () => {
  const error = $("selection-error"), result = $("selection-result");
  error.textContent = ""; result.textContent = "";
  if (!selected.size) { error.textContent = "select features on the map first (Box or Lasso)"; return; }
  try {
    let listId = $("list-select").value;
    if (!listId) {
      const name = $("new-list-name").value.trim() || `${sourceId} selection`;
      listId = (await Interpedia.api("/list/new", { name })).id;
      $("list-select").add(new Option(name, listId)); $("list-select").value = listId;
    }
    const features = [...selected].map(i => ({ modelId, layer: sourceId, index: points.index[i] }));
    for (let k = 0; k < features.length; k += 500) {
      await Interpedia.api("/list/add-features", { listId, featuresToAdd: features.slice(k, k + 500) });
    }
    const link = document.createElement("a");
    link.href = "/lists/" + listId;
    link.textContent = `Added ${features.length} to ${$("list-select").selectedOptions[0].text} →`;
    result.replaceChildren(link);
  } catch (err) { error.textContent = err.message; }
});

loadMap();

// The attribution-graph page: draws a graph (Neuronpedia's graph JSON) on a canvas, by layer
// (bottom to top) and prompt token (left to right), and drives it through the API: generate a
// graph as a job and follow it, show a node's feature, pin and group nodes, prune, save and
// share a subgraph, steer pinned features; what is being made for the model is followed live
// (graph-activity.js). No build step, nothing loaded from elsewhere.

import { followActivity } from "./graph-activity.js";

const config = JSON.parse(document.getElementById("graph-config").textContent);
const $ = id => document.getElementById(id);
// app.js (a classic script) defines `Interpedia` in the global scope modules share.
const api = (...args) => Interpedia.api(...args);
const escape = text => Interpedia.escape(String(text));

const COLORS = {
  feature: "#ea580c", error: "#9ca3af", embedding: "#15803d", logit: "#2563eb",
  positive: "234, 88, 12", negative: "37, 99, 235", pin: "#111111",
};
const GROUP_COLORS = ["#7c3aed", "#db2777", "#0891b2", "#65a30d", "#ca8a04", "#dc2626"];
const TRANSCODER_TYPES = new Set(["cross layer transcoder", "transcoder"]);

const state = {
  slug: config.slug, graph: null, nodes: [], byId: new Map(), links: [], maxWeight: 1,
  pinned: [], checked: new Set(), supernodes: [], hovered: null, selected: null,
  prune: 0.8, linkMin: 0.05, features: new Map(), job: null,
};

// --- reading nodes ---------------------------------------------------------------------

function featureOf(node) {
  // Transcoder nodes are `{layer}_{index}_{ctx_idx}`; the source is `{layer}-{set}`.
  if (!TRANSCODER_TYPES.has(node.feature_type)) return null;
  const [layer, index] = node.node_id.split("_").map(Number);
  const info = state.graph.metadata.info || {};
  const set = String(info.neuronpedia_source_set || info.transcoder_set || "").split("/").pop();
  return { layer, index, source: `${layer}-${set}` };
}

function kindOf(node) {
  if (node.feature_type === "embedding") return "embedding";
  if (node.feature_type === "logit") return "logit";
  if (TRANSCODER_TYPES.has(node.feature_type)) return "feature";
  return "error";
}

function describe(node) {
  const token = state.graph.metadata.prompt_tokens[node.ctx_idx] ?? "";
  const kind = kindOf(node);
  if (kind === "feature") {
    const f = featureOf(node);
    return `L${f.layer} #${f.index} at “${token}”`;
  }
  if (kind === "logit") return node.clerp || `logit at “${token}”`;
  if (kind === "embedding") return `token “${token}”`;
  return `error, layer ${node.layer} at “${token}”`;
}

function visible(node) {
  const kind = kindOf(node);
  if (kind === "embedding" || kind === "logit") return true;
  if (state.pinned.includes(node.node_id)) return true;
  return node.influence == null || node.influence <= state.prune;
}

// --- layout and drawing ----------------------------------------------------------------

const canvas = $("graph-canvas");
const context = canvas.getContext("2d");
const MARGIN = { left: 46, right: 16, top: 16, bottom: 34 };

function rowOf(node) {
  return node.layer === "E" ? 0 : Number(node.layer) + 1;
}

function layout() {
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  const columns = state.graph.metadata.prompt_tokens.length;
  const rows = Math.max(...state.nodes.map(rowOf)) + 1;
  const columnWidth = (width - MARGIN.left - MARGIN.right) / columns;
  const rowHeight = (height - MARGIN.top - MARGIN.bottom) / Math.max(rows - 1, 1);
  const cells = new Map();
  for (const node of state.nodes) {
    const key = `${rowOf(node)}:${node.ctx_idx}`;
    if (!cells.has(key)) cells.set(key, []);
    cells.get(key).push(node);
  }
  for (const members of cells.values()) {
    members.sort((a, b) => (a.influence ?? 0) - (b.influence ?? 0));
    members.forEach((node, k) => {
      node.x = MARGIN.left + node.ctx_idx * columnWidth + ((k + 1) * columnWidth) / (members.length + 1);
      node.y = height - MARGIN.bottom - rowOf(node) * rowHeight;
    });
  }
  state.geometry = { columnWidth, rowHeight, rows, width, height };
}

function resize() {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.parentElement.clientWidth - 4;
  canvas.style.width = `${width}px`;
  canvas.style.height = "560px";
  canvas.width = width * ratio;
  canvas.height = 560 * ratio;
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  if (state.graph) { layout(); draw(); }
}

function groupOf(nodeId) {
  return state.supernodes.findIndex(group => group.slice(1).includes(nodeId));
}

function draw() {
  const { width, height, columnWidth, rowHeight, rows } = state.geometry;
  context.clearRect(0, 0, width, height);
  context.font = "11px system-ui, sans-serif";
  context.fillStyle = "#6b6b70";
  state.graph.metadata.prompt_tokens.forEach((token, i) => {
    const x = MARGIN.left + i * columnWidth;
    context.fillStyle = "#f3f3f0";
    if (i % 2) context.fillRect(x, MARGIN.top - 8, columnWidth, height - MARGIN.bottom - MARGIN.top + 8);
    context.fillStyle = "#6b6b70";
    context.textAlign = "center";
    context.fillText(token.replace(/\n/g, "↵").slice(0, 14), x + columnWidth / 2, height - 12);
  });
  context.textAlign = "right";
  for (let row = 0; row < rows; row += 5) {
    context.fillText(row === 0 ? "emb" : `L${row - 1}`, MARGIN.left - 6, height - MARGIN.bottom - row * rowHeight + 4);
  }
  const focus = state.selected || state.hovered;
  const threshold = state.linkMin * state.maxWeight;
  for (const link of state.links) {
    const source = state.byId.get(link.source);
    const target = state.byId.get(link.target);
    if (!visible(source) || !visible(target)) continue;
    const touches = focus && (link.source === focus.node_id || link.target === focus.node_id);
    if (Math.abs(link.weight) < threshold && !touches) continue;
    const strength = Math.min(1, Math.abs(link.weight) / state.maxWeight);
    const alpha = focus ? (touches ? 0.25 + 0.75 * strength : 0.04) : 0.08 + 0.6 * strength;
    context.strokeStyle = `rgba(${link.weight >= 0 ? COLORS.positive : COLORS.negative}, ${alpha})`;
    context.lineWidth = touches ? 0.8 + 3 * strength : 0.5 + 2 * strength;
    context.beginPath();
    context.moveTo(source.x, source.y);
    context.lineTo(target.x, target.y);
    context.stroke();
  }
  for (const node of state.nodes) {
    if (!visible(node)) continue;
    const kind = kindOf(node);
    const radius = kind === "feature" ? 4.5 : 4;
    context.fillStyle = COLORS[kind];
    context.beginPath();
    if (kind === "feature") context.arc(node.x, node.y, radius, 0, Math.PI * 2);
    else context.rect(node.x - radius, node.y - radius, radius * 2, radius * 2);
    context.fill();
    const group = groupOf(node.node_id);
    if (group >= 0) {
      context.strokeStyle = GROUP_COLORS[group % GROUP_COLORS.length];
      context.lineWidth = 3;
      context.beginPath();
      context.arc(node.x, node.y, radius + 4, 0, Math.PI * 2);
      context.stroke();
    }
    if (state.pinned.includes(node.node_id) || node === focus) {
      context.strokeStyle = COLORS.pin;
      context.lineWidth = node === focus ? 2.5 : 1.5;
      context.beginPath();
      context.arc(node.x, node.y, radius + 2, 0, Math.PI * 2);
      context.stroke();
    }
  }
  context.textAlign = "left";
  state.supernodes.forEach((group, i) => {
    const first = state.byId.get(group[1]);
    if (!first) return;
    context.fillStyle = GROUP_COLORS[i % GROUP_COLORS.length];
    context.font = "bold 12px system-ui, sans-serif";
    context.fillText(group[0], first.x + 10, first.y - 8);
  });
}

function nodeAt(x, y) {
  let best = null;
  let bestDistance = 9 * 9;
  for (const node of state.nodes) {
    if (!visible(node)) continue;
    const d = (node.x - x) ** 2 + (node.y - y) ** 2;
    if (d < bestDistance) { best = node; bestDistance = d; }
  }
  return best;
}

// --- node details ----------------------------------------------------------------------

async function featureDetails(node) {
  const f = featureOf(node);
  const key = `${f.source}/${f.index}`;
  if (!state.features.has(key)) {
    state.features.set(key, api(`/feature/${config.modelId}/${f.source}/${f.index}`).catch(() => null));
  }
  return state.features.get(key);
}

function showNode(node, details) {
  const panel = $("node-detail");
  const lines = [`<div class="node-title"><b>${escape(describe(node))}</b></div>`];
  if (node.activation != null) lines.push(`<div>activation ${node.activation.toFixed(3)}</div>`);
  if (node.influence != null) lines.push(`<div>influence ${node.influence.toFixed(3)}</div>`);
  const f = featureOf(node);
  if (f) {
    const href = `/${config.modelId}/${f.source}/${f.index}`;
    if (details) {
      const explanation = details.explanations?.[0]?.description;
      lines.push(`<p class="explanation">${escape(explanation || "no explanation yet")}</p>`);
      for (const a of (details.activations || []).slice(0, 3)) {
        const peak = a.maxValueTokenIndex || 0;
        const window = a.tokens.slice(Math.max(0, peak - 8), peak + 4).join("");
        lines.push(`<div class="tokens">${escape(window)} <span class="muted">${a.maxValue.toFixed(2)}</span></div>`);
      }
    } else if (details === null) {
      lines.push(`<p class="muted">No dashboard for this feature yet.</p>`);
    }
    lines.push(`<a class="feature-link" href="${href}">Open feature ${escape(f.source)}/${f.index}</a>`);
  }
  const pinned = state.pinned.includes(node.node_id);
  lines.push(`<div class="row"><button class="secondary" type="button" id="node-pin">${pinned ? "Unpin" : "Pin"}</button></div>`);
  panel.className = "";
  panel.innerHTML = lines.join("");
  $("node-pin").addEventListener("click", () => togglePin(node));
}

async function select(node) {
  state.selected = node;
  draw();
  if (!node) return;
  showNode(node, undefined);
  if (featureOf(node)) {
    const details = await featureDetails(node);
    if (state.selected === node) showNode(node, details);
  }
}

const tooltip = $("graph-tooltip");

canvas.addEventListener("mousemove", event => {
  if (!state.graph) return;
  const box = canvas.getBoundingClientRect();
  const node = nodeAt(event.clientX - box.left, event.clientY - box.top);
  if (node !== state.hovered) {
    state.hovered = node;
    draw();
    if (node && !state.selected) showNode(node, undefined);
  }
  tooltip.hidden = !node;
  if (node) {
    tooltip.textContent = describe(node) + (node.activation != null ? ` · ${node.activation.toFixed(2)}` : "");
    tooltip.style.left = `${event.clientX - box.left + 14}px`;
    tooltip.style.top = `${event.clientY - box.top + 10}px`;
  }
});
canvas.addEventListener("mouseleave", () => { state.hovered = null; tooltip.hidden = true; if (state.graph) draw(); });
canvas.addEventListener("click", event => {
  const box = canvas.getBoundingClientRect();
  const node = nodeAt(event.clientX - box.left, event.clientY - box.top);
  if (node && event.shiftKey) togglePin(node);
  else select(node);
});

// --- pins, supernodes, subgraphs -------------------------------------------------------

function togglePin(node) {
  const at = state.pinned.indexOf(node.node_id);
  if (at >= 0) state.pinned.splice(at, 1);
  else state.pinned.push(node.node_id);
  renderPinned();
  draw();
  if (state.selected === node) select(node);
}

function renderPinned() {
  const list = $("pinned");
  if (!state.pinned.length) {
    list.className = "muted";
    list.textContent = "Shift-click nodes to pin them.";
  } else {
    list.className = "";
    list.innerHTML = state.pinned.map(id => {
      const node = state.byId.get(id);
      const label = node ? describe(node) : id;
      return `<div class="row pinned-node"><input type="checkbox" class="shrink" data-id="${escape(id)}" ${state.checked.has(id) ? "checked" : ""} aria-label="check ${escape(label)}"><span>${escape(label)}</span><button class="secondary shrink" type="button" data-unpin="${escape(id)}">✕</button></div>`;
    }).join("");
    list.querySelectorAll("input[type=checkbox]").forEach(box => box.addEventListener("change", () => {
      if (box.checked) state.checked.add(box.dataset.id); else state.checked.delete(box.dataset.id);
    }));
    list.querySelectorAll("[data-unpin]").forEach(button => button.addEventListener("click", () => {
      const node = state.byId.get(button.dataset.unpin);
      if (node) togglePin(node);
    }));
  }
  $("supernodes").innerHTML = state.supernodes.map((group, i) =>
    `<div class="supernode"><span class="pill" style="background:${GROUP_COLORS[i % GROUP_COLORS.length]};color:#fff">${escape(group[0])}</span> ${group.length - 1} nodes <button class="secondary" type="button" data-ungroup="${i}">ungroup</button></div>`).join("");
  $("supernodes").querySelectorAll("[data-ungroup]").forEach(button => button.addEventListener("click", () => {
    state.supernodes.splice(Number(button.dataset.ungroup), 1);
    renderPinned();
    draw();
  }));
  renderSteerRows();
}

$("group-make").addEventListener("click", () => {
  const label = $("group-label").value.trim() || `group ${state.supernodes.length + 1}`;
  const members = state.pinned.filter(id => state.checked.has(id));
  if (!members.length) { $("group-label").placeholder = "check pinned nodes first"; return; }
  state.supernodes = state.supernodes.map(group => [group[0], ...group.slice(1).filter(id => !members.includes(id))])
    .filter(group => group.length > 1);
  state.supernodes.push([label, ...members]);
  state.checked.clear();
  $("group-label").value = "";
  renderPinned();
  draw();
});

$("subgraph-save").addEventListener("click", async () => {
  const share = $("share-url");
  try {
    const saved = await api("/graph/subgraph/save", {
      modelId: config.modelId, slug: state.slug, displayName: $("subgraph-name").value || null,
      pinnedIds: state.pinned, supernodes: state.supernodes, clerps: [],
      pruningThreshold: state.prune, densityThreshold: null,
    });
    share.value = `${location.origin}/${config.modelId}/graph?slug=${encodeURIComponent(state.slug)}&subgraph=${saved.subgraphId}`;
    share.select();
  } catch (error) {
    share.value = `Not saved: ${error.message}`;
  }
});

async function loadSubgraph(id) {
  const subgraph = await api(`/graph/subgraph/${id}`);
  state.pinned = subgraph.pinnedIds.filter(nodeId => state.byId.has(nodeId));
  state.supernodes = subgraph.supernodes;
  if (subgraph.pruningThreshold != null) setPrune(subgraph.pruningThreshold);
  renderPinned();
  draw();
}

// --- thresholds ------------------------------------------------------------------------

function setPrune(value) {
  state.prune = Number(value);
  $("prune").value = state.prune;
  $("prune-value").textContent = state.prune.toFixed(2);
}

$("prune").addEventListener("input", event => { setPrune(event.target.value); if (state.graph) draw(); });
$("link-min").addEventListener("input", event => {
  state.linkMin = Number(event.target.value);
  $("link-value").textContent = `${Math.round(state.linkMin * 100)}% of max`;
  if (state.graph) draw();
});

// --- loading a graph -------------------------------------------------------------------

async function loadGraph(slug) {
  $("graph-title").textContent = `Loading ${slug}…`;
  const response = await fetch(`/api/graph/${config.modelId}/${encodeURIComponent(slug)}/json`);
  if (!response.ok) { $("graph-title").textContent = `No graph ${slug}.`; return; }
  const graph = await response.json();
  Object.assign(state, {
    slug, graph, nodes: graph.nodes, links: graph.links, pinned: [], supernodes: [],
    selected: null, hovered: null, byId: new Map(graph.nodes.map(n => [n.node_id, n])),
  });
  state.checked.clear();
  state.maxWeight = Math.max(1e-9, ...graph.links.map(l => Math.abs(l.weight)));
  const info = graph.metadata.info || {};
  $("graph-title").innerHTML = `<b>${escape(graph.metadata.slug)}</b> · ${escape(graph.metadata.prompt)} <span class="muted">· ${graph.nodes.length} nodes, ${graph.links.length} links · ${escape(info.transcoder_set || "")}</span>`;
  history.replaceState(null, "", `/${config.modelId}/graph?slug=${encodeURIComponent(slug)}`);
  layout();
  draw();
  renderPinned();
  canvas.dataset.loaded = slug;
}

function addGraphOption(slug, selected = false) {
  const pick = $("graph-pick");
  const option = [...pick.options].find(o => o.value === slug) || new Option(slug, slug);
  if (!option.parentElement) pick.add(option, 1);
  option.selected = selected;
}

function addSet(name) {
  const select = $("graph-set");
  if ([...select.options].some(o => o.value === name)) return;
  select.add(new Option(name, name));
  $("no-sets")?.remove();
  if (state.job == null) $("graph-generate").disabled = false;
}

$("graph-pick").addEventListener("change", event => { if (event.target.value) loadGraph(event.target.value); });

// --- generating ------------------------------------------------------------------------

function chatRow(role, content) {
  const row = document.createElement("div");
  row.className = "row chat-row";
  row.innerHTML = `<select class="shrink" aria-label="role"><option>system</option><option>user</option><option>assistant</option></select><input type="text" aria-label="content">`;
  row.querySelector("select").value = role;
  row.querySelector("input").value = content;
  $("chat-rows").appendChild(row);
}

$("chat-mode").addEventListener("change", event => {
  const chat = event.target.checked;
  $("graph-prompt").hidden = chat;
  $("chat-rows").hidden = !chat;
  $("chat-add-row").hidden = !chat;
  if (chat && !$("chat-rows").children.length) {
    chatRow("user", "What is the capital of France?");
    chatRow("assistant", "");
  }
});
$("chat-add").addEventListener("click", () => chatRow("user", ""));

function generateBody() {
  const body = {
    modelId: config.modelId, sourceSetName: $("graph-set").value || null,
    slug: $("graph-slug").value.trim() || null,
    maxFeatureNodes: Number($("graph-nodes").value),
    nodeThreshold: Number($("graph-node-threshold").value),
    edgeThreshold: Number($("graph-edge-threshold").value),
  };
  if ($("chat-mode").checked) {
    body.messages = [...$("chat-rows").children].map(row => ({
      role: row.querySelector("select").value, content: row.querySelector("input").value,
    }));
  } else {
    body.prompt = $("graph-prompt").value;
  }
  return body;
}

async function follow(jobId) {
  const bar = $("graph-progress");
  for (;;) {
    const job = await api(`/graph/jobs/${jobId}`);
    const share = job.total ? Math.min(100, (100 * (job.done || 0)) / job.total) : 0;
    bar.firstElementChild.style.width = `${job.status === "succeeded" ? 100 : share}%`;
    $("graph-status").textContent = `${job.status}${job.message ? ": " + job.message : ""}${job.total ? ` (${job.done}/${job.total})` : ""}`;
    if (job.status === "succeeded") return job;
    if (["failed", "cancelled", "aborted"].includes(job.status)) throw new Error(`the graph ${job.status}: ${job.message}`);
    await new Promise(resolve => setTimeout(resolve, 700));
  }
}

$("graph-generate").addEventListener("click", async () => {
  const button = $("graph-generate");
  $("graph-error").textContent = "";
  button.disabled = true;
  $("graph-progress").hidden = false;
  $("graph-cancel").hidden = false;
  try {
    const job = await api("/graph/jobs", generateBody());
    state.job = job.jobId;
    const done = await follow(job.jobId);
    addGraphOption(done.slug, true);
    await loadGraph(done.slug);
  } catch (error) {
    $("graph-error").textContent = error.message;
  } finally {
    button.disabled = false;
    $("graph-cancel").hidden = true;
    state.job = null;
  }
});

$("graph-cancel").addEventListener("click", async () => {
  if (state.job != null) await api(`/graph/jobs/${state.job}`, undefined, "DELETE").catch(() => {});
});

// --- steering --------------------------------------------------------------------------

function steerable() {
  return state.pinned.map(id => state.byId.get(id)).filter(node => node && featureOf(node));
}

function renderSteerRows() {
  const rows = $("steer-rows");
  const nodes = steerable();
  if (!nodes.length) {
    rows.className = "muted";
    rows.textContent = "Pin feature nodes to steer them.";
    return;
  }
  rows.className = "";
  rows.innerHTML = nodes.map(node => `<div class="row steer-row" data-id="${escape(node.node_id)}"><span>${escape(describe(node))}</span><input type="number" class="shrink" style="width:90px" value="${Math.max(10, Math.round((node.activation || 1) * 10))}" aria-label="delta"><label class="shrink"><input type="checkbox" style="width:auto"> ablate</label></div>`).join("");
}

$("steer-run").addEventListener("click", async () => {
  const error = $("steer-error");
  error.textContent = "";
  const features = [...$("steer-rows").querySelectorAll(".steer-row")].map(row => {
    const node = state.byId.get(row.dataset.id);
    const f = featureOf(node);
    const ablate = row.querySelector("input[type=checkbox]").checked;
    return {
      layer: f.layer, index: f.index, token_active_position: node.ctx_idx,
      steer_position: node.ctx_idx, ablate, delta: ablate ? null : Number(row.querySelector("input[type=number]").value),
    };
  });
  if (!features.length) { error.textContent = "Pin a feature node first."; return; }
  const info = state.graph.metadata.info || {};
  $("steer-run").disabled = true;
  $("steer-default").textContent = "…";
  $("steer-steered").textContent = "…";
  try {
    const answer = await api("/steer-logits", {
      modelId: config.modelId, sourceSetName: info.transcoder_set || null,
      prompt: state.graph.metadata.prompt, features, nTokens: Number($("steer-tokens").value),
    });
    const prompt = state.graph.metadata.prompt;
    const show = (element, label, text) => {
      const continuation = text.startsWith(prompt) ? text.slice(prompt.length) : text;
      element.innerHTML = `<b>${label}</b> <span class="prompt">${escape(prompt)}</span>${escape(continuation)}`;
    };
    show($("steer-default"), "Default", answer.DEFAULT_GENERATION);
    show($("steer-steered"), "Steered", answer.STEERED_GENERATION);
  } catch (e) {
    error.textContent = e.message;
    $("steer-default").textContent = "";
    $("steer-steered").textContent = "";
  } finally {
    $("steer-run").disabled = false;
  }
});

// --- start -----------------------------------------------------------------------------

window.addEventListener("resize", resize);
resize();
followActivity(config.modelId, {
  trainings: $("transcoder-trainings"), jobs: $("graph-jobs-panel"),
  onRegistered: addSet, onStored: slug => addGraphOption(slug),
});
if (config.slug) {
  loadGraph(config.slug).then(() => (config.subgraph ? loadSubgraph(config.subgraph) : null))
    .catch(error => { $("graph-title").textContent = error.message; });
}

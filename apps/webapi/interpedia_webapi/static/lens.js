// The logit-lens page: streams /api/lens/prompt (NDJSON frames) and draws a layer × token
// heatmap on a canvas, one column per position as its frame arrives: each cell shows the
// layer's top token, shaded by its probability. Hover shows a cell's top-N, click keeps it.
// It also downloads the prompt's raw hook activations (/api/activation/raw) as JSON or .npy.
// No build step; app.js (a classic script) defines `Interpedia` in the global scope.

const $ = id => document.getElementById(id);
const CELL_W = 76, CELL_H = 22, GUTTER = 44, HEADER = 26;

const state = { mode: "prompt", layers: [], tokens: [], cells: [], running: false };

// "0,4,8-10" -> [0, 4, 8, 9, 10]; an unreadable part throws.
function parseLayers(text) {
  const layers = [];
  for (const part of text.split(",").map(p => p.trim()).filter(Boolean)) {
    const m = part.match(/^(\d+)(?:\s*-\s*(\d+))?$/);
    if (!m) throw new Error(`"${part}" is not a layer or a range of layers`);
    const [a, b] = [Number(m[1]), Number(m[2] ?? m[1])];
    for (let layer = Math.min(a, b); layer <= Math.max(a, b); layer++) layers.push(layer);
  }
  return layers;
}

function requestBody() {
  const body = {
    modelId: $("lens-model").value,
    topN: Number($("lens-top-n").value),
    layers: parseLayers($("lens-layers").value),
    numCompletionTokens: Number($("lens-completion").value),
    temperature: Number($("lens-temperature").value),
    filterNonWordTokens: $("lens-filter").checked,
  };
  if (state.mode === "chat") body.chat = Interpedia.parseChat($("lens-chat").value);
  else body.prompt = $("lens-prompt").value;
  const steer = $("lens-steer-tokens").value.split("\n").filter(t => t.length);
  if (steer.length) {
    body.steerTokens = steer.map(token => ({ token, type: "LOGIT_LENS" }));
    body.steerStrength = Number($("lens-steer-strength").value);
    body.steerLayers = parseLayers($("lens-steer-layers").value);
    body.steerAblate = $("lens-ablate").checked;
    body.steerGeneratedTokens = $("lens-steer-generated").checked;
    if ($("lens-swap").value) body.swapToken = { token: $("lens-swap").value, type: "LOGIT_LENS" };
  }
  return body;
}

// --- drawing -------------------------------------------------------------------------------

const canvas = $("lens-canvas");
const ctx = canvas.getContext("2d");

function resize() {
  const ratio = window.devicePixelRatio || 1;
  const width = GUTTER + Math.max(1, state.tokens.length) * CELL_W;
  const height = HEADER + Math.max(1, state.layers.length) * CELL_H + HEADER;
  canvas.width = width * ratio; canvas.height = height * ratio;
  canvas.style.width = width + "px"; canvas.style.height = height + "px";
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
}

// Rows run from the last layer (top) down to the first, above the input tokens.
const rowY = row => HEADER + (state.layers.length - 1 - row) * CELL_H;
const fit = (text, width) => {
  let shown = text.replace(/\n/g, "↵");
  while (shown.length > 1 && ctx.measureText(shown).width > width) shown = shown.slice(0, -1);
  return shown === text.replace(/\n/g, "↵") ? shown : shown.slice(0, -1) + "…";
};

function drawColumn(position) {
  const x = GUTTER + position * CELL_W;
  const cell = state.cells[position];
  ctx.font = "12px ui-monospace, monospace";
  ctx.textBaseline = "middle";
  state.layers.forEach((_, row) => {
    const y = rowY(row);
    ctx.fillStyle = "#fafaf8";
    ctx.fillRect(x, y, CELL_W - 1, CELL_H - 1);
    if (!cell) return;
    const p = cell.top_probs[row][0];
    ctx.fillStyle = `rgba(249, 115, 22, ${Math.min(1, p).toFixed(3)})`;
    ctx.fillRect(x, y, CELL_W - 1, CELL_H - 1);
    ctx.fillStyle = p > 0.6 ? "#fff" : "#111";
    ctx.fillText(fit(cell.top_tokens[row][0], CELL_W - 6), x + 3, y + CELL_H / 2);
  });
  const token = state.tokens[position];
  ctx.fillStyle = token && token.is_generated ? "#2563eb" : "#111";
  ctx.fillText(fit(token ? token.token : "", CELL_W - 6), x + 3, rowY(0) + CELL_H + HEADER / 2);
}

function draw() {
  resize();
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "11px ui-monospace, monospace";
  ctx.fillStyle = "#666";
  ctx.textBaseline = "middle";
  ctx.fillText("layer", 2, HEADER / 2);
  state.layers.forEach((layer, row) => ctx.fillText(String(layer), 6, rowY(row) + CELL_H / 2));
  state.tokens.forEach((_, position) => drawColumn(position));
  canvas.dataset.layers = String(state.layers.length);
  canvas.dataset.positions = String(state.tokens.length);
  canvas.dataset.filled = String(state.cells.filter(Boolean).length);
}

// --- reading a cell ------------------------------------------------------------------------

function cellAt(event) {
  const box = canvas.getBoundingClientRect();
  const position = Math.floor((event.clientX - box.left - GUTTER) / CELL_W);
  const fromTop = Math.floor((event.clientY - box.top - HEADER) / CELL_H);
  const row = state.layers.length - 1 - fromTop;
  if (position < 0 || row < 0 || fromTop < 0 || !state.cells[position]) return null;
  return { position, row };
}

function topList({ position, row }) {
  const cell = state.cells[position];
  const token = state.tokens[position];
  const items = cell.top_tokens[row].map((t, i) =>
    `<li><code>${Interpedia.escape(JSON.stringify(t))}</code> ${(100 * cell.top_probs[row][i]).toFixed(1)}%</li>`);
  return `<p><b>layer ${state.layers[row]}</b> · position ${position} ` +
    `<code>${Interpedia.escape(JSON.stringify(token.token))}</code></p><ol class="lens-top">${items.join("")}</ol>`;
}

const tooltip = $("lens-tooltip");
canvas.addEventListener("mousemove", event => {
  const at = cellAt(event);
  tooltip.hidden = !at;
  if (!at) return;
  tooltip.innerHTML = topList(at);
  tooltip.style.left = GUTTER + (at.position + 1) * CELL_W + 4 + "px";
  tooltip.style.top = rowY(at.row) + "px";
});
canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });
canvas.addEventListener("click", event => {
  const at = cellAt(event);
  if (at) $("lens-detail").innerHTML = topList(at);
});

// --- running -------------------------------------------------------------------------------

document.querySelectorAll(".modes button").forEach(button => button.addEventListener("click", () => {
  state.mode = button.dataset.mode;
  document.querySelectorAll(".modes button").forEach(b => b.classList.toggle("active", b === button));
  $("lens-prompt").hidden = state.mode !== "prompt";
  $("lens-chat").hidden = state.mode !== "chat";
}));

function onFrame(frame) {
  if (frame.kind === "meta") {
    state.layers = frame.layers_by_type.LOGIT_LENS;
  } else if (frame.kind === "prompt") {
    state.tokens = frame.tokens;
    draw();
  } else if (frame.kind === "token") {
    const grows = frame.position >= state.tokens.length;  // a generated token: one more column
    state.tokens[frame.position] = frame;
    state.cells[frame.position] = frame.results[0];
    if (grows) draw();
    else { drawColumn(frame.position); canvas.dataset.filled = String(state.cells.filter(Boolean).length); }
    $("lens-status").textContent = `${canvas.dataset.filled} of ${state.tokens.length} positions…`;
  } else if (frame.kind === "done") {
    $("lens-completion-text").textContent = frame.completion ? "Generated: " + frame.completion : "";
    $("lens-status").textContent = `Done: ${frame.seq_len} positions × ${state.layers.length} layers.`;
  } else if (frame.kind === "error") {
    $("lens-error").textContent = frame.error;
    $("lens-status").textContent = "Stopped.";
  }
}

$("lens-run").addEventListener("click", async () => {
  if (state.running) return;
  $("lens-error").textContent = ""; $("lens-completion-text").textContent = "";
  let body;
  try { body = requestBody(); } catch (e) { $("lens-error").textContent = e.message; return; }
  Object.assign(state, { layers: [], tokens: [], cells: [], running: true });
  draw();
  $("lens-run").disabled = true;
  $("lens-status").textContent = "Reading…";
  try {
    await Interpedia.lines("/lens/prompt", body, onFrame);
  } catch (e) {
    $("lens-error").textContent = e.message; $("lens-status").textContent = "";
  }
  state.running = false;
  $("lens-run").disabled = false;
});

// --- raw-activation export -----------------------------------------------------------------

async function download(format) {
  $("raw-error").textContent = "";
  try {
    const body = {
      modelId: $("lens-model").value, prompt: $("lens-prompt").value, format,
      layers: parseLayers($("raw-layers").value), hookPoint: $("raw-hook").value.trim(),
    };
    const response = await Interpedia.open("/activation/raw", body);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = `${body.modelId}-${body.hookPoint}.${format}`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);  // after the download has begun
  } catch (e) { $("raw-error").textContent = e.message; }
}
$("raw-json").addEventListener("click", () => download("json"));
$("raw-npy").addEventListener("click", () => download("npy"));

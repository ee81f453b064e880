// The attention view of an attention (hook_z) SAE's feature page: one head's pattern over the
// feature's top example, from /api/activation/attention (sparse, as Neuronpedia returns it),
// drawn on a canvas as a query × key grid shaded by weight. Hover names the pair.
// Beside it the feature's direct feature attribution on that example (/api/activation/new's
// dfaValues): each token shaded by what it feeds the feature at the target token (outlined)
// through attention, orange for a positive share, blue for a negative one, both scaled by the
// largest magnitude.
// No build step; app.js (a classic script) defines `Interpedia` in the global scope.

const $ = id => document.getElementById(id);
const config = JSON.parse($("attention-config").textContent);
const CELL = 16, LABEL = 90;
const canvas = $("attention-canvas");
const ctx = canvas.getContext("2d");
let shown = null;  // { tokens, weights: Map(flat index -> weight), max }

const label = text => {
  const flat = JSON.stringify(text).slice(1, -1);
  return flat.length > 11 ? flat.slice(0, 10) + "…" : flat;
};

function draw({ tokens, weights, max }) {
  const n = tokens.length;
  const ratio = window.devicePixelRatio || 1;
  const size = LABEL + n * CELL;
  canvas.width = size * ratio; canvas.height = size * ratio;
  canvas.style.width = size + "px"; canvas.style.height = size + "px";
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, size, size);
  ctx.font = "11px ui-monospace, monospace";
  ctx.fillStyle = "#fafaf8";
  ctx.fillRect(LABEL, LABEL, n * CELL, n * CELL);
  for (const [flat, w] of weights) {
    const [q, k] = [Math.floor(flat / n), flat % n];
    ctx.fillStyle = `rgba(249, 115, 22, ${Math.min(1, w / max).toFixed(3)})`;
    ctx.fillRect(LABEL + k * CELL, LABEL + q * CELL, CELL - 1, CELL - 1);
  }
  ctx.fillStyle = "#111";
  ctx.textBaseline = "middle";
  tokens.forEach((t, i) => {
    ctx.textAlign = "right";
    ctx.fillText(label(t), LABEL - 4, LABEL + i * CELL + CELL / 2);  // query rows
    ctx.save();  // key columns, written upwards
    ctx.translate(LABEL + i * CELL + CELL / 2, LABEL - 4);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    ctx.fillText(label(t), 0, 0);
    ctx.restore();
  });
  canvas.dataset.tokens = String(n);
  canvas.dataset.entries = String(weights.size);
}

canvas.addEventListener("mousemove", event => {
  const tip = $("attention-tooltip");
  if (!shown) return;
  const box = canvas.getBoundingClientRect();
  const k = Math.floor((event.clientX - box.left - LABEL) / CELL);
  const q = Math.floor((event.clientY - box.top - LABEL) / CELL);
  const n = shown.tokens.length;
  tip.hidden = !(q >= 0 && k >= 0 && q < n && k < n);
  if (tip.hidden) return;
  const w = shown.weights.get(q * n + k) || 0;
  tip.textContent = `${JSON.stringify(shown.tokens[q])} reads ${JSON.stringify(shown.tokens[k])}: ${w.toFixed(3)}`;
  tip.style.left = LABEL + (k + 1) * CELL + 4 + "px";
  tip.style.top = LABEL + q * CELL + "px";
});
canvas.addEventListener("mouseleave", () => { $("attention-tooltip").hidden = true; });

// `name`-button runs `show`, disabled meanwhile; a failure goes to `name`-error.
function onButton(name, show) {
  const button = $(`${name}-button`);
  button.addEventListener("click", async () => {
    $(`${name}-error`).textContent = "";
    button.disabled = true;
    try { await show(); } catch (e) { $(`${name}-error`).textContent = e.message; }
    button.disabled = false;
  });
}

onButton("attention", async () => {
  const answer = await Interpedia.api("/activation/attention", {
    modelId: config.modelId, prompt: config.text, layer: config.layer,
    head: Number($("attention-head").value),
  });
  const weights = new Map(answer.attentionIndices.map((flat, i) => [flat, answer.attentionValues[i]]));
  shown = { tokens: answer.tokens, weights, max: answer.maxActivation || 1 };
  draw(shown);
});

const DFA_NEGATIVE = "59, 130, 246";

onButton("dfa", async () => {
  const answer = await Interpedia.api("/activation/new", {
    feature: { modelId: config.modelId, layer: config.source, index: config.index },
    customText: config.text,
  });
  if (!answer.dfaValues) throw new Error("the inference service sent no DFA for this feature");
  const values = answer.dfaValues;
  const top = Math.max(...values.map(Math.abs));
  const container = $("dfa-tokens");
  Interpedia.renderTokens(container, answer.tokens, values, top);
  container.querySelectorAll(".tok").forEach((span, i) => {
    if (values[i] < 0 && top > 0) {
      span.style.background = `rgba(${DFA_NEGATIVE}, ${Math.min(1, -values[i] / top).toFixed(3)})`;
    }
    if (i === answer.dfaTargetIndex) span.classList.add("dfa-target");
  });
  container.dataset.target = String(answer.dfaTargetIndex);
});

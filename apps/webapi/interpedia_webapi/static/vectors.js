// The vector manager: list, make and delete the caller's steering vectors through
// /api/vector/*, and steer with one (the steer page, with the vector and its strength).
const rows = document.getElementById("vector-rows");
const error = document.getElementById("vector-error");
const values = document.getElementById("vector-values");
const count = document.getElementById("vector-count");

// Numbers from a JSON array or from text separated by commas, spaces or new lines.
function parseValues(text) {
  const trimmed = text.trim();
  if (!trimmed) throw new Error("give the vector's values");
  const numbers = trimmed.startsWith("[") ? JSON.parse(trimmed) : trimmed.split(/[\s,]+/).map(Number);
  const bad = numbers.findIndex(n => typeof n !== "number" || !Number.isFinite(n));
  if (bad >= 0) throw new Error(`value ${bad + 1} is not a number`);
  return numbers;
}

function showCount() {
  const option = document.getElementById("vector-model").selectedOptions[0];
  try {
    const n = parseValues(values.value).length;
    count.textContent = `${n} values` + (option ? ` (the model's d_model is ${option.dataset.dimension})` : "");
  } catch { count.textContent = ""; }
}

function cell(row, content) {
  const td = row.insertCell();
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  return td;
}

function link(href, text) {
  const a = document.createElement("a"); a.href = href; a.textContent = text; return a;
}

async function load() {
  rows.textContent = "";
  if (!Interpedia.key()) { document.getElementById("vectors-need-key").hidden = false; return; }
  const { vectors } = await Interpedia.api("/vector/list-owned", {});
  for (const v of vectors) {
    const row = rows.insertRow();
    row.className = "vector-row";
    row.dataset.label = v.vectorLabel;
    cell(row, link(`/${v.modelId}/${v.layer}/${v.index}`, v.vectorLabel));
    cell(row, v.modelId);
    cell(row, v.hookName);
    cell(row, String(v.vector.length));
    cell(row, String(v.vectorDefaultSteerStrength));
    const params = new URLSearchParams({ model: v.modelId, source: v.layer, index: v.index, strength: v.vectorDefaultSteerStrength });
    const actions = cell(row, link(`/steer?${params}`, "steer with this vector →"));
    const remove = document.createElement("button");
    remove.className = "secondary vector-delete"; remove.type = "button"; remove.textContent = "delete";
    remove.addEventListener("click", async () => {
      error.textContent = "";
      try {
        await Interpedia.api("/vector/delete", { modelId: v.modelId, source: v.layer, index: v.index });
        await load();
      } catch (e) { error.textContent = e.message; }
    });
    actions.appendChild(remove);
  }
  if (!vectors.length) cell(rows.insertRow(), "No vectors yet.").colSpan = 6;
}

values.addEventListener("input", showCount);
document.getElementById("vector-model").addEventListener("change", showCount);
document.getElementById("vector-file").addEventListener("change", async event => {
  const file = event.target.files[0];
  if (file) { values.value = await file.text(); showCount(); }
});

document.getElementById("vector-new").addEventListener("submit", async event => {
  event.preventDefault();
  error.textContent = "";
  try {
    await Interpedia.api("/vector/new", {
      modelId: document.getElementById("vector-model").value,
      layerNumber: Number(document.getElementById("vector-layer").value),
      hookType: document.getElementById("vector-hook").value,
      vectorLabel: document.getElementById("vector-label").value,
      vectorDefaultSteerStrength: Number(document.getElementById("vector-strength").value),
      vector: parseValues(values.value),
    });
    values.value = ""; count.textContent = "";
    await load();
  } catch (e) { error.textContent = e.message; }
});

load().catch(e => { error.textContent = e.message; });

// The upload form: send a JSON file's body to an upload route with the page's key and show
// what was stored, or every bad row. The API names rows by their place in the body
// (`features[3].activations[2]`): one message for a row it refused, one per field for a body
// that does not fit the schema (422 `errors`).
const result = document.getElementById("upload-result");
const error = document.getElementById("upload-error");
const rows = document.getElementById("upload-rows");

// ["body", "features", 3, "activations", 2, "values"] -> "features[3].activations[2].values"
function place(loc) {
  let text = "";
  for (const part of loc.slice(loc[0] === "body" ? 1 : 0)) {
    text += typeof part === "number" ? `[${part}]` : (text ? "." : "") + part;
  }
  return text || "the body";
}

function showRows(items) {
  rows.textContent = "";
  for (const [where, message] of items) {
    const li = document.createElement("li");
    li.className = "upload-row-error";
    const b = document.createElement("b"); b.textContent = where;
    li.append(b, ": " + message);
    rows.appendChild(li);
  }
}

document.getElementById("upload-form").addEventListener("submit", async event => {
  event.preventDefault();
  result.textContent = ""; error.textContent = ""; rows.textContent = "";
  const file = document.getElementById("upload-file").files[0];
  if (!file) { error.textContent = "Choose a JSON file."; return; }
  let body;
  try { body = JSON.parse(await file.text()); }
  catch (e) { error.textContent = `${file.name} is not JSON: ${e.message}`; return; }
  const button = event.submitter;
  button.disabled = true;
  try {
    const answer = await Interpedia.api(document.getElementById("upload-kind").value, body);
    result.textContent = `Stored ${answer.count} rows from ${file.name}.`;
  } catch (e) {
    if (e.errors && e.errors.length) {
      error.textContent = `${e.errors.length} problem(s) in ${file.name}; nothing was stored:`;
      showRows(e.errors.map(x => [place(x.loc || []), x.msg]));
    } else {
      error.textContent = `Nothing was stored from ${file.name}:`;
      const named = e.message.match(/^((?:features|activations)\[\d+\](?:\.\w+(?:\[\d+\])?)*):?\s*(.*)$/);
      showRows([named ? [named[1], named[2]] : ["upload", e.message]]);
    }
  }
  button.disabled = false;
});

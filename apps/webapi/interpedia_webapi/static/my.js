// "My stuff": the caller's lists, bookmarks, vectors, saved steering runs and explanations,
// each a list of links read from the API with the page's key.
function fill(id, items, entry) {
  const list = document.querySelector(`#${id} ul`);
  list.textContent = "";
  for (const item of items) {
    const [href, text, note] = entry(item);
    const li = document.createElement("li");
    const a = document.createElement("a"); a.href = href; a.textContent = text;
    li.appendChild(a);
    if (note) { const span = document.createElement("span"); span.className = "muted"; span.textContent = " " + note; li.appendChild(span); }
    list.appendChild(li);
  }
  if (!items.length) list.innerHTML = '<li class="muted">None yet.</li>';
}

const feature = x => `/${x.modelId}/${x.layer}/${x.index}`;

async function load() {
  if (!Interpedia.key()) { document.getElementById("my-need-key").hidden = false; return; }
  const [lists, bookmarks, owned, steers, explanations] = await Promise.all([
    Interpedia.api("/list/list", {}),
    Interpedia.api("/user/bookmarks", {}),
    Interpedia.api("/vector/list-owned", {}),
    Interpedia.api("/user/steers", {}),
    Interpedia.api("/user/explanations", {}),
  ]);
  fill("my-lists", lists, l => [l.url, l.name, l.description]);
  fill("my-bookmarks", bookmarks, b => [feature(b), `${b.modelId}/${b.layer}/${b.index}`]);
  fill("my-vectors", owned.vectors, v => [feature(v), v.vectorLabel, `${v.modelId} · ${v.hookName}`]);
  fill("my-steers", steers, s => [s.shareUrl, s.inputText || s.id, `${s.modelId} · ${s.createdAt.slice(0, 10)}`]);
  fill("my-explanations", explanations, e => [feature(e), e.description, `${e.layer}/${e.index}`]);
}

load().catch(e => { document.getElementById("my-error").textContent = e.message; });

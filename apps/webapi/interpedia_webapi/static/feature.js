// The feature page's explanation panel: write, generate with a chosen explainer, score,
// vote and delete, through /api/explanation/*; each change reloads the page, so what a
// person sees is what the server stored (ordered by votes).
const panel = document.getElementById("explanations");
const error = document.getElementById("explanation-error");
const feature = {
  modelId: panel.dataset.model, layer: panel.dataset.source, index: panel.dataset.index,
};

const act = (button, work) => Interpedia.act(button, error, work);

document.getElementById("explanation-write").addEventListener("submit", event => {
  event.preventDefault();
  const explanation = document.getElementById("explanation-text").value;
  act(event.submitter, () => Interpedia.api("/explanation/new", { feature: { ...feature, explanation } }));
});

document.getElementById("explanation-generate").addEventListener("submit", event => {
  event.preventDefault();
  const explanationType = document.getElementById("explainer").value;
  act(event.submitter, () => Interpedia.api("/explanation/generate", { ...feature, explanationType }));
});

panel.addEventListener("click", event => {
  const button = event.target.closest("button");
  const row = button && button.closest(".explanation");
  if (!row) return;
  const id = row.dataset.id;
  if (button.classList.contains("vote")) act(button, () => Interpedia.api(`/explanation/${id}/vote`, {}));
  if (button.classList.contains("unvote")) act(button, () => Interpedia.api(`/explanation/${id}/unvote`, {}));
  if (button.classList.contains("delete")) act(button, () => Interpedia.api(`/explanation/${id}/delete`, {}));
  if (button.classList.contains("score-button")) {
    const scorerType = row.querySelector(".scorer").value;
    act(button, () => Interpedia.api("/explanation/score", { explanationId: id, scorerType }));
  }
});

// The bookmark button: filled when the caller (by the page's key) has bookmarked the feature.
const bookmark = document.getElementById("bookmark");
const bookmarkError = document.getElementById("bookmark-error");
function showBookmarked(on) {
  bookmark.classList.toggle("on", on);
  bookmark.textContent = on ? "★ Bookmarked" : "☆ Bookmark";
}
if (Interpedia.key()) {
  Interpedia.api("/user/bookmarks", {}).then(marks => showBookmarked(marks.some(
    b => b.modelId === feature.modelId && b.layer === feature.layer && b.index === feature.index,
  ))).catch(() => {});
}
bookmark.addEventListener("click", async () => {
  bookmarkError.textContent = "";
  const on = bookmark.classList.contains("on");
  try {
    await Interpedia.api(on ? "/bookmark/delete" : "/bookmark/add", feature);
    showBookmarked(!on);
  } catch (e) { bookmarkError.textContent = e.message; }
});

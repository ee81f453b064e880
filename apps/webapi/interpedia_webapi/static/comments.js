// The comments panel of the feature and list pages (the `comments_panel` macro): post a
// comment or delete one through the API with the page's key, then reload, so what a person
// sees is what the server stored.
const panel = document.getElementById("comments");
const error = panel.querySelector(".comment-error");
const target = JSON.parse(panel.dataset.target);

const act = (button, work) => Interpedia.act(button, error, work);

panel.querySelector(".comment-form").addEventListener("submit", event => {
  event.preventDefault();
  const text = panel.querySelector(".comment-input").value;
  act(event.submitter, () => Interpedia.api(panel.dataset.new, { ...target, text }));
});

panel.addEventListener("click", event => {
  const button = event.target.closest("button.comment-delete");
  if (!button) return;
  const id = button.closest(".comment").dataset.id;
  act(button, () => Interpedia.api(panel.dataset.delete, { [panel.dataset.idField]: id }));
});

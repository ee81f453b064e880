// Sign-up, sign-in, account, API-key and user-admin pages: each form calls the JSON API
// through app.js (which adds the CSRF header a signed-in browser's writes need).
"use strict";

function byId(id) { return document.getElementById(id); }

function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button"; b.className = "secondary"; b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

function signForm(form) {
  form.addEventListener("submit", async e => {
    e.preventDefault();
    byId("sign-error").textContent = "";
    try {
      await Interpedia.api("/account/" + form.dataset.mode,
        { name: byId("sign-name").value, password: byId("sign-password").value });
      location.href = "/account";
    } catch (err) { byId("sign-error").textContent = err.message; }
  });
}

function accountForms() {
  byId("profile-form").addEventListener("submit", async e => {
    e.preventDefault();
    try {
      await Interpedia.api("/me/profile", { displayName: byId("display-name").value });
      byId("profile-result").textContent = "Saved.";
    } catch (err) { byId("profile-result").textContent = err.message; }
  });
  byId("password-form").addEventListener("submit", async e => {
    e.preventDefault();
    try {
      await Interpedia.api("/me/password", {
        currentPassword: byId("current-password").value, newPassword: byId("new-password").value,
      });
      byId("password-result").textContent = "Password changed.";
    } catch (err) { byId("password-result").textContent = err.message; }
  });
}

async function keysPage() {
  const tbody = byId("keys");
  async function load() {
    const keys = await Interpedia.api("/me/keys");
    tbody.textContent = "";
    for (const k of keys) {
      const tr = document.createElement("tr");
      tr.className = "key-row";
      tr.append(cell(k.prefix + "…"), cell(k.revoked ? "revoked" : "active"));
      const td = document.createElement("td");
      if (!k.revoked) td.append(button("Revoke", async () => {
        await Interpedia.api("/me/keys/" + k.id, undefined, "DELETE"); await load();
      }));
      tr.append(td); tbody.append(tr);
    }
  }
  byId("key-create").addEventListener("click", async () => {
    try {
      const made = await Interpedia.api("/me/keys", {});
      const shown = byId("key-new");
      shown.hidden = false;
      shown.textContent = "Copy it now, it is not shown again: " + made.apiKey;
      await load();
    } catch (err) { byId("key-error").textContent = err.message; }
  });
  try { await load(); } catch (err) { byId("key-error").textContent = err.message; }
}

async function usersPage() {
  const tbody = byId("users");
  async function change(id, body) {
    try { await Interpedia.api("/admin/users/" + id, body); await load(); }
    catch (err) { byId("users-error").textContent = err.message; }
  }
  async function load() {
    const users = await Interpedia.api("/admin/users");
    tbody.textContent = "";
    for (const u of users) {
      const tr = document.createElement("tr");
      tr.className = "user-row"; tr.dataset.name = u.name;
      tr.append(cell(u.id), cell(u.name), cell(u.isAdmin ? "admin" : "user"),
        cell(u.disabled ? "disabled" : "active"));
      const td = document.createElement("td");
      td.append(button(u.isAdmin ? "Unmake admin" : "Make admin", () => change(u.id, { isAdmin: !u.isAdmin })), " ",
        button(u.disabled ? "Enable" : "Disable", () => change(u.id, { disabled: !u.disabled })));
      tr.append(td); tbody.append(tr);
    }
  }
  try { await load(); } catch (err) { tbody.textContent = ""; byId("users-error").textContent = err.message; }
}

document.addEventListener("DOMContentLoaded", () => {
  if (byId("sign-form")) signForm(byId("sign-form"));
  if (byId("profile-form")) accountForms();
  if (byId("keys")) keysPage();
  if (byId("users")) usersPage();
});

// Interpedia's little bit of JavaScript: the API key, token shading, and streamed answers.
"use strict";

const Interpedia = {
  key() { return localStorage.getItem("interpedia-key") || ""; },

  async api(path, body, method) {
    const headers = { "content-type": "application/json" };
    if (Interpedia.key()) headers["x-api-key"] = Interpedia.key();
    const response = await fetch("/api" + path, {
      method: method || (body === undefined ? "GET" : "POST"),
      headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({ detail: response.statusText }));
    if (!response.ok) {
      // A 422 also lists each field's error (`errors`, with its place in `loc`): a form
      // can show them one by one.
      const error = new Error(data.detail || ("HTTP " + response.status));
      error.errors = data.errors || [];
      throw error;
    }
    return data;
  },

  // Runs `work` (API calls) for a click on `button`, then reloads the page so it shows what
  // the server stored; a refusal's message goes to `errorBox` and the button works again.
  async act(button, errorBox, work) {
    errorBox.textContent = "";
    button.disabled = true;
    try {
      await work();
      location.reload();
    } catch (e) {
      errorBox.textContent = e.message;
      button.disabled = false;
    }
  },

  // POSTs `body` and returns the response once its status is known (an error's detail thrown).
  async open(path, body, method) {
    const headers = { "content-type": "application/json" };
    if (Interpedia.key()) headers["x-api-key"] = Interpedia.key();
    const response = await fetch("/api" + path, {
      method: method || "POST", headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new Error(data.detail || ("HTTP " + response.status));
    }
    return response;
  },

  // Calls `onChunk` with the text before each `separator` as soon as it has arrived.
  async read(response, separator, onChunk) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf(separator)) >= 0) {
        const chunk = buffer.slice(0, cut); buffer = buffer.slice(cut + separator.length);
        onChunk(chunk);
      }
    }
    if (buffer.trim()) onChunk(buffer);
  },

  // Reads a server-sent event stream from fetch (EventSource cannot send headers).
  async stream(path, body, onEvent, method) {
    const response = await Interpedia.open(path, body, method);
    await Interpedia.read(response, "\n\n", chunk => {
      const data = chunk.split("\n").filter(l => l.startsWith("data:"))
        .map(l => l.slice(5).trim()).join("\n");
      if (data) onEvent(JSON.parse(data));
    });
  },

  // Reads an NDJSON stream (one JSON object a line), as the lens answers.
  async lines(path, body, onFrame) {
    const response = await Interpedia.open(path, body);
    await Interpedia.read(response, "\n", line => { if (line.trim()) onFrame(JSON.parse(line)); });
  },

  shade(value, top) {
    if (!(top > 0) || !(value > 0)) return "transparent";
    return "rgba(249, 115, 22, " + Math.min(1, value / top).toFixed(3) + ")";
  },

  // Builds shaded token spans with the value shown on hover.
  renderTokens(container, tokens, values, top) {
    container.textContent = "";
    const max = top || Math.max(0, ...values);
    tokens.forEach((token, i) => {
      const span = document.createElement("span");
      span.className = "tok";
      span.textContent = token;
      span.dataset.v = values[i].toFixed(3);
      span.title = values[i].toFixed(3);
      span.style.background = Interpedia.shade(values[i], max);
      container.appendChild(span);
    });
  },

  // Chat messages from "role: text" lines (the lens and steer pages); a line without a role
  // continues the message before it.
  parseChat(text) {
    const messages = [];
    for (const line of text.split("\n")) {
      const m = line.match(/^\s*(system|user|assistant)\s*:\s?(.*)$/);
      if (m) messages.push({ role: m[1], content: m[2] });
      else if (messages.length) messages[messages.length - 1].content += "\n" + line;
      else if (line.trim()) throw new Error("start each message with system:, user: or assistant:");
    }
    return messages;
  },

  escape(text) {
    const div = document.createElement("div"); div.textContent = text; return div.innerHTML;
  },
};

document.addEventListener("DOMContentLoaded", () => {
  // Clicking an example's "…" shows its whole text.
  document.addEventListener("click", e => {
    if (e.target.classList.contains("more")) e.target.closest(".tokens").classList.add("open");
  });
  const input = document.getElementById("api-key");
  if (input) {
    input.value = Interpedia.key();
    input.addEventListener("change", () => localStorage.setItem("interpedia-key", input.value.trim()));
  }
});

// Streams a generated answer into the answer card (search page, questions only).
// The card carries data-stream-url when a language model is configured; the
// stream sends {"delta": "..."} lines, then {"html": "<the finished card>"}.
(function () {
  "use strict";

  async function stream(card) {
    const url = card.dataset.streamUrl;
    card.removeAttribute("data-stream-url");
    const text = card.querySelector(".answer-text");
    let written = "";
    const response = await fetch(url, { headers: { Accept: "application/x-ndjson" } });
    if (!response.ok || !response.body) return;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (!line.trim()) continue;
        const event = JSON.parse(line);
        if (event.delta !== undefined) {
          written += event.delta;
          if (text) text.textContent = written;
        } else if (event.html !== undefined) {
          const template = document.createElement("template");
          template.innerHTML = event.html;
          card.replaceWith(template.content);
        }
      }
    }
  }

  function start(root) {
    root.querySelectorAll("[data-stream-url]").forEach(function (card) {
      stream(card).catch(function () {});
    });
  }

  document.addEventListener("DOMContentLoaded", function () { start(document); });
  document.addEventListener("htmx:afterSwap", function (event) { start(event.target); });
})();

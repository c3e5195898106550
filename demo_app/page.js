// The demo page: POST the text to /api/classify and draw the answer (textContent only: no HTML injection).
"use strict";
const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function bar(name, p, best) {
  const row = document.createElement("div");
  row.className = "row";
  row.dataset.label = name;
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = name;
  const track = document.createElement("div");
  track.className = "track";
  const fill = document.createElement("div");
  fill.className = best ? "bar best" : "bar";
  fill.style.width = (100 * p).toFixed(1) + "%";
  track.appendChild(fill);
  const value = document.createElement("span");
  value.className = "value";
  value.textContent = (100 * p).toFixed(1) + "%";
  row.append(label, track, value);
  return row;
}

function show(answer) {
  $("label").textContent = answer.label;
  const bars = $("bars");
  bars.replaceChildren();
  for (const [name, p] of Object.entries(answer.probabilities)) bars.appendChild(bar(name, p, name === answer.label));
  $("latency").textContent = `${answer.model_ms.toFixed(2)} ms model, ${answer.total_ms.toFixed(2)} ms with tokenization (${answer.tokens} tokens)`;
  $("note").textContent = answer.note || "";
  $("note").hidden = !answer.truncated;
  $("artifact").textContent = answer.artifact;
  $("runtime").textContent = answer.runtime;
  $("result").hidden = false;
  document.body.dataset.state = "answered";
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").hidden = true;
  document.body.dataset.state = "waiting";
  try {
    const response = await fetch("/api/classify", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: $("text").value }),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    show(answer);
  } catch (err) {
    showError(err.message);
    document.body.dataset.state = "error";
  }
});

fetch("/api/info").then((r) => r.json()).then((info) => {
  $("artifact").textContent = info.artifact;
  $("runtime").textContent = info.runtime;
}).catch(() => {});

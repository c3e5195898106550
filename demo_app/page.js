// The demo page: GET /api/info says the export's task and API route; the form posts to it and the
// answer is drawn for that task: label and probability bars, entities highlighted in the text, or
// the answer highlighted in the context (textContent only: no HTML injection). The API's character
// offsets are Unicode code points (Python string indices), so texts are sliced with Array.from,
// not by UTF-16 units.
"use strict";
const $ = (id) => document.getElementById(id);
const TASKS = {
  "text-classification": { text: "Text to classify", button: "Classify",
                           example: "A gripping, beautifully shot film." },
  "token-classification": { text: "Text to tag", button: "Find entities", example: "Angela Merkel visited Paris." },
  "question-answering": { text: "Context", button: "Answer", example: "Angela Merkel visited Paris." },
};
let api = null;

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

// `text` with each span [start, end) (code points, in order, not overlapping) in a <mark>.
function highlight(text, spans) {
  const chars = Array.from(text);
  const box = $("marked");
  box.replaceChildren();
  let at = 0;
  for (const span of spans) {
    box.append(chars.slice(at, span.start).join(""));
    const mark = document.createElement("mark");
    mark.textContent = chars.slice(span.start, span.end).join("");
    mark.dataset.start = span.start;
    mark.dataset.end = span.end;
    if (span.type) mark.dataset.type = span.type;
    mark.title = span.title;
    box.append(mark);
    at = span.end;
  }
  box.append(chars.slice(at).join(""));
  box.hidden = false;
}

function showLabel(answer) {
  $("label").textContent = answer.label;
  const bars = $("bars");
  for (const [name, p] of Object.entries(answer.probabilities)) bars.appendChild(bar(name, p, name === answer.label));
  return `${answer.tokens} tokens`;
}

function showEntities(answer, sent) {
  const n = answer.entities.length;
  $("label").textContent = `${n} ${n === 1 ? "entity" : "entities"}`;
  highlight(sent.text, answer.entities.map((e) => ({ ...e, title: `${e.type} ${(100 * e.score).toFixed(1)}%` })));
  const list = $("entity-list");
  for (const e of answer.entities) {
    const item = document.createElement("li");
    item.dataset.type = e.type;
    item.textContent = `${e.type}  ${e.text}  (${(100 * e.score).toFixed(1)}%, characters ${e.start}–${e.end})`;
    list.appendChild(item);
  }
  list.hidden = n === 0;
  return `${answer.tokens} tokens in ${answer.windows} window${answer.windows === 1 ? "" : "s"}`;
}

function showAnswer(answer, sent) {
  const found = answer.start !== null;
  $("label").textContent = found ? answer.answer : "(no answer in the context)";
  highlight(sent.context, found ? [{ start: answer.start, end: answer.end, title: `score ${answer.score}` }] : []);
  return `${answer.windows} window${answer.windows === 1 ? "" : "s"}`;
}

const SHOW = { "/api/classify": showLabel, "/api/ner": showEntities, "/api/answer": showAnswer };

function show(answer, sent) {
  $("bars").replaceChildren();
  $("entity-list").replaceChildren();
  $("marked").hidden = true;
  const size = SHOW[api](answer, sent);
  $("latency").textContent =
    `${answer.model_ms.toFixed(2)} ms model, ${answer.total_ms.toFixed(2)} ms with tokenization (${size})`;
  $("note").textContent = answer.note || "";
  $("note").hidden = !answer.note;
  $("artifact").textContent = answer.artifact;
  $("runtime").textContent = answer.runtime;
  $("result").hidden = false;
  document.body.dataset.state = "answered";
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").hidden = true;
  document.body.dataset.state = "waiting";
  const sent = api === "/api/answer" ? { question: $("question").value, context: $("text").value }
                                     : { text: $("text").value };
  try {
    const response = await fetch(api, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(sent),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    show(answer, sent);
  } catch (err) {
    showError(err.message);
    document.body.dataset.state = "error";
  }
});

fetch("/api/info").then((r) => r.json()).then((info) => {
  const task = TASKS[info.task];
  api = info.api;
  $("artifact").textContent = info.artifact;
  $("runtime").textContent = info.runtime;
  $("text-label").textContent = task.text;
  $("text").placeholder = task.example;
  $("submit").textContent = task.button;
  $("ask").hidden = api !== "/api/answer";
  $("question").required = api === "/api/answer";
  $("submit").disabled = false;
  document.body.dataset.task = info.task;
}).catch((err) => showError(`cannot read /api/info: ${err.message}`));

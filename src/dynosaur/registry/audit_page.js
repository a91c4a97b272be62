// The review page of `dyno audit review`. Corpus text is untrusted: it is only ever set as textContent.
"use strict";

const LABELS = { "1": "yes", "2": "no", "3": "unsure" };
const QUESTIONS = ["valid_instruction", "input_suffices", "output_correct"];
const state = { items: [], answers: {}, index: 0, question: 0, undo: [], reviewer: "", ready: false };

const $ = (id) => document.getElementById(id);
const text = (id, value) => { $(id).textContent = value == null ? "" : String(value); };

function pct(x) { return Math.floor(x * 100 + 0.5) + "%"; }

function status(message, error) {
  text("status", message);
  $("status").className = error ? "error" : "";
}

function complete(a) { return !!a && QUESTIONS.every((q) => a[q]); }

function firstOpen(a) {
  const i = QUESTIONS.findIndex((q) => !(a && a[q]));
  return i < 0 ? 0 : i;
}

function showProgress(p) {
  text("progress", p.done + " / " + p.total);
  const fv = p.fully_valid;
  text("running", fv.n ? "fully valid " + pct(fv.share) + " (95% CI " + pct(fv.low).replace("%", "") +
    "–" + pct(fv.high) + ")" : "");
}

function render() {
  const item = state.items[state.index];
  if (!item) { return; }
  const a = state.answers[item.instance_id] || {};
  text("position", (state.index + 1) + " of " + state.items.length);
  text("source", item.source_id);
  text("task", item.task_id);
  text("where", item.split + "#" + item.row);
  text("instance", item.instance_id);
  text("instruction", item.instruction);
  text("input", item.input);
  text("output", item.output);
  QUESTIONS.forEach((q, i) => {
    const li = $("q-" + q);
    li.className = i === state.question ? "current" : "";
    const span = li.querySelector(".answer");
    span.textContent = a[q] || "";
    span.className = "answer " + (a[q] || "");
  });
  if (document.activeElement !== $("note")) { $("note").value = a.note || ""; }
}

async function call(url, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(url, options);
  const data = await response.json();
  if (!response.ok) { throw new Error(data.error || response.statusText); }
  return data;
}

// Saves go one after another, in the order given: the last line written is the answer as it stands.
let saving = Promise.resolve(true);
function save(iid, answer) {
  saving = saving.then(() => send(iid, answer));
  return saving;
}

async function send(iid, answer) {
  const body = Object.assign({ reviewer: state.reviewer, instance_id: iid, note: "" }, answer);
  try {
    const data = await call("api/answer", body);
    showProgress(data.progress);
    status("saved");
    return true;
  } catch (err) {
    status("NOT SAVED: " + err.message + " (is `dyno audit review` still running?)", true);
    return false;
  }
}

function nextOpen(from) {
  for (let k = 1; k <= state.items.length; k++) {
    const i = (from + k) % state.items.length;
    if (!complete(state.answers[state.items[i].instance_id])) { return i; }
  }
  return Math.min(from + 1, state.items.length - 1);
}

function go(index) {
  state.index = Math.max(0, Math.min(index, state.items.length - 1));
  state.question = firstOpen(state.answers[state.items[state.index].instance_id]);
  render();
}

async function answer(label) {
  const item = state.items[state.index];
  const before = Object.assign({}, state.answers[item.instance_id] || {});
  const after = Object.assign({}, before, { [QUESTIONS[state.question]]: label });
  state.answers[item.instance_id] = after;
  state.undo.push({ index: state.index, question: state.question, before: before });
  const done = state.question === QUESTIONS.length - 1;
  if (done) { go(nextOpen(state.index)); } else { state.question += 1; render(); }
  await save(item.instance_id, after);
}

async function undo() {
  const last = state.undo.pop();
  if (!last) { status("nothing to undo"); return; }
  const item = state.items[last.index];
  const before = {};
  QUESTIONS.forEach((q) => { before[q] = last.before[q] || null; });
  before.note = last.before.note || "";
  state.answers[item.instance_id] = before;
  state.index = last.index;
  state.question = last.question;
  render();
  await save(item.instance_id, before);
}

async function load() {
  if (!state.reviewer) {
    status("Type your name above, then press Enter.");
    $("reviewer").focus();
    return;
  }
  const data = await call("api/answers?reviewer=" + encodeURIComponent(state.reviewer));
  state.answers = data.answers;
  state.undo = [];
  showProgress(data.progress);
  state.ready = true;
  const open = state.items.findIndex((it) => !complete(state.answers[it.instance_id]));
  go(open < 0 ? 0 : open);
  status(open < 0 ? "every item is answered" : "resumed at the first unanswered item");
}

async function setReviewer(name) {
  state.reviewer = name.trim();
  state.ready = false;
  localStorage.setItem("dyno-audit-reviewer", state.reviewer);
  const url = new URL(location.href);
  url.searchParams.set("reviewer", state.reviewer);
  history.replaceState(null, "", url);
  try { await load(); } catch (err) { status(err.message, true); }
}

document.addEventListener("keydown", async (event) => {
  if (event.target instanceof HTMLInputElement || event.ctrlKey || event.metaKey || event.altKey) { return; }
  if (!state.ready) { return; }
  const key = event.key.toLowerCase();
  if (LABELS[key]) { event.preventDefault(); await answer(LABELS[key]); }
  else if (key === "n") { go(state.index + 1); }
  else if (key === "p") { go(state.index - 1); }
  else if (key === "u") { await undo(); }
});

async function start() {
  const sample = await call("api/sample");
  state.items = sample.items;
  text("audit", "audit " + sample.audit_id + " · " + sample.release);
  const list = $("questions");
  QUESTIONS.forEach((q) => {
    const li = document.createElement("li");
    li.id = "q-" + q;
    li.append(document.createTextNode(sample.questions[q]));
    const span = document.createElement("span");
    span.className = "answer";
    li.append(span);
    list.append(li);
  });
  $("reviewer").addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); setReviewer($("reviewer").value); $("reviewer").blur(); }
  });
  $("note").addEventListener("keydown", async (event) => {
    if (event.key !== "Enter" || !state.ready) { return; }
    event.preventDefault();
    const item = state.items[state.index];
    const current = Object.assign({}, state.answers[item.instance_id] || {}, { note: $("note").value });
    state.answers[item.instance_id] = current;
    $("note").blur();
    await save(item.instance_id, current);
  });
  const name = new URLSearchParams(location.search).get("reviewer") ||
    localStorage.getItem("dyno-audit-reviewer") || sample.reviewer || "";
  $("reviewer").value = name;
  if (name) { await setReviewer(name); } else { await load(); }
}

start().catch((err) => status("cannot load the sample: " + err.message, true));

"use strict";
// The playground: a key in sessionStorage, a job followed with EventSource(events_url), results inline.
const $ = (id) => document.getElementById(id);
const KEY = "gateway.apiKey";
const JOB = "gateway.currentJob";
let models = [];
let source = null;

function apiKey() { return sessionStorage.getItem(KEY) || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + apiKey() }, options.headers || {});
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) {
    const error = new Error(body && body.message ? body.message : response.statusText);
    error.code = body && body.code;
    throw error;
  }
  return body;
}

function showError(error) { $("error").textContent = error ? (error.code ? error.code + ": " : "") + error.message : ""; }

async function refreshAccount() {
  if (!apiKey()) return;
  try {
    $("balance").textContent = (await api("/api/balance")).token_balance;
    const page = await api("/api/generations?limit=5");
    $("recent").replaceChildren(...page.items.map((job) => {
      const li = document.createElement("li");
      li.textContent = `${job.created_at} ${job.model} — ${job.status} — ${job.prompt.slice(0, 60)}`;
      if (job.url) {
        const a = document.createElement("a");
        a.href = job.url; a.textContent = " download"; li.append(a);
      }
      return li;
    }));
  } catch (error) { showError(error); }
}

async function loadModels() {
  if (!apiKey()) return;
  try {
    models = (await api("/api/models")).models;
    $("model").replaceChildren(...models.map((m) => {
      const option = document.createElement("option");
      option.value = m.id;
      option.textContent = `${m.id} (${m.kind}, ${m.cost} tokens)${m.available ? "" : " — unavailable"}`;
      option.disabled = !m.available;
      return option;
    }));
    fillStyles();
  } catch (error) { showError(error); }
}

function fillStyles() {
  const model = models.find((m) => m.id === $("model").value);
  const none = document.createElement("option");
  none.value = ""; none.textContent = "none";
  $("style").replaceChildren(none, ...(model ? model.styles : []).map((s) => {
    const option = document.createElement("option");
    option.value = s.value; option.textContent = s.label;
    return option;
  }));
  $("price").textContent = model ? `costs ${model.cost} tokens` : "";
}

function setProgress(percent) {
  $("bar").value = percent;
  $("bar-text").textContent = Math.round(percent) + " %";
}

function showResult(event) {
  const type = event.content_type || "";
  const tag = type.startsWith("audio/") ? "audio" : type.startsWith("video/") ? "video" : "img";
  const media = document.createElement(tag);
  media.src = event.url;
  media.id = "media";
  if (tag !== "img") { media.controls = true; media.preload = "auto"; }
  const link = document.createElement("a");
  link.href = event.url; link.textContent = "Download"; link.id = "download";
  $("result").replaceChildren(media, link);
}

function showPreview(url) {
  // While the job renders, the area under the bar shows its live preview: the latest frame (each
  // event links it with a fresh expiry, so setting src fetches the new frame) or the audio so far.
  const stream = new URL(url, location.href).pathname.endsWith("/stream");
  let media = $("preview");
  if (!media || media.tagName !== (stream ? "AUDIO" : "IMG")) {
    media = document.createElement(stream ? "audio" : "img");
    media.id = "preview";
    if (stream) media.controls = true; else media.alt = "live preview";
    $("result").replaceChildren(media);
  }
  if (!stream || !media.src) media.src = url;  // a playing stream is not restarted
}

function follow(job) {
  if (source) source.close();
  sessionStorage.setItem(JOB, job.id);
  $("job").hidden = false;
  $("result").replaceChildren();
  setProgress(job.progress || 0);
  $("job-status").textContent = job.status;
  source = new EventSource(job.events_url);
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    $("job-status").textContent = event.status;
    $("job-detail").textContent = event.status === "Queued" && event.position ? `position ${event.position}`
      : event.message || (event.status === "Processing started" ? `${event.cost} tokens, balance ${event.balance}` : "");
    if (typeof event.progress === "number") setProgress(event.progress);
    if (event.preview_url && event.status === "Processing") showPreview(event.preview_url);
    if (event.status === "Processing started") $("balance").textContent = event.balance;
    if (["Completed", "Error", "Canceled"].includes(event.status)) {
      source.close();
      source = null;
      sessionStorage.removeItem(JOB);
      $("generate").disabled = false;
      if (event.status === "Completed") { setProgress(100); showResult(event); }
      else showError({ code: event.code || "canceled", message: (event.message || "Canceled") + " (refunded)" });
      refreshAccount();
    }
  };
}

async function generate(submit) {
  submit.preventDefault();
  showError(null);
  const body = { model: $("model").value, prompt: $("prompt").value };
  if ($("style").value) body.style = $("style").value;
  $("generate").disabled = true;
  try {
    follow(await api("/api/generations", { method: "POST", body: JSON.stringify(body) }));
  } catch (error) {
    $("generate").disabled = false;
    showError(error);
  }
}

async function resume() {
  const jobId = sessionStorage.getItem(JOB);
  if (!jobId || !apiKey()) return;
  try {
    const job = await api("/api/generations/" + encodeURIComponent(jobId));
    $("generate").disabled = !["completed", "failed", "canceled"].includes(job.status) && true;
    follow(job);  // replays the job's events from the start, then live
  } catch (error) { sessionStorage.removeItem(JOB); }
}

$("save-key").onclick = async () => {
  sessionStorage.setItem(KEY, $("api-key").value.trim());
  $("api-key").value = "";
  showError(null);
  await loadModels();
  await refreshAccount();
};
$("forget-key").onclick = () => { sessionStorage.removeItem(KEY); location.reload(); };
$("model").onchange = fillStyles;
$("generate-form").onsubmit = generate;
if (apiKey()) { loadModels().then(refreshAccount).then(resume); }

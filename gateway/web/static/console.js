"use strict";
// The operator console: the admin token in sessionStorage, keys, usage charts (uPlot), running jobs, providers.
const $ = (id) => document.getElementById(id);
const TOKEN = "gateway.adminToken";
const LIVE_MS = 1500;   // running jobs and providers
const USAGE_MS = 15000; // usage charts and the keys' balances
const COLORS = ["#2456d6", "#e8710a", "#12a150", "#b42318", "#7a3ce0", "#0891b2", "#a16207", "#db2777"];
const STATUS_COLORS = { completed: "#12a150", failed: "#b42318", canceled: "#6b7280" };
let keys = {};
let editing = null;
let models = [];
let timers = [];
const charts = {};

function token() { return sessionStorage.getItem(TOKEN) || ""; }

async function api(path, options = {}) {
  const headers = { Authorization: "Bearer " + token() };
  const init = { method: options.method || "GET", headers };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(body && body.message ? body.message : response.statusText);
    error.code = body && body.code;
    error.status = response.status;
    throw error;
  }
  return body;
}

function showError(error) { $("error").textContent = error ? (error.code ? error.code + ": " : "") + error.message : ""; }

function cell(content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content); else td.textContent = content == null ? "–" : String(content);
  return td;
}

function badge(state) {
  const span = document.createElement("span");
  span.className = "state state-" + state;
  span.textContent = state.replace("_", " ");
  return span;
}

function age(created) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(created)) / 1000));
  return seconds < 120 ? seconds + " s" : Math.round(seconds / 60) + " min";
}

function optionalInt(input) { return input.value === "" ? null : Number(input.value); }

// --- signing in -----------------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  sessionStorage.setItem(TOKEN, $("admin-token").value.trim());
  $("admin-token").value = "";
  await start();
}

function signOut() {
  sessionStorage.removeItem(TOKEN);
  timers.forEach(clearInterval);
  timers = [];
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
}

async function start() {
  if (!token()) return;
  try {
    await refreshProviders();
  } catch (error) {
    signOut();
    $("login").querySelector(".hint").textContent = "Not signed in: " + error.message;
    return;
  }
  $("login").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  await refreshKeys();
  await Promise.all([refreshRunning(), refreshUsage()]);
  timers.push(setInterval(() => { refreshRunning(); refreshProviders().catch(showError); }, LIVE_MS));
  timers.push(setInterval(refreshSlowly, USAGE_MS));
}

// --- providers and running jobs --------------------------------------------------------------------

async function refreshProviders() {
  const { providers } = await api("/admin/providers");
  models = [...new Set(providers.flatMap((p) => p.models))].sort();
  if (!$("create-models").querySelector("input")) fillModels($("create-models"), null);
  $("providers").tBodies[0].replaceChildren(...providers.map((p) => {
    const tr = document.createElement("tr");
    tr.dataset.provider = p.name;
    const rate = p.error_rate == null ? null : (p.error_rate * 100).toFixed(1) + " %";
    const latency = p.latency_p50_ms == null ? null : `${p.latency_p50_ms} / ${p.latency_p95_ms} ms`;
    tr.append(cell(p.name), cell(badge(p.state)), cell(p.reason), cell(p.configured ? `${p.in_flight} / ${p.cap}` : null),
      cell(p.configured ? p.queued : null), cell(rate), cell(latency), cell(p.requests));
    return tr;
  }));
}

async function refreshRunning() {
  try {
    const page = await api("/admin/jobs?status=running&limit=100");
    $("running-count").textContent = page.total ? `(${page.total})` : "(none)";
    $("running").tBodies[0].replaceChildren(...page.items.map((job) => {
      const tr = document.createElement("tr");
      tr.dataset.jobId = job.id;
      const bar = document.createElement("progress");
      bar.max = 100;
      if (job.progress != null) bar.value = job.progress;
      const key = keys[job.key_id];
      tr.append(cell(job.id), cell(key ? key.name : job.key_id), cell(job.model), cell(job.provider),
        cell(job.status), cell(bar), cell(age(job.created_at)));
      return tr;
    }));
  } catch (error) { showError(error); }
}

// --- usage charts ----------------------------------------------------------------------------------

function days(from, to) {
  const out = [];
  for (let t = Date.parse(from.slice(0, 10) + "T00:00:00Z"); t < Date.parse(to); t += 86400000) out.push(t / 1000);
  return out;
}

function draw(name, series, data) {
  const target = $("chart-" + name);
  if (charts[name]) charts[name].destroy();
  const options = {
    width: Math.max(300, target.clientWidth),
    height: 240,
    series: [{}, ...series.map((s) => Object.assign({ width: 2, points: { show: true, size: 6 } }, s))],
    axes: [{}, { size: 50 }],
    scales: { x: { time: true } },
    legend: { live: false },
  };
  charts[name] = new uPlot(options, data, target);
}

async function refreshUsage() {
  const span = Number($("range").value);
  const from = new Date(Date.now() - (span - 1) * 86400000).toISOString().slice(0, 10);
  let usage;
  try {
    usage = await api(`/admin/usage?group_by=day,model&from=${from}`);
  } catch (error) { showError(error); return; }
  const x = days(usage.from, usage.to);
  const index = new Map(x.map((t, i) => [new Date(t * 1000).toISOString().slice(0, 10), i]));
  const zeros = () => x.map(() => 0);
  const perModel = {};
  const debited = zeros(), refunded = zeros();
  const jobs = { completed: zeros(), failed: zeros(), canceled: zeros() };
  for (const g of usage.groups) {
    const i = index.get(g.day);
    if (i === undefined) continue;
    const model = g.model || "(no job)";
    (perModel[model] = perModel[model] || zeros())[i] += g.tokens_net;
    debited[i] += g.tokens_debited;
    refunded[i] += g.tokens_refunded;
    for (const status in jobs) jobs[status][i] += g.jobs[status];
  }
  const names = Object.keys(perModel).sort();
  draw("tokens", names.map((m, n) => ({ label: m, stroke: COLORS[n % COLORS.length] })), [x, ...names.map((m) => perModel[m])]);
  const statuses = Object.keys(jobs);
  draw("jobs", statuses.map((s) => ({ label: s, stroke: STATUS_COLORS[s] })), [x, ...statuses.map((s) => jobs[s])]);
  const rate = x.map((_, i) => (debited[i] ? Math.round((1000 * refunded[i]) / debited[i]) / 10 : null));
  draw("refunds", [{ label: "refund rate %", stroke: COLORS[3], spanGaps: true }], [x, rate]);

  const t = usage.totals;
  $("usage-window").textContent = `${usage.from} to ${usage.to}`;
  $("total-debited").textContent = t.tokens_debited;
  $("total-refunded").textContent = t.tokens_refunded;
  $("total-net").textContent = t.tokens_net;
  $("total-refund-rate").textContent = t.tokens_debited ? ((100 * t.tokens_refunded) / t.tokens_debited).toFixed(1) + " %" : "–";
  $("total-jobs").textContent = `${t.jobs.completed} / ${t.jobs.failed} / ${t.jobs.canceled}`;
  $("total-duration").textContent = t.duration_mean_seconds == null ? "–" : `${t.duration_mean_seconds} s / ${t.duration_p95_seconds} s`;
}

async function refreshSlowly() { await Promise.all([refreshKeys(), refreshUsage()]); }

// --- keys ------------------------------------------------------------------------------------------

function fillModels(fieldset, allowed) {
  const legend = fieldset.querySelector("legend");
  const boxes = [["*", "every model", allowed === null], ...models.map((m) => [m, m, allowed !== null && allowed.includes(m)])];
  fieldset.replaceChildren(legend, ...boxes.map(([value, text, checked]) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = value;
    input.checked = checked;
    label.append(input, text);
    return label;
  }));
}

function chosenModels(fieldset) {
  const checked = [...fieldset.querySelectorAll("input:checked")].map((i) => i.value);
  return checked.includes("*") ? null : checked;
}

async function refreshKeys() {
  try {
    const { items } = await api("/admin/keys");
    keys = Object.fromEntries(items.map((k) => [k.id, k]));
    $("keys").tBodies[0].replaceChildren(...items.slice().reverse().map((k) => {
      const tr = document.createElement("tr");
      tr.dataset.keyId = k.id;
      const manage = document.createElement("button");
      manage.type = "button";
      manage.className = "secondary manage";
      manage.textContent = "Manage";
      manage.disabled = k.revoked;
      manage.addEventListener("click", () => edit(k.id));
      tr.append(cell(k.name), cell(k.id), cell(k.prefix), cell(k.token_balance), cell(k.models ? k.models.join(", ") : "all"),
        cell(k.rate_limit_per_minute ?? "default"), cell(k.max_concurrent_jobs ?? "default"),
        cell(badge(k.revoked ? "revoked" : "active")), cell(manage));
      return tr;
    }));
  } catch (error) { showError(error); }
}

async function createKey(event) {
  event.preventDefault();
  showError(null);
  try {
    const created = await api("/admin/keys", { method: "POST", body: {
      name: $("create-name").value,
      tokens: Number($("create-tokens").value || 0),
      models: chosenModels($("create-models")),
      rate_limit_per_minute: optionalInt($("create-rate")),
      max_concurrent_jobs: optionalInt($("create-jobs")),
    } });
    $("new-key").textContent = created.key;  // shown this once: nothing keeps it
    $("new-key-box").hidden = false;
    $("create-key-form").reset();
    fillModels($("create-models"), null);
    await refreshKeys();
  } catch (error) { showError(error); }
}

function edit(id) {
  const key = keys[id];
  editing = id;
  $("edit-title").textContent = `${key.name} (${key.id})`;
  $("edit-rate").value = key.rate_limit_per_minute ?? "";
  $("edit-jobs").value = key.max_concurrent_jobs ?? "";
  fillModels($("edit-models"), key.models);
  $("revoke-key").textContent = "Revoke…";
  $("edit-key-form").hidden = false;
}

async function saveKey(event) {
  event.preventDefault();
  showError(null);
  try {
    await api(`/admin/keys/${editing}`, { method: "PATCH", body: {
      rate_limit_per_minute: optionalInt($("edit-rate")),
      max_concurrent_jobs: optionalInt($("edit-jobs")),
      models: chosenModels($("edit-models")),
    } });
    await refreshKeys();
    edit(editing);  // the form as the key now stands
  } catch (error) { showError(error); }
}

async function creditKey() {
  showError(null);
  try {
    const note = $("credit-note").value.trim();
    await api(`/admin/keys/${editing}/credit`, { method: "POST", body: Object.assign(
      { tokens: Number($("credit-tokens").value) }, note ? { note } : {}) });
    $("credit-tokens").value = "";
    $("credit-note").value = "";
    await refreshKeys();
  } catch (error) { showError(error); }
}

async function revokeKey() {
  const button = $("revoke-key");
  if (button.textContent !== "Really revoke?") { button.textContent = "Really revoke?"; return; }  // two clicks
  showError(null);
  try {
    await api(`/admin/keys/${editing}`, { method: "DELETE" });
    $("edit-key-form").hidden = true;
    await refreshKeys();
  } catch (error) { showError(error); }
}

$("login-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
$("refresh-usage").addEventListener("click", refreshSlowly);
$("range").addEventListener("change", refreshUsage);
$("create-key-form").addEventListener("submit", createKey);
$("dismiss-key").addEventListener("click", () => { $("new-key").textContent = ""; $("new-key-box").hidden = true; });
$("edit-key-form").addEventListener("submit", saveKey);
$("credit-key").addEventListener("click", creditKey);
$("revoke-key").addEventListener("click", revokeKey);
$("close-edit").addEventListener("click", () => { $("edit-key-form").hidden = true; });
start();

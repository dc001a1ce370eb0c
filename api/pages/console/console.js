// boxoffice admin console: vanilla JS, no build step, no network beyond this server.
// Every figure comes from the public admin API with the signed-in person's token; the
// page polls (events and queue stats every second, reconciliation every 5 s).
"use strict";

const POLL_MS = 1000;
const RECONCILE_EVERY = 5; // polls
const HISTORY = 60; // points kept per chart (a minute at one a second)
const TOKEN_KEY = "boxoffice.console.token";

const $ = (id) => document.getElementById(id);
const state = { token: null, timer: null, ticks: 0, events: new Map(), sold: new Map(),
                outbox: { waiting: [], active: [], failed: [], rate: [], lag: [] },
                lastCompleted: null, lastAt: null };

// -- the API ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const text = body && body.error ? `${body.error} (${body.code})` : `HTTP ${status}`;
    super(text);
    this.status = status;
    this.code = body && body.code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (response.status === 401 && state.token) signOut("Your session ended: sign in again.");
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

async function allEvents() {
  const events = [];
  for (let page = 1; ; page += 1) {
    const answer = await api("GET", `/api/events/view?page=${page}&limit=100`);
    events.push(...answer.data);
    if (answer.data.length === 0 || events.length >= answer.total) return events;
  }
}

// -- who is signed in ------------------------------------------------------------------

function show(view) {
  for (const id of ["login", "denied", "console"]) $(id).hidden = id !== view;
  $("nav").hidden = view !== "console";
  $("who").hidden = view === "login";
}

async function start() {
  state.token = sessionStorage.getItem(TOKEN_KEY);
  if (!state.token) return show("login");
  try {
    const me = await api("GET", "/api/auth/me");
    enter(me);
  } catch (err) {
    signOut(err.status === 401 ? "" : `Cannot reach the server: ${err.message}`);
  }
}

function enter(user) {
  $("who-email").textContent = `${user.email} (${user.role})`;
  if (user.role !== "ADMIN") return show("denied");
  show("console");
  poll();
  state.timer = setInterval(poll, POLL_MS);
}

function signOut(message) {
  clearInterval(state.timer);
  state.timer = null;
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("login-error").textContent = message || "";
  show("login");
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const answer = await api("POST", "/api/auth/login", {
      email: $("login-email").value, password: $("login-password").value,
    });
    state.token = answer.token;
    sessionStorage.setItem(TOKEN_KEY, answer.token);
    $("login-password").value = "";
    enter(answer.user);
  } catch (err) {
    $("login-error").textContent = err.message;
  }
}

// -- charts ----------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function push(series, value) {
  series.push(value);
  if (series.length > HISTORY) series.shift();
}

// A line over the last HISTORY points, scaled to `top` (or the largest point). The last
// value and the number of points are kept as data attributes, and said in the label.
function draw(svg, series, top, label) {
  const [, , width, height] = svg.getAttribute("viewBox").split(" ").map(Number);
  const max = Math.max(top || 0, ...series, 1);
  const step = width / (HISTORY - 1);
  const offset = (HISTORY - series.length) * step;
  const points = series.map((v, i) =>
    `${(offset + i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
  svg.replaceChildren();
  const base = document.createElementNS(SVG, "line");
  base.setAttribute("class", "base");
  for (const [k, v] of [["x1", 0], ["x2", width], ["y1", height - 1], ["y2", height - 1]]) {
    base.setAttribute(k, v);
  }
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(base, line);
  const last = series.length ? series[series.length - 1] : 0;
  svg.dataset.points = String(series.length);
  svg.dataset.last = String(last);
  svg.setAttribute("aria-label", label(last));
}

// -- events ----------------------------------------------------------------------------

function soldOf(event) {
  if (event.available === null || event.available === undefined) return null;
  return event.capacity - event.available - (event.held || 0);
}

function cell(row, name, text) {
  const td = row.querySelector(`[data-col="${name}"]`);
  if (td.textContent !== text) td.textContent = text;
}

// A row keyed by event id: a header cell and text cells named by `cols` (filled by `cell`),
// then any extra cells, then one action button labelled for its event.
function tableRow(eventId, cols, extra, action) {
  const row = document.createElement("tr");
  row.dataset.event = eventId;
  for (const col of cols) {
    const td = document.createElement(col === "name" ? "th" : "td");
    if (col === "name") td.scope = "row";
    td.dataset.col = col;
    row.append(td);
  }
  const actions = document.createElement("td");
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = action.text;
  button.dataset[action.kind] = eventId;
  button.setAttribute("aria-label", `${action.text} ${action.name}`);
  actions.append(button);
  row.append(...extra, actions);
  return row;
}

function eventRow(event) {
  const chart = document.createElement("td");
  chart.className = "chart-cell";
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 160 34");
  svg.setAttribute("role", "img");
  chart.append(svg);
  return tableRow(event.id, ["name", "capacity", "sold", "held", "available", "impressions"],
                  [chart], { text: "Edit", kind: "edit", name: event.name });
}

function renderEvents(events) {
  const body = $("events-table").tBodies[0];
  const seen = new Set();
  for (const event of events) {
    seen.add(String(event.id));
    state.events.set(event.id, event);
    let row = body.querySelector(`tr[data-event="${event.id}"]`);
    if (!row) body.append((row = eventRow(event)));
    const sold = soldOf(event);
    cell(row, "name", event.name);
    cell(row, "capacity", String(event.capacity));
    cell(row, "sold", sold === null ? "not loaded" : String(sold));
    cell(row, "held", event.held === null ? "–" : String(event.held));
    cell(row, "available", event.available === null ? "–" : String(event.available));
    cell(row, "impressions", String(event.impressions));
    row.querySelector("button").setAttribute("aria-label", `Edit ${event.name}`);
    if (!state.sold.has(event.id)) state.sold.set(event.id, []);
    const series = state.sold.get(event.id);
    if (sold !== null) push(series, sold); // no inventory: no point, rather than a false 0
    const share = (v) => (event.capacity ? Math.round((100 * v) / event.capacity) : 0);
    draw(row.querySelector("svg"), series, event.capacity,
         (v) => `${event.name}: ${v} of ${event.capacity} sold (${share(v)}%)`);
  }
  for (const row of [...body.rows]) if (!seen.has(row.dataset.event)) row.remove();
  $("events-empty").hidden = events.length > 0;
}

// -- the outbox ------------------------------------------------------------------------

function renderQueue(answer, at) {
  const { stats } = answer;
  $("queue-health").textContent = answer.paused ? "paused" : answer.health.status;
  $("queue-persisters").textContent = String(answer.persisters);
  $("queue-completed").textContent = String(stats.completed);
  let rate = 0;
  if (state.lastCompleted !== null && at > state.lastAt) {
    rate = Math.max(0, (stats.completed - state.lastCompleted) / ((at - state.lastAt) / 1000));
  }
  state.lastCompleted = stats.completed;
  state.lastAt = at;
  const figures = { waiting: stats.waiting, active: stats.active, failed: stats.failed,
                    rate: Math.round(rate), lag: answer.lagSeconds };
  const names = { waiting: "waiting", active: "in flight", failed: "dead letters",
                  rate: "flushed per second", lag: "seconds of lag" };
  for (const [key, value] of Object.entries(figures)) {
    push(state.outbox[key], value);
    $(`m-${key}`).textContent = String(value);
    draw($(`c-${key}`), state.outbox[key], 0, (v) => `${v} ${names[key]} now`);
  }
}

async function poll() {
  if (!state.token) return;
  state.ticks += 1;
  try {
    const [events, queue] = await Promise.all([allEvents(), api("GET", "/api/admin/queue/stats")]);
    renderEvents(events);
    renderQueue(queue, Date.now());
    if (state.ticks % RECONCILE_EVERY === 1) await refreshReconcile();
  } catch (err) {
    $("queue-health").textContent = `unknown (${err.message})`;
  }
}

// -- confirmation ----------------------------------------------------------------------

function confirmAction(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-ok").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// -- queue controls --------------------------------------------------------------------

const QUEUE_ACTIONS = {
  pause: ["Pause persisting? Bookings go on; records wait in the outbox.", "/api/admin/queue/pause"],
  resume: ["Resume persisting?", "/api/admin/queue/resume"],
  clean: ["Drop every dead letter? They are deleted for good.", "/api/admin/queue/clean"],
  redrive: ["Move every dead letter back to the outbox?", "/api/admin/queue/clean?redrive=true"],
};

async function queueAction(name) {
  const [question, path] = QUEUE_ACTIONS[name];
  if (!(await confirmAction(question))) {
    $("queue-result").textContent = "Nothing done.";
    return;
  }
  try {
    const answer = await api("POST", path);
    $("queue-result").textContent = answer.message;
  } catch (err) {
    $("queue-result").textContent = `Failed: ${err.message}`;
  }
  await poll();
}

// -- reconciliation --------------------------------------------------------------------

function reconcileRow(item) {
  const cols = ["name", "loaded", "redisSold", "expectedSold", "soldDrift", "availableDrift",
                "heldDrift", "userDrift", "state"];
  return tableRow(item.eventId, cols, [], { text: "Repair", kind: "repair", name: item.name });
}

function renderReconcile(report) {
  const body = $("reconcile-table").tBodies[0];
  const seen = new Set();
  for (const item of report.events) {
    seen.add(String(item.eventId));
    let row = body.querySelector(`tr[data-event="${item.eventId}"]`);
    if (!row) body.append((row = reconcileRow(item)));
    cell(row, "name", item.name);
    cell(row, "loaded", item.loaded ? "loaded" : "missing");
    cell(row, "redisSold", item.redis.sold === null ? "–" : String(item.redis.sold));
    cell(row, "expectedSold", String(item.expectedSold));
    cell(row, "soldDrift", String(item.drift.sold));
    cell(row, "availableDrift", String(item.drift.available));
    cell(row, "heldDrift", String(item.heldDrift));
    cell(row, "userDrift", String(item.userDrift));
    cell(row, "state", item.drifted ? "drifted" : "ok");
    row.querySelector('[data-col="state"]').className = item.drifted ? "state-bad" : "state-ok";
    row.querySelector("button").disabled = !item.drifted;
  }
  for (const row of [...body.rows]) if (!seen.has(row.dataset.event)) row.remove();
  const n = report.drifted;
  const checked = report.events.length;
  $("reconcile-summary").textContent =
    `${checked} event${checked === 1 ? "" : "s"} checked, ${n} drifted` +
    (report.epoch.redis === report.epoch.postgres ? "; epoch intact." : "; epoch MISSING in Redis.");
}

async function refreshReconcile() {
  renderReconcile(await api("GET", "/api/admin/reconcile"));
}

async function repair(eventId) {
  const one = eventId !== undefined;
  const name = one ? (state.events.get(Number(eventId)) || {}).name || `event ${eventId}` : "";
  const question = one ? `Repair ${name} from the truth?` : "Repair every drifted event?";
  if (!(await confirmAction(question))) {
    $("reconcile-result").textContent = "Nothing done.";
    return;
  }
  try {
    const answer = await api("POST", one ? `/api/admin/reconcile?eventId=${eventId}` : "/api/admin/reconcile");
    renderReconcile(await api("GET", "/api/admin/reconcile"));
    const fixed = answer.repaired.length;
    $("reconcile-result").textContent = fixed
      ? `Repaired ${fixed} event${fixed === 1 ? "" : "s"}: ${answer.repaired.join(", ")}.`
      : "Nothing needed repair.";
  } catch (err) {
    $("reconcile-result").textContent = `Failed: ${err.message}`;
  }
}

// -- create and edit -------------------------------------------------------------------

function localTime(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function editEvent(id) {
  const event = state.events.get(Number(id));
  if (!event) return;
  $("ev-id").value = event.id;
  $("ev-name").value = event.name;
  $("ev-venue").value = event.venue;
  $("ev-time").value = localTime(event.time);
  $("ev-capacity").value = event.capacity;
  $("ev-mpu").value = event.maxPerUser;
  $("editor-h").textContent = `Edit event ${event.id}`;
  $("ev-submit").textContent = "Save changes";
  $("ev-cancel").hidden = false;
  $("event-error").textContent = "";
  $("event-result").textContent = "";
  $("editor").scrollIntoView();
  $("ev-name").focus();
}

function resetEditor() {
  $("event-form").reset();
  $("event-error").textContent = "";
  $("event-result").textContent = "";
  $("ev-id").value = "";
  $("editor-h").textContent = "Create an event";
  $("ev-submit").textContent = "Create event";
  $("ev-cancel").hidden = true;
}

async function saveEvent(event) {
  event.preventDefault();
  $("event-error").textContent = "";
  $("event-result").textContent = "";
  const id = $("ev-id").value;
  const body = {
    name: $("ev-name").value, venue: $("ev-venue").value,
    time: new Date($("ev-time").value).toISOString(),
    capacity: Number($("ev-capacity").value), maxPerUser: Number($("ev-mpu").value),
  };
  try {
    const saved = id
      ? await api("PUT", `/api/events/${id}/update`, body)
      : await api("POST", "/api/events/create", body);
    resetEditor();
    $("event-result").textContent =
      `${id ? "Saved" : "Created"} event ${saved.id} "${saved.name}" (capacity ${saved.capacity}).`;
    await poll();
  } catch (err) {
    $("event-error").textContent = err.message;
  }
}

// -- wiring ----------------------------------------------------------------------------

document.addEventListener("click", (event) => {
  const target = event.target.closest("button");
  if (!target) return;
  if (target.dataset.queue) queueAction(target.dataset.queue);
  else if (target.dataset.repair) repair(target.dataset.repair);
  else if (target.dataset.edit) editEvent(target.dataset.edit);
  else if (target.dataset.action === "repair-all") repair();
  else if (target.dataset.action === "reconcile-refresh") refreshReconcile().catch((err) => {
    $("reconcile-result").textContent = `Failed: ${err.message}`;
  });
  else if (target.dataset.action === "edit-cancel") resetEditor();
  else if (target.dataset.action === "sign-out") signOut("");
});

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("event-form").addEventListener("submit", saveEvent);
  start();
});

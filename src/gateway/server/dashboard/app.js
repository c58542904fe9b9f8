// The canary dashboard: reads /api/v1 with the admin token every two seconds and draws
// what it gets. Plain DOM (no innerHTML with data), no framework, no build step.
"use strict";

const POLL_MS = 2000;
// Polls kept for the plots: ten minutes at one every two seconds.
const KEEP_POLLS = 300;
// The shadow report reads the whole mismatch store: every fifth poll is enough.
const SHADOW_EVERY = 5;
const HISTORY_SHOWN = 12;
const TOP_FIELDS = 5;
const TOKEN_KEY = "cpr-gateway.admin-token";
const VERBS = ["pause", "resume", "promote", "rollback"];

let token = null;
let polls = 0;
let timer = null;
// route -> [{at, primary: SideFigures, candidate: SideFigures}], oldest first
const series = new Map();

class Unauthorized extends Error {}

// -- the token ----------------------------------------------------------------------------------

function takeTokenFromAddress() {
  // #token=... is read here and removed from the address bar (and so from the history):
  // it never reaches the server, which sees no fragment, and it is not left to be copied.
  const match = location.hash.match(/(?:^#|&)token=([^&]*)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  token = sessionStorage.getItem(TOKEN_KEY);
}

function showLogin(problem) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(timer);
  byId("login").hidden = false;
  byId("logout").hidden = true;
  byId("login-problem").textContent = problem || "";
  byId("routes").replaceChildren();
  byId("shadow").hidden = true;
  byId("token").focus();
}

function onLogin(event) {
  event.preventDefault();
  const given = byId("token").value.trim();
  if (!given) return;
  sessionStorage.setItem(TOKEN_KEY, given);
  token = given;
  byId("token").value = "";
  byId("login").hidden = true;
  byId("logout").hidden = false;
  poll();
}

// -- the API ------------------------------------------------------------------------------------

async function api(path, options = {}) {
  const response = await fetch("/api/v1" + path, {
    ...options,
    cache: "no-store",
    headers: { ...(options.headers || {}), Authorization: "Bearer " + token },
  });
  if (response.status === 401) throw new Unauthorized();
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.status + " " + response.statusText);
  return body;
}

async function poll() {
  clearTimeout(timer);
  if (!token) return showLogin();
  try {
    const { routes } = await api("/routes");
    const histories = await Promise.all(
      routes.map((r) => api(`/routes/${encodeURIComponent(r.route)}/history?limit=${HISTORY_SHOWN}`)),
    );
    remember(routes);
    drawRoutes(routes, histories.map((h) => h.history));
    if (polls % SHADOW_EVERY === 0) drawShadow(await api("/shadow"));
    polls += 1;
    setProblem("");
    byId("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    if (error instanceof Unauthorized) return showLogin("The token was refused.");
    setProblem("Cannot read the API: " + error.message);
  }
  timer = setTimeout(poll, POLL_MS);
}

async function act(route, verb, reason) {
  try {
    await api(`/routes/${encodeURIComponent(route)}/${verb}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(reason ? { reason } : {}),
    });
    setProblem("");
  } catch (error) {
    if (error instanceof Unauthorized) return showLogin("The token was refused.");
    setProblem(`${verb} ${route}: ${error.message}`);
  }
  poll();
}

// -- routes -------------------------------------------------------------------------------------

function remember(routes) {
  const at = Date.now() / 1000;
  for (const route of routes) {
    if (!route.evidence) continue;
    const kept = series.get(route.route) || [];
    kept.push({ at, primary: route.evidence.primary, candidate: route.evidence.candidate });
    series.set(route.route, kept.slice(-KEEP_POLLS));
  }
}

function drawRoutes(routes, histories) {
  const cards = routes.map((route, i) => drawRoute(route, histories[i]));
  if (!cards.length) cards.push(el("p", { class: "muted" }, "No route has a canary plan."));
  byId("routes").replaceChildren(...cards);
}

function drawRoute(route, history) {
  return el(
    "article",
    { class: "route", "data-route": route.route, "data-status": route.status },
    el(
      "h2",
      {},
      route.route + " ",
      el("span", { class: "status " + route.status, "data-field": "status" }, route.status),
    ),
    el("p", { class: "reason", "data-field": "reason" }, route.reason || "—"),
    drawHeld(route),
    drawWeights(route),
    drawSteps(route),
    el("div", { class: "columns" }, drawGates(route), drawPlots(route)),
    drawControls(route),
    drawHistory(history),
  );
}

function drawHeld(route) {
  // Why a running route stays where it is: the gates its last evaluation failed.
  const failed = route.gates.filter((gate) => gate.passed === false);
  if (route.status !== "running" || !failed.length) return null;
  const why = failed.map((g) => `${g.name} ${fmtFigure(g.figure)} (needs ${fmtFigure(g.threshold)})`);
  return el("p", { class: "held", "data-field": "held" }, "Held here: " + why.join(", "));
}

function drawWeights(route) {
  const candidate = route.weights[route.candidate] || 0;
  const bar = el("div", { class: "bar", role: "img", "aria-label": "weights" });
  const primaryPart = el("span", { class: "primary" });
  const candidatePart = el("span", { class: "candidate" });
  primaryPart.style.flexGrow = String(100 - candidate);
  candidatePart.style.flexGrow = String(candidate);
  bar.append(primaryPart, candidatePart);
  const names = Object.entries(route.weights).map(([backend, percent]) =>
    el("span", { class: "weight", "data-backend": backend }, `${backend} ${fmtPercent(percent)}`),
  );
  return el("div", { class: "weights", "data-field": "weights" }, bar, el("p", {}, ...names));
}

function drawSteps(route) {
  const items = route.steps.map((percent, index) => {
    const state = index < route.step ? "done" : index === route.step ? "current" : "later";
    return el("li", { class: state, "aria-current": index === route.step ? "step" : "false" }, fmtPercent(percent));
  });
  const next = route.next_evaluation
    ? `next evaluation ${new Date(route.next_evaluation * 1000).toLocaleTimeString()}`
    : "";
  const since = `step since ${new Date(route.since * 1000).toLocaleTimeString()}`;
  return el(
    "div",
    { class: "timeline" },
    el("ol", { class: "steps", "data-field": "steps" }, ...items),
    el("p", { class: "muted" }, [since, next].filter(Boolean).join(" · ")),
  );
}

function drawGates(route) {
  const rows = route.gates.map((gate) =>
    el(
      "tr",
      { class: gateClass(gate.passed), "data-gate": gate.name },
      el("td", {}, gate.name),
      el("td", { class: "num" }, fmtFigure(gate.figure)),
      el("td", { class: "num" }, fmtFigure(gate.threshold)),
      el("td", {}, gate.passed === null ? "waiting" : gate.passed ? "pass" : "fail"),
    ),
  );
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "4", class: "muted" }, "not evaluated yet")));
  return el(
    "table",
    { class: "gates", "data-field": "gates" },
    el("caption", {}, "Gates (last evaluation)"),
    el("thead", {}, el("tr", {}, ...["gate", "figure", "threshold", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows),
  );
}

function drawPlots(route) {
  const kept = series.get(route.route) || [];
  const rate = (side) => kept.map((p) => p[side].failure_rate);
  const p99 = (side) => kept.map((p) => (p[side].p99_s === null ? null : p[side].p99_s * 1000));
  return el(
    "div",
    { class: "plots" },
    plot("failure rate", [rate("primary"), rate("candidate")], fmtRate),
    plot("latency p99 (ms)", [p99("primary"), p99("candidate")], (v) => v.toFixed(1)),
    el(
      "p",
      { class: "legend muted" },
      el("span", { class: "key primary" }), route.primary + " ",
      el("span", { class: "key candidate" }), route.candidate,
    ),
  );
}

function drawControls(route) {
  const reason = el("input", { type: "text", placeholder: "reason (optional)", maxlength: "500" });
  const buttons = VERBS.map((verb) => {
    const button = el("button", { type: "button", "data-verb": verb }, verb);
    button.addEventListener("click", () => act(route.route, verb, reason.value.trim()));
    return button;
  });
  return el("div", { class: "controls" }, ...buttons, reason);
}

function drawHistory(history) {
  const rows = history.map((entry) =>
    el(
      "li",
      {},
      el("time", {}, new Date(entry.at * 1000).toLocaleString()),
      ` ${entry.kind} ${entry.from_step}→${entry.to_step} by ${entry.who}`,
      entry.reason ? `: ${entry.reason}` : "",
    ),
  );
  return el(
    "details",
    { class: "history", open: "" },
    el("summary", {}, "History"),
    rows.length ? el("ol", { reversed: "" }, ...rows) : el("p", { class: "muted" }, "nothing yet"),
  );
}

// -- shadow -------------------------------------------------------------------------------------

function drawShadow(report) {
  const blocks = report.operations.map((op) => {
    const fields = op.fields.slice(0, TOP_FIELDS).map((field) =>
      el(
        "li",
        {},
        el("strong", {}, field.key),
        ` ${fmtRate(field.rate)} of ${field.samples} (${field.verdict})`,
        el(
          "ul",
          { class: "examples" },
          ...field.examples.map((e) =>
            el(
              "li",
              {},
              el("code", {}, JSON.stringify(e.primary)), " → ", el("code", {}, JSON.stringify(e.candidate)),
              el("span", { class: "muted" }, ` (${e.subject || "no PNR"})`),
            ),
          ),
        ),
      ),
    );
    return el(
      "div",
      { class: "shadow-op", "data-verdict": op.verdict },
      el(
        "h3",
        {},
        `${op.route} · ${op.operation} · ${op.backend}: `,
        el("span", { class: "verdict " + op.verdict }, op.verdict),
      ),
      el("p", { class: "muted" }, `${op.requests.compared} compared, ${op.requests.differing} differing`),
      fields.length ? el("ol", {}, ...fields) : el("p", { class: "muted" }, "no field differs"),
    );
  });
  if (!blocks.length) blocks.push(el("p", { class: "muted" }, "No shadow comparisons recorded yet."));
  byId("shadow-body").replaceChildren(...blocks);
  byId("shadow").hidden = false;
}

// -- plots: inline SVG --------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 240;
const HEIGHT = 60;

function plot(title, lines, format) {
  const values = lines.flat().filter((v) => v !== null);
  const top = values.length ? Math.max(...values) || 1 : 1;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  lines.forEach((line, i) => {
    const path = document.createElementNS(SVG, "polyline");
    path.setAttribute("class", i === 0 ? "primary" : "candidate");
    path.setAttribute("points", points(line, top));
    svg.append(path);
  });
  const latest = lines.map((line) => (line.length && line.at(-1) !== null ? format(line.at(-1)) : "–"));
  const caption = values.length ? `${title}: ${latest.join(" / ")} (scale ${format(top)})` : `${title}: no evidence yet`;
  return el("figure", { class: "plot" }, svg, el("figcaption", {}, caption));
}

function points(line, top) {
  const step = line.length > 1 ? WIDTH / (KEEP_POLLS - 1) : 0;
  const start = WIDTH - step * (line.length - 1);
  return line
    .map((v, i) => (v === null ? null : `${(start + i * step).toFixed(1)},${(HEIGHT - 2 - (v / top) * (HEIGHT - 4)).toFixed(1)}`))
    .filter(Boolean)
    .join(" ");
}

// -- helpers ------------------------------------------------------------------------------------

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function byId(id) {
  return document.getElementById(id);
}

function setProblem(text) {
  byId("problem").textContent = text;
  byId("problem").hidden = !text;
}

function gateClass(passed) {
  return passed === null ? "waiting" : passed ? "pass" : "fail";
}

function fmtPercent(value) {
  return `${Number(value).toLocaleString(undefined, { maximumFractionDigits: 2 })}%`;
}

function fmtRate(value) {
  return value === null ? "–" : `${(value * 100).toFixed(2)}%`;
}

function fmtFigure(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(3);
  return String(value);
}

document.addEventListener("DOMContentLoaded", () => {
  byId("login").addEventListener("submit", onLogin);
  byId("logout").addEventListener("click", () => showLogin());
  takeTokenFromAddress();
  if (token) {
    byId("logout").hidden = false;
    poll();
  } else {
    showLogin();
  }
});

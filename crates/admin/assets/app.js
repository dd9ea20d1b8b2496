// zonegate dashboard: live view over server-sent events (/api/events), no framework.
// Every value is put in the page with textContent, never as HTML: the data comes from the
// network (function names, rule ids, source addresses) and must not become markup.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => (token ? `${path}?token=${encodeURIComponent(token)}` : path);
let previous = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fill(id, rows, columns, empty) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = el("tr");
    const td = el("td", empty, "empty");
    td.colSpan = columns;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const cells of rows) {
    const tr = el("tr");
    for (const c of cells) tr.append(Array.isArray(c) ? el("td", c[0], c[1]) : el("td", c));
    body.append(tr);
  }
}

const ms = (v) => (v === null || v === undefined ? "–" : `${v < 10 ? v.toFixed(2) : v.toFixed(0)} ms`);
const age = (s) => (s === null || s === undefined ? "never" : s < 1 ? "just now" : `${s.toFixed(0)} s ago`);
const clock = (t) => new Date(t).toLocaleTimeString();
const rate = (v) => (v === null || v === undefined ? "–" : v.toFixed(1));

function render(s) {
  const ready = document.getElementById("ready");
  ready.textContent = s.ready ? "ready" : "not ready";
  ready.className = `badge ${s.ready ? "ready" : "notready"}`;
  document.getElementById("version").textContent = s.version;
  document.getElementById("hash").textContent = (s.policy_hash || "").slice(0, 16);
  document.getElementById("live").textContent = `updated ${clock(s.now_ms)}`;

  if (previous) {
    const dt = Math.max((s.now_ms - previous.now_ms) / 1000, 0.001);
    document.getElementById("rate-allowed").textContent = ((s.totals.allowed - previous.totals.allowed) / dt).toFixed(1);
    document.getElementById("rate-denied").textContent = ((s.totals.denied - previous.totals.denied) / dt).toFixed(1);
  }
  document.getElementById("total-allowed").textContent = `${s.totals.allowed} since start`;
  document.getElementById("total-denied").textContent = `${s.totals.denied} since start`;
  previous = s;

  const a = s.audit;
  document.getElementById("audit-head").textContent = a && a.head_seq !== null ? `seq ${a.head_seq} · ${String(a.head_hash).slice(0, 16)}…` : "–";
  document.getElementById("audit-info").textContent = a
    ? `${a.writable ? "writable" : "NOT WRITABLE"} · queue ${a.queue_depth} · dropped ${a.dropped} · checkpoints ${a.checkpoints}`
    : "no audit log";
  // The checkpoint proves every record before it (with the public key): its age says how much
  // of the log is not signed yet.
  const cp = a && a.last_checkpoint;
  document.getElementById("audit-checkpoint").textContent = cp ? `seq ${cp.seq}` : a ? "none yet" : "–";
  document.getElementById("audit-checkpoint-age").textContent = cp
    ? `${cp.age_s === null ? "time unknown" : age(cp.age_s)} · ${a.head_seq !== null ? a.head_seq - cp.seq : 0} record(s) since`
    : a ? "no signing key, or none written yet" : "";

  fill("conduits", s.conduits.map((c) => [c.id, c.zones.join(" ↔ "), [c.mode, c.mode === "monitor" ? "dec-would_deny" : ""], c.security_level || "–", c.listen, c.upstream]), 6, "no conduit");
  fill("units", s.units.map((u) => [u.conduit, u.unit, [u.status + (u.last_exception ? ` (0x${u.last_exception.toString(16).padStart(2, "0")})` : ""), `st-${u.status}`],
    rate(u.polls_per_s), age(u.last_good_age_s), u.ok, u.exceptions + u.timeouts + u.unreachable, u.denied, ms(u.p50_ms), ms(u.p99_ms)]), 10, "no request yet");
  fill("recent", s.recent.map((r) => r.kind === "alert"
    ? [clock(r.at_ms), r.conduit || "–", "–", "–", "–", ["alert", "dec-deny"], r.reason, r.message]
    : [clock(r.at_ms), r.conduit, r.src, r.unit, r.function || "–", [r.decision, `dec-${r.decision}`], r.reason, r.rule || "–"]), 8, "no denial yet");
  const monitor = s.conduits.some((c) => c.mode === "monitor") || s.would_deny.length > 0;
  document.getElementById("would-deny-section").hidden = !monitor;
  fill("would-deny", s.would_deny.map((w) => [w.conduit, w.rule, w.reason, w.count]), 4, "nothing enforce would block");
  fill("masters", s.masters.map((m) => [m.conduit, m.src, m.requests, m.denied, clock(m.last_seen_ms)]), 5, "no master yet");
}

function connect() {
  const source = new EventSource(withToken("api/events"));
  source.addEventListener("state", (e) => {
    try { render(JSON.parse(e.data)); } catch (err) { console.error(err); }
  });
  source.onerror = () => {
    const ready = document.getElementById("ready");
    ready.textContent = "disconnected";
    ready.className = "badge notready";
  };
}

connect();

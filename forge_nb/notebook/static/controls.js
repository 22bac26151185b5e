// forge-nb notebook widgets: queue controls, a live job view and a compact summary of many jobs.
//
// One plain ES module (no build step) shipped as forge_nb/notebook/static/controls.js; a test
// checks the two files are identical. The Python side picks the view with the synced `_view`
// trait ("queues", "job" or "summary"). Everything from data reaches the DOM through
// textContent, never parsed as HTML. The pure helpers are named exports so
// `node --test js/` can check them without a DOM.

/** @typedef {{waiting: number, pending: number, running: number, failed: number, done: number, dead: number}} Counts */

// The order of forge_nb.storage.records.STATUSES (tests/notebook/test_assets.py checks it).
export const STATUSES = ["waiting", "pending", "running", "failed", "done", "dead"];

// -- pure helpers (unit-tested) -------------------------------------------------------------

/** A count for humans: 999, 1.2k, 12k, 3.4M; "–" for missing values. */
export function formatCount(n) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return "–";
  const v = Number(n);
  const sign = v < 0 ? "-" : "";
  const a = Math.abs(v);
  const short = (x, unit) => {
    const digits = x < 10 ? 1 : 0;
    return sign + x.toFixed(digits).replace(/\.0$/, "") + unit;
  };
  if (a < 1000) return sign + String(Math.round(a));
  if (a < 999_500) return short(a / 1e3, "k");
  if (a < 999_500_000) return short(a / 1e6, "M");
  return short(a / 1e9, "G");
}

/** A rate such as 0.5, 12 or 1.2k (one decimal below 10). */
export function formatRate(x) {
  if (x === null || x === undefined || !Number.isFinite(Number(x))) return "–";
  const v = Number(x);
  if (Math.abs(v) >= 1000) return formatCount(v);
  if (Math.abs(v) >= 10) return String(Math.round(v));
  return v.toFixed(1).replace(/\.0$/, "");
}

/** Seconds as "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "–";
  const s = Math.max(0, Number(seconds));
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1).replace(/\.0$/, "")} s`;
  if (s < 3600) {
    const m = Math.floor(s / 60);
    return `${m} min ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
  }
  const h = Math.floor(s / 3600);
  return `${h} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** A progress fraction as a whole percentage in [0, 100]; null when unknown. */
export function percent(fraction) {
  if (fraction === null || fraction === undefined || !Number.isFinite(Number(fraction))) return null;
  return Math.round(Math.min(1, Math.max(0, Number(fraction))) * 100);
}

/**
 * The top of a sparkline's scale: the smallest of 1, 2, 5, 10, 20, 50, … at or above every
 * value. Round steps keep the scale still while values move (it changes only when the
 * busiest point crosses a step), and say something a person can read ("scale 0–50/min").
 */
export function niceCeiling(values) {
  let max = 0;
  for (const v of values || []) {
    const n = Number(v);
    if (Number.isFinite(n) && n > max) max = n;
  }
  if (max <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= max) return step * power;
  }
  return 10 * power;
}

/**
 * An SVG path drawing `values` as a line inside width × height (y grows downwards).
 * The top is `top` (default: `niceCeiling(values)`, so a flat zero line sits on the bottom).
 */
export function sparkPath(values, width, height, top) {
  const pts = (values || []).map((v) => (Number.isFinite(Number(v)) ? Math.max(0, Number(v)) : 0));
  if (pts.length === 0) return "";
  const max = Number.isFinite(Number(top)) && Number(top) > 0 ? Number(top) : niceCeiling(pts);
  const step = pts.length > 1 ? width / (pts.length - 1) : 0;
  const pad = 1;
  const y = (v) => height - pad - (v / max) * (height - 2 * pad);
  const r = (x) => Math.round(x * 10) / 10;
  if (pts.length === 1) return `M0,${r(y(pts[0]))}L${r(width)},${r(y(pts[0]))}`;
  return pts.map((v, i) => `${i === 0 ? "M" : "L"}${r(i * step)},${r(y(v))}`).join("");
}

/** Counts with every status present (missing or bad values become 0). */
export function normalizeCounts(counts) {
  const out = {};
  for (const s of STATUSES) {
    const v = Number((counts || {})[s]);
    out[s] = Number.isFinite(v) && v > 0 ? v : 0;
  }
  return out;
}

/** Sum of each status over every queue row ({counts: {...}}). */
export function totals(queues) {
  const out = normalizeCounts({});
  for (const q of queues || []) {
    const c = normalizeCounts(q && q.counts);
    for (const s of STATUSES) out[s] += c[s];
  }
  return out;
}

/**
 * The summary of many jobs shown under one progress bar: finished = done + dead;
 * `fraction` is finished / total (1 for an empty list), `doneShare`/`deadShare` split the bar.
 */
export function summarize(counts) {
  const c = normalizeCounts(counts);
  const total = STATUSES.reduce((acc, s) => acc + c[s], 0);
  const finished = c.done + c.dead;
  return {
    ...c,
    total,
    finished,
    fraction: total === 0 ? 1 : finished / total,
    doneShare: total === 0 ? 0 : c.done / total,
    deadShare: total === 0 ? 0 : c.dead / total,
  };
}

/** "3 done · 1 dead · 2 running · 4 pending · 5 waiting" (zero entries left out, "no jobs" when empty). */
export function summaryText(counts) {
  const s = summarize(counts);
  const order = ["done", "dead", "failed", "running", "pending", "waiting"];
  const label = { failed: "retrying" };
  const parts = order.filter((k) => s[k] > 0).map((k) => `${formatCount(s[k])} ${label[k] || k}`);
  return parts.length ? parts.join(" · ") : "no jobs";
}

/**
 * Lines for a summary's failures (dead jobs from Python: {id, kind, error}), at most `shown`,
 * then "… and N more dead" when `dead` (the count of dead jobs) is larger.
 */
export function failureLines(failures, dead, shown = 10) {
  const list = Array.isArray(failures) ? failures.slice(0, shown) : [];
  const lines = list.map((f) => `${f.id} ${f.kind || ""}: ${f.error || "dead"}`.replace(/ +:/, ":"));
  const rest = Math.max(0, Number(dead) || 0) - list.length;
  if (rest > 0) lines.push(`… and ${formatCount(rest)} more dead`);
  return lines;
}

/** Whether a job status is final. */
/**
 * Lines for the "no live worker runs it" flags: each flag's message, at most `shown` of
 * them, then "… and N more". Flags come from Python (`StrandedKind.to_dict`).
 */
export function flagLines(flags, shown = 4) {
  const list = Array.isArray(flags) ? flags : [];
  const lines = list.slice(0, shown).map((f) => `⚠ ${String(f.message || "")}`);
  if (list.length > shown) lines.push(`… and ${list.length - shown} more kind(s) no live worker runs`);
  return lines;
}

export function isTerminal(status) {
  return status === "done" || status === "dead";
}

/** Milliseconds without a beat after which a view counts as stopped (three missed beats). */
export function staleAfterMs(beatS) {
  const s = Number(beatS);
  return Math.max(5000, 3 * (Number.isFinite(s) && s > 0 ? s : 2) * 1000);
}

/**
 * What a view's live marker says: "live", "stopped", or null (nothing to show: the view
 * shows a finished job, or its host sends no beats, as Panel does).
 * `sinceBeatMs` is the time since the last beat arrived (or since the view was drawn),
 * measured with the browser's own clock only; `disconnected` is set when the widget
 * manager reports the comm gone (a kernel restart), until a beat proves otherwise.
 */
export function liveState({ live, finished, beatS, sinceBeatMs, disconnected }) {
  if (finished) return null;
  if (!live || disconnected) return "stopped";
  if (!(Number(beatS) > 0)) return "live";
  return sinceBeatMs > staleAfterMs(beatS) ? "stopped" : "live";
}

// -- DOM helpers -----------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";

/** Create an element; `text` always goes through textContent. */
function h(tag, props = {}, children = []) {
  const el = document.createElement(tag);
  if (props.cls) el.className = props.cls;
  if (props.text !== undefined) el.textContent = String(props.text);
  if (props.title !== undefined) el.title = String(props.title);
  for (const [k, v] of Object.entries(props.attrs || {})) el.setAttribute(k, String(v));
  for (const child of children) if (child) el.appendChild(child);
  return el;
}

/** Listen to several `change:x` events (one call each: not every host splits "a b"). */
function listen(model, names, fn) {
  for (const name of names) model.on(`change:${name}`, fn);
  return () => {
    for (const name of names) model.off(`change:${name}`, fn);
  };
}

function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

/** Send an action to Python: `model.send` when the host has it, else the synced `_action` trait. */
let actionSeq = 0;
function sendAction(model, msg) {
  actionSeq += 1;
  const full = { ...msg, seq: `${Date.now()}-${actionSeq}` };
  if (typeof model.send === "function") {
    model.send(full);
  } else {
    model.set("_action", full);
    model.save_changes();
  }
  return full.seq;
}

/** A button that sends `msg()` and stays disabled until Python acknowledges it (or 5 s pass). */
function actionButton(model, cls, label, title, msg, pending) {
  const btn = h("button", { cls: `fnb-btn ${cls}`, text: label, title, attrs: { type: "button" } });
  btn.addEventListener("click", (ev) => {
    ev.preventDefault();
    if (btn.disabled) return;
    btn.disabled = true;
    const seq = sendAction(model, msg());
    pending.set(seq, btn);
    setTimeout(() => {
      if (pending.get(seq) === btn) {
        pending.delete(seq);
        btn.disabled = false;
      }
    }, 5000);
  });
  return btn;
}

function progressBar(cls = "") {
  const fill = h("div", { cls: "fnb-bar-fill" });
  const bar = h("div", { cls: `fnb-bar ${cls}`, attrs: { role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 } }, [fill]);
  return { bar, fill };
}

function setProgress(pb, fraction) {
  const p = percent(fraction);
  pb.bar.classList.toggle("fnb-bar-unknown", p === null);
  pb.fill.style.width = `${p === null ? 100 : p}%`;
  if (p === null) pb.bar.removeAttribute("aria-valuenow");
  else pb.bar.setAttribute("aria-valuenow", String(p));
}

function sparkline(width = 96, height = 22) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "fnb-spark");
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const title = document.createElementNS(SVG_NS, "title");
  svg.appendChild(title);
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("fill", "none");
  svg.appendChild(path);
  return { svg, path, title, width, height };
}

/**
 * Follow whether the kernel behind a view is alive: beats (the `beat` trait) and the
 * widget manager's comm events. Calls `onChange()` when the answer may have changed
 * (at most once a second). Returns {state(finished), off()}.
 */
function liveness(model, onChange) {
  let lastBeat = Date.now();
  let disconnected = false;
  const onBeat = () => {
    lastBeat = Date.now();
    disconnected = false;
    onChange();
  };
  const onGone = () => {
    disconnected = true;
    onChange();
  };
  const offBeat = listen(model, ["beat", "live"], onBeat);
  const gone = ["comm_live_update", "comm:close"];
  for (const name of gone) {
    try {
      model.on(name, onGone); // JupyterLab: fired when a kernel restart drops the comms
    } catch (_e) {
      // hosts whose model only knows change events
    }
  }
  const timer = setInterval(onChange, 1000);
  return {
    state(finished) {
      return liveState({
        live: Boolean(model.get("live")),
        finished,
        beatS: model.get("beat_s"),
        sinceBeatMs: Date.now() - lastBeat,
        disconnected,
      });
    },
    off() {
      clearInterval(timer);
      offBeat();
      for (const name of gone) {
        try {
          model.off(name, onGone);
        } catch (_e) {
          // see above
        }
      }
    },
  };
}

/** Show `state` ("live" / "stopped" / null) in a `.fnb-live` marker. */
function showLive(el, state) {
  el.hidden = state === null;
  setText(el, state || "");
  el.classList.toggle("fnb-off", state !== "live");
  el.title = state === "stopped" ? "no updates from the kernel: it was restarted, shut down, or is busy" : "";
}

/** Wire a notice line and the pending-button map to the `notice` trait. */
function noticeLine(model, pending) {
  const el = h("div", { cls: "fnb-notice" });
  const update = () => {
    const n = model.get("notice") || {};
    setText(el, n.text || "");
    el.classList.toggle("fnb-error", n.level === "error");
    if (n.seq && pending.has(n.seq)) {
      pending.get(n.seq).disabled = false;
      pending.delete(n.seq);
    }
  };
  update();
  return { el, off: listen(model, ["notice"], update) };
}

// -- view: queue controls ------------------------------------------------------------------------

/**
 * Keep ``container``'s children one row per item, in the items' order, reusing the row of a
 * key seen before (``rows``: key -> row) and dropping rows whose key is gone. ``node(row)`` is
 * the row's element. Children are re-appended only when the order changed, so buttons are not
 * moved under the pointer.
 */
export function syncRows(container, rows, items, key, make, node, update) {
  const seen = new Set();
  const order = [];
  for (const item of items) {
    const k = key(item);
    seen.add(k);
    let row = rows.get(k);
    if (!row) {
      row = make(k, item);
      rows.set(k, row);
    }
    order.push(node(row));
    update(row, item, k);
  }
  for (const [k, row] of rows) {
    if (!seen.has(k)) {
      node(row).remove();
      rows.delete(k);
    }
  }
  const current = Array.from(container.children);
  if (current.length !== order.length || current.some((child, i) => child !== order[i])) {
    for (const child of order) container.appendChild(child);
  }
}

function renderQueues(model, el) {
  const pending = new Map();
  const root = h("div", { cls: "fnb-root fnb-controls" });
  const title = h("span", { cls: "fnb-title", text: "forge-nb" });
  const source = h("span", { cls: "fnb-source" });
  const live = h("span", { cls: "fnb-live" });
  const header = h("div", { cls: "fnb-header" }, [title, source, live]);

  const head = h("tr", {}, [
    h("th", { text: "queue" }),
    ...STATUSES.map((s) => h("th", { cls: `fnb-num fnb-th-${s}`, text: s })),
    h("th", { text: "throughput" }),
    h("th", { text: "workers" }),
    h("th", { text: "" }),
  ]);
  const tbody = h("tbody");
  const table = h("table", { cls: "fnb-queues" }, [h("thead", {}, [head]), tbody]);
  const empty = h("div", { cls: "fnb-empty", text: "No queues yet: enqueue a job or call app.ensure_queue()." });

  const flags = h("div", { cls: "fnb-flags" });
  const runTitle = h("div", { cls: "fnb-subtitle" });
  const runList = h("div", { cls: "fnb-running" });
  const more = h("div", { cls: "fnb-more" });
  const notice = noticeLine(model, pending);

  root.append(header, flags, table, empty, runTitle, runList, more, notice.el);
  el.appendChild(root);

  /** @type {Map<string, any>} */
  const rows = new Map();
  /** @type {Map<string, any>} */
  const jobs = new Map();

  function queueRow(name) {
    const cells = {};
    const tr = h("tr", { cls: "fnb-queue-row", attrs: { "data-queue": name } });
    tr.appendChild(h("td", { cls: "fnb-queue-name", text: name }));
    for (const s of STATUSES) {
      cells[s] = h("td", { cls: `fnb-num fnb-count fnb-count-${s}` });
      tr.appendChild(cells[s]);
    }
    const spark = sparkline();
    const rate = h("span", { cls: "fnb-rate" });
    tr.appendChild(h("td", { cls: "fnb-spark-cell" }, [spark.svg, rate]));
    const minus = actionButton(model, "fnb-workers-minus", "−", `fewer workers for ${name}`,
      () => ({ type: "workers", queue: name, delta: -1 }), pending);
    const plus = actionButton(model, "fnb-workers-plus", "+", `more workers for ${name}`,
      () => ({ type: "workers", queue: name, delta: 1 }), pending);
    const workers = h("span", { cls: "fnb-workers" });
    tr.appendChild(h("td", { cls: "fnb-workers-cell" }, [minus, workers, plus]));
    const pause = actionButton(model, "fnb-pause", "Pause", `pause or resume ${name}`,
      () => ({ type: row.paused ? "resume" : "pause", queue: name }), pending);
    const retry = actionButton(model, "fnb-retry-dead", "Retry dead", `retry every dead job of ${name}`,
      () => ({ type: "retry_dead", queue: name }), pending);
    tr.appendChild(h("td", { cls: "fnb-actions" }, [pause, retry]));
    const row = { tr, cells, spark, rate, workers, pause, retry, paused: false };
    return row;
  }

  function updateQueues() {
    const queues = model.get("queues") || [];
    syncRows(tbody, rows, queues, (q) => String(q.name), queueRow, (row) => row.tr, updateQueue);
    empty.hidden = queues.length > 0;
    table.hidden = queues.length === 0;
  }

  function updateQueue(row, q) {
    const c = normalizeCounts(q.counts);
    for (const s of STATUSES) {
      setText(row.cells[s], formatCount(c[s]));
      row.cells[s].classList.toggle("fnb-zero", c[s] === 0);
    }
    row.paused = Boolean(q.paused);
    row.tr.classList.toggle("fnb-paused", row.paused);
    setText(row.pause, row.paused ? "Resume" : "Pause");
    setText(row.workers, q.workers === null || q.workers === undefined ? "–" : String(q.workers));
    row.retry.hidden = c.dead === 0;
    setText(row.retry, `Retry ${formatCount(c.dead)} dead`);
    const values = q.spark || [];
    const unit = q.spark_unit || "";
    const top = niceCeiling(values);
    row.spark.path.setAttribute("d", sparkPath(values, row.spark.width, row.spark.height, top));
    const last = values.length ? values[values.length - 1] : null;
    const rate = q.rate === null || q.rate === undefined ? last : q.rate;
    setText(row.rate, rate === null ? "" : `${formatRate(rate)}${unit}`);
    const label = `${q.spark_label || ""}; scale 0–${formatCount(top)}${unit}`;
    row.rate.title = label;
    row.spark.svg.setAttribute("aria-label", label);
    row.spark.title.textContent = label;
  }

  function jobRow(job) {
    const id = String(job.id);
    const pb = progressBar();
    const label = h("span", { cls: "fnb-job-label" });
    const msg = h("span", { cls: "fnb-job-message" });
    const cancel = actionButton(model, "fnb-cancel", "Cancel", `cancel job ${id}`,
      () => ({ type: "cancel", job_id: id }), pending);
    const div = h("div", { cls: "fnb-job", attrs: { "data-job-id": id } }, [label, pb.bar, msg, cancel]);
    return { div, label, msg, pb, cancel };
  }

  function updateJob(row, job, id) {
    setText(row.label, `${job.kind} · ${job.queue} · #${id}`);
    setProgress(row.pb, job.progress);
    const p = percent(job.progress);
    const text = [p === null ? "" : `${p}%`, job.message || ""].filter(Boolean).join(" ");
    setText(row.msg, job.cancel_requested ? "cancelling…" : text);
  }

  function updateRunning() {
    const running = model.get("running") || [];
    const total = Number(model.get("running_total")) || 0;
    syncRows(runList, jobs, running, (job) => String(job.id), (_id, job) => jobRow(job),
      (row) => row.div, updateJob);
    setText(runTitle, total ? `Running (${formatCount(total)})` : "Nothing running");
    const hidden = Math.max(0, total - running.length);
    setText(more, hidden ? `and ${formatCount(hidden)} more running` : "");
    more.hidden = hidden === 0;
  }

  /** Jobs that wait because no live worker runs their kind (workers claim only their kinds). */
  function updateFlags() {
    const lines = flagLines(model.get("stranded"));
    const current = Array.from(flags.children).map((d) => d.textContent);
    if (current.length !== lines.length || current.some((t, i) => t !== lines[i])) {
      flags.replaceChildren(...lines.map((text) => h("div", { cls: "fnb-flag", text })));
    }
    flags.hidden = lines.length === 0;
  }

  const alive = liveness(model, () => updateHeader());
  function updateHeader() {
    setText(source, model.get("source") || "");
    showLive(live, alive.state(false));
  }

  updateHeader();
  updateFlags();
  updateQueues();
  updateRunning();
  const offs = [
    listen(model, ["stranded"], updateFlags),
    listen(model, ["queues"], updateQueues),
    listen(model, ["running", "running_total"], updateRunning),
    listen(model, ["source"], updateHeader),
    alive.off,
    notice.off,
  ];
  return () => offs.forEach((off) => off());
}

// -- view: one job -------------------------------------------------------------------------------

function renderJob(model, el) {
  const pending = new Map();
  const label = h("span", { cls: "fnb-job-label" });
  const status = h("span", { cls: "fnb-status" });
  const attempts = h("span", { cls: "fnb-attempts" });
  const cancel = actionButton(model, "fnb-cancel", "Cancel", "cancel this job",
    () => ({ type: "cancel" }), pending);
  const pb = progressBar();
  const msg = h("span", { cls: "fnb-job-message" });
  const live = h("span", { cls: "fnb-live" });
  const result = h("pre", { cls: "fnb-result" });
  const error = h("pre", { cls: "fnb-error-text" });
  // The traceback behind a toggle: the error line says what, the traceback says where.
  const tracebackText = h("pre", { cls: "fnb-traceback-text" });
  const traceback = h("details", { cls: "fnb-traceback" }, [
    h("summary", { text: "Traceback" }),
    tracebackText,
  ]);
  // What the latest attempt printed and logged (its last lines), live while it runs.
  const logsText = h("pre", { cls: "fnb-logs-text" });
  const logs = h("details", { cls: "fnb-logs" }, [h("summary", { text: "Logs" }), logsText]);
  const notice = noticeLine(model, pending);
  const root = h("div", { cls: "fnb-root fnb-jobview" }, [
    h("div", { cls: "fnb-header" }, [label, status, attempts, live, cancel]),
    h("div", { cls: "fnb-progress-line" }, [pb.bar, msg]),
    result,
    error,
    traceback,
    logs,
    notice.el,
  ]);
  el.appendChild(root);
  // A finished (or deleted) job needs no updates: its view shows no live marker.
  const finished = (st) => isTerminal(st) || st === "missing";
  const alive = liveness(model, () => showLive(live, alive.state(finished(String(model.get("status") || "")))));

  // Each text trait, the element that shows it, and the section hidden while it is empty.
  const texts = [
    ["result", result, result],
    ["error", error, error],
    ["traceback", tracebackText, traceback],
    ["logs", logsText, logs],
  ];

  function update() {
    const st = String(model.get("status") || "");
    setText(label, `${model.get("kind") || "job"} #${model.get("job_id")}`);
    setText(status, st || "unknown");
    status.className = `fnb-status fnb-status-${st.replace(/[^a-z]/g, "")}`;
    const a = model.get("attempts");
    const m = model.get("max_attempts");
    setText(attempts, a ? `attempt ${a}/${m}` : "");
    cancel.hidden = isTerminal(st) || st === "" || st === "missing";
    const fraction = st === "done" ? 1 : model.get("progress");
    setProgress(pb, st === "pending" && fraction === null ? 0 : fraction);
    pb.bar.classList.toggle("fnb-bar-dead", st === "dead");
    pb.bar.classList.toggle("fnb-bar-done", st === "done");
    const p = percent(fraction);
    setText(msg, [p === null ? "" : `${p}%`, model.get("message") || ""].filter(Boolean).join(" "));
    for (const [trait, text, section] of texts) {
      const value = model.get(trait) || "";
      setText(text, value);
      section.hidden = value === "";
    }
    showLive(live, alive.state(finished(st)));
  }
  update();
  const off = listen(
    model,
    ["status", "progress", "message", "result", "error", "traceback", "logs", "attempts",
      "max_attempts"],
    update,
  );
  return () => {
    off();
    alive.off();
    notice.off();
  };
}

// -- view: many jobs in one line -----------------------------------------------------------------

function renderSummary(model, el) {
  const label = h("span", { cls: "fnb-job-label" });
  const text = h("span", { cls: "fnb-summary-text" });
  const live = h("span", { cls: "fnb-live" });
  const doneFill = h("div", { cls: "fnb-bar-fill fnb-fill-done" });
  const deadFill = h("div", { cls: "fnb-bar-fill fnb-fill-dead" });
  const bar = h("div", { cls: "fnb-bar fnb-bar-stacked", attrs: { role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 } }, [doneFill, deadFill]);
  const failures = h("div", { cls: "fnb-failures" });
  const root = h("div", { cls: "fnb-root fnb-summary" }, [
    h("div", { cls: "fnb-header" }, [label, text, live]),
    bar,
    failures,
  ]);
  el.appendChild(root);
  const allFinished = () => summarize(model.get("counts") || {}).fraction === 1;
  const alive = liveness(model, () => showLive(live, alive.state(allFinished())));
  function update() {
    const counts = model.get("counts") || {};
    const s = summarize(counts);
    setText(label, `${formatCount(s.total)} jobs${model.get("kinds") ? ` · ${model.get("kinds")}` : ""}`);
    setText(text, summaryText(counts));
    doneFill.style.width = `${(s.doneShare * 100).toFixed(2)}%`;
    deadFill.style.width = `${(s.deadShare * 100).toFixed(2)}%`;
    bar.setAttribute("aria-valuenow", String(Math.round(s.fraction * 100)));
    showLive(live, alive.state(s.fraction === 1));
    const lines = failureLines(model.get("failures"), s.dead);
    failures.replaceChildren(...lines.map((line) => h("div", { cls: "fnb-failure fnb-error-text", text: line })));
    failures.hidden = lines.length === 0;
  }
  update();
  const off = listen(model, ["counts", "kinds", "failures"], update);
  return () => {
    off();
    alive.off();
  };
}

// -- entry point -----------------------------------------------------------------------------------

const VIEWS = { queues: renderQueues, job: renderJob, summary: renderSummary };

export default {
  render({ model, el }) {
    const view = VIEWS[model.get("_view")] || renderQueues;
    return view(model, el);
  },
};

// Unit tests of the widgets' pure logic: `node --test js/` (no DOM, no dependencies).
// The module under test is the one the package ships: forge_nb/notebook/static/controls.js.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  failureLines,
  flagLines,
  formatCount,
  formatDuration,
  formatRate,
  isTerminal,
  liveState,
  niceCeiling,
  normalizeCounts,
  percent,
  sparkPath,
  staleAfterMs,
  summarize,
  summaryText,
  syncRows,
  totals,
} from "../forge_nb/notebook/static/controls.js";

test("formatCount keeps small numbers and shortens big ones", () => {
  assert.equal(formatCount(0), "0");
  assert.equal(formatCount(999), "999");
  assert.equal(formatCount(1000), "1k");
  assert.equal(formatCount(1234), "1.2k");
  assert.equal(formatCount(12_345), "12k");
  assert.equal(formatCount(999_499), "999k");
  assert.equal(formatCount(999_500), "1M");
  assert.equal(formatCount(3_400_000), "3.4M");
  assert.equal(formatCount(2_000_000_000), "2G");
  assert.equal(formatCount(-1500), "-1.5k");
  assert.equal(formatCount(null), "–");
  assert.equal(formatCount(undefined), "–");
  assert.equal(formatCount("abc"), "–");
});

test("formatRate shows one decimal only below ten", () => {
  assert.equal(formatRate(0), "0");
  assert.equal(formatRate(0.25), "0.3");
  assert.equal(formatRate(2), "2");
  assert.equal(formatRate(12.6), "13");
  assert.equal(formatRate(2500), "2.5k");
  assert.equal(formatRate(NaN), "–");
});

test("formatDuration picks a readable unit", () => {
  assert.equal(formatDuration(0.25), "250 ms");
  assert.equal(formatDuration(12.34), "12.3 s");
  assert.equal(formatDuration(5), "5 s");
  assert.equal(formatDuration(245), "4 min 05 s");
  assert.equal(formatDuration(7380), "2 h 03 min");
  assert.equal(formatDuration(-3), "0 ms");
  assert.equal(formatDuration(null), "–");
});

test("percent clamps and rounds; unknown stays null", () => {
  assert.equal(percent(0), 0);
  assert.equal(percent(0.456), 46);
  assert.equal(percent(1.5), 100);
  assert.equal(percent(-1), 0);
  assert.equal(percent(null), null);
  assert.equal(percent(undefined), null);
});

test("sparkPath spans the width and puts the maximum at the top", () => {
  assert.equal(sparkPath([], 100, 20), "");
  assert.equal(sparkPath([0, 5, 10], 100, 20), "M0,19L50,10L100,1");
  // A flat zero line sits at the bottom (the scale is at least 1).
  assert.equal(sparkPath([0, 0], 10, 20), "M0,19L10,19");
  // One point draws a flat line across (3 on a 0–5 scale).
  assert.equal(sparkPath([3], 10, 20), "M0,8.2L10,8.2");
  // Bad and negative values count as zero.
  assert.equal(sparkPath([null, -4, 2], 10, 12), "M0,11L5,11L10,1");
});

test("the sparkline's scale moves in round steps, so the line does not rescale on every value", () => {
  assert.equal(niceCeiling([]), 1);
  assert.equal(niceCeiling([0, 0.4]), 1);
  assert.equal(niceCeiling([3]), 5);
  assert.equal(niceCeiling([12, 7]), 20);
  assert.equal(niceCeiling([20]), 20);
  assert.equal(niceCeiling([21]), 50);
  assert.equal(niceCeiling([51, null, "x"]), 100);
  assert.equal(niceCeiling([999]), 1000);
  // 31 and 44 jobs/min draw on the same 0–50 scale: the same value keeps the same height.
  assert.equal(sparkPath([31, 44], 10, 20).split("L")[0], sparkPath([31, 12], 10, 20).split("L")[0]);
  // An explicit top wins.
  assert.equal(sparkPath([5], 10, 20, 10), "M0,10L10,10");
});

test("a view is stale after three missed beats (at least 5 s)", () => {
  assert.equal(staleAfterMs(2), 6000);
  assert.equal(staleAfterMs(0.5), 5000);
  assert.equal(staleAfterMs(undefined), 6000);
});

test("the live marker: stopped when the kernel's beats stop or its comm is gone", () => {
  const base = { live: true, finished: false, beatS: 2, sinceBeatMs: 1000, disconnected: false };
  assert.equal(liveState(base), "live");
  // After a kernel restart nothing arrives any more: stopped once the beats are overdue.
  assert.equal(liveState({ ...base, sinceBeatMs: 5999 }), "live");
  assert.equal(liveState({ ...base, sinceBeatMs: 6001 }), "stopped");
  // JupyterLab drops the comms of a restarted kernel: stopped at once.
  assert.equal(liveState({ ...base, disconnected: true }), "stopped");
  // Python stopped updating (App closed or replaced, widget closed).
  assert.equal(liveState({ ...base, live: false }), "stopped");
  // A finished job needs no updates: no marker at all.
  assert.equal(liveState({ ...base, finished: true, sinceBeatMs: 1e9 }), null);
  // A host that sends no beats (Panel) is trusted on `live` alone.
  assert.equal(liveState({ ...base, beatS: undefined, sinceBeatMs: 1e9 }), "live");
});

test("normalizeCounts fills every status", () => {
  assert.deepEqual(normalizeCounts({ done: 3, bogus: 1, dead: -2 }), {
    waiting: 0, pending: 0, running: 0, failed: 0, done: 3, dead: 0,
  });
  assert.deepEqual(normalizeCounts(undefined), { waiting: 0, pending: 0, running: 0, failed: 0, done: 0, dead: 0 });
});

test("totals add statuses across queues", () => {
  const queues = [
    { name: "a", counts: { pending: 2, done: 5 } },
    { name: "b", counts: { pending: 1, running: 3, dead: 1 } },
    { name: "c" },
  ];
  assert.deepEqual(totals(queues), { waiting: 0, pending: 3, running: 3, failed: 0, done: 5, dead: 1 });
});

test("summarize splits the bar between done and dead", () => {
  const s = summarize({ done: 6, dead: 2, running: 1, pending: 1 });
  assert.equal(s.total, 10);
  assert.equal(s.finished, 8);
  assert.equal(s.fraction, 0.8);
  assert.equal(s.doneShare, 0.6);
  assert.equal(s.deadShare, 0.2);
  assert.equal(summarize({}).fraction, 1);
});

test("summaryText leaves out zero counts", () => {
  assert.equal(summaryText({ done: 3, dead: 1, running: 2, pending: 1200 }), "3 done · 1 dead · 2 running · 1.2k pending");
  assert.equal(summaryText({ failed: 2 }), "2 retrying");
  assert.equal(summaryText({}), "no jobs");
  assert.equal(summaryText({ done: 1, waiting: 4 }), "1 done · 4 waiting");
});

test("summarize counts waiting jobs as unfinished", () => {
  const s = summarize({ waiting: 3, done: 1 });
  assert.equal(s.total, 4);
  assert.equal(s.fraction, 0.25);
});

test("failureLines lists dead jobs with their errors, then how many more", () => {
  assert.deepEqual(failureLines(undefined, 0), []);
  const f = [{ id: "j1", kind: "fetch", error: "boom" }, { id: "j2", kind: "", error: "" }];
  assert.deepEqual(failureLines(f, 2), ["j1 fetch: boom", "j2: dead"]);
  assert.deepEqual(failureLines(f, 1200, 1), ["j1 fetch: boom", "… and 1.2k more dead"]);
});

test("isTerminal", () => {
  assert.equal(isTerminal("done"), true);
  assert.equal(isTerminal("dead"), true);
  assert.equal(isTerminal("failed"), false);
  assert.equal(isTerminal("running"), false);
});

test("flagLines lists the kinds no live worker runs, a few by name", () => {
  const flag = (kind) => ({ kind, message: `2 pending jobs of kind \`${kind}\` in queue \`q\`: no live worker runs it` });
  assert.deepEqual(flagLines([]), []);
  assert.deepEqual(flagLines(undefined), []);
  assert.deepEqual(flagLines([flag("x")]), ["⚠ 2 pending jobs of kind `x` in queue `q`: no live worker runs it"]);
  const many = flagLines(["a", "b", "c", "d", "e", "f"].map(flag), 4);
  assert.equal(many.length, 5);
  assert.equal(many[4], "… and 2 more kind(s) no live worker runs");
});

test("syncRows reuses rows by key, drops gone ones and re-appends only on a new order", () => {
  const container = {
    children: [],
    appends: 0,
    appendChild(child) {
      const at = this.children.indexOf(child);
      if (at >= 0) this.children.splice(at, 1);
      this.children.push(child);
      child.parent = this;
      this.appends += 1;
    },
  };
  const element = (name) => ({
    name,
    remove() {
      const at = this.parent.children.indexOf(this);
      if (at >= 0) this.parent.children.splice(at, 1);
    },
  });
  const rows = new Map();
  const made = [];
  const sync = (items) =>
    syncRows(container, rows, items, (item) => item.id,
      (key, item) => { made.push(key); return { el: element(key), value: null, first: item.v }; },
      (row) => row.el, (row, item) => { row.value = item.v; });
  sync([{ id: "a", v: 1 }, { id: "b", v: 2 }]);
  assert.deepEqual(container.children.map((c) => c.name), ["a", "b"]);
  assert.equal(rows.get("b").value, 2);
  const appends = container.appends;
  sync([{ id: "a", v: 3 }, { id: "b", v: 4 }]);
  assert.equal(container.appends, appends, "same order: nothing moved");
  assert.deepEqual(made, ["a", "b"], "rows are reused");
  assert.equal(rows.get("a").value, 3);
  sync([{ id: "c", v: 5 }, { id: "a", v: 6 }]);
  assert.deepEqual(container.children.map((c) => c.name), ["c", "a"]);
  assert.deepEqual([...rows.keys()], ["a", "c"]);
  assert.deepEqual(made, ["a", "b", "c"]);
});

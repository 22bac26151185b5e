// Unit tests of the labextension's DOM-free modules, on the compiled lib/ (run by
// scripts/test.sh after scripts/build_labextension.sh): `node --test labextension/test/`.
// lib/*.js are ES modules in a package without "type": "module" (webpack wants it that
// way), so they are loaded from their source text.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const load = (name) =>
  import(
    "data:text/javascript," +
      encodeURIComponent(readFileSync(new URL(`../lib/${name}.js`, import.meta.url), "utf8"))
  );
const { Poller } = await load("poll");
const { dashboardUrl, withTheme, apiUrl } = await load("urls");
const { TABS, findTab } = await load("tabs");

/** A clock whose time moves only when told; timers run in order, promises settle between. */
function fakeClock() {
  let now = 0;
  let timers = [];
  let next = 0;
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = ++next;
      timers.push({ id, at: now + ms, fn });
      return id;
    },
    clearTimeout(id) {
      timers = timers.filter((t) => t.id !== id);
    },
    async advance(ms) {
      const end = now + ms;
      for (;;) {
        await new Promise((r) => setImmediate(r));
        timers.sort((a, b) => a.at - b.at || a.id - b.id);
        const due = timers[0];
        if (!due || due.at > end) break;
        timers.shift();
        now = due.at;
        due.fn();
      }
      now = end;
      await new Promise((r) => setImmediate(r));
    },
  };
}

function recorder(clock, durationMs = 0) {
  const starts = [];
  const request = () => {
    starts.push(clock.now());
    return new Promise((resolve) => clock.setTimeout(resolve, durationMs));
  };
  return { starts, request };
}

const gaps = (xs) => xs.slice(1).map((x, i) => x - xs[i]);

test("requests start at most once per interval, the first at once", async () => {
  const clock = fakeClock();
  const { starts, request } = recorder(clock, 30);
  const poller = new Poller(request, 2000, clock);
  poller.start();
  await clock.advance(10_000);
  assert.deepEqual(starts, [0, 2000, 4000, 6000, 8000, 10000]);
  poller.stop();
  await clock.advance(10_000);
  assert.equal(starts.length, 6);
});

test("a slow answer delays the next request: never two at once", async () => {
  const clock = fakeClock();
  const { starts, request } = recorder(clock, 3500);
  const poller = new Poller(request, 2000, clock);
  poller.start();
  await clock.advance(12_000);
  assert.deepEqual(starts, [0, 3500, 7000, 10500]);
  poller.stop();
});

test("stopping and starting again keeps the spacing", async () => {
  const clock = fakeClock();
  const { starts, request } = recorder(clock, 10);
  const poller = new Poller(request, 2000, clock);
  for (let i = 0; i < 20; i++) {
    poller.start();
    await clock.advance(300);
    poller.stop();
    await clock.advance(200);
  }
  assert.ok(starts.length >= 4 && starts.length <= 6, String(starts));
  assert.ok(gaps(starts).every((g) => g >= 2000), String(starts));
});

test("a failed request does not stop the polling", async () => {
  const clock = fakeClock();
  let calls = 0;
  const poller = new Poller(() => { calls += 1; return Promise.reject(new Error("502")); }, 2000, clock);
  poller.start();
  await clock.advance(4_000);
  assert.equal(calls, 3);
  assert.equal(poller.count, 3);
  poller.stop();
});

test("a request that throws at once still waits its turn", async () => {
  const clock = fakeClock();
  const starts = [];
  const poller = new Poller(() => { starts.push(clock.now()); throw new Error("no"); }, 2000, clock);
  poller.start();
  await clock.advance(5_000);
  assert.deepEqual(starts, [0, 2000, 4000]);
  poller.stop();
});

test("a stopped poller makes no requests", async () => {
  const clock = fakeClock();
  const { starts, request } = recorder(clock);
  new Poller(request, 2000, clock);
  await clock.advance(10_000);
  assert.equal(starts.length, 0);
});

test("dashboard URLs: tab, theme and escaping", () => {
  assert.equal(dashboardUrl("/user/ann/", "dead", false), "/user/ann/forge-nb/?tab=dead");
  assert.equal(dashboardUrl("/", "db-health", true), "/forge-nb/?tab=db-health&theme=dark");
  assert.equal(withTheme("/forge-nb/?tab=dead", true), "/forge-nb/?tab=dead&theme=dark");
  assert.equal(withTheme("/forge-nb/?tab=dead&theme=dark", false), "/forge-nb/?tab=dead");
  assert.equal(withTheme("/forge-nb/", true), "/forge-nb/?theme=dark");
  assert.equal(withTheme("/forge-nb/?theme=dark", false), "/forge-nb/");
  assert.equal(apiUrl("/", "queues", "a/b c"), "/forge-nb/api/queues/a%2Fb%20c");
  assert.equal(apiUrl("/user/x", "counts"), "/user/x/forge-nb/api/counts");
});

test("tabs: slugs are unique, unknown ones open the Overview", () => {
  assert.equal(new Set(TABS.map((t) => t.slug)).size, TABS.length);
  assert.equal(findTab("nope").slug, "overview");
  assert.equal(findTab("dead").title, "Dead");
});

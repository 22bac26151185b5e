"""forge-nb in JupyterLab: what the extension and the proxy cost (not CI).

    python bench/lab.py                 # 5 interleaved rounds of each measure
    python bench/lab.py --rounds 9

Needs the built labextension (``bash scripts/build_labextension.sh``), chromium and the dev
environment. Three measures, each printed as runs, median and spread:

1. **Sidebar requests**: with the forge-nb sidebar open for ``--watch`` seconds, the API
   requests the page made (the browser's resource timing: start times), their smallest
   gap and rate; then collapsed, and shown with the browser tab hidden, for as long.
2. **Lab start-up** with vs without the extension: two Lab servers alike but for the
   linked labextension, loaded in turn (fresh browser context each, ``?reset``), time
   from navigation start to ``.jp-LabShell`` in the DOM and to the launcher shown
   (a MutationObserver in the page records both), and the script CPU time the page spent
   until then (Chromium's ``ScriptDuration``, steadier than wall time on a busy machine).
3. **Mission Control's first chart**, through jupyter-server-proxy
   (``<lab>/forge-nb/``, the Lab page's origin, a Unix socket behind it) vs direct
   (``forge-nb dashboard --port``, same database), in turn: from ``goto`` to the first
   Bokeh canvas. Each side is loaded once first (the proxy starts its server then).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.dashboard.support import CHROMIUM, CHROMIUM_ARGS, free_port, run_sync  # noqa: E402
from tests.jupyter.conftest import BUILT, LAB_OVERRIDES, TOKEN, seed, stop_lab  # noqa: E402
from tests.notebook.support import kernel_env  # noqa: E402

MARKS_JS = """
window.__fnbMarks = {};
new MutationObserver((_, obs) => {
  const m = window.__fnbMarks;
  if (!m.shell && document.querySelector(".jp-LabShell")) m.shell = performance.now();
  if (!m.launcher && document.querySelector(".jp-Launcher")) m.launcher = performance.now();
  if (m.shell && m.launcher) obs.disconnect();
}).observe(document, {childList: true, subtree: true});
"""
API_STARTS_JS = """() => performance.getEntriesByType("resource")
    .filter(e => e.name.includes("/forge-nb/api/")).map(e => e.startTime)"""


@contextmanager
def lab_server(tmp: Path, root: Path, *, extension: bool) -> Iterator[str]:
    """A JupyterLab like tests/jupyter/conftest.py's, with or without the labextension."""
    name = "with" if extension else "without"
    base = tmp / name
    (base / "data" / "labextensions").mkdir(parents=True)
    if extension:
        (base / "data" / "labextensions" / "forge-nb").symlink_to(BUILT)
    (base / "app_settings").mkdir()
    (base / "app_settings" / "overrides.json").write_text(json.dumps(LAB_OVERRIDES))
    port = free_port()
    env = kernel_env(
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--ServerApp.token={TOKEN}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.app_settings_dir={base / 'app_settings'}",
        ],
        env=env,
        cwd=base,
        stdout=(base / "lab.log").open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (base / "lab.log").read_text()
                    raise SystemExit(f"Lab did not start:\n{log}") from None
                time.sleep(0.2)
        yield url
    finally:
        stop_lab(proc)


@contextmanager
def direct_dashboard(tmp: Path, db_url: str) -> Iterator[str]:
    port = free_port()
    log = (tmp / "direct.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "forge_nb.cli", "dashboard", "--db", db_url, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "api/counts", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("direct dashboard did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def summary(label: str, values: list[float], unit: str = "ms") -> str:
    runs = ", ".join(f"{v:.0f}" for v in values)
    spread = f"{min(values):.0f}-{max(values):.0f}"
    return f"{label:<44} median {statistics.median(values):7.0f} {unit}  ({spread}; runs {runs})"


#: The extension's own files as the page fetched them: count, bytes, when the last one ended.
OWN_FILES_JS = """() => {
  const own = performance.getEntriesByType("resource")
    .filter(e => e.name.includes("/lab/extensions/forge-nb/"));
  return [own.length, own.reduce((n, e) => n + e.encodedBodySize, 0),
          Math.max(0, ...own.map(e => e.duration))];
}"""


def lab_start(browser: Any, url: str) -> tuple[float, float, list[float], float, float]:
    """(ms to .jp-LabShell, ms to the launcher, the extension's files, ms of script CPU time
    the page spent until the launcher showed (Chromium's ScriptDuration), ms of it sampled
    inside forge-nb's own code or what it called (the CPU profiler, 100 us samples))."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 100})
        cdp.send("Profiler.start")
        page.add_init_script(MARKS_JS)
        page.goto(f"{url}/lab?reset&token={TOKEN}")
        page.locator(".jp-Launcher").wait_for(timeout=180_000)
        profile = cdp.send("Profiler.stop")["profile"]
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        marks = page.evaluate("() => window.__fnbMarks")
        own = [float(v) for v in page.evaluate(OWN_FILES_JS)]
        script_ms = float(metrics["ScriptDuration"]) * 1000
        return float(marks["shell"]), float(marks["launcher"]), own, script_ms, own_ms(profile)
    finally:
        context.close()


def own_ms(profile: dict[str, Any]) -> float:
    """Sampled time with a forge-nb frame anywhere on the stack (its code and its calls)."""
    parent: dict[int, int] = {}
    ours: set[int] = set()
    for node in profile["nodes"]:
        for child in node.get("children", []):
            parent[child] = node["id"]
        if "/lab/extensions/forge-nb/" in node["callFrame"].get("url", ""):
            ours.add(node["id"])
    inside: dict[int, bool] = {}

    def under_ours(node: int) -> bool:
        if node not in inside:
            up = parent.get(node)
            inside[node] = node in ours or (up is not None and under_ours(up))
        return inside[node]

    deltas = profile.get("timeDeltas", [])
    total_us = sum(
        delta
        for sample, delta in zip(profile.get("samples", []), [*deltas[1:], 0], strict=False)
        if under_ours(sample)
    )
    return total_us / 1000


def first_chart(browser: Any, url: str, context: Any = None) -> float:
    """goto -> first canvas, in a fresh context (cold cache) or the one given (warm)."""
    own = context is None
    context = context or browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url)
        page.locator("canvas").first.wait_for(state="attached", timeout=180_000)
        took = (time.perf_counter() - started) * 1000
        page.close()
        return took
    finally:
        if own:
            context.close()


def sidebar_requests(browser: Any, url: str, watch_s: float) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{url}/lab?reset&token={TOKEN}")
        page.locator(".jp-Launcher").wait_for(timeout=180_000)
        tab = page.locator(".jp-SideBar .lm-TabBar-tab[data-id='forge-nb-sidebar']")
        tab.click()
        page.locator(".fnb-lab-queue").first.wait_for(timeout=180_000)
        start = len(page.evaluate(API_STARTS_JS))
        page.wait_for_timeout(watch_s * 1000)
        starts = page.evaluate(API_STARTS_JS)[start - 1 :]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        tab.click()  # collapse
        before = len(page.evaluate(API_STARTS_JS))
        page.wait_for_timeout(watch_s * 1000)
        collapsed = len(page.evaluate(API_STARTS_JS)) - before
        tab.click()  # shown, then the browser tab hidden
        page.wait_for_timeout(2_500)
        page.evaluate(
            """() => { Object.defineProperty(document, "visibilityState", {value: "hidden"});
                       document.dispatchEvent(new Event("visibilitychange")); }"""
        )
        page.wait_for_timeout(2_500)
        before = len(page.evaluate(API_STARTS_JS))
        page.wait_for_timeout(watch_s * 1000)
        hidden = len(page.evaluate(API_STARTS_JS)) - before
        span_s = (starts[-1] - starts[0]) / 1000 if len(starts) > 1 else 0.0
        return {
            "requests": len(starts),
            "span_s": span_s,
            "per_2s": 2 * (len(starts) - 1) / span_s if span_s else 0.0,
            "min_gap_ms": min(gaps) if gaps else 0.0,
            "collapsed": collapsed,
            "hidden": hidden,
        }
    finally:
        context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--watch", type=float, default=20.0, help="seconds per sidebar phase")
    parser.add_argument(
        "--only",
        default="sidebar,startup,chart",
        help="comma-separated measures to run (default: sidebar,startup,chart)",
    )
    args = parser.parse_args()
    if not (BUILT / "package.json").is_file():
        raise SystemExit("build the labextension first: bash scripts/build_labextension.sh")
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="forge_nb_bench_lab_"))
    root = tmp / "tree"
    root.mkdir()
    db_url = f"sqlite:///{root / '.forge_nb' / 'forge_nb.db'}"
    run_sync(lambda: seed(db_url))
    try:
        with (
            lab_server(tmp, root, extension=True) as with_ext,
            lab_server(tmp, root, extension=False) as without_ext,
            direct_dashboard(tmp, db_url) as direct,
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            only = set(args.only.split(","))
            if "sidebar" in only:
                sidebar_measure(browser, with_ext, args.watch)
            if "startup" in only:
                startup_measure(browser, with_ext, without_ext, args.rounds)
            if "chart" in only:
                chart_measure(browser, with_ext, direct, args.rounds)
            browser.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def sidebar_measure(browser: Any, with_ext: str, watch: float) -> None:
    print("1. sidebar requests", flush=True)
    found = sidebar_requests(browser, with_ext, watch)
    print(
        f"   open {watch:.0f} s: {found['requests']} requests over "
        f"{found['span_s']:.1f} s = {found['per_2s']:.2f} per 2 s, smallest gap "
        f"{found['min_gap_ms']:.0f} ms; collapsed {watch:.0f} s: "
        f"{found['collapsed']}; browser tab hidden {watch:.0f} s: {found['hidden']}",
        flush=True,
    )


def startup_measure(browser: Any, with_ext: str, without_ext: str, rounds: int) -> None:
    print("2. Lab start-up (navigation start -> .jp-LabShell / launcher shown)", flush=True)
    lab_start(browser, with_ext), lab_start(browser, without_ext)  # warm the servers
    shell: dict[str, list[float]] = {"with": [], "without": []}
    launcher: dict[str, list[float]] = {"with": [], "without": []}
    script: dict[str, list[float]] = {"with": [], "without": []}
    own: list[list[float]] = []
    ours: list[float] = []
    for i in range(rounds):
        order = [("with", with_ext), ("without", without_ext)]
        for name, url in order if i % 2 == 0 else order[::-1]:
            s, la, files, cpu, mine = lab_start(browser, url)
            shell[name].append(s)
            launcher[name].append(la)
            script[name].append(cpu)
            if name == "with":
                own.append(files)
                ours.append(mine)
    for name in ("with", "without"):
        print("   " + summary(f".jp-LabShell, {name} the extension", shell[name]))
        print("   " + summary(f"launcher shown, {name} the extension", launcher[name]))
        print("   " + summary(f"script CPU time, {name} the extension", script[name]))
    for label, values in ((".jp-LabShell", shell), ("script CPU time", script)):
        diff = statistics.median(values["with"]) - statistics.median(values["without"])
        pairs = [a - b for a, b in zip(values["with"], values["without"], strict=True)]
        print(
            f"   {label}, with - without: difference of medians {diff:+.0f} ms; "
            f"per round {', '.join(f'{d:+.0f}' for d in pairs)}"
        )
    print(
        f"   the extension's own files: {own[0][0]:.0f} requests, "
        f"{own[0][1] / 1024:.1f} KiB, slowest fetch median "
        f"{statistics.median(f[2] for f in own):.0f} ms (in parallel with Lab's)",
        flush=True,
    )
    print("   " + summary("CPU in forge-nb's code and its calls (profiler)", ours), flush=True)


def chart_measure(browser: Any, with_ext: str, direct: str, rounds: int) -> None:
    print("3. Mission Control, goto -> first chart canvas", flush=True)
    urls = {"proxy": f"{with_ext}/forge-nb/?token={TOKEN}", "direct": direct}
    first_chart(browser, urls["proxy"]), first_chart(browser, direct)  # starts, warms
    warm = {name: browser.new_context(viewport={"width": 1400, "height": 900}) for name in urls}
    for name, context in warm.items():
        first_chart(browser, urls[name], context)  # fills that context's cache
    for cache in ("cold", "warm"):
        charts: dict[str, list[float]] = {"proxy": [], "direct": []}
        for i in range(rounds):
            order = ["proxy", "direct"] if i % 2 == 0 else ["direct", "proxy"]
            for name in order:
                context = warm[name] if cache == "warm" else None
                charts[name].append(first_chart(browser, urls[name], context))
        print("   " + summary(f"{cache} cache, through jupyter-server-proxy", charts["proxy"]))
        print("   " + summary(f"{cache} cache, direct (--port)", charts["direct"]))
        ratio = statistics.median(charts["proxy"]) / statistics.median(charts["direct"])
        print(f"   {cache} cache, ratio of medians: {ratio:.2f}", flush=True)
    for context in warm.values():
        context.close()


if __name__ == "__main__":
    sys.exit(main())

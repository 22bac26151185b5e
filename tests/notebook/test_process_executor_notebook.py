"""executor="process" from notebook cells, run by a real kernel under nbclient.

The job function, the helper it calls and the globals it reads live only in the
kernel's ``__main__`` (cells), so they travel by value; a cell re-run ships the
new version; tracebacks show the cell's source lines; the children import
neither IPython nor any UI library, and none is left after ``app.close()``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from tests.notebook.support import execute, kernel_env, text_of

CELLS = [
    """
import json, os, sys
import psutil
import forge_nb as fnb

app = fnb.App(process_workers=2, heartbeat_interval=0.2, poll_interval=0.1, tick_interval=0.1)
UI = {"panel", "bokeh", "pandas", "anywidget", "ipywidgets", "IPython", "ipykernel", "zmq"}
""",
    """
SCALE = 3

def helper(n):
    return n * SCALE
""",
    """
@app.job(kind="crunch", executor="process")
def crunch(ctx, n: int) -> dict:
    ctx.progress_sync(0.5, "half way")
    total = sum(i * i for i in range(100_000))
    return {"value": helper(n), "pid": os.getpid(), "total": total,
            "ui": sorted({m.split(".")[0] for m in sys.modules} & UI)}

@app.job(kind="broken", executor="process", max_attempts=1)
def broken(ctx):
    raise ValueError("from a cell") from KeyError("root")
""",
    """
await app.start()
first = await (await crunch.enqueue(5)).wait(timeout=60)
try:
    await (await broken.enqueue()).wait(timeout=60)
except fnb.JobDead as exc:
    error, trace = exc.job.last_error, exc.job.last_traceback
""",
    """
@app.job(kind="crunch", executor="process")      # the cell edited and run again
def crunch(ctx, n: int) -> dict:
    return {"value": helper(n) + 1000, "pid": os.getpid()}

second = await (await crunch.enqueue(5)).wait(timeout=60)
children = [p.pid for p in psutil.Process().children()
            if p.environ().get("FORGE_NB_PROCESS_CHILD") == str(os.getpid())]
await app.close()
left = [p for p in children if psutil.pid_exists(p)
        and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
print("RESULT " + json.dumps({"kernel": os.getpid(), "first": first, "second": second,
                               "error": error, "trace": trace, "children": children,
                               "left": left}))
""",
]


def test_cell_defined_process_jobs_under_nbclient(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(source.strip()) for source in CELLS]
    execute(nb, tmp_path, kernel_env(FORGE_NB_DATA_DIR=str(tmp_path / "data")), timeout=180)

    line = next(x for x in text_of(nb).splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    first, second = out["first"], out["second"]
    assert first["value"] == 15 and first["pid"] != out["kernel"]
    assert first["ui"] == []  # no IPython, kernel or UI module in the child
    assert second["value"] == 1015  # the re-run cell's code, not the first version
    assert out["error"] == "ValueError: from a cell: KeyError: 'root'"
    trace = out["trace"]
    assert 'raise ValueError("from a cell") from KeyError("root")' in trace  # the cell's source
    assert "ipykernel" in trace and "<dynamic-code>" not in trace  # the cell's file name
    assert trace.rstrip().endswith("ValueError: from a cell")
    assert out["children"] and out["left"] == []

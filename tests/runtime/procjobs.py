"""An importable module of process jobs: its functions travel to children by reference."""

from __future__ import annotations

import forge_nb as fnb

app = fnb.App()
#: The parent changes this; a child imports the module afresh, so it sees "fresh".
MODULE_STATE = "fresh"


@app.job(kind="square", executor="process")
def square(ctx: fnb.JobCtx, n: int) -> dict[str, object]:
    """n², and the module state this process sees."""
    return {"square": n * n, "module_state": MODULE_STATE}

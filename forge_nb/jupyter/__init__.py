"""forge-nb inside Jupyter: the jupyter-server-proxy entry point (`forge_nb.jupyter.proxy`).

The JupyterLab extension (sidebar, dashboard tabs as Lab panels) ships prebuilt in the
wheel under ``share/jupyter/labextensions/forge-nb``; its sources are in ``labextension/``.
"""

from __future__ import annotations

"""Notebook experience: anywidget controls, live job views and dashboard glue.

Importing this package pulls in no UI library; each module imports what it
draws with, so ``import forge_nb`` stays fast for workers.
"""

from __future__ import annotations

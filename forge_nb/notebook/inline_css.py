"""Panel's own stylesheets inline in a notebook output: no request to its CDN.

Panel keeps, per Bokeh document, a dict from stylesheet URL to the stylesheet model
its components share. Components and the design system both look their CDN sheets
up there before making new ones. Putting a dict in its place that answers with an
inline copy of the file from Panel's installed ``dist`` folder turns every later
lookup, for every page built later, into the same inline sheet: one model per file
per document, so a tick that restyles a pane sends a reference, not the CSS again.
(The Panel internals involved are reached through `forge_nb.compat`.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import panel as pn

from forge_nb import compat
from forge_nb.notebook.loop import current_loop


class InlineCSSCache(dict[str, Any]):
    """Panel's per-document stylesheet cache, answering its own CSS with inline sheets."""

    def __contains__(self, url: object) -> bool:
        if isinstance(url, str) and self._inline(url):
            return True
        return super().__contains__(url)

    def __bool__(self) -> bool:
        # Panel's design system skips its cache when the cache is empty (``if cache and
        # url in cache``): an empty cache must still be asked.
        return True

    def _inline(self, url: str) -> bool:
        """Make sure ``url``, a stylesheet of Panel's own, maps to an inline sheet."""
        from bokeh.models import InlineStyleSheet

        if isinstance(super().get(url), InlineStyleSheet):
            return True
        css = compat.panel_dist_css(url)
        if css is None:
            return False
        self[url] = InlineStyleSheet(css=css)
        return True


def install_inline_css_cache(document: Any) -> None:
    """From now on, ``document``'s Panel stylesheets come inline."""
    current = compat.document_stylesheets(document)
    if isinstance(current, InlineCSSCache):
        return
    cache = InlineCSSCache(current or {})
    for url in list(cache):
        url in cache  # noqa: B015  # converts the sheets the first render made
    compat.set_document_stylesheets(document, cache)


class InlineOutput(pn.Column):
    """A column that, once shown as a notebook output, keeps that output's stylesheets inline.

    The document exists only inside Panel's own rendering of the output, so the cache
    goes in right after it: the first render is already inline (Panel does that one),
    and every later lookup finds the inline cache. ``on_shown(document)`` then tells the
    content which document it lives in (updates from a timer have no current document
    in a notebook, and Panel finds a document's shared stylesheets through it). The
    browser's messages to the output are handled on the loop the output was made on (see
    `compat.handle_messages_on`).
    """

    def __init__(
        self, *objects: Any, on_shown: Callable[[Any], None] | None = None, **params: Any
    ) -> None:
        params.setdefault("sizing_mode", "stretch_width")
        super().__init__(*objects, **params)
        self._on_shown = on_shown
        #: The loop the content lives on (the kernel's): the browser's messages go there.
        self._home = current_loop()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        bundle = super()._repr_mimebundle_(include, exclude)
        if self._home is not None:
            compat.handle_messages_on(self, self._home)
        for document in compat.documents_showing(self):
            install_inline_css_cache(document)
            if self._on_shown is not None:
                self._on_shown(document)
        return bundle

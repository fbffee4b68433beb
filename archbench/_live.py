"""A progress view redrawn in place on a terminal (rich ``Live``) while it is entered; off a terminal
(``--no-live``, logs, CI) its owner prints one line per event instead. Searches and studies use it.
"""
from __future__ import annotations

from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live


class LiveView:
    """Base of the live progress views: ``with view:`` draws ``render()`` while entered, ``refresh()``
    redraws it, and nothing is drawn unless ``interactive``."""

    console: Console
    interactive: bool
    _live: Live | None = None

    def render(self) -> RenderableType:
        raise NotImplementedError

    def __enter__(self) -> LiveView:
        if self.interactive:
            self._live = Live(self.render(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(*exc)
            self._live = None

    @property
    def drawing(self) -> bool:
        """Whether a live drawing is on screen (else events are printed line by line, or not at all)."""
        return self._live is not None

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())

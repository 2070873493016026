"""Progress on long builds: a bar on a terminal, silence anywhere else (CI logs, pipes)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._label, self._total, self._last, self._shown = "", 0, 0.0, False

    def phase(self, label: str, total: int = 0) -> Progress:
        """Start a phase: a label, and a total when it is known (else a plain count)."""
        self.end()
        self._label, self._total, self._last = label, total, 0.0
        self.update(0, force=True)
        return self

    def update(self, n: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1 and n != self._total:
            return
        self._last = now
        if self._total:
            width = 30
            filled = int(width * min(n, self._total) / self._total)
            bar = "#" * filled + "." * (width - filled)
            text = f"\r{self._label:<22} [{bar}] {n:>6}/{self._total}"
        else:
            text = f"\r{self._label:<22} {n:>6}" if n else f"\r{self._label} ..."
        self.stream.write(text)
        self.stream.flush()
        self._shown = True

    def end(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\n")
            self.stream.flush()
        self._shown = False

"""What the commands print: tables and colours for people, JSON for scripts.

Colours (a run's status, headings) and the progress bar appear only on a terminal,
and never when ``NO_COLOR`` is set or ``--no-color`` is given; piped output is plain
text. ``--json`` prints one JSON document on standard output and nothing else there.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from ..clock import Clock

_RESET = "\033[0m"
_STYLES = {
    "bold": "\033[1m",
    "dim": "\033[2m",
    "red": "\033[31m",
    "green": "\033[32m",
    "yellow": "\033[33m",
    "blue": "\033[34m",
    "magenta": "\033[35m",
    "cyan": "\033[36m",
}
STATUS_STYLE = {
    "pending": "dim",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "dead_letter": "red",
    "held": "red",
    "cancelled": "yellow",
    "terminated": "magenta",
    "paused": "blue",
    "retrying": "yellow",
}

Cell = str | tuple[str, str]  # text, or (text, style)


class Output:
    """Where a command writes, and how (colours or not, JSON or not)."""

    def __init__(
        self,
        *,
        json_mode: bool = False,
        color: bool | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        stdin: TextIO | None = None,
    ) -> None:
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        self._in = stdin or sys.stdin
        self.json_mode = json_mode
        if color is None:
            color = "NO_COLOR" not in os.environ and _is_tty(self.out)
        self.color = color
        self.now = datetime.fromtimestamp(Clock().now(), tz=UTC)

    # -- plain writing ------------------------------------------------------------------

    def line(self, text: str = "") -> None:
        print(text, file=self.out)

    def note(self, text: str) -> None:
        """A remark for the person at the terminal (standard error: not the output)."""
        print(text, file=self.err)

    def json(self, data: Any) -> None:
        print(json.dumps(data, indent=2, ensure_ascii=False), file=self.out)

    def paint(self, text: str, style: str | None) -> str:
        if not self.color or not style:
            return text
        return f"{_STYLES[style]}{text}{_RESET}"

    def status(self, status: str) -> str:
        return self.paint(status, STATUS_STYLE.get(status))

    # -- tables -------------------------------------------------------------------------

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, indent: str = ""
    ) -> None:
        """Aligned columns under a header; the last column is not padded (it may be
        long: an error message)."""
        widths = [len(h) for h in headers]
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell if isinstance(cell, str) else cell[0]))
        last = len(headers) - 1
        head = "  ".join(h.ljust(widths[i]) if i < last else h for i, h in enumerate(headers))
        self.line(indent + self.paint(head.rstrip(), "bold"))
        for row in rows:
            cells = []
            for i, cell in enumerate(row):
                text, style = (cell, None) if isinstance(cell, str) else cell
                pad = " " * (widths[i] - len(text)) if i < last else ""
                cells.append(self.paint(text, style) + pad)
            self.line(indent + "  ".join(cells).rstrip())

    def fields(self, pairs: Sequence[tuple[str, Cell]]) -> None:
        """``name  value`` lines, names aligned."""
        width = max((len(name) for name, _ in pairs), default=0)
        for name, value in pairs:
            text, style = (value, None) if isinstance(value, str) else value
            self.line(f"  {name.ljust(width)}  {self.paint(text, style)}")

    def heading(self, text: str) -> None:
        self.line(self.paint(text, "bold"))

    # -- times --------------------------------------------------------------------------

    def ago(self, stamp: str | None) -> str:
        """A timestamp as people say it: ``5s ago``, ``3h ago``, ``in 2m``; the date
        itself past a month."""
        if not stamp:
            return "-"
        moment = datetime.fromisoformat(stamp)
        seconds = (self.now - moment).total_seconds()
        if abs(seconds) >= 30 * 86400:
            return f"{moment:%Y-%m-%d}"
        span = _span(abs(seconds))
        if span == "0s":
            return "just now"
        return f"{span} ago" if seconds >= 0 else f"in {span}"

    def when(self, stamp: str | None) -> str:
        """The relative time and the exact one: ``5m ago (2026-01-02 10:00:00 UTC)``."""
        if not stamp:
            return "-"
        moment = datetime.fromisoformat(stamp).astimezone(UTC)
        return f"{self.ago(stamp)} ({moment:%Y-%m-%d %H:%M:%S} UTC)"

    # -- long operations ----------------------------------------------------------------

    @contextmanager
    def progress(self, total: int | None, label: str) -> Iterator[Progress]:
        """A progress bar on standard error while the block runs (a terminal only)."""
        bar = Progress(self.err, total, label, enabled=_is_tty(self.err) and not self.json_mode)
        try:
            yield bar
        finally:
            bar.clear()

    def can_ask(self) -> bool:
        """Whether there is a person at a terminal to confirm an action."""
        return _is_tty(self._in) and _is_tty(self.err)

    def confirm(self, question: str) -> bool:
        self.err.write(f"{question} [y/N] ")
        self.err.flush()
        answer = self._in.readline().strip().lower()
        return answer in ("y", "yes")


class Progress:
    """``label [#####.....] 12/40`` on one line of standard error, redrawn in place."""

    def __init__(self, stream: TextIO, total: int | None, label: str, *, enabled: bool) -> None:
        self._stream = stream
        self._total = total
        self._label = label
        self._enabled = enabled
        self._drawn = False

    def update(self, done: int) -> None:
        if not self._enabled:
            return
        if self._total:
            width = max(10, min(40, shutil.get_terminal_size().columns - len(self._label) - 20))
            filled = width * min(done, self._total) // self._total
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self._total}"
        else:
            bar = f"{done}"
        self._stream.write(f"\r{self._label} {bar}")
        self._stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self._stream.write("\r\033[K")
            self._stream.flush()
            self._drawn = False


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def duration(ms: int | None) -> str:
    """Milliseconds as people say them: ``85ms``, ``2.4s``, ``3m10s``."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, rest = divmod(ms // 1000, 60)
    return f"{minutes}m{rest:02d}s"


def clip(text: str, width: int = 100) -> str:
    """The first line of ``text``, cut to ``width`` characters (``…`` marks a cut)."""
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > width:
        return first[: width - 1] + "…"
    return first + (" …" if len(lines) > 1 else "")

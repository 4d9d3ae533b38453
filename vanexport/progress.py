"""Progress of long work, for people: steps (one line each) and counted tasks.

Every long API function takes `progress`: None (silent), a plain callable that takes a message (it gets the steps,
and each task's description when the task starts), or a `Progress`. The CLI passes a `ConsoleProgress`, which
writes to stderr (stdout stays clean for reports and --json): on a terminal, a bar with counts, elapsed time and
time left; elsewhere (logs, CI), a plain line every few seconds. Nothing here imports click.
"""
from __future__ import annotations

import os
import re
import sys
import time
from typing import Callable

# What must not reach a terminal as it is: control characters (an escape sequence recolours, moves the cursor or
# retitles the window; a line break starts a line that looks like ours), and the Unicode line separators and
# bidirectional controls, which reorder or split what is shown.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
INTERVAL_ENV = "VANEXPORT_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 5.0  # seconds between two plain lines of one task (not a terminal)


def printable(text: str) -> str:
    """`text` with every character that acts on a terminal written as its Python escape (ESC -> \\x1b, a line
    break -> \\n): outside text (file names, labels, messages) shows as what it is, on one line."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


class Task:
    """Counted work (`with progress.task("validating", total=400, unit="images") as t: ... t.advance(8)`)."""

    def __init__(self, owner: "Progress", description: str, total: int | None, unit: str):
        self.owner, self.description, self.total, self.unit = owner, description, total, unit
        self.done = 0
        self.started = time.monotonic()
        self.handle = None  # the owner's own state for this task (a rich task id)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def remaining(self) -> float | None:
        """Seconds left at the pace so far (None until something is done, or without a total)."""
        if not self.total or self.done <= 0:
            return None
        return self.elapsed / self.done * max(self.total - self.done, 0)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.owner.update(self)

    def describe(self, description: str) -> None:
        """Say what the task is at now (e.g. the benchmark row being timed)."""
        self.description = description
        self.owner.update(self)

    def __enter__(self) -> "Task":
        self.started = time.monotonic()
        self.owner.start(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.owner.finish(self, exc_type is None)


class Progress:
    """Where long work reports to. This one shows nothing; subclasses override `step`, `start`, `update` and
    `finish`. Calling it is `step`, so a Progress is also a plain message callback."""

    def step(self, message: str) -> None:
        pass

    def task(self, description: str, total: int | None = None, unit: str = "") -> Task:
        return Task(self, description, total, unit)

    def start(self, task: Task) -> None:
        pass

    def update(self, task: Task) -> None:
        pass

    def finish(self, task: Task, ok: bool) -> None:
        pass

    def __call__(self, message: str) -> None:
        self.step(message)


class Messages(Progress):
    """A plain callable as a Progress: it gets every step, and each task's description when the task starts."""

    def __init__(self, callback: Callable[[str], None]):
        self.callback = callback

    def step(self, message: str) -> None:
        self.callback(message)

    def start(self, task: Task) -> None:
        self.callback(task.description)


def as_progress(progress) -> Progress:
    """None -> silent; a Progress -> itself; a callable taking a message -> `Messages`."""
    if progress is None:
        return Progress()
    if isinstance(progress, Progress):
        return progress
    return Messages(progress)


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    return f"{minutes} min {s:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def amount(task: Task) -> str:
    """'120/400 images', or '12/40 MB' for a task counted in bytes, or '7 files' without a total."""
    if task.unit == "bytes":
        done, total, unit = f"{task.done / 1e6:.0f}", task.total and f"{task.total / 1e6:.0f}", " MB"
    else:
        done, total, unit = str(task.done), task.total, f" {task.unit}" if task.unit else ""
    return f"{done}/{total}{unit}" if total else f"{done}{unit}"


def counts(task: Task) -> str:
    """'120/400 images (30%), 12 s elapsed, about 28 s left' (or the count alone without a total)."""
    if not task.total:
        return f"{amount(task)}, {duration(task.elapsed)} elapsed"
    text = f"{amount(task)} ({100 * task.done / task.total:.0f}%), {duration(task.elapsed)} elapsed"
    left = task.remaining
    return text + (f", about {duration(left)} left" if left is not None and task.done < task.total else "")


def interval_from_env(default: float = DEFAULT_INTERVAL) -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, default)))
    except ValueError:
        return default


class ConsoleProgress(Progress):
    """Steps as `• message` lines on `stream` (stderr); tasks as a rich progress bar on a terminal, or as plain
    count lines at most every `interval` seconds elsewhere (and one at the end of a task that took longer)."""

    def __init__(self, stream=None, terminal: bool | None = None, interval: float | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = bool(terminal if terminal is not None else _isatty(self.stream))
        self.interval = interval_from_env() if interval is None else interval
        self._bars = None  # one rich Progress while any task runs on a terminal
        self._open: list[Task] = []
        self._last_line: dict[int, float] = {}

    def _print(self, text: str) -> None:
        text = printable(text)  # the messages name files and folders
        if self._bars is not None:
            self._bars.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def step(self, message: str) -> None:
        self._print(f"• {message}")

    def start(self, task: Task) -> None:
        self._print(f"• {task.description}")
        self._open.append(task)
        self._last_line[id(task)] = time.monotonic()
        if self.terminal:
            if self._bars is None:
                self._bars = _rich_bars(self.stream)
                self._bars.start()
            task.handle = self._bars.add_task(printable(task.description), total=task.total, completed=task.done,
                                              amount=amount(task))

    def update(self, task: Task) -> None:
        if task not in self._open:
            return
        if self._bars is not None:
            self._bars.update(task.handle, completed=task.done, total=task.total,
                              description=printable(task.description), amount=amount(task))
            return
        now = time.monotonic()
        if now - self._last_line[id(task)] >= self.interval:
            self._last_line[id(task)] = now
            self._print(f"  {task.description}: {counts(task)}")

    def finish(self, task: Task, ok: bool) -> None:
        if task not in self._open:
            return
        self._open.remove(task)
        if self._bars is not None:
            self._bars.remove_task(task.handle)
            if not self._open:
                self._bars.stop()
                self._bars = None
        elif ok and task.elapsed >= self.interval:
            self._print(f"  {task.description}: {amount(task)} in {duration(task.elapsed)}")
        self._last_line.pop(id(task), None)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _rich_bars(stream):
    from rich.console import Console
    from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    # markup and emoji codes off: a description names files, and `[/]` or `:x:` in a name is text, not styling
    return RichProgress(TextColumn("  {task.description}", markup=False), BarColumn(),
                        TextColumn("{task.fields[amount]}", markup=False), TimeElapsedColumn(), TextColumn("left"),
                        TimeRemainingColumn(), console=Console(file=stream, markup=False, emoji=False,
                                                               highlight=False),
                        transient=True, refresh_per_second=4)

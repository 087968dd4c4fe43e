"""Progress of the long steps: a line with an ETA on the console, one line per step in log.txt.

    with progress.step("teacher logits", total=len(rows), unit="rows") as bar:
        for batch in batches:
            ...
            bar.advance(len(batch))

Console: off until `show()` is called (the CLI calls it; tests and library users see nothing
unless they ask). On a terminal (the stream is a TTY) a step is a tqdm line with its rate and ETA;
elsewhere (a file, CI, a pipe) one plain line every `PLAIN_EVERY` seconds:
`[distill] teacher logits: 1200/5000 rows (24%), 35 s, about 1 min 50 s left`. A step shorter
than `QUIET_FOR` seconds shows nothing. Under DDP only rank 0 shows anything.

Log: every step, shown or not, ends with one line in the `distillery` logger, which the runner
copies into the stage's log.txt:
`step teacher logits: 5000/5000 rows in 81.2 s (11:02:03 to 11:03:24, 61.6 rows/s)`, or
`stopped after 1200/5000 rows` when the step raised.

Why tqdm for the terminal and not for the rest: tqdm redraws one line with carriage returns, which
a log file or CI keeps as thousands of fragments (the HF Trainer's bars did exactly that).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

log = logging.getLogger("distillery")

QUIET_FOR = 3.0  # seconds a step runs before the console hears of it
PLAIN_EVERY = 30.0  # seconds between two plain lines of one step

_console: dict[str, Any] = {"stream": None, "where": None}


def show(stream: TextIO | None = None) -> None:
    """Show progress on `stream` (default: sys.stderr, read when a step starts)."""
    _console["stream"] = stream if stream is not None else "stderr"


def hide() -> None:
    """Show nothing on the console again (the log lines stay)."""
    _console["stream"] = None


@contextmanager
def within(stage: str) -> Iterator[None]:
    """Steps started inside are shown as `[stage] name` (the runner wraps each stage)."""
    before = _console["where"]
    _console["where"] = stage
    try:
        yield
    finally:
        _console["where"] = before


def duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '2 h 07 min'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Step:
    """One step's counter: `advance(n)` as work is done, `note(text)` for a short status (the
    loss, the artifact in hand); `step()` opens and closes it."""

    def __init__(self, name: str, total: int | None, unit: str, initial: int = 0, clock=None):
        self.name, self.total, self.unit = name, total, unit
        self.done = self.initial = initial  # `initial`: done before this session (a resume)
        self.clock = clock or time.monotonic
        self.started = self.clock()
        self.started_wall = time.time()
        self.last_shown: float | None = None
        self.status = ""
        self.stream = _stream()
        self.label = f"[{_console['where']}] {name}" if _console["where"] else name
        self.bar = None
        if self.stream is not None and _is_tty(self.stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=self.label,
                unit=unit,
                file=self.stream,
                delay=QUIET_FOR,
                dynamic_ncols=True,
                mininterval=0.5,
            )

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.stream is not None:
            now = self.clock()
            finished = self.total is not None and self.done >= self.total  # `close` says so
            if (
                not finished
                and now - self.started >= QUIET_FOR
                and (self.last_shown is None or now - self.last_shown >= PLAIN_EVERY)
            ):
                self.last_shown = now
                self._print(self.line())

    def advance_to(self, done: int) -> None:
        """Set the count (a trainer reports its global step, not increments)."""
        if done > self.done:
            self.advance(done - self.done)

    def note(self, text: str) -> None:
        self.status = text
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)

    def eta(self) -> float | None:
        """Seconds left at this session's rate; None before the first item or without a total."""
        made = self.done - self.initial
        if not self.total or made <= 0:
            return None
        return (self.clock() - self.started) / made * max(self.total - self.done, 0)

    def line(self) -> str:
        """The plain console line: count, share, time so far, time left."""
        elapsed = self.clock() - self.started
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        left = self.eta()
        eta = f", about {duration(left)} left" if left is not None else ""
        status = f" [{self.status}]" if self.status else ""
        return f"{self.label}: {count} {self.unit}{share}, {duration(elapsed)}{eta}{status}"

    def _print(self, text: str) -> None:
        sys.stdout.flush()  # the runner's lines first, where both streams go to one file or pipe
        print(text, file=self.stream, flush=True)

    def close(self, failed: bool = False) -> None:
        seconds = self.clock() - self.started
        if self.bar is not None:
            self.bar.close()
        elif self.stream is not None and (self.last_shown is not None or seconds >= QUIET_FOR):
            # a step that took a while says so, even one whose only item ended it
            self._print(f"{self.label}: {self.done} {self.unit} in {duration(seconds)}")
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        ended = time.strftime("%H:%M:%S")
        rate = (self.done - self.initial) / seconds if seconds > 0 else 0.0
        log.info(
            "step %s: %s %s %s in %.1f s (%s to %s, %.1f %s/s)%s",
            self.name,
            "stopped after" if failed else "done",
            count,
            self.unit,
            seconds,
            time.strftime("%H:%M:%S", time.localtime(self.started_wall)),
            ended,
            rate,
            self.unit,
            f", {self.initial} done before" if self.initial else "",
        )


@contextmanager
def step(name: str, total: int | None, unit: str = "items", initial: int = 0) -> Iterator[Step]:
    """A step of `total` `unit`s (None: unknown), `initial` of them done before (a resume)."""
    counter = Step(name, total, unit, initial)
    try:
        yield counter
    except BaseException:
        counter.close(failed=True)
        raise
    counter.close()


def _stream() -> TextIO | None:
    chosen = _console["stream"]
    if chosen is None:
        return None
    from pipelines.core.distributed import is_main

    if not is_main():
        return None
    return sys.stderr if chosen == "stderr" else chosen


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False

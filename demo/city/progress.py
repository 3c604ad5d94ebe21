"""One `rich` progress bar per phase of the city load, with rows per second and the time left;
nothing when switched off or when stderr is not a terminal (logs and CI stay clean)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "", style="progress.data.speed")


class PhaseProgress:
    def __init__(self, *, enabled: bool) -> None:
        console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description:<44}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RowsPerSecond(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not (enabled and console.is_terminal),
        )

    def __enter__(self) -> PhaseProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    @contextmanager
    def phase(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """A bar for one phase; the caller advances it by the rows (or steps) done. Without a
        total the bar pulses until the phase ends."""
        task = self._progress.add_task(description, total=total)

        def advance(n: int) -> None:
            self._progress.advance(task, n)

        yield advance
        done = total if total is not None else 1
        self._progress.update(task, total=done, completed=done)

"""Rich progress bars shared by the long-running loops (training stages, mesh extraction, benchmarks)."""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")


def make_progress(label: str, enabled: bool = True):
    """A rich Progress with the project's columns: label, bar, done/total, an `info` field, times."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cols = [TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*cols, disable=not enabled, transient=False)


def track(items: Sequence[T] | Iterable[T], label: str, enabled: bool = True) -> Iterator[T]:
    """Iterate `items` with a progress bar (no output when not enabled)."""
    items = list(items)
    with make_progress(label, enabled) as bar:
        task = bar.add_task(label, total=len(items), info="")
        for it in items:
            bar.update(task, info=str(it[1]) if isinstance(it, tuple) and len(it) > 1 else "")
            yield it
            bar.advance(task)

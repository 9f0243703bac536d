"""``serdoctor.progress``: a progress bar of done / failed / running tasks."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")


def _bar(console: Console | None, description: str) -> Progress:
    console = console or Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,  # a bar only where a person watches a terminal
    )


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    description: str = "tasks",
    console: Console | None = None,
) -> Iterator[T]:
    """Show a progress bar while iterating over ``items``.

    Given futures (``[executor.submit(...) ...]``), it yields them as they
    complete, like :func:`concurrent.futures.as_completed`, and the bar counts
    done, failed and running tasks. Given any other iterable (the iterator of
    ``executor.map``), it yields its items in order and counts them; pass
    ``total=`` when the iterable has no length. The bar is drawn on stderr and
    only on a terminal: in a pipe or a log nothing is printed.
    """
    if isinstance(items, (list, tuple, set, frozenset)) and all(
        isinstance(f, concurrent.futures.Future) for f in items
    ):
        yield from _futures(list(items), description, console)  # type: ignore[misc]
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with _bar(console, description) as bar:
        task = bar.add_task(description, total=total, detail="")
        for item in items:
            yield item
            bar.advance(task)


def _futures(
    futures: list[concurrent.futures.Future[Any]], description: str, console: Console | None
) -> Iterator[concurrent.futures.Future[Any]]:
    failed = 0
    with _bar(console, description) as bar:
        task = bar.add_task(description, total=len(futures), detail="")
        pending = set(futures)
        while pending:
            done, pending = concurrent.futures.wait(
                pending, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in done:
                if future.cancelled() or future.exception() is not None:
                    failed += 1
            running = sum(1 for f in pending if f.running())
            bar.update(
                task,
                advance=len(done),
                detail=f"[red]{failed} failed[/red] · {running} running" if failed
                else f"{running} running",
            )  # fmt: skip
            yield from done

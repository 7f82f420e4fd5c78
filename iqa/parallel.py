"""One bounded, ordered parallel map, used wherever files are decoded or pairs are scored."""

from __future__ import annotations

import itertools
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

__all__ = ["ordered_map"]


def ordered_map(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int, *, window: int | None = None, name: str = "iqa"
) -> Iterator[Any]:
    """``map(fn, items)`` with ``workers`` threads beside the caller, results in input order.

    At most ``window`` items (default ``2 * workers``) are in flight, so memory stays flat
    however many items there are. ``workers=0`` runs everything in the calling thread.
    Decoders, OpenCV and NumPy release the GIL, so threads run in parallel where it matters.
    Pending work is cancelled when the consumer stops early.
    """
    if workers <= 0:
        yield from map(fn, items)
        return
    window = max(1, window or 2 * workers)
    it = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        pending = deque(pool.submit(fn, x) for x in itertools.islice(it, window))
        try:
            while pending:
                fut = pending.popleft()
                for nxt in itertools.islice(it, 1):
                    pending.append(pool.submit(fn, nxt))
                yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()

"""The one progress bar of the command line: tqdm on stderr, only where it is wanted."""

from __future__ import annotations

import os
import sys
from typing import Any


def progress_bar(total: int | None, unit: str, label: str | None, enabled: bool | None) -> Any:
    """A tqdm bar on stderr, called as ``bar(done, total)``; ``enabled=None`` shows it when
    stderr is a terminal, and only rank 0 of a ``torchrun`` job ever shows one."""
    from tqdm import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    show = show and int(os.environ.get("RANK", "0")) == 0
    return _Bar(tqdm(total=total, unit=unit, desc=label, file=sys.stderr, disable=not show, dynamic_ncols=True))


class _Bar:
    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def __call__(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()

"""Comparing methods: per-method summaries with bootstrap intervals, paired statistics
against a baseline, and the files that record them.

Modules:
    :mod:`~iqa.compare.stats`: the numbers (bootstrap intervals, paired differences, the
        Wilcoxon signed-rank test, Holm's adjustment, wins/ties/losses by the metric's direction).
    :mod:`~iqa.compare.run`: methods → score files → :class:`Comparison` → ``summary.json``
        and ``summary.csv``; :func:`compare`.
    :mod:`~iqa.compare.report`: ``iqa report``, the static HTML page of a comparison (reading
        with :mod:`~iqa.compare.report_data`, plots in :mod:`~iqa.compare.report_figures`,
        previews and heat maps in :mod:`~iqa.compare.report_gallery`, page in ``report_assets/``).

``iqa.compare(...)`` is the function :func:`iqa.compare.run.compare`. Importing a module of
this package binds the name ``iqa.compare`` to the package itself (Python's import system
does that), so the package is callable too, with the same effect.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {"Comparison": "iqa.compare.run", "compare": "iqa.compare.run", "read_score_file": "iqa.compare.run"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'iqa.compare' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from iqa.compare.run import compare

        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

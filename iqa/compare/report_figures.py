"""The report's plots, drawn with matplotlib: per metric, the distribution of every
method's per-image values and of the paired differences against the baseline.

matplotlib is an optional dependency (the ``report`` extra); it is used through its object
interface (``Figure`` and the Agg canvas), so no global backend or pyplot state is touched.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from iqa.compare.report_data import Metric, Results, paired_values, values_of
from iqa.errors import IQAError

__all__ = ["draw_plots", "require_matplotlib"]

_DPI = 100
_WIDTH = 10.0  # inches
_MIN_BINS, _MAX_BINS = 10, 60


def require_matplotlib() -> None:
    """Raise a one-line error when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise IQAError('the report draws its plots with matplotlib, which is not installed: pip install "iqa[report]"') from None


def _text(s: str) -> str:
    """A user's name as matplotlib text: a ``$`` would start mathtext."""
    return str(s).replace("$", r"\$")


def _direction(metric: Metric) -> str:
    return {True: "higher is better", False: "lower is better", None: "direction unknown"}[metric.higher]


def _figure(labels: list[str]) -> tuple[Any, Any, Any]:
    """A figure with two panels side by side. Margins are set from the labels' length
    rather than by a layout engine, which would take most of the drawing time."""
    from matplotlib.figure import Figure

    height = 1.6 + 0.45 * max(len(labels), 1)
    fig = Figure(figsize=(_WIDTH, height), dpi=_DPI)
    longest = max((len(s) for s in labels), default=4) + 8  # "(n=1234)"
    left = min(0.4, (0.3 + 0.075 * longest) / _WIDTH)
    fig.subplots_adjust(left=left, right=0.98, bottom=0.55 / height, top=1 - 0.4 / height, wspace=0.25)
    ax_left, ax_right = fig.subplots(1, 2)
    return fig, ax_left, ax_right


def _spread(ax: Any, series: list[np.ndarray], labels: list[str]) -> None:
    """A violin (where the values spread) with a box plot inside, one row per series."""
    positions = np.arange(1, len(series) + 1)
    spread = [i for i, s in enumerate(series) if s.size > 1 and np.ptp(s) > 0]
    if spread:
        parts = ax.violinplot([series[i] for i in spread], positions=positions[spread], orientation="horizontal",
                              showextrema=False, widths=0.8)
        for body in parts["bodies"]:
            body.set_alpha(0.35)
    present = [i for i, s in enumerate(series) if s.size]
    if present:
        ax.boxplot([series[i] for i in present], positions=positions[present], orientation="horizontal",
                   widths=0.25, showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(positions, [_text(f"{lab} (n={s.size})") for lab, s in zip(labels, series)])
    ax.set_ylim(0.4, len(series) + 0.6)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)


def _histograms(ax: Any, series: list[np.ndarray], labels: list[str]) -> None:
    """Step histograms of every series over shared bins."""
    allv = np.concatenate([s for s in series if s.size]) if any(s.size for s in series) else np.array([])
    if allv.size == 0:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        return
    # Shared bins over every series: about 2·sqrt(n) of them (10 to 60), so that separated
    # methods do not leave a few wide bins.
    if np.ptp(allv) == 0:
        # One value (one image, or all equal): numpy would spread it over an arbitrary ±0.5,
        # wider than SSIM's whole range; one narrow bin around the value instead.
        half = 1e-3 * max(abs(float(allv[0])), 1.0)
        edges = np.array([allv[0] - half, allv[0] + half])
    else:
        edges = np.histogram_bin_edges(allv, bins=int(np.clip(2 * np.sqrt(allv.size), _MIN_BINS, _MAX_BINS)))
    handles, names = [], []
    for lab, s in zip(labels, series):
        if s.size:
            _, _, patches = ax.hist(s, bins=edges, histtype="step", linewidth=1.5)
            handles.append(patches[0])
            names.append(_text(lab))
    ax.legend(handles, names, fontsize="small", loc="best")
    ax.set_ylabel("images")
    ax.grid(alpha=0.3)


def _save(fig: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=_DPI)


def _label(metric: Metric) -> str:
    return f"{metric.label} ({metric.unit})" if metric.unit else metric.label


def draw_plots(results: Results, folder: Path) -> dict[str, dict[str, Any]]:
    """Write ``folder/<i>-<metric>-distribution.png`` (and ``-differences.png`` when there
    is a baseline and another method) for every metric.

    Returns:
        metric key → ``{"distribution": file name, "differences": file name or None,
        "notes": [text...]}``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, Any]] = {}
    names = [m.name for m in results.methods]
    with warnings.catch_warnings():
        # A name in a script the default font lacks is drawn as boxes; that is all.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        for i, metric in enumerate(results.metrics):
            entry: dict[str, Any] = {"distribution": None, "differences": None, "notes": []}
            series = [values_of(m, metric) for m in results.methods]
            n_inf = [sum(1 for r in m.rows.values() if r.get(metric.key) == float("inf")) for m in results.methods]
            if any(n_inf):
                entry["notes"].append(
                    "infinite values (identical images) are not drawn: "
                    + ", ".join(f"{n} of {name}" for n, name in zip(n_inf, names) if n)
                )
            fig, left, right = _figure(names)
            _spread(left, series, names)
            left.set_xlabel(_label(metric))
            _histograms(right, series, names)
            right.set_xlabel(_label(metric))
            fig.suptitle(_text(f"{metric.label}: per-image values ({_direction(metric)})"))
            name = f"{i:02d}-{metric.key}-distribution.png"
            _save(fig, folder / name)
            entry["distribution"] = name

            others = [m.name for m in results.methods if m.name != results.baseline]
            if results.baseline is not None and others:
                diffs, skipped, won = zip(*(paired_values(results, metric, o) for o in others))
                diffs = list(diffs)
                fig, left, right = _figure(others)
                _spread(left, diffs, others)
                for ax in (left, right):
                    ax.axvline(0.0, color="black", linewidth=0.8)
                xlabel = _text(f"{_label(metric)}: method − {results.baseline}")
                left.set_xlabel(xlabel)
                _histograms(right, diffs, others)
                right.set_xlabel(xlabel)
                fig.suptitle(_text(f"{metric.label}: paired differences against {results.baseline} "
                                   f"per image ({_direction(metric)})"))
                name = f"{i:02d}-{metric.key}-differences.png"
                _save(fig, folder / name)
                entry["differences"] = name
                if any(skipped):
                    entry["notes"].append(
                        "differences with an infinite value are not drawn (they count in wins and the test): "
                        + ", ".join(f"{n} of {o}" + (f" ({w} won by {o})" if w is not None else "")
                                    for n, w, o in zip(skipped, won, others) if n)
                    )
            out[metric.key] = entry
    return out

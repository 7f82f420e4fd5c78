"""Running statistics of scored pairs (constant memory, mergeable) and the summary table."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from iqa.registry import metric_names

__all__ = ["DEFAULT_METRICS", "PSNR_MEANS", "ScoreStats", "as_floats", "format_summary"]

#: The metrics scored when none are named: nothing that needs downloaded weights.
DEFAULT_METRICS = ("psnr", "ssim", "ms_ssim")

#: How the PSNR summary averages: the mean of finite per-pair values, or the PSNR of the
#: mean of the per-pair normalised MSEs.
PSNR_MEANS = ("finite", "pooled")


def as_floats(values: Any) -> list[float]:
    """Per-image values (NumPy array, tensor, float) as Python floats."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    return [float(v) for v in np.atleast_1d(np.asarray(values, dtype=np.float64))]




@dataclass
class _MetricStats:
    """n, mean and M2 (Welford/Chan, float64) of the finite values, plus counts."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    infinite: int = 0
    failed: int = 0
    nmse_sum: float = 0.0  # sum of 10**(-psnr/10) = MSE / R², for the pooled PSNR

    def add(self, value: float) -> None:
        if math.isinf(value) and value > 0:
            self.infinite += 1
            return
        if not math.isfinite(value):
            self.failed += 1
            return
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        self.nmse_sum += 10.0 ** (-value / 10.0)

    def merge(self, other: "_MetricStats") -> None:
        n = self.n + other.n
        if other.n:
            delta = other.mean - self.mean
            self.m2 += other.m2 + delta * delta * self.n * other.n / n
            self.mean += delta * other.n / n
        self.n = n
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        self.infinite += other.infinite
        self.failed += other.failed
        self.nmse_sum += other.nmse_sum


class ScoreStats:
    """Running summary of scored pairs: n, mean, std, min, max and failures per metric.

    Constant memory, float64, mergeable (for shards). Standard deviations are sample
    standard deviations (``ddof=1``, as pandas' ``describe``); ``None`` for fewer than two
    values. PSNR's ``+inf`` (identical images) is counted under ``identical`` and left out
    of mean, std, min and max; ``psnr_mean="pooled"`` reports ``-10·log10(mean(MSE/R²))``
    over all scored pairs instead, identical ones included (each pair weighs the same).

    Example:
        >>> s = ScoreStats(["psnr"])
        >>> s.add({"psnr": 30.0}); s.add({"psnr": 40.0}); s.add({"psnr": float("inf")})
        >>> s.summary()["metrics"]["psnr"]["mean"], s.summary()["metrics"]["psnr"]["identical"]
        (35.0, 1)
    """

    def __init__(self, metrics: Sequence[str] = DEFAULT_METRICS) -> None:
        self.metrics = metric_names(metrics)
        self.reset()

    def reset(self) -> None:
        self._stats = {m: _MetricStats() for m in self.metrics}
        self.pairs = 0
        self.pairs_with_errors = 0
        #: note → number of pairs it applied to (see :attr:`PairScore.notes`).
        self.notes: Counter[str] = Counter()

    def add(self, values: dict[str, Any], error: str = "", notes: Iterable[str] = ()) -> None:
        """Count one scored item: ``values`` maps metrics to values (``None`` = failed),
        ``notes`` the image layer's notes on the pair.

        A batch value (array or tensor) counts each of its images.
        """
        self.notes.update(set(notes))
        n_items = 1
        for m in self.metrics:
            v = values.get(m)
            if v is None:
                self._stats[m].failed += 1
                continue
            floats = as_floats(v)
            n_items = max(n_items, len(floats))
            for f in floats:
                self._stats[m].add(f)
        self.pairs += n_items
        if error:
            self.pairs_with_errors += 1

    def merge(self, other: "ScoreStats") -> None:
        if other.metrics != self.metrics:
            raise ValueError(f"cannot merge statistics of {other.metrics} into {self.metrics}")
        for m in self.metrics:
            self._stats[m].merge(other._stats[m])
        self.pairs += other.pairs
        self.pairs_with_errors += other.pairs_with_errors
        self.notes.update(other.notes)

    def means(self, psnr_mean: str = "finite") -> dict[str, float | None]:
        """Metric → mean (``None`` when nothing was scored)."""
        return {m: d["mean"] for m, d in self.summary(psnr_mean)["metrics"].items()}

    def summary(self, psnr_mean: str = "finite") -> dict[str, Any]:
        """A JSON-ready summary (no inf or NaN: missing values are ``None``)."""
        if psnr_mean not in PSNR_MEANS:
            raise ValueError(f"psnr_mean must be one of {PSNR_MEANS}, got {psnr_mean!r}")

        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        metrics = {}
        for m, s in self._stats.items():
            d: dict[str, Any] = {
                "n": s.n + s.infinite,
                "mean": num(s.mean) if s.n else None,
                "std": num(math.sqrt(s.m2 / (s.n - 1))) if s.n > 1 else None,
                "min": num(s.min) if s.n else None,
                "max": num(s.max) if s.n else None,
                "failed": s.failed,
            }
            if m == "psnr":
                d["identical"] = s.infinite
                d["mean_kind"] = "mean of finite per-pair PSNR"
                if psnr_mean == "pooled":
                    total = s.n + s.infinite
                    d["mean_kind"] = "pooled: -10*log10(mean(MSE/R^2)) over all scored pairs"
                    d["mean"] = (
                        num(-10.0 * math.log10(s.nmse_sum / total)) if total and s.nmse_sum > 0 else None
                    )
                    if total and s.nmse_sum == 0:
                        d["mean_note"] = "all pairs identical: pooled PSNR is +inf"
            metrics[m] = d
        return {
            "pairs": self.pairs,
            "pairs_with_errors": self.pairs_with_errors,
            "psnr_mean": psnr_mean,
            "metrics": metrics,
            "notes": dict(sorted(self.notes.items())),
        }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a small text table (for stderr)."""

    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.6g}" if isinstance(x, float) else str(x)

    lines = [f"{'metric':<8} {'n':>6} {'mean':>10} {'std':>10} {'min':>10} {'max':>10} {'failed':>7}"]
    for m, d in summary["metrics"].items():
        lines.append(
            f"{m:<8} {d['n']:>6} {f(d['mean']):>10} {f(d['std']):>10} {f(d['min']):>10} "
            f"{f(d['max']):>10} {d['failed']:>7}"
        )
    psnr = summary["metrics"].get("psnr")
    if psnr is not None:
        note = f"psnr mean: {psnr['mean_kind']}"
        if psnr["identical"]:
            note += f"; {psnr['identical']} identical pair(s) (inf) not in std/min/max"
            if summary["psnr_mean"] != "pooled":
                note += " or the mean"
        if psnr.get("mean_note"):
            note += f"; {psnr['mean_note']}"
        lines.append(note)
    for note, count in (summary.get("notes") or {}).items():
        lines.append(f"note: {note}: {count} pair(s)")
    lines.append(f"{summary['pairs']} pair(s), {summary['pairs_with_errors']} with errors")
    return "\n".join(lines)

"""The numbers of a comparison: bootstrap intervals, paired differences, the Wilcoxon
signed-rank test, Holm's adjustment, and wins/ties/losses by a metric's direction.

Conventions (also in ``docs/conventions.md``, "Comparing methods"):

- Values are per-image scores; ``None`` (a failed cell) never reaches this module.
- Infinite values (PSNR of identical images) are counted as ``n_inf``; the mean, median,
  standard deviation and interval are those of the finite values.
- Paired: ``diff`` and its interval are the mean of ``method − baseline`` over the images
  where both are finite; wins, ties and losses and the Wilcoxon test use every paired image,
  with ``inf − inf`` a tie (a zero difference) and an infinite value beating any finite one
  in the metric's direction.
- Intervals: :func:`scipy.stats.bootstrap` (BCa or percentile) of the mean over images,
  ``n_resamples`` resamples in batches of at most :data:`BATCH_ELEMENTS` values, each
  interval drawn from its own generator ``numpy.random.default_rng([seed, crc32(label)])``
  so that it does not depend on which other methods or metrics are compared.
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from iqa.errors import OptionError

__all__ = [
    "BATCH_ELEMENTS",
    "CI_METHODS",
    "Bootstrap",
    "holm",
    "outcomes",
    "paired_statistics",
    "signed_rank_differences",
    "signed_rank_direction",
    "summary_statistics",
    "wilcoxon_p",
]

#: Interval methods, as given on the command line → scipy's name.
CI_METHODS = {"bca": "BCa", "percentile": "percentile"}

#: Values held by one batch of bootstrap resamples (and of BCa's jackknife): 8 MB of
#: float64, whatever the number of images and resamples.
BATCH_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn.

    Attributes:
        method: ``"bca"`` (bias-corrected and accelerated) or ``"percentile"``.
        n_resamples: resamples per interval.
        seed: the seed every interval's generator starts from (see the module notes).
        confidence: the confidence level of the two-sided intervals.
    """

    method: str = "bca"
    n_resamples: int = 10_000
    seed: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.method not in CI_METHODS:
            raise OptionError(
                f"{{ci_method}} must be one of {', '.join(CI_METHODS)}, got {self.method!r}",
                options={"ci_method": "ci_method"},
            )
        if isinstance(self.n_resamples, bool) or not isinstance(self.n_resamples, int) or self.n_resamples < 100:
            raise OptionError(
                f"{{n_resamples}} must be an integer of at least 100, got {self.n_resamples!r}",
                options={"n_resamples": "n_resamples"},
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise OptionError(f"{{seed}} must be a non-negative integer, got {self.seed!r}", options={"seed": "seed"})
        if not (isinstance(self.confidence, float) and 0.5 <= self.confidence < 1.0):
            raise OptionError(
                f"{{confidence}} must be a number in [0.5, 1), got {self.confidence!r}",
                options={"confidence": "confidence"},
            )

    @property
    def scipy_method(self) -> str:
        return CI_METHODS[self.method]

    def rng(self, label: str) -> np.random.Generator:
        """The generator of the interval named ``label`` (e.g. ``"mean/blur/psnr"``)."""
        return np.random.default_rng([self.seed, zlib.crc32(label.encode("utf-8"))])

    def interval(self, values: np.ndarray, label: str) -> tuple[float | None, float | None, str | None]:
        """The interval of the mean of finite ``values``: ``(low, high, method used)``.

        Fewer than two values: no interval (``None``). All values equal: ``[v, v]`` (every
        resample has that mean; scipy would return NaN and warn). When BCa is undefined for
        the data (scipy's degenerate-data warning: a bootstrap distribution on one side of
        the estimate), the percentile interval is given and the method used says so.
        """
        import scipy.stats

        values = np.asarray(values, dtype=np.float64)
        n = values.size
        if n < 2:
            return None, None, None
        if np.all(values == values[0]):
            v = float(values[0])
            return v, v, "constant"
        batch = max(1, min(self.n_resamples, BATCH_ELEMENTS // n))
        method = self.scipy_method
        for attempt in (method, "percentile"):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = scipy.stats.bootstrap(
                    (values,), np.mean, n_resamples=self.n_resamples, batch=batch, vectorized=True, axis=-1,
                    confidence_level=self.confidence, method=attempt, **_rng_keyword(self.rng(label)),
                )
            low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
            degenerate = any(issubclass(w.category, scipy.stats.DegenerateDataWarning) for w in caught)
            if math.isfinite(low) and math.isfinite(high) and not degenerate:
                return low, high, attempt
        return None, None, None


def _rng_keyword(rng: np.random.Generator) -> dict[str, Any]:
    import inspect

    import scipy.stats

    # scipy 1.15 renamed random_state= to rng= (same meaning for a Generator).
    name = "rng" if "rng" in inspect.signature(scipy.stats.bootstrap).parameters else "random_state"
    return {name: rng}


def _finite(values: Any) -> tuple[np.ndarray, int]:
    values = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(values).any():
        raise ValueError("NaN among the values: failed cells must be left out before the statistics")
    finite = values[np.isfinite(values)]
    return finite, int(values.size - finite.size)


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def summary_statistics(values: Any, bootstrap: Bootstrap, label: str) -> dict[str, Any]:
    """n, n_inf, mean, median, std (ddof=1), and the bootstrap interval of the mean.

    Args:
        values: one method's per-image values of one metric (``inf`` allowed, no NaN).
        bootstrap: how the interval is drawn.
        label: names the interval's generator (``"mean/NAME/metric"``).

    Returns:
        ``{"n", "n_inf", "mean", "median", "std", "ci_low", "ci_high", "ci_method"}``; the
        statistics of the finite values, ``None`` where undefined (no finite value; std and
        the interval need two).
    """
    finite, n_inf = _finite(values)
    n_fin = finite.size
    low, high, how = bootstrap.interval(finite, label)
    return {
        "n": n_fin + n_inf,
        "n_inf": n_inf,
        "mean": _num(finite.mean()) if n_fin else None,
        "median": _num(float(np.median(finite))) if n_fin else None,
        "std": _num(float(finite.std(ddof=1))) if n_fin > 1 else None,
        "ci_low": low,
        "ci_high": high,
        "ci_method": how,
    }


def outcomes(method: Any, baseline: Any, higher_is_better: bool) -> tuple[int, int, int]:
    """Wins, ties and losses of ``method`` against ``baseline``, image by image.

    A win is a value better in the metric's direction (higher PSNR, lower LPIPS); equal
    values, ``inf`` and ``inf`` included, tie. Infinite values compare as numbers do, so an
    infinite PSNR beats any finite one.
    """
    a, b = np.asarray(method, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    better = a > b if higher_is_better else a < b
    worse = a < b if higher_is_better else a > b
    wins, losses = int(better.sum()), int(worse.sum())
    return wins, int(a.size - wins - losses), losses


def signed_rank_differences(method: Any, baseline: Any) -> np.ndarray:
    """``method − baseline`` with the same signs and ranks of ``|d|`` as the true differences,
    all finite: ``inf − inf`` (equal values) is 0, and a difference involving one infinite
    value becomes ``±(largest finite |d| + 1)``, larger than every finite one, as it is.

    The signed-rank test depends only on the signs and the ranks of ``|d|``, so its p-value
    on these differences is the one the infinite differences define.
    """
    a, b = np.asarray(method, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        d = np.where(a == b, 0.0, a - b)
    infinite = ~np.isfinite(d)
    if infinite.any():
        top = np.abs(d[~infinite]).max(initial=0.0) + 1.0
        d[infinite] = np.sign(d[infinite]) * top
    return d


def signed_rank_direction(d: Any) -> int:
    """Which way the signed-rank test's differences lean: the sign of ``R+ − R−``, the sum
    of the signed ranks of ``|d|`` (average ranks for ties; zero differences, which
    ``zsplit`` splits evenly between the signs, add nothing). ``1``: the method's values are
    larger, ``-1``: smaller, ``0``: balanced (or no difference).

    This is the statistic the p-value is computed from, so a significant result points the
    way the test found it, even where the mean of the finite differences (``diff``) cannot
    tell: an infinite PSNR beats every finite one but is not in ``diff``.
    """
    import scipy.stats

    d = np.asarray(d, dtype=np.float64)
    if d.size == 0:
        return 0
    total = float(np.sum(np.sign(d) * scipy.stats.rankdata(np.abs(d))))
    return int(np.sign(total))


def wilcoxon_p(d: Any) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of paired differences ``d`` (finite).

    ``scipy.stats.wilcoxon(d, zero_method="zsplit", alternative="two-sided")``: zero
    differences (ties) are ranked and split between the two signs, so identical methods give
    p = 1 instead of an undefined test. ``None`` for fewer than two differences.
    """
    import scipy.stats

    d = np.asarray(d, dtype=np.float64)
    if d.size < 2:
        return None
    res = scipy.stats.wilcoxon(d, zero_method="zsplit", alternative="two-sided")
    return _num(float(res.pvalue))


def paired_statistics(
    method: Any, baseline: Any, higher_is_better: bool, bootstrap: Bootstrap, label: str
) -> dict[str, Any]:
    """A method against the baseline on the same images (same order), one metric.

    Returns:
        ``n`` (paired images), ``n_diff`` (of them, both values finite: the images behind
        ``diff``), ``n_inf``, ``diff`` (mean of method − baseline), ``ci_low``/``ci_high``
        (paired bootstrap: the images are resampled, each keeping its two values),
        ``ci_method``, ``p_value`` (Wilcoxon), ``direction`` (``"better"``/``"worse"``:
        which way the test's signed-rank statistic leans, by the metric's direction;
        ``None`` when it is balanced or there is no test), ``wins``/``ties``/``losses`` and
        their rates. ``p_holm`` and ``significant`` are added by the caller (:func:`holm` needs
        every p-value of the family).
    """
    a, b = np.asarray(method, dtype=np.float64).ravel(), np.asarray(baseline, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in length: {a.size} and {b.size}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("NaN among the values: failed cells must be left out before the statistics")
    n = int(a.size)
    both = np.isfinite(a) & np.isfinite(b)
    diffs = a[both] - b[both]
    low, high, how = bootstrap.interval(diffs, label)
    wins, ties, losses = outcomes(a, b, higher_is_better)
    d = signed_rank_differences(a, b)
    p_value = wilcoxon_p(d)
    lean = signed_rank_direction(d) if p_value is not None else 0
    direction = None if lean == 0 else ("better" if (lean > 0) == bool(higher_is_better) else "worse")
    return {
        "n": n,
        "n_diff": int(diffs.size),
        "n_inf": int(n - diffs.size),
        "diff": _num(diffs.mean()) if diffs.size else None,
        "ci_low": low,
        "ci_high": high,
        "ci_method": how,
        "p_value": p_value,
        "direction": direction,
        "win_rate": wins / n if n else None,
        "tie_rate": ties / n if n else None,
        "loss_rate": losses / n if n else None,
        "wins": wins,
        "ties": ties,
        "losses": losses,
    }


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (``None`` stays ``None`` and is
    not counted in the family).

    With the m p-values sorted, ``p(1) ≤ … ≤ p(m)``, the adjusted ``p(i)`` is
    ``max over j ≤ i of min(1, (m − j + 1)·p(j))``; rejecting where it is at most α controls
    the family-wise error rate at α (Holm 1979).

    Example:
        >>> holm([0.01, 0.04, 0.03, 0.005])
        [0.03, 0.06, 0.06, 0.02]
    """
    index = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(index)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(index, key=lambda i: pvalues[i])):  # type: ignore[arg-type,return-value]
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))  # type: ignore[arg-type]
        out[i] = running
    return out

"""The kernel distance (KID): the unbiased MMD² with a cubic kernel, over random subsets."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from iqa.errors import IQAWarning, ShapeError
from iqa.io import is_tensor
from iqa.options import check_integer

__all__ = ["KIDResult", "kernel_distance", "kid_features"]



@dataclass(frozen=True)
class KIDResult:
    """KID over random subsets: mean and (population) standard deviation of the MMD² values."""

    mean: float
    std: float
    subsets: int
    subset_size: int
    seed: int
    notes: tuple[str, ...] = ()


def kernel_distance(
    features1: Any,
    features2: Any,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 2020,
) -> KIDResult:
    """Unbiased MMD² with the cubic polynomial kernel k(x, y) = (xᵀy/d + 1)³, over subsets.

    Each of ``subsets`` rounds draws ``m = subset_size`` rows of each set without replacement
    (``numpy.random.RandomState(seed)``, set 1 then set 2, as torch-fidelity draws them) and
    computes ``(Σ_{i≠j} k(x_i,x_j) + Σ_{i≠j} k(y_i,y_j)) / (m(m−1)) − 2 Σ k(x_i,y_j) / m²`` in
    float64. With fewer than ``subset_size`` rows in a set, ``m`` is reduced to the smaller
    set's size with an :class:`~iqa.errors.IQAWarning` (recorded in the result).

    Returns:
        A :class:`KIDResult`; ``std`` is the population standard deviation over subsets.

    Raises:
        ShapeError: mismatched dimensions or fewer than 2 rows.

    Matches: torch-fidelity's ``kid_features_to_metric`` (same seed, same subsets) and
    torchmetrics' ``KernelInceptionDistance`` (whose subsets are drawn by torch).
    """
    f1 = np.asarray(features1.detach().cpu().numpy() if is_tensor(features1) else features1, np.float64)
    f2 = np.asarray(features2.detach().cpu().numpy() if is_tensor(features2) else features2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ShapeError(f"expected features N1×d and N2×d, got {f1.shape} and {f2.shape}")
    check_integer("kid", "subsets", subsets, minimum=1)
    check_integer("kid", "subset_size", subset_size, minimum=2)
    n1, n2 = f1.shape[0], f2.shape[0]
    m = min(subset_size, n1, n2)
    if m < 2:
        raise ShapeError(f"KID needs at least 2 images in each set, got {n1} and {n2}")
    notes: tuple[str, ...] = ()
    if m < subset_size:
        notes = (f"subset size reduced from {subset_size} to {m} (the smaller set's size)",)
        warnings.warn(
            f"KID subset size reduced from {subset_size} to {m}: a set has only {m} images",
            IQAWarning,
            stacklevel=2,
        )
    d = f1.shape[1]
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = f1[rng.choice(n1, m, replace=False)]
        y = f2[rng.choice(n2, m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        values[i] = (
            (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.sum() / (m * m)
        )
    return KIDResult(float(values.mean()), float(values.std()), subsets, m, seed, notes)


#: KID on feature arrays of any extractor (the name beside :func:`~iqa.distribution.frechet.fd_features`
#: and :func:`~iqa.distribution.prdc.prdc_features`).
kid_features = kernel_distance

"""The Inception Score on logits: exp(E KL(p(y|x) ‖ p(y))) over splits of the set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from iqa.errors import RangeError, ShapeError
from iqa.io import is_tensor
from iqa.options import check_integer

__all__ = ["ISResult", "inception_score_features"]


@dataclass(frozen=True)
class ISResult:
    """The Inception Score: mean and (population) standard deviation over the splits."""

    mean: float
    std: float
    splits: int
    seed: int | None
    #: The score of each split, in split order.
    scores: tuple[float, ...] = ()


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def inception_score_features(
    logits: Any,
    *,
    splits: int = 10,
    shuffle: bool = True,
    seed: int = 2020,
) -> ISResult:
    """The Inception Score of an ``N×C`` array of classifier logits.

    The rows are permuted by ``numpy.random.RandomState(seed).permutation(N)`` (unless
    ``shuffle`` is false), the softmax over all ``C`` classes is taken in float64, and the rows
    are cut into ``splits`` parts at ``i·N // splits`` (every row used; parts differ by at most
    one row). Each part scores ``exp(mean_x KL(p(y|x) ‖ p(y)))`` with ``p(y)`` the part's mean
    prediction; the result is the mean and the population (``ddof=0``) standard deviation of
    the parts' scores.

    Args:
        logits: ``N×C`` logits (NumPy or torch); for the Inception Score the 1008 unbiased
            logits of the FID Inception network (pool3 × ``fc.weight``ᵀ, no bias).
        splits: number of parts (10 as everyone reports).
        shuffle: permute the rows first (torch-fidelity's and dgm-eval's default; the original
            TF code does not).
        seed: the permutation's seed.

    Returns:
        An :class:`ISResult`.

    Raises:
        ShapeError: not a 2-d array, or fewer rows than ``splits`` (a part would be empty).
        RangeError: NaN or infinite logits.

    References: Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016.
    Matches: torch-fidelity 0.4's ``isc_features_to_metric`` (same seed: same permutation).
    """
    z = np.asarray(logits.detach().cpu().numpy() if is_tensor(logits) else logits)
    check_integer("is", "splits", splits, minimum=1)
    check_integer("is", "seed", seed)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ShapeError(f"expected N×C logits with C ≥ 2, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise RangeError("logits contain NaN or infinite values (a diverged network or corrupt features)")
    n = z.shape[0]
    if n < splits:
        raise ShapeError(f"the Inception Score over {splits} splits needs at least {splits} images, got {n}; "
                         "add images or lower {splits}", options={"splits": "splits"}, metric="is")
    if shuffle:
        z = z[np.random.RandomState(seed).permutation(n)]
    log_p = _log_softmax(z.astype(np.float64))
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        part, log_part = p[lo:hi], log_p[lo:hi]
        log_marginal = np.log(part.mean(axis=0, keepdims=True))
        kl = (part * (log_part - log_marginal)).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return ISResult(float(np.mean(scores)), float(np.std(scores)), splits, seed if shuffle else None, tuple(scores))

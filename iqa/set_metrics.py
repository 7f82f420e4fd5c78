"""The set metrics (FID, KID) on image sets: options, one-call functions.

Sources are turned into features by :mod:`iqa.features.pipeline`; the distances are
computed on the features by :mod:`iqa.distribution`. This module only ties them together,
so that ``iqa.fid``, ``iqa.kid`` and the ``iqa fid|kid|stats`` commands share one path.

References: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium", NeurIPS 2017 (FID); Bińkowski et al., "Demystifying MMD GANs", ICLR 2018
(KID).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from iqa.distribution.frechet import ROUTES, distance
from iqa.distribution.kid import KIDResult, kernel_distance
from iqa.distribution.statistics import FIDStatistics, check_compatible
from iqa.features import EXTRACTORS
from iqa.options import Options, check_choice, check_integer, option

__all__ = ["FIDOptions", "FeatureOptions", "KIDOptions", "compute_statistics", "fid", "kid", "kid_of", "make_extractor"]

_INCEPTION = EXTRACTORS["inception"]
_FAST_HELP = (
    "Channels-last with batch norm folded into the convolutions: a further ~1.3x on CPUs; "
    "features differ from pytorch-fid's by float32 round-off (up to ~1.5e-5 of the largest) "
    "instead of being identical."
)


@dataclass(frozen=True)
class FeatureOptions(Options):
    """What every feature-space metric takes: the extractor, its feature dimension and its
    preprocessing mode."""

    extractor: str = option("inception", "Feature space: " + "; ".join(f"{n}: {e.summary}" for n, e in EXTRACTORS.items()),
                            choices=tuple(EXTRACTORS))
    dims: int = option(_INCEPTION.default_dims, "Feature dimension: 2048 is pool3 (FID's); 64/192/768 are earlier blocks.",
                       choices=_INCEPTION.dims)
    mode: str = option("pytorch-fid", "Preprocessing: pytorch-fid (bilinear, 2x-1), clean (clean-fid's PIL "
                       "bicubic) or tf (TF1 bilinear, torch-fidelity's).", choices=_INCEPTION.modes)
    fast: bool = option(False, _FAST_HELP)

    def weights_names(self) -> tuple[str, ...]:
        return EXTRACTORS[self.extractor].weights

    def validate(self) -> None:
        check_choice(self.metric, "extractor", self.extractor, EXTRACTORS)
        if isinstance(self.dims, str) and self.dims.isdigit():
            self._set("dims", int(self.dims))
        check_choice(self.metric, "dims", self.dims, _INCEPTION.dims)
        check_choice(self.metric, "mode", self.mode, _INCEPTION.modes)
        self._set("fast", bool(self.fast))


@dataclass(frozen=True)
class FIDOptions(FeatureOptions):
    """The parameters of FID."""

    metric = "fid"

    route: str = option("sqrtm", "Matrix square root: scipy sqrtm (pytorch-fid's) or symmetric "
                        "eigendecompositions (faster).", choices=ROUTES)

    def validate(self) -> None:
        super().validate()
        check_choice(self.metric, "route", self.route, ROUTES)


@dataclass(frozen=True)
class KIDOptions(FeatureOptions):
    """The parameters of KID: the subsets and their seed."""

    metric = "kid"

    subsets: int = option(100, "Number of random subsets.")
    subset_size: int = option(1000, "Images per subset (reduced, with a warning, to the smaller set's size).")
    seed: int = option(2020, "Seed of the subset draws (torch-fidelity's default).")

    def validate(self) -> None:
        super().validate()
        check_integer(self.metric, "subsets", self.subsets, minimum=1)
        check_integer(self.metric, "subset_size", self.subset_size, minimum=2)
        check_integer(self.metric, "seed", self.seed)

    def constants(self) -> dict[str, Any]:
        return {"kernel": "polynomial (x.y/d + 1)^3"}


def make_extractor(
    options: FeatureOptions,
    *,
    weights: Any = None,
    device: str | None = None,
    batch_size: int = 50,
    workers: int | None = None,
) -> Any:
    """The Inception feature extractor for these options (the network loads on first use)."""
    from iqa.features.pipeline import InceptionFeatures
    from iqa.runtime import weights_mapping

    files = weights_mapping(weights, needed=options.weights_names())
    return InceptionFeatures(
        dims=options.dims, mode=options.mode, weights=files.get(_INCEPTION.weights[0]), device=device,
        batch_size=batch_size, workers=workers, fast=options.fast,
    )


def kid_of(s1: FIDStatistics, s2: FIDStatistics, options: KIDOptions, *, allow_mismatch: bool = False) -> KIDResult:
    """KID between two statistics that kept their features."""
    check_compatible(s1, s2, allow_mismatch=allow_mismatch)
    return kernel_distance(
        s1.features, s2.features, subsets=options.subsets, subset_size=options.subset_size, seed=options.seed
    )




def compute_statistics(
    source: Any,
    *,
    extractor: str = "inception",
    dims: int = 2048,
    mode: str = "pytorch-fid",
    weights: str | os.PathLike | None = None,
    device: str | None = None,
    batch_size: int = 50,
    workers: int | None = None,
    data_range: float | None = None,
    alpha: str = "error",
    strict: bool = False,
    fast: bool = False,
    keep_features: bool = False,
) -> FIDStatistics:
    """Inception feature statistics of a folder, file list, ``.npz``, array, tensor or DataLoader.

    See :class:`InceptionFeatures` for the options and :class:`FIDStatistics` for the result.

    Example:
        >>> stats = compute_statistics("real/")  # doctest: +SKIP
        >>> stats.save("real.npz")  # doctest: +SKIP
    """
    options = FIDOptions(extractor=extractor, dims=dims, mode=mode, fast=fast)
    ext = make_extractor(options, weights=weights, device=device, batch_size=batch_size, workers=workers)
    return ext.statistics(source, data_range=data_range, alpha=alpha, strict=strict, keep_features=keep_features)


def fid(
    source1: Any,
    source2: Any,
    *,
    extractor: str = "inception",
    dims: int = 2048,
    mode: str = "pytorch-fid",
    route: str = "sqrtm",
    weights: str | os.PathLike | None = None,
    device: str | None = None,
    batch_size: int = 50,
    workers: int | None = None,
    data_range: float | None = None,
    alpha: str = "error",
    strict: bool = False,
    fast: bool = False,
    allow_mismatch: bool = False,
) -> float:
    """Fréchet Inception Distance between two image sets.

    Each source is a folder (recursive, sorted), a list of image files, an ``.npz`` of
    statistics (from :meth:`FIDStatistics.save`, ``iqa stats`` or pytorch-fid), a NumPy batch
    ``N×H×W×C``, a tensor ``N×C×H×W`` or an iterable of tensor batches (a DataLoader).
    Images are reduced to 8-bit RGB, resized to 299×299 by ``mode``, and described by the mean
    and covariance of their Inception features (2048-d pool3 by default).

    Args:
        source1, source2: the two image sets.
        extractor: the feature space (``iqa metrics`` lists them; ``"inception"``, FID's).
        dims: 2048 (FID), or 768, 192, 64 (earlier blocks).
        mode: ``"pytorch-fid"`` (default), ``"clean"`` or ``"tf"``; see :mod:`iqa.features.preprocess`.
        route: ``"sqrtm"`` (pytorch-fid's) or ``"eigh"`` (faster, exact for full-rank
            covariances); see :func:`frechet_distance`.
        weights: the Inception weights file; default: pytorch-fid's, from the registry.
        device: where the network runs.
        batch_size: images decoded and accumulated together.
        workers: decoding threads.
        data_range: peak value of float arrays and tensors.
        alpha: the alpha-channel policy (``"error"``, ``"drop"``, ``"keep"`` is refused).
        strict: stop at the first unreadable file instead of skipping it.
        fast: channels-last with folded batch norm (faster on CPUs, float32 round-off
            ~1e-5 instead of bit-identical features); see :class:`InceptionFeatures`.
        allow_mismatch: compare statistics made with different modes or weights.

    Returns:
        The FID as a Python float (0 for identical sets).

    Raises:
        IQAError: fewer than 2 images, statistics made under other conventions,
            a square root with a significant imaginary part; WeightsError from the registry.

    Warns:
        IQAWarning: skipped files; n ≤ dims (a singular covariance).

    References: Heusel et al., NeurIPS 2017.
    Matches: ``python -m pytorch_fid A B`` (mode ``"pytorch-fid"``, same weights; pytorch-fid
    lists only the top folder's files with lower-case extensions).
    """
    options = FIDOptions(extractor=extractor, dims=dims, mode=mode, route=route, fast=fast)
    ext = make_extractor(options, weights=weights, device=device, batch_size=batch_size, workers=workers)
    s1 = ext.statistics(source1, data_range=data_range, alpha=alpha, strict=strict)
    s2 = ext.statistics(source2, data_range=data_range, alpha=alpha, strict=strict)
    return distance(s1, s2, route=options.route, allow_mismatch=allow_mismatch)


def kid(
    source1: Any,
    source2: Any,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 2020,
    extractor: str = "inception",
    dims: int = 2048,
    mode: str = "pytorch-fid",
    weights: str | os.PathLike | None = None,
    device: str | None = None,
    batch_size: int = 50,
    workers: int | None = None,
    data_range: float | None = None,
    alpha: str = "error",
    strict: bool = False,
    fast: bool = False,
    allow_mismatch: bool = False,
) -> tuple[float, float]:
    """Kernel Inception Distance between two image sets: ``(mean, std)`` over subsets.

    Sources as for :func:`fid`; an ``.npz`` must hold the features (``iqa stats --keep-features``).
    See :func:`kernel_distance` for the estimator and the subset sampling.

    Returns:
        ``(mean, std)`` of the unbiased MMD² over ``subsets`` subsets, as Python floats.

    References: Bińkowski et al., "Demystifying MMD GANs", ICLR 2018.
    Matches: torch-fidelity's KID (same ``seed``: same subsets); torchmetrics'
    ``KernelInceptionDistance`` with one subset of all images.
    """
    options = KIDOptions(extractor=extractor, dims=dims, mode=mode, subsets=subsets, subset_size=subset_size,
                         seed=seed, fast=fast)
    ext = make_extractor(options, weights=weights, device=device, batch_size=batch_size, workers=workers)
    s1 = ext.statistics(source1, data_range=data_range, alpha=alpha, strict=strict, keep_features=True)
    s2 = ext.statistics(source2, data_range=data_range, alpha=alpha, strict=strict, keep_features=True)
    r = kid_of(s1, s2, options, allow_mismatch=allow_mismatch)
    return r.mean, r.std

"""The set metrics (FID, KID, FD, PRDC, CMMD, IS) on image sets: options, one-call functions.

Sources are turned into features by :mod:`iqa.features.pipeline`; the distances are
computed on the features by :mod:`iqa.distribution`. This module only ties them together,
so that ``iqa.fid``, ``iqa.kid`` and the ``iqa fid|kid|stats`` commands share one path.

References: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium", NeurIPS 2017 (FID); Bińkowski et al., "Demystifying MMD GANs", ICLR 2018
(KID); Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016 (IS).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

from iqa.distribution.frechet import ROUTES, distance
from iqa.distribution.kid import KIDResult, kernel_distance
from iqa.distribution.statistics import FIDStatistics, check_compatible
from iqa.features import EXTRACTORS, LOGITS_DIMS, MODES
from iqa.errors import OptionError
from iqa.options import Options, check_choice, check_integer, option

__all__ = [
    "CMMDOptions",
    "FDDINOv2Options",
    "FDOptions",
    "FIDOptions",
    "FeatureOptions",
    "ISOptions",
    "KIDOptions",
    "PRDCOptions",
    "cmmd",
    "cmmd_of",
    "compute_statistics",
    "fd",
    "fd_dinov2",
    "fid",
    "inception_score",
    "is_of",
    "kid",
    "kid_of",
    "make_extractor",
    "prdc",
    "prdc_of",
]

_INCEPTION = EXTRACTORS["inception"]
_ALL_DIMS = tuple(sorted({d for e in EXTRACTORS.values() for d in e.dims}))
_ALL_MODES = tuple(dict.fromkeys(m for e in EXTRACTORS.values() for m in e.modes))
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
    dims: int | None = option(None, "Feature dimension [default: the extractor's]: inception 2048 is pool3 (FID's), "
                              "64/192/768 are earlier blocks; a DINOv2 or CLIP has only its own.",
                              choices=_ALL_DIMS)
    mode: str | None = option(None, "Preprocessing [default: the extractor's first]: inception: pytorch-fid "
                              "(bilinear, 2x-1), clean (clean-fid's PIL bicubic), tf (TF1 bilinear, "
                              "torch-fidelity's); dinov2-*: dgm-eval (PIL bicubic), tf (torch-fidelity's), "
                              "edm2 (torch bicubic, antialiased); clip-*: cmmd (centre crop, then PIL bicubic: the CMMD "
                              "authors'), openai (PIL bicubic of the shorter side, then centre crop: clip.load's).",
                              choices=_ALL_MODES)
    fast: bool = option(False, _FAST_HELP)

    def weights_names(self) -> tuple[str, ...]:
        return EXTRACTORS[self.extractor].weights

    def validate(self) -> None:
        check_choice(self.metric, "extractor", self.extractor, EXTRACTORS)
        spec = EXTRACTORS[self.extractor]
        if isinstance(self.dims, str) and self.dims.isdigit():
            self._set("dims", int(self.dims))
        if self.dims is None:
            self._set("dims", spec.default_dims)
        if self.mode is None:
            self._set("mode", spec.modes[0])
        check_choice(self.metric, "dims", self.dims, spec.dims)
        check_choice(self.metric, "mode", self.mode, spec.modes)
        self._set("fast", bool(self.fast))
        if self.fast and self.extractor != "inception":
            raise OptionError(f"{{fast}} applies to the inception extractor only, not {self.extractor}",
                              options={"fast": "fast"}, metric=self.metric)


def _route_option() -> Any:
    """The ``route`` field shared by the Fréchet-distance metrics."""
    return option("sqrtm", "Matrix square root: scipy sqrtm (pytorch-fid's) or symmetric "
                  "eigendecompositions (faster).", choices=ROUTES)


@dataclass(frozen=True)
class FIDOptions(FeatureOptions):
    """The parameters of FID."""

    metric = "fid"

    route: str = _route_option()

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


_EXTRACTOR_HELP = "Feature space: " + ", ".join(EXTRACTORS) + " (see `iqa fid --help`)."


@dataclass(frozen=True)
class FDOptions(FeatureOptions):
    """The Fréchet distance on any feature space (FID is ``fd`` on ``inception``)."""

    metric = "fd"

    extractor: str = option("dinov2-vitl14", _EXTRACTOR_HELP, choices=tuple(EXTRACTORS))
    route: str = _route_option()

    def validate(self) -> None:
        super().validate()
        check_choice(self.metric, "route", self.route, ROUTES)


@dataclass(frozen=True)
class FDDINOv2Options(Options):
    """FD-DINOv2: the Fréchet distance on DINOv2 ViT-L/14 CLS features, dgm-eval's protocol."""

    metric = "fd_dinov2"

    route: str = _route_option()

    def validate(self) -> None:
        check_choice(self.metric, "route", self.route, ROUTES)

    def constants(self) -> dict[str, Any]:
        return {"extractor": "dinov2-vitl14", "mode": "dgm-eval"}

    def feature_options(self) -> FDOptions:
        return FDOptions(extractor="dinov2-vitl14", mode="dgm-eval", route=self.route)


@dataclass(frozen=True)
class PRDCOptions(FeatureOptions):
    """Precision, recall, density and coverage (prdc 0.2's definitions)."""

    metric = "prdc"

    extractor: str = option("dinov2-vitl14", _EXTRACTOR_HELP, choices=tuple(EXTRACTORS))
    nearest_k: int = option(5, "k of the k-th nearest neighbour radius (5: prdc's and dgm-eval's; 3: "
                            "Kynkaanniemi's and torch-fidelity's, with --inclusive).")
    inclusive: bool = option(False, "Count a point exactly on a radius as inside (<=, Kynkaanniemi's and "
                             "torch-fidelity's) instead of prdc's strict <; they differ only at exact ties "
                             "(duplicate images).")

    def validate(self) -> None:
        super().validate()
        check_integer(self.metric, "nearest_k", self.nearest_k, minimum=1)

    def constants(self) -> dict[str, Any]:
        comparison = "inclusive (<=), as torch-fidelity" if self.inclusive else "strict (<), as prdc"
        return {"comparison": comparison, "distances": "exact, float64"}


_CLIP_EXTRACTORS = tuple(e for e in EXTRACTORS if e.startswith("clip-"))


@dataclass(frozen=True)
class CMMDOptions(FeatureOptions):
    """CMMD: the squared MMD with a Gaussian RBF kernel (σ = 10) on CLIP embeddings, × 1000."""

    metric = "cmmd"

    extractor: str = option("clip-vitl14-336", "CLIP feature space: " + ", ".join(_CLIP_EXTRACTORS)
                            + " (clip-vitl14-336 is CMMD's).", choices=_CLIP_EXTRACTORS)

    def validate(self) -> None:
        super().validate()
        check_choice(self.metric, "extractor", self.extractor, _CLIP_EXTRACTORS)

    def constants(self) -> dict[str, Any]:
        from iqa.distribution.cmmd import SCALE, SIGMA

        return {"kernel": f"Gaussian RBF exp(-|x-y|^2/(2 sigma^2)), sigma {SIGMA:g}",
                "estimator": "biased: means over all of Kxx, Kyy (diagonals included) and Kxy",
                "scale": SCALE, "precision": "float64"}


@dataclass(frozen=True)
class ISOptions(Options):
    """The Inception Score: the FID Inception network's 1008 unbiased logits, its splits."""

    metric = "is"

    #: The feature space is fixed: the inception extractor's unbiased logits.
    extractor: ClassVar[str] = "inception"
    dims: ClassVar[int] = LOGITS_DIMS

    mode: str = option("tf", "Preprocessing of the Inception network: tf (TF1 bilinear: the original TF code's "
                       "and torch-fidelity's), pytorch-fid (dgm-eval's), clean.", choices=MODES)
    splits: int = option(10, "Number of splits: the score is the mean (and std) over them.")
    seed: int = option(2020, "Seed of the row permutation before splitting (torch-fidelity's).")
    shuffle: bool = option(True, "Permute the rows before splitting (torch-fidelity's and dgm-eval's default; "
                           "the original TF code keeps the input order).")
    fast: bool = option(False, _FAST_HELP)

    def weights_names(self) -> tuple[str, ...]:
        return _INCEPTION.weights

    def validate(self) -> None:
        check_choice(self.metric, "mode", self.mode, MODES)
        check_integer(self.metric, "splits", self.splits, minimum=1)
        check_integer(self.metric, "seed", self.seed)
        self._set("shuffle", bool(self.shuffle))
        self._set("fast", bool(self.fast))

    def constants(self) -> dict[str, Any]:
        return {"extractor": "inception", "logits": "pool3 x fc.weight^T, no bias, 1008 classes",
                "softmax": "float64", "split_bounds": "i*N//splits"}


def make_extractor(
    options: FeatureOptions,
    *,
    weights: Any = None,
    device: str | None = None,
    batch_size: int = 50,
    workers: int | None = None,
) -> Any:
    """The feature extractor for these options (the network loads on first use)."""
    from iqa.features.pipeline import make_features
    from iqa.runtime import weights_mapping

    files = weights_mapping(weights, needed=options.weights_names())
    return make_features(
        options.extractor, dims=options.dims, mode=options.mode, weights=files.get(options.weights_names()[0]),
        device=device, batch_size=batch_size, workers=workers, fast=options.fast,
    )


def _statistics_pair(options: FeatureOptions, source1: Any, source2: Any, *, keep_features: bool, weights: Any,
                     device: str | None, batch_size: int, workers: int | None, data_range: float | None, alpha: str,
                     strict: bool) -> tuple[FIDStatistics, FIDStatistics]:
    """The statistics of two sources in the feature space of ``options`` (one extractor)."""
    ext = make_extractor(options, weights=weights, device=device, batch_size=batch_size, workers=workers)
    return tuple(ext.statistics(s, data_range=data_range, alpha=alpha, strict=strict, keep_features=keep_features)
                 for s in (source1, source2))  # type: ignore[return-value]


def kid_of(s1: FIDStatistics, s2: FIDStatistics, options: KIDOptions, *, allow_mismatch: bool = False) -> KIDResult:
    """KID between two statistics that kept their features."""
    check_compatible(s1, s2, allow_mismatch=allow_mismatch)
    return kernel_distance(
        s1.features, s2.features, subsets=options.subsets, subset_size=options.subset_size, seed=options.seed
    )




def cmmd_of(real: FIDStatistics, generated: FIDStatistics, options: CMMDOptions | None = None, *,
            allow_mismatch: bool = False) -> float:
    """CMMD between two statistics that kept their (CLIP) features."""
    from iqa.distribution.cmmd import cmmd_features

    check_compatible(real, generated, allow_mismatch=allow_mismatch)
    return cmmd_features(real.features, generated.features)


def is_of(generated: FIDStatistics, options: ISOptions) -> Any:
    """The Inception Score of statistics that kept the unbiased logits."""
    from iqa.distribution.inception_score import inception_score_features

    return inception_score_features(generated.features, splits=options.splits, shuffle=options.shuffle,
                                    seed=options.seed)


def prdc_of(real: FIDStatistics, generated: FIDStatistics, options: PRDCOptions, *, allow_mismatch: bool = False,
            device: str | None = None) -> Any:
    """Precision, recall, density and coverage between two statistics that kept their features."""
    from iqa.distribution.prdc import prdc_features

    check_compatible(real, generated, allow_mismatch=allow_mismatch)
    from iqa.runtime import resolve_device

    return prdc_features(real.features, generated.features, nearest_k=options.nearest_k,
                         inclusive=options.inclusive, device=str(resolve_device(device)))


def compute_statistics(
    source: Any,
    *,
    extractor: str = "inception",
    dims: int | None = None,
    mode: str | None = None,
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
    """Feature statistics (Inception by default, any ``extractor``) of a folder, file list,
    ``.npz``, array, tensor or DataLoader.

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
    dims: int | None = None,
    mode: str | None = None,
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
        dims: 2048 (FID; the default), or 768, 192, 64 (earlier blocks).
        mode: ``"pytorch-fid"`` (the default), ``"clean"`` or ``"tf"``; for a DINOv2
            extractor ``"dgm-eval"`` (its default), ``"tf"`` or ``"edm2"``; see
            :mod:`iqa.features.preprocess`.
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
    s1, s2 = _statistics_pair(options, source1, source2, keep_features=False, weights=weights, device=device,
                              batch_size=batch_size, workers=workers, data_range=data_range, alpha=alpha,
                              strict=strict)
    return distance(s1, s2, route=options.route, allow_mismatch=allow_mismatch)


def kid(
    source1: Any,
    source2: Any,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 2020,
    extractor: str = "inception",
    dims: int | None = None,
    mode: str | None = None,
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
    s1, s2 = _statistics_pair(options, source1, source2, keep_features=True, weights=weights, device=device,
                              batch_size=batch_size, workers=workers, data_range=data_range, alpha=alpha,
                              strict=strict)
    r = kid_of(s1, s2, options, allow_mismatch=allow_mismatch)
    return r.mean, r.std


def fd(
    source1: Any,
    source2: Any,
    *,
    extractor: str = "dinov2-vitl14",
    dims: int | None = None,
    mode: str | None = None,
    route: str = "sqrtm",
    weights: Any = None,
    device: str | None = None,
    batch_size: int = 50,
    workers: int | None = None,
    data_range: float | None = None,
    alpha: str = "error",
    strict: bool = False,
    fast: bool = False,
    allow_mismatch: bool = False,
) -> float:
    """Fréchet distance between two image sets in any feature space (default: DINOv2 ViT-L/14).

    Sources and options as for :func:`fid`; ``extractor`` names the feature space and
    ``mode`` defaults to its first (``dgm-eval`` for DINOv2). ``fd(a, b)`` is FD-DINOv2;
    ``fd(a, b, extractor="inception")`` is FID.

    Returns:
        The distance as a Python float.

    References: Stein et al., "Exposing flaws of generative model evaluation metrics", NeurIPS 2023.
    Matches: dgm-eval's FD (its ``fd.py``) on the same features; pytorch-fid's Fréchet function.
    """
    options = FDOptions(extractor=extractor, dims=dims, mode=mode, route=route, fast=fast)
    s1, s2 = _statistics_pair(options, source1, source2, keep_features=False, weights=weights, device=device,
                              batch_size=batch_size, workers=workers, data_range=data_range, alpha=alpha,
                              strict=strict)
    return distance(s1, s2, route=options.route, allow_mismatch=allow_mismatch)


def fd_dinov2(
    source1: Any,
    source2: Any,
    *,
    route: str = "sqrtm",
    weights: Any = None,
    device: str | None = None,
    batch_size: int = 50,
    workers: int | None = None,
    data_range: float | None = None,
    alpha: str = "error",
    strict: bool = False,
    allow_mismatch: bool = False,
) -> float:
    """FD-DINOv2: :func:`fd` on ``dinov2-vitl14`` features in ``dgm-eval`` mode.

    References: Stein et al., NeurIPS 2023; reported beside FID by EDM2 (Karras et al., CVPR 2024).
    Matches: dgm-eval ``--model dinov2`` (vitl14, its default preprocessing).
    """
    return fd(source1, source2, extractor="dinov2-vitl14", mode="dgm-eval", route=FDDINOv2Options(route=route).route,
              weights=weights, device=device, batch_size=batch_size, workers=workers, data_range=data_range,
              alpha=alpha, strict=strict, allow_mismatch=allow_mismatch)


def prdc(
    real: Any,
    generated: Any,
    *,
    nearest_k: int = 5,
    inclusive: bool = False,
    extractor: str = "dinov2-vitl14",
    dims: int | None = None,
    mode: str | None = None,
    weights: Any = None,
    device: str | None = None,
    batch_size: int = 50,
    workers: int | None = None,
    data_range: float | None = None,
    alpha: str = "error",
    strict: bool = False,
    fast: bool = False,
    allow_mismatch: bool = False,
) -> Any:
    """Precision, recall, density and coverage of a generated image set against a real one.

    Sources as for :func:`fid` (an ``.npz`` must hold features: ``iqa stats --keep-features``).
    See :func:`iqa.prdc_features` for the definitions.

    Returns:
        A :class:`~iqa.distribution.prdc.PRDCResult`.

    References: Kynkäänniemi et al., NeurIPS 2019; Naeem et al., ICML 2020.
    Matches: ``prdc.compute_prdc`` (prdc 0.2; dgm-eval's copy) on the same features.
    """
    options = PRDCOptions(extractor=extractor, dims=dims, mode=mode, nearest_k=nearest_k, inclusive=inclusive,
                          fast=fast)
    s1, s2 = _statistics_pair(options, real, generated, keep_features=True, weights=weights, device=device,
                              batch_size=batch_size, workers=workers, data_range=data_range, alpha=alpha,
                              strict=strict)
    return prdc_of(s1, s2, options, allow_mismatch=allow_mismatch, device=device)


def cmmd(
    real: Any,
    generated: Any,
    *,
    extractor: str = "clip-vitl14-336",
    dims: int | None = None,
    mode: str | None = None,
    weights: Any = None,
    device: str | None = None,
    batch_size: int = 50,
    workers: int | None = None,
    data_range: float | None = None,
    alpha: str = "error",
    strict: bool = False,
    fast: bool = False,
    allow_mismatch: bool = False,
) -> float:
    """CMMD between a real and a generated image set: the squared MMD of their CLIP embeddings.

    Sources as for :func:`fid` (an ``.npz`` must hold the features: ``iqa stats --extractor
    clip-vitl14-336 --keep-features``). Every image is centre-cropped to a square, resized to
    336×336 by PIL's bicubic filter and embedded by OpenAI's CLIP ViT-L/14@336px (the
    projected CLS token, L2-normalised); :func:`iqa.distribution.cmmd.cmmd_features` computes
    ``1000 · MMD²`` with a Gaussian kernel of σ = 10, the authors' biased estimator, in float64.
    All images are used (the authors' loader drops the last partial batch of 32).

    Returns:
        The value as a Python float (0 for identical sets; lower is better).

    References: Jayasumana et al., "Rethinking FID: Towards a Better Evaluation Metric for
    Image Generation", CVPR 2024.
    Matches: google-research ``cmmd`` (``main.py``; same images when the set sizes are
    multiples of 32), in float64 instead of float32.
    """
    options = CMMDOptions(extractor=extractor, dims=dims, mode=mode, fast=fast)
    s1, s2 = _statistics_pair(options, real, generated, keep_features=True, weights=weights, device=device,
                              batch_size=batch_size, workers=workers, data_range=data_range, alpha=alpha,
                              strict=strict)
    return cmmd_of(s1, s2, options, allow_mismatch=allow_mismatch)


def inception_score(
    source: Any,
    *,
    splits: int = 10,
    seed: int = 2020,
    shuffle: bool = True,
    mode: str = "tf",
    weights: Any = None,
    device: str | None = None,
    batch_size: int = 50,
    workers: int | None = None,
    data_range: float | None = None,
    alpha: str = "error",
    strict: bool = False,
    fast: bool = False,
) -> tuple[float, float]:
    """Inception Score of one image set: ``(mean, std)`` over ``splits`` splits.

    Source as for :func:`fid` (folder, file list, array, tensor, DataLoader). Each image goes
    through the FID Inception network; its 1008 logits are pool3 × ``fc.weight``ᵀ without the
    bias; the softmax over all 1008 classes is taken in float64; the rows are permuted by
    ``RandomState(seed)`` and cut at ``i·N // splits``. See :func:`inception_score_features`.

    Args:
        source: the image set.
        splits, seed, shuffle: the splits (10; torch-fidelity's seed 2020; permuted).
        mode: the preprocessing: ``"tf"`` (default; the original TF code's and torch-fidelity's),
            ``"pytorch-fid"`` (dgm-eval's) or ``"clean"``.
        weights, device, batch_size, workers, data_range, alpha, strict, fast: as :func:`fid`.

    Returns:
        ``(mean, std)`` as Python floats (std: population, ``np.std``).

    Raises:
        ShapeError: fewer images than ``splits``. IQAError: see :func:`fid`.

    References: Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016.
    Matches: ``torch_fidelity.calculate_metrics(input1=..., isc=True)`` (torch-fidelity 0.4,
    same weights).
    """
    options = ISOptions(splits=splits, seed=seed, shuffle=shuffle, mode=mode, fast=fast)
    ext = make_extractor(options, weights=weights, device=device, batch_size=batch_size, workers=workers)
    stats = ext.statistics(source, data_range=data_range, alpha=alpha, strict=strict, keep_features=True)
    r = is_of(stats, options)
    return r.mean, r.std

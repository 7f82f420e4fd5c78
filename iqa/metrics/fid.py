"""FID and KID: Inception feature statistics, the Fréchet distance and the kernel distance.

Pipeline:
    images → 8-bit RGB (the image layer: gray replicated, the alpha policy applied, 16-bit
    reduced by round(x/257)) → a preprocessing *mode* (resize to 299×299 and scale to
    [-1, 1]) → the FID Inception network (:mod:`iqa.metrics.inception`) → features →
    a :class:`FIDStatistics` accumulator (n, Σx, Σxxᵀ in float64, constant memory,
    mergeable) → the Fréchet distance; or the features themselves → KID.

Preprocessing modes (recorded with every statistic):
    ``"pytorch-fid"`` (default): 8-bit → [0, 1] → ``F.interpolate(bilinear,
    align_corners=False)`` to 299 → 2x − 1, as pytorch-fid.
    ``"clean"``: clean-fid's protocol: PIL bicubic resize of each channel in float32, clipped to
    [0, 255] and not requantised, then (x − 128)/128.
    ``"tf"``: torch-fidelity's protocol (torchmetrics' with ``antialias=False``): uint8 input,
    TensorFlow 1.x bilinear resize, (x − 128)/128.

Under ``torchrun`` a folder's files are sharded across ranks and the sums are added up, so
every rank ends with the statistics of the whole folder (see :mod:`iqa.distributed`).

References: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium", NeurIPS 2017 (FID); Bińkowski et al., "Demystifying MMD GANs", ICLR 2018
(KID).
"""

from __future__ import annotations

import itertools
import json
import os
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from iqa.errors import IQAError, IQAWarning, ImageLoadError, RangeError, ShapeError
from iqa.io import is_tensor, iter_image_files, prepare_image, read_image, to_rgb, to_uint8

__all__ = [
    "DIMS",
    "FIDStatistics",
    "InceptionFeatures",
    "KIDResult",
    "MODES",
    "ROUTES",
    "check_compatible",
    "compute_statistics",
    "distance",
    "fid",
    "frechet_distance",
    "kernel_distance",
    "kid",
    "preprocess",
]

#: Preprocessing modes; the first is the default.
MODES = ("pytorch-fid", "clean", "tf")
#: Feature dimensions: the 2048-d pool3 features (FID's) and three earlier blocks.
DIMS = (64, 192, 768, 2048)
#: Routes for the matrix square root term of the Fréchet distance.
ROUTES = ("sqrtm", "eigh")
#: Input size of the Inception network.
SIZE = 299
#: Images per network call on the CPU (see :meth:`InceptionFeatures.features`).
CPU_CHUNK = 4
#: Version of the .npz layout written by :meth:`FIDStatistics.save`.
NPZ_FORMAT = 1

_PER_FILE_ERRORS = (ImageLoadError, ShapeError, RangeError)


def _check_choice(name: str, value: Any, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


# --------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------


def _resize_tf1_bilinear(x: Any, size: int) -> Any:
    """TensorFlow 1.x ``resize_bilinear(align_corners=False)`` of an ``N×C×H×W`` float32 tensor.

    Source coordinate ``dst·(in/out)`` (no half-pixel offset), lower neighbour ``floor``,
    upper neighbour clamped to the edge, interpolated along x first, then along y, each step
    as ``a + (b − a)·t`` in float32: the arithmetic of TF1's kernel, which is also that of
    torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``.
    """
    import torch

    h, w = x.shape[-2:]

    def axis(n_in: int) -> tuple[Any, Any, Any]:
        pos = torch.arange(size, dtype=torch.float32) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = pos.long()
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, pos - lo.float()

    ylo, yhi, dy = axis(h)
    xlo, xhi, dx = axis(w)
    top, bottom = x[:, :, ylo, :], x[:, :, yhi, :]
    t0 = top[:, :, :, xlo]
    t1 = top[:, :, :, xhi]
    b0 = bottom[:, :, :, xlo]
    b1 = bottom[:, :, :, xhi]
    dx = dx.view(1, 1, 1, size)
    row0 = t0 + (t1 - t0) * dx
    row1 = b0 + (b1 - b0) * dx
    return row0 + (row1 - row0) * dy.view(1, 1, size, 1)


def _resize_pil_bicubic(x: np.ndarray) -> np.ndarray:
    """clean-fid's resize of one ``H×W×3`` float32 image in [0, 255]: PIL bicubic on each
    channel as a 32-bit float image, clipped to [0, 255], not requantised."""
    from PIL import Image

    out = np.empty((SIZE, SIZE, 3), np.float32)
    for c in range(3):
        img = Image.fromarray(np.ascontiguousarray(x[:, :, c], dtype=np.float32), mode="F")
        out[:, :, c] = np.asarray(img.resize((SIZE, SIZE), resample=Image.BICUBIC))
    return np.clip(out, 0, 255)


def preprocess(pixels: Any, mode: str, data_range: float = 255.0) -> Any:
    """Resize and scale RGB images for the Inception network, as ``mode`` prescribes.

    Args:
        pixels: a uint8 NumPy ``H×W×3`` image, or a torch ``N×3×H×W`` tensor (uint8, or float
            with peak value ``data_range``).
        mode: ``"pytorch-fid"``, ``"clean"`` or ``"tf"`` (see the module docstring).
        data_range: the peak value of float tensors (uint8 data is 255).

    Returns:
        A float32 tensor ``N×3×299×299`` in the network's input range (``3×299×299`` for a
        NumPy image).

    Float tensors keep their precision in ``"pytorch-fid"`` (x / data_range, as pytorch-fid
    takes [0, 1] floats) and ``"clean"`` (x·255 / data_range); ``"tf"`` is defined on uint8
    and rounds them to 8 bits first.
    """
    import torch
    import torch.nn.functional as F

    _check_choice("mode", mode, MODES)
    single = isinstance(pixels, np.ndarray)
    if single:
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ShapeError(f"expected a uint8 H×W×3 image, got {pixels.dtype} {pixels.shape}")
        if not pixels.flags.writeable or not pixels.flags.c_contiguous:  # decoded images are read-only
            pixels = np.array(pixels)
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    else:
        x = pixels
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(f"expected an N×3×H×W tensor, got shape {tuple(x.shape)}")
    peak = 255.0 if x.dtype == torch.uint8 else float(data_range)
    if mode == "pytorch-fid":
        x = x.to(torch.float32) / peak if peak != 255.0 else x.to(torch.float32).div(255)
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        out = 2 * x - 1
    elif mode == "clean":
        x = x.to(torch.float32)
        if peak != 255.0:
            x = x * (255.0 / peak)
        arr = x.permute(0, 2, 3, 1).cpu().numpy()
        resized = np.stack([_resize_pil_bicubic(a) for a in arr])
        out = (torch.from_numpy(resized).permute(0, 3, 1, 2) - 128) / 128
    else:
        if x.dtype != torch.uint8:
            x = torch.round(x.to(torch.float64) * (255.0 / peak)).clamp_(0, 255).to(torch.uint8)
        x = _resize_tf1_bilinear(x.to(torch.float32), SIZE)
        out = (x - 128) / 128
    return out[0] if single else out


def _file_to_uint8(path: Path, alpha: str, data_range: float | None, bit_depth: int | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decode a file into 8-bit RGB through the image layer (alpha policy, gray → RGB, 16 → 8 bits)."""
    arr = read_image(path)
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3 and bit_depth is None and data_range is None:
        return arr, ()
    prepared = prepare_image(arr, data_range=data_range, bit_depth=bit_depth, alpha=alpha, role=os.fspath(path))
    notes = list(prepared.notes)
    if prepared.source_dtype != "uint8":
        notes.append(f"{prepared.source_dtype} reduced to 8 bits: round(x·255/{prepared.data_range:g})")
    rgb = to_rgb(prepared.pixels[0], "numpy")
    return to_uint8(rgb, prepared.data_range), tuple(notes)


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import scipy

    from iqa import __version__

    out = {"iqa": __version__, "numpy": np.__version__, "scipy": scipy.__version__}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        out["torch"] = "not installed"
    return out


@dataclass
class FIDStatistics:
    """Streaming Inception feature statistics: n, Σx and Σxxᵀ in float64.

    Memory is constant in the number of images (``dims² `` floats) unless ``keep_features``
    is set (KID needs the features). Accumulators made with the same mode, dimension and
    weights merge exactly, so shards can be computed apart and added.

    Attributes:
        dims: feature dimension.
        mode: the preprocessing mode, or None when unknown (a pytorch-fid ``.npz``).
        weights_sha256: SHA-256 of the Inception weights file, or None when unknown.
        n: number of images added.
        sum: Σx (float64, ``dims``).
        sum_outer: Σxxᵀ (float64, ``dims×dims``).
        features: the features themselves when kept (``n×dims`` float32), else None.
        skipped: ``(file, reason)`` for every image that could not be read.
        notes: conventions applied on the way (e.g. 16-bit files reduced to 8 bits).
        versions: versions of iqa, torch, numpy and scipy that made the statistics.

    Example:
        >>> s = FIDStatistics(dims=4, mode="pytorch-fid")
        >>> s.update(np.eye(4)); s.n
        4
    """

    dims: int
    mode: str | None = None
    weights_sha256: str | None = None
    keep_features: bool = False
    n: int = 0
    sum: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    sum_outer: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    skipped: list = field(default_factory=list, repr=False)
    notes: list = field(default_factory=list, repr=False)
    versions: dict = field(default_factory=_versions, repr=False)
    _features: list = field(default_factory=list, repr=False)
    # Statistics loaded from a file without the sums (pytorch-fid's or clean-fid's): mu, sigma.
    _fixed: tuple | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.dims, (int, np.integer)) or self.dims < 1:
            raise ValueError(f"dims must be a positive integer, got {self.dims!r}")
        if self.mode is not None:
            _check_choice("mode", self.mode, MODES)
        if self.sum is None:
            self.sum = np.zeros(self.dims)
        if self.sum_outer is None:
            self.sum_outer = np.zeros((self.dims, self.dims))

    # -- accumulation ------------------------------------------------------------------

    def update(self, features: Any) -> None:
        """Add a batch of features (``N×dims`` array or tensor)."""
        if self._fixed is not None:
            raise IQAError("statistics loaded without their sums (a pytorch-fid .npz) cannot be updated")
        if is_tensor(features):
            features = features.detach().cpu().numpy()
        f = np.asarray(features)
        if f.ndim != 2 or f.shape[1] != self.dims:
            raise ShapeError(f"expected features of shape N×{self.dims}, got {f.shape}")
        x = f.astype(np.float64)
        self.n += x.shape[0]
        self.sum += x.sum(axis=0)
        self.sum_outer += x.T @ x
        if self.keep_features:
            self._features.append(np.asarray(f, dtype=np.float32))

    def merge(self, other: "FIDStatistics", *, allow_mismatch: bool = False) -> "FIDStatistics":
        """Add another accumulator's images to this one (in place); returns self."""
        if self._fixed is not None or other._fixed is not None:
            raise IQAError("statistics loaded without their sums (a pytorch-fid .npz) cannot be merged")
        check_compatible(self, other, allow_mismatch=allow_mismatch)
        self.n += other.n
        self.sum += other.sum
        self.sum_outer += other.sum_outer
        self.skipped.extend(other.skipped)
        self.notes.extend(n for n in other.notes if n not in self.notes)
        if self.keep_features:
            if not other.has_features and other.n:
                raise IQAError("cannot merge statistics without features into one that keeps them")
            self._features.extend(other._features)
        return self

    def reset(self) -> None:
        """Forget every image (keep the settings)."""
        self.n = 0
        self.sum = np.zeros(self.dims)
        self.sum_outer = np.zeros((self.dims, self.dims))
        self.skipped, self.notes, self._features, self._fixed = [], [], [], None

    # -- results -----------------------------------------------------------------------

    @property
    def has_features(self) -> bool:
        return self.keep_features and (self.n == 0 or bool(self._features))

    @property
    def features(self) -> np.ndarray | None:
        if not self.has_features:
            return None
        if len(self._features) > 1:
            self._features = [np.concatenate(self._features)]
        return self._features[0] if self._features else np.zeros((0, self.dims), np.float32)

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)``: the mean and the unbiased (n − 1) covariance, as ``np.cov``.

        Raises:
            IQAError: fewer than 2 images.
        """
        if self._fixed is not None:
            return self._fixed
        if self.n < 2:
            raise IQAError(
                f"FID statistics need at least 2 images, got {self.n}; add images or check "
                "the folder"
            )
        mu = self.sum / self.n
        sigma = (self.sum_outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, sigma

    @property
    def mu(self) -> np.ndarray:
        return self.compute()[0]

    @property
    def sigma(self) -> np.ndarray:
        return self.compute()[1]

    def metadata(self) -> dict[str, Any]:
        """The conventions that produced these statistics (for JSON output)."""
        return {
            "n": self.n,
            "dims": self.dims,
            "mode": self.mode,
            "weights_sha256": self.weights_sha256,
            "skipped": len(self.skipped),
            "notes": list(self.notes),
            "versions": dict(self.versions),
        }

    # -- distributed -------------------------------------------------------------------

    def all_reduce(self, ctx: Any) -> "FIDStatistics":
        """Sum n, Σx, Σxxᵀ (and gather skipped files and features) across ranks, in place."""
        if not ctx.active:
            return self
        n, s, so = ctx.all_reduce_sum([np.array([self.n], np.float64), self.sum, self.sum_outer])
        self.n, self.sum, self.sum_outer = int(round(n[0])), s, so
        gathered = ctx.gather((self.skipped, self.notes))
        self.skipped = sorted(itertools.chain.from_iterable(g[0] for g in gathered))
        self.notes = list(dict.fromkeys(itertools.chain.from_iterable(g[1] for g in gathered)))
        return self

    # -- files -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, *, features: bool | None = None) -> Path:
        """Write an ``.npz`` file that pytorch-fid reads (``mu``, ``sigma``) with iqa's extras.

        Keys: ``mu``, ``sigma`` (float64); ``n``, ``sum``, ``sum_outer`` (exact merging);
        ``dims``, ``mode``, ``weights_sha256``, ``versions`` (JSON), ``notes`` (JSON),
        ``skipped``, ``iqa_npz_format``; and ``feats`` (``n×dims`` float32, clean-fid's key)
        when ``features`` is true (default: when the features were kept).

        Raises:
            IQAError: features asked for but not kept; fewer than 2 images.
        """
        mu, sigma = self.compute()
        want = self.has_features if features is None else features
        arrays: dict[str, Any] = {
            "mu": mu,
            "sigma": sigma,
            "n": np.int64(self.n),
            "sum": self.sum,
            "sum_outer": self.sum_outer,
            "dims": np.int64(self.dims),
            "mode": np.str_(self.mode or ""),
            "weights_sha256": np.str_(self.weights_sha256 or ""),
            "versions": np.str_(json.dumps(self.versions, sort_keys=True)),
            "notes": np.str_(json.dumps(list(self.notes))),
            "skipped": np.int64(len(self.skipped)),
            "iqa_npz_format": np.int64(NPZ_FORMAT),
        }
        if want:
            if not self.has_features:
                raise IQAError("features were not kept: compute the statistics with keep_features=True (CLI: --features)")
            arrays["feats"] = self.features
        p = Path(path)
        with open(p, "wb") as fh:  # a file object: np.savez would append ".npz" to other names
            np.savez(fh, **arrays)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FIDStatistics":
        """Read an ``.npz`` written by :meth:`save`, pytorch-fid or clean-fid.

        Files without iqa's metadata (pytorch-fid's ``mu``/``sigma``) load with an
        :class:`~iqa.errors.IQAWarning`: their preprocessing and weights are unknown.

        Raises:
            ImageLoadError: the file is missing or not a statistics file.
        """
        p = Path(path)
        if not p.is_file():
            raise ImageLoadError(f"{p}: no such statistics file")
        try:
            data = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ImageLoadError(f"{p}: not a .npz statistics file ({exc})") from None
        with data:
            keys = set(data.files)
            if "iqa_npz_format" in keys:
                dims = int(data["dims"])
                stats = cls(
                    dims=dims,
                    mode=str(data["mode"]) or None,
                    weights_sha256=str(data["weights_sha256"]) or None,
                    keep_features="feats" in keys,
                    n=int(data["n"]),
                    sum=np.array(data["sum"], dtype=np.float64),
                    sum_outer=np.array(data["sum_outer"], dtype=np.float64),
                    notes=json.loads(str(data["notes"])),
                    versions=json.loads(str(data["versions"])),
                )
                stats.skipped = [("(not recorded)", "skipped when the statistics were made")] * int(data["skipped"])
                if "feats" in keys:
                    stats._features = [np.array(data["feats"], dtype=np.float32)]
                return stats
            if not {"mu", "sigma"} <= keys:
                raise ImageLoadError(
                    f"{p}: not a statistics file: expected the keys 'mu' and 'sigma', found "
                    f"{', '.join(sorted(keys)) or 'none'}"
                )
            mu = np.array(data["mu"], dtype=np.float64)
            sigma = np.array(data["sigma"], dtype=np.float64)
            feats = np.array(data["feats"], dtype=np.float32) if "feats" in keys else None
        if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
            raise ShapeError(f"{p}: mu has shape {mu.shape} and sigma {sigma.shape}; expected d and d×d")
        warnings.warn(
            f"{p}: statistics without iqa's metadata (a pytorch-fid or clean-fid file): their "
            "preprocessing mode and weights are unknown, so a mismatch cannot be detected",
            IQAWarning,
            stacklevel=2,
        )
        stats = cls(dims=int(mu.size), versions={}, keep_features=feats is not None)
        stats._fixed = (mu, sigma)
        if feats is not None:
            stats._features = [feats]
            stats.n = int(feats.shape[0])
        return stats


def check_compatible(a: FIDStatistics, b: FIDStatistics, *, allow_mismatch: bool = False) -> None:
    """Refuse to compare or merge statistics made under different conventions.

    Raises:
        ShapeError: different feature dimensions (never comparable).
        IQAError: different modes or weights (unless ``allow_mismatch``).
    """
    if a.dims != b.dims:
        raise ShapeError(f"feature dimensions differ: {a.dims} and {b.dims}; use the same --dims")
    if allow_mismatch:
        return
    if a.mode and b.mode and a.mode != b.mode:
        raise IQAError(
            f"statistics made with different preprocessing modes ({a.mode!r} and {b.mode!r}) "
            "are not comparable; recompute one, or pass allow_mismatch=True (CLI: --allow-mismatch)"
        )
    if a.weights_sha256 and b.weights_sha256 and a.weights_sha256 != b.weights_sha256:
        raise IQAError(
            f"statistics made with different Inception weights ({a.weights_sha256[:12]}… and "
            f"{b.weights_sha256[:12]}…) are not comparable; recompute one, or pass "
            "allow_mismatch=True (CLI: --allow-mismatch)"
        )


# --------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """``scipy.linalg.sqrtm`` without printing: SciPy < 1.16 prints on singular input unless
    ``disp=False``; later versions never print and deprecate ``disp``."""
    import scipy
    import scipy.linalg

    major, minor = (int(v) for v in scipy.__version__.split(".")[:2])
    if (major, minor) < (1, 16):
        return scipy.linalg.sqrtm(a, disp=False)[0]
    return scipy.linalg.sqrtm(a)


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr (Σ1Σ2)^½ = Tr (Σ1^½ Σ2 Σ1^½)^½, with both roots from symmetric eigendecompositions.

    Exact for positive semidefinite Σ1, Σ2; round-off that makes an eigenvalue slightly
    negative is clipped to 0.
    """
    w, v = np.linalg.eigh(sigma1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root @ sigma2 @ root
    m = (m + m.T) / 2
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(m), 0, None)).sum())


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    *,
    route: str = "sqrtm",
    eps: float = 1e-6,
) -> float:
    """Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2): ‖μ1−μ2‖² + Tr Σ1 + Tr Σ2 − 2 Tr (Σ1Σ2)^½.

    Args:
        mu1, sigma1: mean and covariance of the first set.
        mu2, sigma2: mean and covariance of the second set.
        route: ``"sqrtm"`` (default): ``scipy.linalg.sqrtm(Σ1Σ2)`` with pytorch-fid's
            safeguards: if the root is not finite, retry with ε·I added to both covariances
            (with an :class:`~iqa.errors.IQAWarning`); an imaginary part whose diagonal
            exceeds 1e-3 is an error, a smaller one is dropped. ``"eigh"``: the same trace
            through two symmetric eigendecompositions (about 3× faster at 2048-d; agrees with
            sqrtm to ~1e-6 relative when the covariances have full rank).
        eps: the ε of the retry.

    Returns:
        The distance as a Python float.

    Raises:
        ShapeError: mismatched shapes.
        IQAError: the square root has a significant imaginary part.

    Example:
        >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), np.eye(2))
        2.0

    Matches: ``pytorch_fid.fid_score.calculate_frechet_distance`` (route ``"sqrtm"``).
    """
    _check_choice("route", route, ROUTES)
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ShapeError(
            f"mismatched statistics: mu {mu1.shape} and {mu2.shape}, sigma {sigma1.shape} and "
            f"{sigma2.shape}; expected d, d, d×d, d×d with one d"
        )
    diff = mu1 - mu2
    if route == "eigh":
        tr_covmean = _trace_sqrt_product_eigh(sigma1, sigma2)
    else:
        covmean = _sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            warnings.warn(
                f"the product of the covariances is singular: adding {eps} to their diagonals",
                IQAWarning,
                stacklevel=2,
            )
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
        if np.iscomplexobj(covmean):
            if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
                m = np.max(np.abs(covmean.imag))
                raise IQAError(
                    f"the matrix square root has an imaginary component of {m:.3g}: the "
                    "covariances are not positive semidefinite or too few images were used; "
                    "use more images or route='eigh'"
                )
            covmean = covmean.real
        tr_covmean = float(np.trace(covmean))
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def _warn_if_singular(stats: Sequence[FIDStatistics]) -> None:
    small = [s for s in stats if s._fixed is None and s.n <= s.dims]
    if small:
        n = min(s.n for s in small)
        warnings.warn(
            f"{n} images for {small[0].dims}-d features: the covariance is singular, so the "
            "matrix square root is ill-conditioned and the routes differ at ~1e-4 relative "
            "(the exact value needs the n×n Gram route); use more images than dimensions or "
            "lower dims",
            IQAWarning,
            stacklevel=3,
        )


def distance(
    a: FIDStatistics, b: FIDStatistics, *, route: str = "sqrtm", allow_mismatch: bool = False
) -> float:
    """FID between two accumulators (checks that they are comparable; warns when n ≤ dims)."""
    check_compatible(a, b, allow_mismatch=allow_mismatch)
    _warn_if_singular((a, b))
    mu1, s1 = a.compute()
    mu2, s2 = b.compute()
    return frechet_distance(mu1, s1, mu2, s2, route=route)


# --------------------------------------------------------------------------------------
# KID
# --------------------------------------------------------------------------------------


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
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets ≥ 1 and subset_size ≥ 2, got {subsets} and {subset_size}")
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


# --------------------------------------------------------------------------------------
# Feature extraction
# --------------------------------------------------------------------------------------


def _read_file_list(path: Path) -> list[Path]:
    """Image paths listed one a line in a text file (relative to the list's folder); blank
    lines and lines starting with ``#`` are ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageLoadError(f"{path}: cannot read the file list ({exc})") from None
    files = [path.parent / line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not files:
        raise ImageLoadError(f"{path}: the file list names no images")
    return files


def _bounded_map(fn: Callable, items: Sequence, workers: int, window: int) -> Iterator:
    """``map(fn, items)`` in order on a thread pool, with at most ``window`` items in flight
    (memory stays flat however many items there are)."""
    if workers <= 0:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    it = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="iqa-decode") as pool:
        pending = deque(pool.submit(fn, x) for x in itertools.islice(it, window))
        try:
            while pending:
                fut = pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(fn, nxt))
                yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()


class InceptionFeatures:
    """The FID Inception network with a preprocessing mode: images in, statistics out.

    Args:
        dims: feature dimension: 2048 (pool3, FID's), 768, 192 or 64.
        mode: ``"pytorch-fid"``, ``"clean"`` or ``"tf"``.
        weights: a local weights file (pytorch-fid's layout); default: the registry's
            ``inception-fid``.
        device: where the network runs (default: CUDA when available, else the CPU).
        batch_size: images decoded and accumulated together (on the CPU the network takes
            ``CPU_CHUNK`` = 4 of them per call).
        workers: threads that decode (and, in ``"clean"`` mode, resize) while the network
            runs (0: in line).
        fast: run channels-last (NHWC) with batch norm folded into the convolutions, a
            further ~1.2-1.5× on CPUs. The default runs pytorch-fid's own operations (NCHW,
            unfolded batch norm, a few images per call), whose features are bit-identical to
            pytorch-fid's on the same machine. The fast kernels sum in another order: up to
            ~1.5e-5 of the largest feature after ~95 float32 layers, as large as pytorch-fid's
            own error against float64. On small sets this moves covariances by up to ~2.5e-5
            (norm-relative), above the 1e-5 parity bound, so it is not the default.

    Example:
        >>> ext = InceptionFeatures(dims=2048)  # doctest: +SKIP
        >>> stats = ext.statistics("real/")  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        dims: int = 2048,
        mode: str = "pytorch-fid",
        weights: str | os.PathLike | None = None,
        device: str | None = None,
        batch_size: int = 50,
        workers: int | None = None,
        fast: bool = False,
    ) -> None:
        _check_choice("dims", dims, DIMS)
        _check_choice("mode", mode, MODES)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.dims, self.mode, self.batch_size = dims, mode, batch_size
        self.device_name = device
        self.workers = min(4, os.cpu_count() or 1) if workers is None else workers
        self.fast = fast
        self.weights = None if weights is None else os.fspath(weights)
        self._model: Any = None
        self._sha256: str | None = None

    def _load(self) -> None:
        # The network loads on first use, so that comparing two .npz files needs no weights.
        if self._model is None:
            import torch

            from iqa.metrics.inception import load_inception

            self.device = torch.device(self.device_name or ("cuda" if torch.cuda.is_available() else "cpu"))
            # The default keeps pytorch-fid's NCHW layout and batch norms: its features are then
            # bit-identical. NHWC selects other convolution kernels, which round differently.
            self._model, self._sha256 = load_inception(
                self.weights, device=self.device, fold_bn=self.fast, channels_last=self.fast
            )

    @property
    def model(self) -> Any:
        self._load()
        return self._model

    @property
    def weights_sha256(self) -> str:
        self._load()
        return self._sha256  # type: ignore[return-value]

    def new_statistics(self, keep_features: bool = False) -> FIDStatistics:
        stats = FIDStatistics(
            dims=self.dims, mode=self.mode, weights_sha256=self.weights_sha256, keep_features=keep_features
        )
        stats.notes.append(self.network)
        return stats

    @property
    def network(self) -> str:
        """How the network runs (recorded in the statistics' notes)."""
        if self.fast:
            return "network: fast (channels-last, batch norm folded; float32 round-off ~1e-5)"
        return "network: pytorch-fid's operations (NCHW, batch norm unfolded)"

    def features(self, batch: Any) -> np.ndarray:
        """Features (``N×dims`` float32 NumPy) of a preprocessed ``N×3×299×299`` tensor."""
        import torch

        model = self.model
        x = batch.to(self.device)
        if self.fast:
            x = x.contiguous(memory_format=torch.channels_last)
        # On the CPU the network runs a few images at a time: the activations of a small
        # chunk stay in cache (~1.6× faster than 50 at once on 2 cores), and every image's
        # features are computed by the same kernels whatever the chunk, so they are bit-identical
        # to a whole-batch pass (tested). ``batch_size`` still sets how many images are decoded
        # and accumulated together.
        step = CPU_CHUNK if x.device.type == "cpu" else x.shape[0]
        with torch.inference_mode():
            parts = [model(x[i : i + step], dims=self.dims) for i in range(0, x.shape[0], step)]
            return torch.cat(parts).float().cpu().numpy()

    # -- sources -----------------------------------------------------------------------

    def statistics(
        self,
        source: Any,
        *,
        data_range: float | None = None,
        bit_depth: int | None = None,
        alpha: str = "error",
        strict: bool = False,
        keep_features: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> FIDStatistics:
        """Statistics of a folder, a list of files (or a ``.txt`` file listing them, one a
        line, relative to its folder), an ``.npz`` file, a tensor ``N×C×H×W``, a NumPy batch
        ``N×H×W×C``, or an iterable (e.g. a DataLoader) of tensor batches.

        Unreadable files are skipped (listed in ``skipped``, with an IQAWarning) unless
        ``strict``. Under ``torchrun``, files are sharded across ranks and the sums added.

        Raises:
            IQAError: an empty folder or fewer than 2 images; a first unreadable file with
                ``strict``; an ``.npz`` made with other settings.
        """
        if isinstance(source, (str, os.PathLike)):
            p = Path(source)
            if p.suffix.lower() == ".npz" and not p.is_dir():
                stats = FIDStatistics.load(p)
                self._check_loaded(stats, p, keep_features)
                return stats
            if p.suffix.lower() == ".txt" and p.is_file():
                files = _read_file_list(p)
                return self._from_files(files, str(p), data_range, bit_depth, alpha, strict, keep_features, progress)
            if not p.exists():
                raise ImageLoadError(f"{p}: no such folder or file")
            if not p.is_dir():
                raise ImageLoadError(f"{p}: expected a folder of images or a .npz statistics file")
            files = iter_image_files(p)
            if not files:
                raise ImageLoadError(f"{p}: no image files found (extensions: png, jpg, jpeg, tif, tiff, bmp, webp)")
            return self._from_files(files, str(p), data_range, bit_depth, alpha, strict, keep_features, progress)
        if isinstance(source, (list, tuple)) and all(isinstance(f, (str, os.PathLike)) for f in source):
            if not source:
                raise ImageLoadError("the list of files is empty")
            return self._from_files([Path(f) for f in source], "file list", data_range, bit_depth, alpha, strict, keep_features, progress)
        if isinstance(source, np.ndarray) or is_tensor(source):
            return self._from_batches([source], data_range, bit_depth, alpha, keep_features, progress, total=len(source))
        if isinstance(source, Iterable):
            return self._from_batches(source, data_range, bit_depth, alpha, keep_features, progress, total=None)
        raise TypeError(
            f"expected a folder, a list of files, a .npz file, an array, a tensor or an iterable "
            f"of tensors; got {type(source).__name__}"
        )

    def _check_loaded(self, stats: FIDStatistics, path: Path, keep_features: bool) -> None:
        if stats.dims != self.dims:
            raise ShapeError(f"{path}: {stats.dims}-d statistics, but {self.dims}-d features were asked for; use --dims {stats.dims}")
        if keep_features and not stats.has_features:
            raise IQAError(f"{path}: holds no features (needed for KID); make it with 'iqa stats --features'")

    def _load_file(self, path: Path, data_range, bit_depth, alpha) -> tuple[Any, tuple[str, ...], Any]:
        # Runs on the decoding threads: NumPy and Pillow only. A torch operation here would
        # start an OpenMP team per thread and oversubscribe the cores the network runs on.
        try:
            u8, notes = _file_to_uint8(path, alpha, data_range, bit_depth)
            if self.mode == "clean":
                return _resize_pil_bicubic(u8.astype(np.float32)), notes, None
            return u8, notes, None
        except _PER_FILE_ERRORS as exc:
            return None, (), exc

    def _to_input(self, decoded: np.ndarray) -> Any:
        """The rest of :func:`preprocess` for what :meth:`_load_file` returned (main thread)."""
        import torch

        if self.mode == "clean":
            return (torch.from_numpy(decoded).permute(2, 0, 1) - 128) / 128
        return preprocess(decoded, self.mode)

    def _from_files(self, files, label, data_range, bit_depth, alpha, strict, keep_features, progress) -> FIDStatistics:
        import torch

        from iqa.distributed import init, shard

        ctx = init()
        indexed = list(enumerate(files))
        mine = shard(indexed, ctx) if ctx.active else indexed
        stats = self.new_statistics(keep_features)
        indices: list[int] = []
        pending: list = []
        done = 0

        def flush() -> None:
            if pending:
                stats.update(self.features(torch.stack(pending)))
                pending.clear()

        load = lambda item: (item[0], item[1], *self._load_file(item[1], data_range, bit_depth, alpha))  # noqa: E731
        window = max(2 * self.batch_size, 2 * max(self.workers, 1))
        for index, path, tensor, notes, error in _bounded_map(load, mine, self.workers, window):
            done += 1
            if error is not None:
                if strict:
                    raise error
                stats.skipped.append((os.fspath(path), str(error)))
            else:
                pending.append(self._to_input(tensor))
                indices.append(index)
                stats.notes.extend(n for n in notes if n not in stats.notes)
                if len(pending) == self.batch_size:
                    flush()
            if progress is not None:
                progress(done, len(mine))
        flush()
        if ctx.active:
            local = np.concatenate(stats._features) if stats._features else np.zeros((0, self.dims), np.float32)
            stats.all_reduce(ctx)
            if keep_features:
                parts = ctx.gather((indices, local))
                order = np.argsort(np.concatenate([np.asarray(i, np.int64) for i, _ in parts]), kind="stable")
                stats._features = [np.concatenate([f for _, f in parts])[order]]
        if stats.skipped:
            warnings.warn(f"{label}: {len(stats.skipped)} unreadable image(s) skipped", IQAWarning, stacklevel=3)
        if stats.n < 2:
            raise IQAError(f"{label}: FID needs at least 2 readable images, got {stats.n}")
        return stats

    def _from_batches(self, batches, data_range, bit_depth, alpha, keep_features, progress, total) -> FIDStatistics:
        import torch

        stats = self.new_statistics(keep_features)
        done = 0
        for batch in batches:
            if isinstance(batch, (list, tuple)):  # (images, labels) from a DataLoader
                batch = batch[0]
            if isinstance(batch, dict):
                raise TypeError("expected tensor batches (or (images, labels) tuples), got a dict")
            prepared = prepare_image(batch, data_range=data_range, bit_depth=bit_depth, alpha=alpha, role="batch")
            stats.notes.extend(n for n in prepared.notes if n not in stats.notes)
            x = prepared.pixels
            if prepared.backend == "numpy":
                x = torch.from_numpy(x).permute(0, 3, 1, 2)
            x = to_rgb(x, "torch")
            for start in range(0, x.shape[0], self.batch_size):
                chunk = x[start : start + self.batch_size]
                stats.update(self.features(preprocess(chunk.cpu(), self.mode, prepared.data_range)))
            done += x.shape[0]
            if progress is not None:
                progress(done, total or done)
        if stats.n < 2:
            raise IQAError(f"FID needs at least 2 images, got {stats.n}")
        return stats


# --------------------------------------------------------------------------------------
# One-call functions
# --------------------------------------------------------------------------------------


def compute_statistics(
    source: Any,
    *,
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
    ext = InceptionFeatures(
        dims=dims, mode=mode, weights=weights, device=device, batch_size=batch_size, workers=workers, fast=fast
    )
    return ext.statistics(source, data_range=data_range, alpha=alpha, strict=strict, keep_features=keep_features)


def fid(
    source1: Any,
    source2: Any,
    *,
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
        dims: 2048 (FID), or 768, 192, 64 (earlier blocks).
        mode: ``"pytorch-fid"`` (default), ``"clean"`` or ``"tf"``; see the module docstring.
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
    ext = InceptionFeatures(
        dims=dims, mode=mode, weights=weights, device=device, batch_size=batch_size, workers=workers, fast=fast
    )
    s1 = ext.statistics(source1, data_range=data_range, alpha=alpha, strict=strict)
    s2 = ext.statistics(source2, data_range=data_range, alpha=alpha, strict=strict)
    return distance(s1, s2, route=route, allow_mismatch=allow_mismatch)


def kid(
    source1: Any,
    source2: Any,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 2020,
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

    Sources as for :func:`fid`; an ``.npz`` must hold the features (``iqa stats --features``).
    See :func:`kernel_distance` for the estimator and the subset sampling.

    Returns:
        ``(mean, std)`` of the unbiased MMD² over ``subsets`` subsets, as Python floats.

    References: Bińkowski et al., "Demystifying MMD GANs", ICLR 2018.
    Matches: torch-fidelity's KID (same ``seed``: same subsets); torchmetrics'
    ``KernelInceptionDistance`` with one subset of all images.
    """
    ext = InceptionFeatures(
        dims=dims, mode=mode, weights=weights, device=device, batch_size=batch_size, workers=workers, fast=fast
    )
    s1 = ext.statistics(source1, data_range=data_range, alpha=alpha, strict=strict, keep_features=True)
    s2 = ext.statistics(source2, data_range=data_range, alpha=alpha, strict=strict, keep_features=True)
    check_compatible(s1, s2, allow_mismatch=allow_mismatch)
    r = kernel_distance(s1.features, s2.features, subsets=subsets, subset_size=subset_size, seed=seed)
    return r.mean, r.std

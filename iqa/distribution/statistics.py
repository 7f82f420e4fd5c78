"""Streaming feature statistics (n, Σx, Σxxᵀ in float64) and their ``.npz`` files."""

from __future__ import annotations

import itertools
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iqa.errors import IQAError, IQAWarning, ImageLoadError, ShapeError
from iqa.features import EXTRACTORS
from iqa.io import is_tensor
from iqa.options import check_choice, check_integer

__all__ = ["FIDStatistics", "NPZ_FORMAT", "check_compatible"]

#: Version of the .npz layout written by :meth:`FIDStatistics.save`.
NPZ_FORMAT = 1



def _versions() -> dict[str, str]:
    import scipy

    from iqa import __version__

    import PIL

    # Pillow's resampling decides the features of the clean and dgm-eval modes.
    out = {"iqa": __version__, "numpy": np.__version__, "scipy": scipy.__version__, "pillow": PIL.__version__}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        out["torch"] = "not installed"
    return out


def _zeroed(dims: int) -> np.ndarray:
    """A ``dims×dims`` float64 array of zeros whose memory is already written.

    ``np.zeros`` maps pages the first write brings in; when that write is torch's BLAS
    adding Σxxᵀ on two threads at once, a fresh 32 MiB (2048²) took 50 ms against 6 ms
    for this one-thread fill.
    """
    out = np.empty((dims, dims))
    out.fill(0.0)
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
    #: The feature extractor (``inception``, ``dinov2-vitl14``...), or None when unknown.
    extractor: str | None = None
    _features: list = field(default_factory=list, repr=False)
    # Statistics loaded from a file without the sums (pytorch-fid's or clean-fid's): mu, sigma.
    _fixed: tuple | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_integer(None, "dims", self.dims, minimum=1)
        if self.mode is not None:
            check_choice(None, "mode", self.mode, {m for e in EXTRACTORS.values() for m in e.modes})
        if self.sum is None:
            self.sum = np.zeros(self.dims)
        if self.sum_outer is None:
            self.sum_outer = _zeroed(self.dims)

    # -- accumulation ------------------------------------------------------------------

    def update(self, features: Any) -> None:
        """Add a batch of features (``N×dims`` array or tensor).

        A tensor's Σxxᵀ is added in place by torch's BLAS (in float64, on the CPU): NumPy's
        ``x.T @ x`` makes a ``dims²`` temporary (32 MiB at 2048) and starts OpenBLAS's own
        threads beside torch's, which cost 0.04–0.15 s for a first small batch on 2 cores.
        Both sum in float64; they differ in round-off only.
        """
        if self._fixed is not None:
            raise IQAError("statistics loaded without their sums (a pytorch-fid .npz) cannot be updated")
        tensor = is_tensor(features)
        if tensor:
            features = features.detach().cpu().numpy()
        f = np.asarray(features)
        if f.ndim != 2 or f.shape[1] != self.dims:
            raise ShapeError(f"expected features of shape N×{self.dims}, got {f.shape}")
        x = f.astype(np.float64)
        self.n += x.shape[0]
        self.sum += x.sum(axis=0)
        so = self.sum_outer
        if tensor and type(so) is np.ndarray and so.dtype == np.float64 and so.flags.writeable and so.flags.c_contiguous:
            import torch

            t = torch.from_numpy(x)
            torch.from_numpy(so).addmm_(t.T, t)
        else:  # NumPy's rules for a sum given by the caller (read-only, another dtype...)
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
        self.sum_outer = _zeroed(self.dims)
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
        # (Σxxᵀ − n·μμᵀ) / (n − 1) in one dims² array instead of four temporaries; the same
        # operations on the same values, so the same bits.
        sigma = np.outer(mu, mu)
        sigma *= -self.n
        sigma += self.sum_outer
        sigma /= self.n - 1
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
            "extractor": self.extractor,
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

    def save(self, path: str | os.PathLike, *, features: bool | None = None, feature_dtype: str = "float32") -> Path:
        """Write an ``.npz`` file that pytorch-fid reads (``mu``, ``sigma``) with iqa's extras.

        Keys: ``mu``, ``sigma`` (float64); ``n``, ``sum``, ``sum_outer`` (exact merging);
        ``dims``, ``mode``, ``weights_sha256``, ``versions`` (JSON), ``notes`` (JSON),
        ``skipped``, ``iqa_npz_format``; and ``feats`` (``n×dims`` float32, clean-fid's key)
        when ``features`` is true (default: when the features were kept), stored as
        ``feature_dtype`` (``"float32"``, or ``"float16"`` for half the size: ~3 significant
        digits, read back as float32); ``extractor``.

        Raises:
            IQAError: features asked for but not kept; fewer than 2 images.
            OutputError: the file cannot be written (an existing one is left as it was).
        """
        arrays = self.arrays(features=features, feature_dtype=feature_dtype)
        if "mu" not in arrays:
            self.compute()  # fewer than 2 images: refused
        p = Path(path)
        from iqa.outfile import atomic_open

        # A file object (np.savez would append ".npz" to other names), written beside ``p``
        # and renamed over it when complete.
        with atomic_open(p, "wb", what="statistics") as fh:
            _write_npz(fh, arrays)
        return p

    def arrays(self, *, features: bool | None = None, feature_dtype: str = "float32") -> dict[str, Any]:
        """The arrays :meth:`save` writes (``mu`` and ``sigma`` only from 2 images on), for
        files that hold several statistics under prefixed keys (:class:`iqa.Evaluator`)."""
        want = self.has_features if features is None else features
        arrays: dict[str, Any] = dict(zip(("mu", "sigma"), self.compute())) if self.n >= 2 else {}
        arrays.update({
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
            "extractor": np.str_(self.extractor or ""),
        })
        if want:
            if not self.has_features:
                raise IQAError(
                    "features were not kept: compute the statistics with {keep}",
                    options={"keep": ("keep_features", True)},
                )
            check_choice(None, "feature_dtype", feature_dtype, ("float32", "float16"))
            arrays["feats"] = self.features.astype(feature_dtype)
        return arrays

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FIDStatistics":
        """Read an ``.npz`` written by :meth:`save`, pytorch-fid or clean-fid.

        Files without iqa's metadata (pytorch-fid's ``mu``/``sigma``) load with an
        :class:`~iqa.errors.IQAWarning`: their preprocessing and weights are unknown.

        Every array's type and shape is checked from its header before it is read, and its
        values (finite, consistent with the other arrays) before they are used: object
        arrays are never unpickled, and a NaN or infinite mean or covariance is refused
        rather than turned into a distance.

        Raises:
            ImageLoadError: the file is missing, unreadable, not a regular file, not a
                ``.npz`` (a ``.npy``, a truncated or corrupt archive), empty, or not a
                statistics file (missing keys, object arrays, wrong shapes or types,
                NaN or infinite values).
        """
        from iqa.decode import open_regular_file

        p = Path(path)
        with open_regular_file(p, what="a statistics file") as (fh, _size):
            with _NpzReader(fh, p) as npz:
                return cls._from_npz(npz, p)

    @classmethod
    def _from_npz(cls, npz: "_NpzReader", p: Path, min_images: int = 2) -> "FIDStatistics":
        keys = npz.keys
        if "iqa_npz_format" in keys:
            dims = npz.integer("dims", minimum=1)
            n = npz.integer("n", minimum=0)
            mode = npz.text("mode")
            # files written before the key existed were all Inception statistics
            extractor = npz.text("extractor") if "extractor" in keys else "inception"
            if extractor not in EXTRACTORS:
                raise npz.bad(f"'extractor' is {extractor!r}, not one of {', '.join(EXTRACTORS)}")
            modes = {m for e in EXTRACTORS.values() for m in e.modes}
            if mode and mode not in modes:
                raise npz.bad(f"'mode' is {mode!r}, not one of {', '.join(sorted(modes))}")
            stats = cls(
                dims=dims,
                mode=mode or None,
                weights_sha256=npz.text("weights_sha256") or None,
                keep_features="feats" in keys,
                n=n,
                sum=npz.floats("sum", (dims,)),
                sum_outer=npz.floats("sum_outer", (dims, dims)),
                notes=npz.json("notes", list),
                versions=npz.json("versions", dict),
                extractor=extractor,
            )
            skipped = npz.integer("skipped", minimum=0) if "skipped" in keys else 0
            stats.skipped = [("(not recorded)", "skipped when the statistics were made")] * skipped
            if n < min_images:
                raise npz.bad(f"it holds {n} image(s); FID statistics need at least {min_images}")
            if "feats" in keys:
                stats._features = [npz.floats("feats", (n, dims), np.float32)]
            return stats
        if not {"mu", "sigma"} <= keys:
            raise npz.bad(f"expected the keys 'mu' and 'sigma', found {', '.join(sorted(keys)) or 'none'}")
        mu = npz.floats("mu", (None,))
        sigma = npz.floats("sigma", (mu.size, mu.size))
        feats = npz.floats("feats", (None, mu.size), np.float32) if "feats" in keys else None
        warnings.warn(
            f"{p}: statistics without iqa's metadata (a pytorch-fid or clean-fid file): their "
            "preprocessing mode and weights are unknown, so a mismatch cannot be detected",
            IQAWarning,
            stacklevel=3,
        )
        stats = cls(dims=int(mu.size), versions={}, keep_features=feats is not None)
        stats._fixed = (mu, sigma)
        if feats is not None:
            stats._features = [feats]
            stats.n = int(feats.shape[0])
        return stats


def _write_npz(fh: Any, arrays: dict[str, Any]) -> None:
    """``np.savez(fh, **arrays)`` without its copies: ``savez`` hands each array to the
    archive as fresh 16 MiB ``tobytes()`` copies (64 MiB for the two ``dims²`` arrays at
    2048); here the archive reads the arrays' own memory. The same bytes as ``savez`` for
    C-contiguous arrays (tested); others are stored in C order (``savez`` keeps Fortran
    order), which loads as equal arrays. Headers are format 1.0, which every array of a
    statistics file fits (``savez`` moves to 2.0 only for headers over 64 KiB)."""
    import zipfile

    fmt = np.lib.format
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            a = np.asarray(value)
            if not a.flags.c_contiguous:
                a = a.copy(order="C")
            # force_zip64 as numpy does (numpy gh-10776: members over 2 GiB)
            with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                fmt.write_array_header_1_0(member, fmt.header_data_from_array_1_0(a))
                member.write(a.reshape(-1).view(np.uint8))


class _Prefixed:
    """The arrays of an :class:`_NpzReader` whose keys start with ``prefix``, under their
    names without it (one statistics object among several in a file)."""

    def __init__(self, reader: "_NpzReader", prefix: str) -> None:
        self._reader, self._prefix = reader, prefix
        self.keys = {k[len(prefix):] for k in reader.keys if k.startswith(prefix)}

    def bad(self, message: str, prefix: str = "not a usable statistics file: ") -> ImageLoadError:
        return self._reader.bad(f"{self._prefix.rstrip('/')}: {message}", prefix)

    def __getattr__(self, name: str) -> Any:  # floats, integer, text, json: the prefixed key
        method = getattr(self._reader, name)
        return lambda key, *args, **kw: method(self._prefix + key, *args, **kw)


class _NpzReader:
    """The arrays of an ``.npz`` (a ZIP of ``.npy`` files), each checked from its ``.npy``
    header (type, shape) before it is read, and for finiteness after; pickles are never
    loaded. Every refusal names the file."""

    #: The largest array read whole: a 2048×2048 float64 covariance is 32 MiB.
    _MOST_BYTES = 8 * 4096 * 4096

    def __init__(self, fh: Any, path: Path) -> None:
        import zipfile

        self.path = path
        head = fh.read(8)
        fh.seek(0)
        if head.startswith(b"\x93NUMPY"):
            raise self.bad("it is a single .npy array, not an .npz archive; save statistics with "
                           "numpy.savez(path, mu=mu, sigma=sigma)", prefix="")
        if not head.startswith(b"PK"):
            raise self.bad("it is not an .npz archive (a ZIP file)", prefix="")
        try:
            self._zip = zipfile.ZipFile(fh)
            names = self._zip.namelist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise self.bad(f"it cannot be read as an .npz archive ({exc}); the file is truncated or corrupt",
                           prefix="") from None
        self._members = {n[: -len(".npy")]: n for n in names if n.endswith(".npy")}
        if not self._members:
            raise self.bad("the archive holds no arrays (expected 'mu' and 'sigma')", prefix="")
        self.keys = set(self._members)

    def __enter__(self) -> "_NpzReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._zip.close()

    def bad(self, message: str, prefix: str = "not a usable statistics file: ") -> ImageLoadError:
        return ImageLoadError(f"{self.path}: {prefix}{message}")

    def _read(self, key: str, max_bytes: int | None = None) -> np.ndarray:
        import zipfile
        import zlib

        fmt = np.lib.format
        try:
            with self._zip.open(self._members[key]) as m:
                version = fmt.read_magic(m)
                reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _fortran, dtype = reader(m)
                if dtype.hasobject:
                    raise self.bad(f"'{key}' is an object array (pickled Python objects are never loaded)")
                nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if max_bytes is not None and nbytes > max_bytes:
                    raise self.bad(f"'{key}' has shape {shape}, far larger than statistics are")
                if nbytes > self._zip.getinfo(self._members[key]).file_size:
                    raise self.bad(f"'{key}' claims shape {shape} but holds fewer bytes; the file is corrupt")
            with self._zip.open(self._members[key]) as m:
                return fmt.read_array(m, allow_pickle=False)
        except ImageLoadError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, MemoryError) as exc:
            raise self.bad(f"cannot read '{key}' ({exc}); the file is truncated or corrupt") from None

    def floats(self, key: str, shape: tuple[int | None, ...], dtype: Any = np.float64) -> np.ndarray:
        """A real array of ``shape`` (None: any length), finite, as ``dtype``."""
        if key not in self.keys:
            raise self.bad(f"the key '{key}' is missing")
        feats = key.rsplit("/", 1)[-1] == "feats"  # (a prefixed key: one statistics among several)
        limit = None if feats else self._MOST_BYTES
        arr = self._read(key, limit)
        if arr.dtype.kind not in "fiu" or arr.dtype.kind == "c":
            raise self.bad(f"'{key}' holds {arr.dtype} values, not real numbers")
        want = " × ".join("d" if s is None else str(s) for s in shape)
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            raise self.bad(f"'{key}' has shape {arr.shape}, expected {want}")
        if arr.size == 0 and not feats:
            raise self.bad(f"'{key}' is empty")
        out = np.asarray(arr, dtype=dtype)
        if not np.isfinite(out).all():
            raise self.bad(f"'{key}' contains NaN or infinite values")
        return out

    def integer(self, key: str, minimum: int) -> int:
        if key not in self.keys:
            raise self.bad(f"the key '{key}' is missing")
        arr = self._read(key, 1024)
        if arr.shape != () or arr.dtype.kind not in "iu" or int(arr) < minimum:
            raise self.bad(f"'{key}' must be an integer of at least {minimum}, got {arr.dtype} {arr.shape}: {arr!r}"[:300])
        return int(arr)

    def text(self, key: str) -> str:
        if key not in self.keys:
            raise self.bad(f"the key '{key}' is missing")
        arr = self._read(key, 2**20)
        if arr.shape != () or arr.dtype.kind != "U":
            raise self.bad(f"'{key}' must be a string, got {arr.dtype} of shape {arr.shape}")
        return str(arr)

    def json(self, key: str, kind: type) -> Any:
        try:
            value = json.loads(self.text(key))
        except ValueError:
            raise self.bad(f"'{key}' is not valid JSON") from None
        if not isinstance(value, kind):
            raise self.bad(f"'{key}' must hold a JSON {kind.__name__}")
        return value


def check_compatible(a: FIDStatistics, b: FIDStatistics, *, allow_mismatch: bool = False) -> None:
    """Refuse to compare or merge statistics made under different conventions.

    Raises:
        ShapeError: different feature dimensions (never comparable).
        IQAError: different modes or weights (unless ``allow_mismatch``).
    """
    if a.dims != b.dims:
        raise ShapeError(f"feature dimensions differ: {a.dims} and {b.dims}; use the same {{dims}}", options={"dims": "dims"})
    if a.extractor and b.extractor and a.extractor != b.extractor:
        raise IQAError(
            f"statistics of different feature extractors ({a.extractor} and {b.extractor}) are "
            "not comparable; compute both with the same {extractor}",
            options={"extractor": "extractor"},
        )
    if allow_mismatch:
        return
    if a.mode and b.mode and a.mode != b.mode:
        raise IQAError(
            f"statistics made with different preprocessing modes ({a.mode!r} and {b.mode!r}) "
            "are not comparable; recompute one, or pass {allow}",
            options={"allow": ("allow_mismatch", True)},
        )
    if a.weights_sha256 and b.weights_sha256 and a.weights_sha256 != b.weights_sha256:
        raise IQAError(
            f"statistics made with different {'Inception' if a.extractor in (None, 'inception') else a.extractor} weights ({a.weights_sha256[:12]}… and "
            f"{b.weights_sha256[:12]}…) are not comparable; recompute one, or pass "
            "{allow}",
            options={"allow": ("allow_mismatch", True)},
        )

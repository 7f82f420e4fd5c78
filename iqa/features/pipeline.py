"""The folder → features pipeline: sources in, feature statistics out.

A source is a folder (recursive, sorted by code point), a list of files (or a ``.txt`` file
listing them, one a line, relative to its folder), an ``.npz`` of statistics, a NumPy batch,
a tensor, or an iterable of tensor batches (a DataLoader). Files are decoded in worker
threads (NumPy and Pillow only: no torch there, which would oversubscribe the cores the
network runs on), at most a window of them in flight; the network runs on the main thread.
Under ``torchrun`` a folder's files are sharded across ranks (:mod:`iqa.distributed`) and
the sums are added up, so every rank ends with the statistics of the whole folder.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from iqa.decode import IMAGE_EXTENSIONS, iter_image_files
from iqa.distribution.statistics import FIDStatistics
from iqa.errors import IQAError, ImageLoadError, RangeError, ShapeError, SkippedFilesWarning, as_text
from iqa.features import EXTRACTORS, LOGITS_DIMS
from iqa.features.preprocess import (
    clip_geometry,
    file_to_uint8,
    preprocess,
    preprocess_clip,
    preprocess_dinov2,
    resize_pil_bicubic,
    resize_pil_uint8,
)
from iqa.io import RANGE_NOTE, is_tensor, prepare_image, to_rgb
from iqa.options import check_choice, check_integer
from iqa.parallel import ordered_map

__all__ = [
    "CPU_CHUNK",
    "ClipFeatures",
    "DinoV2Features",
    "FeatureExtractor",
    "InceptionFeatures",
    "make_features",
    "read_file_list",
    "statistics_of",
]

SPEC = EXTRACTORS["inception"]

#: Images per network call on the CPU (see :meth:`InceptionFeatures.features`).
CPU_CHUNK = 4

_PER_FILE_ERRORS = (ImageLoadError, ShapeError, RangeError)



def read_file_list(path: Path) -> list[Path]:
    """Image paths listed one a line in a text file (relative to the list's folder); blank
    lines and lines starting with ``#`` are ignored."""
    from iqa.decode import read_text_file

    try:
        lines = read_text_file(path, "a file list").decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ImageLoadError(f"{path}: cannot read the file list ({exc})") from None
    files = [path.parent / line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not files:
        raise ImageLoadError(f"{path}: the file list names no images")
    return files


#: The provenance note of features computed on a CUDA device.
CUDA_NOTE = "CUDA: TF32 off (convolutions and matrix products in full float32)"


@contextmanager
def full_float32(device: Any) -> Iterator[None]:
    """Run the block with TF32 off on CUDA (restored after), a no-op elsewhere.

    PyTorch lets cuDNN convolutions use TF32 (10-bit mantissa products) by default on Ampere
    and later GPUs; features would then differ from the CPU's and from another GPU's by
    ~1e-3 relative. Feature extraction always runs in full float32.
    """
    import torch

    if getattr(device, "type", str(device).split(":")[0]) != "cuda":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    matmul = torch.backends.cuda.matmul
    if conv is not None and hasattr(conv, "fp32_precision"):  # PyTorch 2.9 and later
        saved = conv.fp32_precision, matmul.fp32_precision
        conv.fp32_precision = matmul.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision, matmul.fp32_precision = saved
        return
    saved_legacy = torch.backends.cudnn.allow_tf32, matmul.allow_tf32  # older PyTorch
    torch.backends.cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = saved_legacy


class FeatureExtractor:
    """A network with a preprocessing mode: images in, feature statistics out.

    Subclasses set :attr:`extractor`, ``dims``, ``mode``, ``batch_size``, ``workers`` and
    provide :meth:`features` (a preprocessed batch → ``N×dims`` float32 NumPy),
    :meth:`_decoded` (what a decoding thread does after decoding: NumPy and Pillow only),
    :meth:`_to_input` (the rest, on the main thread) and :meth:`_prepare` (the whole
    preprocessing of a tensor batch). Every source (folder, list, ``.npz``, array, tensor,
    DataLoader) and ``torchrun`` sharding are handled here, once, for every extractor.
    """

    extractor = ""
    dims: int
    mode: str
    batch_size: int
    workers: int

    @property
    def weights_sha256(self) -> str:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    @property
    def network(self) -> str:
        return ""

    def new_statistics(self, keep_features: bool = False) -> FIDStatistics:
        stats = FIDStatistics(
            dims=self.dims, mode=self.mode, weights_sha256=self.weights_sha256, keep_features=keep_features,
            extractor=self.extractor,
        )
        if self.network:
            stats.notes.append(self.network)
        if getattr(getattr(self, "device", None), "type", None) == "cuda":
            stats.notes.append(CUDA_NOTE)
        return stats

    def features(self, batch: Any) -> np.ndarray:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _decoded(self, u8: np.ndarray) -> np.ndarray:
        return u8

    def _to_input(self, decoded: np.ndarray) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _prepare(self, chunk: Any, data_range: float) -> Any:  # pragma: no cover
        raise NotImplementedError

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
        return statistics_of(source, [self], keep_features=[keep_features], data_range=data_range,
                             bit_depth=bit_depth, alpha=alpha, strict=strict, progress=progress)[0]

    def _check_loaded(self, stats: FIDStatistics, path: Path, keep_features: bool) -> None:
        if stats.extractor and stats.extractor != self.extractor:
            raise IQAError(
                f"{path}: holds {stats.extractor} features, but {self.extractor} was asked for; "
                "features of different networks are not comparable: use the same {extractor}",
                options={"extractor": ("extractor", stats.extractor)},
            )
        offered = EXTRACTORS[self.extractor].dims if self.extractor in EXTRACTORS else (self.dims,)
        if self.extractor == "inception":
            offered = (*offered, LOGITS_DIMS)
        if stats.dims not in offered:
            raise ShapeError(
                f"{path}: {stats.dims}-d statistics: not features of the {self.extractor} network, which "
                f"gives {', '.join(map(str, offered))}-d features"
            )
        if stats.dims != self.dims:
            raise ShapeError(
                f"{path}: {stats.dims}-d statistics, but {self.dims}-d features were asked for; use {{dims}}",
                options={"dims": ("dims", stats.dims)},
            )
        if keep_features and not stats.has_features:
            raise IQAError(
                f"{path}: holds no features (needed for KID and PRDC); compute the statistics with {{keep}}",
                options={"keep": ("keep_features", True)},
            )


def statistics_of(
    source: Any,
    extractors: list[FeatureExtractor],
    *,
    keep_features: list[bool] | None = None,
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    strict: bool = False,
    progress: Callable[[int, int], None] | None = None,
    min_images: int = 2,
    float_range: float | None = None,
    context: Any = None,
) -> list[FIDStatistics]:
    """The statistics of one source under several extractors, each image decoded once.

    ``source`` is anything :meth:`FeatureExtractor.statistics` takes; ``keep_features[i]``
    says whether extractor ``i`` keeps its features (KID, PRDC). An ``.npz`` file holds one
    extractor's statistics, so it is accepted only with one extractor. Fewer than
    ``min_images`` images is an error (2 for a whole set; :class:`iqa.Evaluator` adds batches
    of 1). ``float_range``, when ``data_range`` is None, is the peak value of float arrays and
    tensors only (integer ones keep the range their dtype implies). ``context``: the
    :class:`iqa.distributed.DistContext` a folder's files are sharded over (default: ``init()``).
    """
    keep = [False] * len(extractors) if keep_features is None else list(keep_features)
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.suffix.lower() == ".npz" and not p.is_dir():
            if len(extractors) != 1:
                raise IQAError(f"{p}: a statistics file holds one feature space, but "
                               f"{', '.join(e.extractor for e in extractors)} are needed here")
            stats = FIDStatistics.load(p)
            extractors[0]._check_loaded(stats, p, keep[0])
            return [stats]
        if p.suffix.lower() == ".txt" and p.is_file():
            files = read_file_list(p)
            return _from_files(extractors, keep, files, str(p), data_range, bit_depth, alpha, strict, progress,
                               min_images, context)
        if not p.exists():
            raise ImageLoadError(f"{p}: no such folder or file")
        if not p.is_dir():
            raise ImageLoadError(f"{p}: expected a folder of images or a .npz statistics file")
        files = iter_image_files(p)
        if not files:
            known = ", ".join(e[1:] for e in IMAGE_EXTENSIONS)
            raise ImageLoadError(f"{p}: no image files found (extensions: {known})")
        return _from_files(extractors, keep, files, str(p), data_range, bit_depth, alpha, strict, progress,
                           min_images, context)
    if isinstance(source, (list, tuple)) and all(isinstance(f, (str, os.PathLike)) for f in source):
        if not source:
            raise ImageLoadError("the list of files is empty")
        return _from_files(extractors, keep, [Path(f) for f in source], "file list", data_range, bit_depth, alpha,
                           strict, progress, min_images, context)
    ranges = (data_range, float_range)
    if _images_and_labels(source):  # one (images, labels) batch
        source = [source]
    if isinstance(source, np.ndarray) or is_tensor(source):
        return _from_batches(extractors, keep, [source], ranges, bit_depth, alpha, progress, len(source), min_images)
    if isinstance(source, Iterable):
        return _from_batches(extractors, keep, source, ranges, bit_depth, alpha, progress, None, min_images)
    raise TypeError(
        f"expected a folder, a list of files, a .npz file, an array, a tensor or an iterable "
        f"of tensors; got {type(source).__name__}"
    )


def _load_file(extractors, path: Path, data_range, bit_depth, alpha) -> tuple[Any, tuple[str, ...], Any]:
    # Runs on the decoding threads: NumPy and Pillow only. A torch operation here would
    # start an OpenMP team per thread and oversubscribe the cores the network runs on.
    try:
        u8, notes = file_to_uint8(path, alpha, data_range, bit_depth)
        return [e._decoded(u8) for e in extractors], notes, None
    except _PER_FILE_ERRORS as exc:
        return None, (), exc


def _from_files(extractors, keep, files, label, data_range, bit_depth, alpha, strict, progress,
                min_images, ctx=None) -> list[FIDStatistics]:
    import torch

    from iqa.distributed import init, shard

    ctx = init() if ctx is None else ctx
    indexed = list(enumerate(files))
    mine = shard(indexed, ctx) if ctx.active else indexed
    all_stats = [e.new_statistics(k) for e, k in zip(extractors, keep)]
    batch_size = min(e.batch_size for e in extractors)
    workers = max(e.workers for e in extractors)
    indices: list[int] = []
    pending: list[list] = [[] for _ in extractors]
    skipped: list = []
    notes_seen: list = []
    done = 0

    def flush() -> None:
        for ext, stats, items in zip(extractors, all_stats, pending):
            if items:
                # As a tensor: Σxxᵀ is then added in place by torch's BLAS (FIDStatistics.update).
                stats.update(torch.from_numpy(ext.features(torch.stack(items))))
                items.clear()

    load = lambda item: (item[0], item[1], *_load_file(extractors, item[1], data_range, bit_depth, alpha))  # noqa: E731
    window = max(2 * batch_size, 2 * max(workers, 1))
    for index, path, decoded, notes, error in ordered_map(load, mine, workers, window=window, name="iqa-decode"):
        done += 1
        if error is not None:
            if strict:
                raise error
            skipped.append((os.fspath(path), as_text(error)))
        else:
            for ext, items, d in zip(extractors, pending, decoded):
                items.append(ext._to_input(d))
            indices.append(index)
            notes_seen.extend(n for n in notes if n not in notes_seen)
            if len(pending[0]) == batch_size:
                flush()
        if progress is not None:
            progress(done, len(mine))
    flush()
    for ext, stats, k in zip(extractors, all_stats, keep):
        stats.skipped.extend(skipped)
        stats.notes.extend(n for n in notes_seen if n not in stats.notes)
        if ctx.active:
            local = np.concatenate(stats._features) if stats._features else np.zeros((0, ext.dims), np.float32)
            stats.all_reduce(ctx)
            if k:
                parts = ctx.gather((indices, local))
                order = np.argsort(np.concatenate([np.asarray(i, np.int64) for i, _ in parts]), kind="stable")
                stats._features = [np.concatenate([f for _, f in parts])[order]]
    first = all_stats[0]
    if first.skipped:
        warnings.warn(
            SkippedFilesWarning(f"{label}: {len(first.skipped)} unreadable image(s) skipped", first.skipped),
            stacklevel=4,
        )
    if first.n < min_images:
        raise IQAError(f"{label}: set metrics need at least {min_images} readable images, got {first.n}")
    return all_stats


def _images_and_labels(source: Any) -> bool:
    """Whether ``source`` is one ``(images, labels)`` pair: a 2-tuple whose second item is a
    tensor or array of at most one dimension (a DataLoader's batch)."""
    return (isinstance(source, tuple) and len(source) == 2 and (isinstance(source[1], np.ndarray)
            or is_tensor(source[1])) and source[1].ndim <= 1 and (isinstance(source[0], np.ndarray)
                                                                  or is_tensor(source[0])))


def _from_batches(extractors, keep, batches, ranges, bit_depth, alpha, progress, total,
                  min_images) -> list[FIDStatistics]:
    import torch

    all_stats = [e.new_statistics(k) for e, k in zip(extractors, keep)]
    done = 0
    for batch in batches:
        if isinstance(batch, (list, tuple)):  # (images, labels) from a DataLoader
            batch = batch[0]
        if isinstance(batch, dict):
            raise TypeError("expected tensor batches (or (images, labels) tuples), got a dict")
        data_range, peak = ranges[0], None
        if data_range is None and ranges[1] is not None and getattr(batch, "dtype", None) is not None:
            floating = batch.is_floating_point() if is_tensor(batch) else np.asarray(batch).dtype.kind == "f"
            data_range = peak = ranges[1] if floating else None
        prepared = prepare_image(batch, data_range=data_range, bit_depth=bit_depth, alpha=alpha, role="batch",
                                 warn=peak is None)
        if peak is not None and RANGE_NOTE in prepared.notes:
            # The evaluator's float peak (1 unless given) is a default nobody may have chosen:
            # data outside it is refused, not scored on the wrong scale.
            lo, hi = float(batch.min()), float(batch.max())
            raise RangeError(f"batch: float values from {lo:.4g} to {hi:.4g}, outside the data range [0, {peak:g}] "
                             f"of float images; pass the Evaluator's data_range (255 for [0, 255] floats), or map "
                             "[-1, 1] data to [0, 1] with (x + 1) / 2")
        x = prepared.pixels
        if prepared.backend == "numpy":
            x = torch.from_numpy(x).permute(0, 3, 1, 2)
        x = to_rgb(x, "torch")
        for ext, stats in zip(extractors, all_stats):
            stats.notes.extend(n for n in prepared.notes if n not in stats.notes)
            for start in range(0, x.shape[0], ext.batch_size):
                chunk = x[start : start + ext.batch_size]
                stats.update(torch.from_numpy(ext.features(ext._prepare(chunk, prepared.data_range))))
        done += x.shape[0]
        if progress is not None:
            progress(done, total or done)
    if all_stats[0].n < min_images:
        raise IQAError(f"set metrics need at least {min_images} images, got {all_stats[0].n}")
    return all_stats


class InceptionFeatures(FeatureExtractor):
    """The FID Inception network with a preprocessing mode: images in, statistics out.

    Args:
        dims: feature dimension: 2048 (pool3, FID's), 768, 192 or 64; or 1008 (``LOGITS_DIMS``)
            for the unbiased logits of the Inception Score.
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
        check_choice(None, "dims", dims, (*SPEC.dims, LOGITS_DIMS))
        check_choice(None, "mode", mode, SPEC.modes)
        check_integer(None, "batch_size", batch_size, minimum=1)
        if workers is not None:
            check_integer(None, "workers", workers, minimum=0)
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
            from iqa.features.inception import load_inception
            from iqa.runtime import resolve_device

            self.device = resolve_device(self.device_name)
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

    extractor = "inception"

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
        # NCHW-contiguous whatever the caller's strides: a channels-last input (a permuted NHWC
        # array) would select other convolution kernels, which round differently.
        x = batch.to(self.device).contiguous(memory_format=torch.channels_last if self.fast else
                                             torch.contiguous_format)
        # On the CPU the network runs a few images at a time: the activations of a small
        # chunk stay in cache (~1.6× faster than 50 at once on 2 cores), and every image's
        # features are computed by the same kernels whatever the chunk, so they are bit-identical
        # to a whole-batch pass (tested). ``batch_size`` still sets how many images are decoded
        # and accumulated together.
        step = CPU_CHUNK if x.device.type == "cpu" else x.shape[0]
        logits = self.dims == LOGITS_DIMS
        with torch.inference_mode(), full_float32(x.device):
            parts = [model(x[i : i + step], dims=2048 if logits else self.dims) for i in range(0, x.shape[0], step)]
            out = torch.cat(parts)
            if logits:  # on the whole batch, whatever the chunks of the network passes
                out = model.unbiased_logits(out)
            return out.float().cpu().numpy()

    def _decoded(self, u8: np.ndarray) -> np.ndarray:
        # clean mode resizes on the decoding threads (PIL), as clean-fid does per image.
        return resize_pil_bicubic(u8.astype(np.float32)) if self.mode == "clean" else u8

    def _to_input(self, decoded: np.ndarray) -> Any:
        """The rest of :func:`preprocess` for what :meth:`_decoded` returned (main thread)."""
        import torch

        if self.mode == "clean":
            return (torch.from_numpy(decoded).permute(2, 0, 1) - 128) / 128
        return preprocess(decoded, self.mode)

    def _prepare(self, chunk: Any, data_range: float) -> Any:
        return preprocess(chunk.cpu(), self.mode, data_range)


class _ViTFeatures(FeatureExtractor):
    """What the ViT extractors share: the registry entry, options, and loading on first use."""

    family = ""  # the extractor names' prefix: "dinov2" or "clip"

    def __init__(
        self,
        extractor: str,
        *,
        mode: str | None = None,
        weights: str | os.PathLike | None = None,
        device: str | None = None,
        batch_size: int = 50,
        workers: int | None = None,
    ) -> None:
        check_choice(None, "extractor", extractor, [e for e in EXTRACTORS if e.startswith(self.family + "-")])
        spec = EXTRACTORS[extractor]
        mode = spec.modes[0] if mode is None else mode
        check_choice(None, "mode", mode, spec.modes)
        check_integer(None, "batch_size", batch_size, minimum=1)
        if workers is not None:
            check_integer(None, "workers", workers, minimum=0)
        self.extractor, self.dims, self.mode, self.batch_size = extractor, spec.default_dims, mode, batch_size
        self.device_name = device
        self.workers = min(4, os.cpu_count() or 1) if workers is None else workers
        self.weights = None if weights is None else os.fspath(weights)
        self._model: Any = None
        self._sha256: str | None = None

    def _load_network(self, name: str) -> tuple[Any, str]:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _load(self) -> None:
        if self._model is None:
            from iqa.runtime import resolve_device

            self.device = resolve_device(self.device_name)
            self._model, self._sha256 = self._load_network(self.extractor.split("-", 1)[1])

    @property
    def model(self) -> Any:
        self._load()
        return self._model

    @property
    def weights_sha256(self) -> str:
        self._load()
        return self._sha256  # type: ignore[return-value]


class DinoV2Features(_ViTFeatures):
    """A DINOv2 ViT (``dinov2-vits14`` ... ``dinov2-vitg14``) with a preprocessing mode.

    Args:
        extractor: ``"dinov2-vits14"``, ``"-vitb14"``, ``"-vitl14"`` or ``"-vitg14"``.
        mode: ``"dgm-eval"`` (default), ``"tf"`` or ``"edm2"`` (see :mod:`iqa.features.preprocess`).
        weights: a local checkpoint (Meta's layout); default: the registry's.
        device, batch_size, workers: as :class:`InceptionFeatures`.

    The feature is the CLS token after the final norm (``width``-d: 384, 768, 1024, 1536).
    """

    family = "dinov2"

    def __init__(self, extractor: str = "dinov2-vitl14", *, mode: str = "dgm-eval", **kw: Any) -> None:
        super().__init__(extractor, mode=mode, **kw)

    def _load_network(self, name: str) -> tuple[Any, str]:
        from iqa.features.dinov2 import load_dinov2

        return load_dinov2(name, self.weights, device=self.device)

    def features(self, batch: Any) -> np.ndarray:
        """CLS features (``N×width`` float32 NumPy) of a preprocessed ``N×3×224×224`` tensor."""
        import torch

        model = self.model
        # NCHW-contiguous, as files give it (strides choose kernels)
        with torch.inference_mode(), full_float32(self.device):
            return model(batch.to(self.device).contiguous()).float().cpu().numpy()

    def _decoded(self, u8: np.ndarray) -> np.ndarray:
        # dgm-eval's PIL resize runs on the decoding threads (Pillow releases the GIL).
        return resize_pil_uint8(u8) if self.mode == "dgm-eval" else u8

    def _to_input(self, decoded: np.ndarray) -> Any:
        return preprocess_dinov2(decoded, self.mode, resized=True)

    def _prepare(self, chunk: Any, data_range: float) -> Any:
        return preprocess_dinov2(chunk.cpu(), self.mode, data_range)


class ClipFeatures(_ViTFeatures):
    """A CLIP image tower (``clip-vitl14-336``, CMMD's; ``clip-vitl14``, ``clip-vitb32``).

    Args:
        extractor: ``"clip-vitl14-336"`` (default), ``"clip-vitl14"`` or ``"clip-vitb32"``.
        mode: ``"cmmd"`` (the CMMD authors': centre crop, then PIL bicubic resize; CLIP
            mean/std) or ``"openai"`` (``clip.load``'s: resize the shorter side, then crop).
        weights: OpenAI's ``.pt`` file or a state dict in its layout; default: the registry's.
        device, batch_size, workers: as :class:`InceptionFeatures`.

    The feature is the projected CLS token, L2-normalised (768-d for ViT-L/14, 512-d for B/32).
    """

    family = "clip"

    def __init__(self, extractor: str = "clip-vitl14-336", *, mode: str = "cmmd", **kw: Any) -> None:
        super().__init__(extractor, mode=mode, **kw)
        from iqa.features.clip import ARCHS

        self.size = ARCHS[extractor.split("-", 1)[1]].resolution

    def _load_network(self, name: str) -> tuple[Any, str]:
        from iqa.features.clip import load_clip

        return load_clip(name, self.weights, device=self.device)

    def features(self, batch: Any) -> np.ndarray:
        """L2-normalised embeddings (``N×dims`` float32 NumPy) of a preprocessed batch."""
        import torch

        model = self.model
        with torch.inference_mode(), full_float32(self.device):  # NCHW-contiguous, as files give it
            emb = model(batch.to(self.device).contiguous())
            return (emb / emb.norm(dim=-1, keepdim=True)).float().cpu().numpy()

    def _decoded(self, u8: np.ndarray) -> np.ndarray:
        return clip_geometry(u8, self.size, self.mode)  # on the decoding threads (Pillow releases the GIL)

    def _to_input(self, decoded: np.ndarray) -> Any:
        return preprocess_clip(decoded, self.size, mode=self.mode, resized=True)

    def _prepare(self, chunk: Any, data_range: float) -> Any:
        return preprocess_clip(chunk.cpu(), self.size, data_range, mode=self.mode)


def make_features(
    extractor: str,
    *,
    dims: int | None = None,
    mode: str | None = None,
    weights: str | os.PathLike | None = None,
    device: str | None = None,
    batch_size: int = 50,
    workers: int | None = None,
    fast: bool = False,
) -> FeatureExtractor:
    """The feature extractor ``extractor`` (``iqa metrics`` lists them), its network loaded
    on first use; ``dims`` and ``mode`` default to the extractor's."""
    check_choice(None, "extractor", extractor, EXTRACTORS)
    spec = EXTRACTORS[extractor]
    mode = spec.modes[0] if mode is None else mode
    if extractor == "inception":
        return InceptionFeatures(dims=spec.default_dims if dims is None else dims, mode=mode, weights=weights,
                                 device=device, batch_size=batch_size, workers=workers, fast=fast)
    if dims is not None:
        check_choice(None, "dims", dims, spec.dims)
    cls = ClipFeatures if extractor.startswith("clip-") else DinoV2Features
    return cls(extractor, mode=mode, weights=weights, device=device, batch_size=batch_size, workers=workers)

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
from typing import Any, Callable, Iterable

import numpy as np

from iqa.decode import IMAGE_EXTENSIONS, iter_image_files
from iqa.distribution.statistics import FIDStatistics
from iqa.errors import IQAError, ImageLoadError, RangeError, ShapeError, SkippedFilesWarning
from iqa.features import EXTRACTORS
from iqa.features.preprocess import file_to_uint8, preprocess, resize_pil_bicubic
from iqa.io import is_tensor, prepare_image, to_rgb
from iqa.options import check_choice, check_integer
from iqa.parallel import ordered_map

__all__ = ["CPU_CHUNK", "InceptionFeatures", "read_file_list"]

SPEC = EXTRACTORS["inception"]

#: Images per network call on the CPU (see :meth:`InceptionFeatures.features`).
CPU_CHUNK = 4

_PER_FILE_ERRORS = (ImageLoadError, ShapeError, RangeError)



def read_file_list(path: Path) -> list[Path]:
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
        check_choice(None, "dims", dims, SPEC.dims)
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
                files = read_file_list(p)
                return self._from_files(files, str(p), data_range, bit_depth, alpha, strict, keep_features, progress)
            if not p.exists():
                raise ImageLoadError(f"{p}: no such folder or file")
            if not p.is_dir():
                raise ImageLoadError(f"{p}: expected a folder of images or a .npz statistics file")
            files = iter_image_files(p)
            if not files:
                known = ", ".join(e[1:] for e in IMAGE_EXTENSIONS)
                raise ImageLoadError(f"{p}: no image files found (extensions: {known})")
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
            raise ShapeError(
                f"{path}: {stats.dims}-d statistics, but {self.dims}-d features were asked for; use {{dims}}",
                options={"dims": ("dims", stats.dims)},
            )
        if keep_features and not stats.has_features:
            raise IQAError(
                f"{path}: holds no features (needed for KID); compute the statistics with {{keep}}",
                options={"keep": ("keep_features", True)},
            )

    def _load_file(self, path: Path, data_range, bit_depth, alpha) -> tuple[Any, tuple[str, ...], Any]:
        # Runs on the decoding threads: NumPy and Pillow only. A torch operation here would
        # start an OpenMP team per thread and oversubscribe the cores the network runs on.
        try:
            u8, notes = file_to_uint8(path, alpha, data_range, bit_depth)
            if self.mode == "clean":
                return resize_pil_bicubic(u8.astype(np.float32)), notes, None
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
        for index, path, tensor, notes, error in ordered_map(load, mine, self.workers, window=window, name="iqa-decode"):
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
            warnings.warn(
                SkippedFilesWarning(f"{label}: {len(stats.skipped)} unreadable image(s) skipped", stats.skipped),
                stacklevel=3,
            )
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

"""The per-pair engine: each pair decoded once, every requested metric computed on it.

Metrics come from the registry and go through :mod:`iqa.pairwise`, the path the single-pair
functions and commands take, so a row holds exactly the numbers ``iqa psnr`` / ``iqa ssim``
print for the same files. Pairs are prepared and scored in worker threads; network metrics
(LPIPS) run on the main thread in batches of same-size pairs. Errors are captured per pair
(and per metric), never raised, except those that would fail every pair alike (weights).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from iqa.errors import IQAError, OptionNamer, WeightsError
from iqa.io import Pair
from iqa.pairwise import PreparedPair, prepare
from iqa.parallel import ordered_map
from iqa.scoring.pairing import PairJob, pair_folders
from iqa.scoring.settings import ScoreSettings
from iqa.scoring.stats import DEFAULT_METRICS, ScoreStats, as_floats

__all__ = ["BUFFER_PIXELS", "PairScore", "Scorer", "iter_scores", "one_line", "score_folders", "score_jobs"]

#: Pixels (images × height × width) of prepared pairs held for one round of network batches:
#: with the batch size this bounds the memory of the buffer (float32, about 200 MB for RGB
#: at this size, reference and distorted together) whatever the image size.
BUFFER_PIXELS = 1 << 23


@dataclass
class PairScore:
    """The scores of one pair (or one batch given as a single item).

    Attributes:
        reference, distorted: the names of the two images (relative paths for folders,
            ``"item 3 reference"`` and the like for in-memory inputs).
        values: metric name → value: a float for files and single NumPy images, an array
            for a NumPy batch, a tensor for tensors; ``None`` when the metric failed.
        error: empty, or the reasons (``"ms_ssim: ..."``), ``"; "``-separated.
        notes: conventions the image layer applied (e.g. ``"alpha channel fully opaque:
            dropped"``); they change no number but are counted in the summary.
    """

    reference: str
    distorted: str
    values: dict[str, Any]
    error: str = ""
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.error

    def row(self) -> dict[str, Any]:
        """The row as a dict: reference, distorted, one key per metric, error."""
        return {"reference": self.reference, "distorted": self.distorted, **self.values, "error": self.error}


def one_line(exc: BaseException, namer: OptionNamer | None = None) -> str:
    """An exception as one line; iqa errors name options as ``namer`` writes them."""
    text = exc.render(namer) if isinstance(exc, IQAError) else str(exc)
    text = " ".join(text.split())
    if not isinstance(exc, IQAError):
        text = f"{type(exc).__name__}: {text}"
    return text


def _is_fatal(exc: BaseException) -> bool:
    """Errors that would fail every pair the same way (missing or corrupt weights)."""
    return isinstance(exc, WeightsError)


class Scorer:
    """Score pairs with a fixed set of metrics and settings, accumulating a summary.

    Works on paths, NumPy arrays and torch tensors (single images or batches): a training
    loop can score its output tensors directly, with no file in between. Values come back
    as the metric functions return them (a tensor stays a tensor, differentiable where the
    metric is); the running statistics take their float values.

    Args:
        metrics: metric names (``"psnr"``, ``"ssim"``, ``"ms_ssim"`` or ``"ms-ssim"``,
            ``"lpips"``; see ``iqa metrics``).
        **settings: see :meth:`ScoreSettings.build`: ``data_range``, ``color``, ...,
            ``device``, ``weights``, and metric options prefixed with the metric's name
            (``ms_ssim_scales=3``, ``lpips_net="vgg"``).

    Example:
        >>> import numpy as np
        >>> scorer = Scorer(["psnr", "ssim"])
        >>> a = np.full((32, 32), 100, np.uint8); b = a.copy(); b[0, 0] = 110
        >>> round(scorer(a, b)["psnr"], 3)
        58.234
        >>> sorted(scorer.means())
        ['psnr', 'ssim']
    """

    def __init__(self, metrics: Sequence[str] = DEFAULT_METRICS, **settings: Any) -> None:
        self.settings = settings.pop("settings", None) or ScoreSettings.build(metrics, **settings)
        self.stats = ScoreStats(self.settings.metrics)

    def __call__(self, reference: Any, distorted: Any) -> dict[str, Any]:
        """Score one pair (or one batch) and add it to the statistics.

        Raises:
            ImageLoadError, ShapeError, RangeError: the pair cannot be prepared or a metric
                does not apply (use :meth:`iter_scores` to turn errors into rows instead).
        """
        s = self.settings
        prepared = PreparedPair(prepare(reference, distorted, s.image), s.conventions)
        values = {}
        for spec in s.specs:
            raw, _ = prepared.score(spec, s.options[spec.key], s.runtime)
            values[spec.key] = prepared.pair.result(raw)
        self.stats.add(values, notes=prepared.pair.notes)
        return values

    def iter_scores(self, items: Iterable[Any], *, workers: int = 0) -> Iterator[PairScore]:
        """Score ``(reference, distorted)`` items (or :class:`PairJob`), one result each.

        Errors are captured per item (``PairScore.error``): an item that cannot be read or
        scored, or is not a ``(reference, distorted)`` pair at all, gets its error result and
        the iteration goes on; every item is added to the statistics. Only an error that
        would fail every item alike is raised: a network's weights that cannot be loaded
        (:class:`~iqa.errors.WeightsError`). With ``workers > 0`` items are prepared and scored in
        that many threads (decoders and OpenCV release the GIL); results keep the input order.
        """
        if isinstance(items, (str, bytes, os.PathLike)):
            # Not a bad item but a wrong argument: iterating it would score one-letter paths.
            raise TypeError(
                f"items: expected an iterable of (reference, distorted) pairs, got the single path {items!r}; "
                "pass [(reference, distorted)]"
            )
        for score in score_jobs(items, self.settings, workers=workers):
            self.stats.add(score.values, score.error, score.notes)
            yield score

    def summary(self, psnr_mean: str = "finite") -> dict[str, Any]:
        return self.stats.summary(psnr_mean)

    def means(self, psnr_mean: str = "finite") -> dict[str, float | None]:
        return self.stats.means(psnr_mean)

    def reset(self) -> None:
        self.stats.reset()


def iter_scores(
    items: Iterable[Any], metrics: Sequence[str] = DEFAULT_METRICS, *, workers: int = 0, **settings: Any
) -> Iterator[PairScore]:
    """Score an iterable of ``(reference, distorted)`` items, yielding one :class:`PairScore`
    per item in order. Items may be paths, NumPy arrays, tensors or :class:`PairJob`.

    Args:
        items: the pairs.
        metrics: metric names.
        workers: threads preparing and scoring items beside the caller's (0: none).
        **settings: see :meth:`ScoreSettings.build`.

    Example:
        >>> for s in iter_scores([("ref/a.png", "dist/a.png")], ["psnr"]):  # doctest: +SKIP
        ...     print(s.values["psnr"], s.error)
    """
    return Scorer(metrics, **settings).iter_scores(items, workers=workers)


def score_folders(
    reference_dir: str | os.PathLike,
    distorted_dir: str | os.PathLike,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    match_stem: bool = False,
    workers: int = 0,
    **settings: Any,
) -> Iterator[PairScore]:
    """Score every reference of a folder against its distorted partner (see
    :func:`pair_folders`), in sorted order.

    A reference without a partner (or whose name is ambiguous under ``match_stem``) is not
    dropped: it yields a :class:`PairScore` with empty values, ``distorted == ""`` and the
    reason in ``error``, as ``iqa score`` writes it. Distorted files without a reference are
    not scored; :func:`pair_folders` lists them.
    """
    pairing = pair_folders(reference_dir, distorted_dir, match_stem=match_stem)
    return iter_scores(pairing.jobs, metrics, workers=workers, **settings)


# --------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------


MapSink = Callable[[Any, PairScore, Any, int, Any], None]  # (spec, the pair's score, maps, index, options)


def _item_names(item: Any, index: int) -> tuple[Any, Any, str, str]:
    if isinstance(item, PairJob):
        if item.missing:
            raise IQAError(item.missing)
        return item.reference_path or item.reference, item.distorted_path or item.distorted, item.reference, item.distorted
    if isinstance(item, (str, bytes, os.PathLike, dict)):
        raise TypeError(f"expected a (reference, distorted) pair, got {_describe_item(item)}")
    try:
        ref, dist = item
    except (TypeError, ValueError):
        raise TypeError(f"expected a (reference, distorted) pair, got {_describe_item(item)}") from None
    rn = os.fspath(ref) if isinstance(ref, (str, os.PathLike)) else f"item {index} reference"
    dn = os.fspath(dist) if isinstance(dist, (str, os.PathLike)) else f"item {index} distorted"
    return ref, dist, rn, dn


def _describe_item(item: Any) -> str:
    if isinstance(item, (str, bytes, os.PathLike)):
        return f"the single path {os.fsdecode(item)!r}"
    if isinstance(item, (tuple, list)):
        return f"a {type(item).__name__} of {len(item)}"
    return f"a {type(item).__name__}"


def _item_labels(item: Any, index: int) -> tuple[str, str]:
    """Names for the row of an item that is not a pair (or a pair job without a partner)."""
    if isinstance(item, PairJob):
        return item.reference, item.distorted
    return f"item {index} reference", f"item {index} distorted"


class _Engine:
    """Scores items with one settings object; see :func:`score_jobs`."""

    def __init__(self, settings: ScoreSettings, maps: MapSink | None, namer: OptionNamer | None) -> None:
        self.s = settings
        self.maps = maps
        self.namer = namer
        self.deferred = [spec for spec in settings.specs if spec.networks]

    def _error(self, metric: str, exc: BaseException) -> str:
        return f"{metric}: {one_line(exc, self.namer)}"

    def _score(self, prepared: PreparedPair, spec: Any) -> tuple[Any, Any]:
        want_map = self.maps is not None and spec.map_view is not None
        return prepared.score(spec, self.s.options[spec.key], self.s.runtime, want_map=want_map)

    def _draw(self, spec: Any, score: PairScore, maps: Any, index: int, errors: list[str]) -> None:
        if self.maps is None or maps is None:
            return
        try:
            self.maps(spec, score, maps, index, self.s.options[spec.key])
        except Exception as exc:
            errors.append(self._error(f"{spec.key} map", exc))

    def item(self, entry: tuple[int, Any], defer: bool) -> tuple[PairScore, Pair | None]:
        """Prepare one item and compute its metrics; never raises for bad data.

        With ``defer``, the network metrics of a single NumPy/file pair are left for
        :meth:`flush` (batched with other pairs of its size) and the pair is returned; batches
        and tensors are scored here whole, where they keep their own shape and device.
        """
        index, item = entry
        values: dict[str, Any] = {m: None for m in self.s.metrics}
        try:
            ref, dist, rn, dn = _item_names(item, index)
        except Exception as exc:  # not a pair: its own error row, the others go on
            rn, dn = _item_labels(item, index)
            return PairScore(rn, dn, values, one_line(exc, self.namer) if isinstance(exc, IQAError)
                             else f"item {index}: {exc}"), None
        try:
            # Out-of-range values become a note on the row, counted in the summary, not a
            # warning per pair.
            prepared = PreparedPair(prepare(ref, dist, self.s.image, warn=False), self.s.conventions)
        except Exception as exc:  # one bad pair must never stop the others
            return PairScore(rn, dn, values, one_line(exc, self.namer)), None
        pair = prepared.pair
        defer = defer and bool(self.deferred) and pair.backend == "numpy" and not pair.batched
        score = PairScore(rn, dn, values, "", pair.notes)
        errors: list[str] = []
        for spec in self.s.specs:
            if defer and spec.networks:
                continue
            try:
                raw, maps = self._score(prepared, spec)
                values[spec.key] = pair.result(raw)
            except Exception as exc:
                if _is_fatal(exc):
                    raise
                errors.append(self._error(spec.key, exc))
                continue
            self._draw(spec, score, maps, 0, errors)
        score.error = "; ".join(errors)
        if not defer:
            return score, None
        # Held for the network, which runs in float32: rounding here gives the very values it
        # would see (half the memory of float64 while the pair waits for its batch).
        return score, pair.with_pixels(pair.reference.astype(np.float32), pair.distorted.astype(np.float32))

    def run(self, items: Iterable[Any], workers: int) -> Iterator[PairScore]:
        indexed = enumerate(items)
        if not self.deferred:
            for score, _pair in ordered_map(lambda e: self.item(e, False), indexed, workers, name="iqa-score"):
                yield score
            return
        buffer: list[tuple[PairScore, Pair | None]] = []
        pixels = 0
        per_batch = self.s.runtime.pairs_per_batch
        for entry in ordered_map(lambda e: self.item(e, True), indexed, workers, name="iqa-score"):
            buffer.append(entry)
            if entry[1] is not None:
                pixels += math.prod(entry[1].reference.shape[:3])  # 1×H×W: deferred pairs are NumPy
            if len(buffer) >= per_batch or pixels >= BUFFER_PIXELS:
                yield from self.flush(buffer)
                buffer, pixels = [], 0
        if buffer:
            yield from self.flush(buffer)

    def flush(self, buffer: list[tuple[PairScore, Pair | None]]) -> Iterator[PairScore]:
        """Compute the network metrics for a buffer of prepared pairs, one network call per
        same-size group; a group that fails is retried pair by pair, so that the error
        lands on the right row."""
        groups: dict[tuple, list[int]] = {}
        for i, (_score, pair) in enumerate(buffer):
            if pair is not None:
                groups.setdefault((pair.reference.shape, pair.data_range), []).append(i)
        pairs = [pair for _score, pair in buffer]
        buffer[:] = [(score, None) for score, _pair in buffer]  # the pixels now live in ``pairs`` only
        for idx in groups.values():
            if len(idx) > 1:
                stacked, singles = _stack_pairs(pairs, idx)
            else:
                stacked, singles = None, [pairs[idx[0]]]
            for spec in self.deferred:
                self._group(spec, buffer, idx, stacked, singles)
            del stacked, singles
        for score, _pair in buffer:
            yield score

    def _group(self, spec: Any, buffer: list, idx: list[int], stacked: Pair | None, singles: list[Pair]) -> None:
        def run(pair: Pair) -> tuple[list[float], Any]:
            raw, maps = self._score(PreparedPair(pair, self.s.conventions), spec)
            return as_floats(raw), maps

        batch = None
        if stacked is not None:
            try:
                batch = run(stacked)
            except Exception as exc:
                if _is_fatal(exc):
                    raise
        for k, i in enumerate(idx):
            score = buffer[i][0]
            errors = [score.error] if score.error else []
            try:
                values, maps, at = (*batch, k) if batch is not None else (*run(singles[k]), 0)
            except Exception as exc:
                if _is_fatal(exc):
                    raise
                errors.append(self._error(spec.key, exc))
            else:
                score.values[spec.key] = values[at]
                self._draw(spec, score, maps, at, errors)
            score.error = "; ".join(errors)


def _stack_pairs(pairs: list[Pair | None], idx: list[int]) -> tuple[Pair, list[Pair]]:
    """One float32 batch of the same-size pairs ``pairs[i]`` (``i`` in ``idx``), and each
    pair again as a view into it (for a retry pair by pair).

    Each pair is copied into a preallocated batch and released from ``pairs`` at once, so
    the pixels exist about once, not twice (``np.empty`` pages are touched as they fill).
    """
    first = pairs[idx[0]]
    n = len(idx)
    ref = np.empty((n, *first.reference.shape[1:]), dtype=np.float32)
    dist = np.empty_like(ref)
    template = first.with_pixels(None, None)
    del first
    names = []
    for k, i in enumerate(idx):
        pair = pairs[i]
        ref[k], dist[k] = pair.reference[0], pair.distorted[0]
        names.append(pair.names)
        pairs[i] = None
        del pair
    stacked = template.with_pixels(
        ref, dist, batched=True, names=(f"{names[0][0]} (+{n - 1} more)", f"{names[0][1]} (+{n - 1} more)")
    )
    singles = [template.with_pixels(ref[k : k + 1], dist[k : k + 1], names=names[k]) for k in range(n)]
    return stacked, singles


def score_jobs(
    items: Iterable[Any],
    settings: ScoreSettings,
    *,
    workers: int = 0,
    maps: MapSink | None = None,
    namer: OptionNamer | None = None,
) -> Iterator[PairScore]:
    """Scores of ``items`` in order: metrics without a network in ``workers`` threads (0:
    the caller's), network metrics here in batches of same-size pairs.

    The pairs waiting for a network are held in float32 and flushed after
    ``settings.runtime.pairs_per_batch`` pairs or :data:`BUFFER_PIXELS` pixels, whichever
    comes first, so memory stays bounded for large images too.

    Args:
        maps: called as ``maps(spec, distorted, maps, index, options)`` for every metric
            with a map (its map computed in the same pass as its value).
        namer: how error messages name options (default: Python keywords).
    """
    return _Engine(settings, maps, namer).run(items, workers)

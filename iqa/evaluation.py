"""Generative-model evaluation in one pass: several set metrics, each feature space once.

:func:`evaluate` (folders, file lists, ``.npz`` files, arrays, tensors) and :class:`Evaluator`
(stateful: ``update`` with tensors from a generator, ``compute``, ``merge``, ``save``/``load``,
``torch.distributed``) share one core: the metrics' options and feature spaces are planned
once (:class:`Evaluator`'s constructor), each image is decoded once and each feature space
(network and preprocessing mode) the requested metrics need is computed once on it (FID and
IS each run Inception in their own mode, even when the modes are equal; DINOv2 ViT-L/14 for
FD-DINOv2; CLIP ViT-L/14@336px for CMMD; the chosen ``extractor`` for FD, KID and PRDC), and
every metric is computed from the statistics its space kept: the moments (float64, constant
memory: ``8·d²`` bytes, 32 MiB at 2048-d) for the Fréchet distances, the features themselves
(float32, ``4·d`` bytes per image) for KID, PRDC and CMMD (31 MB per 10,000 images for CLIP
ViT-L/14's 768-d, 41 MB for DINOv2 ViT-L/14's 1024-d, 82 MB for Inception's 2048-d) and the
1008 logits for IS (40 MB per 10,000 images).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from iqa.errors import IQAError, OptionError
from iqa.registry import METRICS, metric_names
from iqa.set_metrics import (
    CMMDOptions,
    FDDINOv2Options,
    FDOptions,
    FIDOptions,
    ISOptions,
    KIDOptions,
    PRDCOptions,
    make_extractor,
)

__all__ = ["DEFAULT_METRICS", "EvaluationResult", "Evaluator", "evaluate"]

#: What ``iqa evaluate`` computes when no metric is named.
DEFAULT_METRICS = ("fid", "fd_dinov2", "kid", "precision", "recall", "density", "coverage")

_PRDC = ("precision", "recall", "density", "coverage")

#: The two sets, in the order statistics are kept.
_ROLES = ("real", "generated")

#: Version of the evaluator-state ``.npz`` layout written by :meth:`Evaluator.save`.
STATE_FORMAT = 1


@dataclass(frozen=True)
class EvaluationResult:
    """The values of :func:`evaluate` (``result["fid"]``, ``result.values``) and their provenance.

    Attributes:
        values: metric name (registry's Python name) → value; KID adds ``kid_std``, IS ``is_std``.
        provenance: per feature space, the extractor, mode, dims, weights SHA-256 and the
            number of images of each set; the metrics' options; versions.
    """

    values: dict[str, float]
    provenance: dict[str, Any] = field(default_factory=dict)
    #: Per feature space (in provenance order), the statistics of the real (None when no metric
    #: of the space uses it: IS) and generated sets.
    statistics: tuple = field(default=(), repr=False)

    def __getitem__(self, name: str) -> float:
        return self.values[name.replace("-", "_")]

    def as_dict(self) -> dict[str, Any]:
        return {**{k if k.endswith("_std") else k.replace("_", "-"): v for k, v in self.values.items()},
                "provenance": self.provenance}


# -- the metrics: options from the evaluator's keywords, features kept or not, value -------------


@dataclass(frozen=True)
class _Kernel:
    """How :class:`Evaluator` computes one set metric."""

    #: The metric's options from the evaluator's keywords (``kw``).
    options: Callable[[dict[str, Any]], Any]
    #: Whether its feature space keeps the features (else the moments only).
    keep: bool
    #: ``value(real, generated, options, run)`` → {name: value}; ``real`` is None for one-set metrics.
    value: Callable[..., dict[str, float]]
    #: The mode asked for (given, or fixed by the metric's definition), which an ``.npz`` must
    #: have been made in; None: the extractor's default, and an ``.npz`` brings its own.
    asked: Callable[[dict[str, Any]], str | None] = lambda kw: kw["mode"]


def _inception_kw(kw: dict[str, Any]) -> dict[str, Any]:
    """``mode`` and ``dims`` apply to the Inception metrics (FID, IS) when ``extractor`` is
    inception, or when no requested metric uses ``extractor``."""
    applies = kw["extractor"] == "inception" or not kw["uses_extractor"]
    return {"mode": kw["mode"] if applies else None, "dims": kw["dims"] if applies else None}


def _distance(a: Any, b: Any, o: Any, run: dict[str, Any]) -> float:
    from iqa.distribution.frechet import distance

    return distance(a, b, route=o.route, allow_mismatch=run["allow_mismatch"])


def _kid(a: Any, b: Any, o: Any, run: dict[str, Any]) -> dict[str, float]:
    from iqa.set_metrics import kid_of

    r = kid_of(a, b, o, allow_mismatch=run["allow_mismatch"])
    return {"kid": r.mean, "kid_std": r.std}


def _prdc(name: str) -> Callable[..., dict[str, float]]:
    def value(a: Any, b: Any, o: Any, run: dict[str, Any]) -> dict[str, float]:
        from iqa.set_metrics import prdc_of

        cache = run["cache"]  # the four share one computation per feature space
        key = ("prdc", id(a), id(b), o)
        if key not in cache:
            cache[key] = prdc_of(a, b, o, allow_mismatch=run["allow_mismatch"], device=run["device"])
        return {name: getattr(cache[key], name)}

    return value


def _cmmd(a: Any, b: Any, o: Any, run: dict[str, Any]) -> dict[str, float]:
    from iqa.set_metrics import cmmd_of

    return {"cmmd": cmmd_of(a, b, o, allow_mismatch=run["allow_mismatch"])}


def _is(_real: Any, gen: Any, o: Any, run: dict[str, Any]) -> dict[str, float]:
    from iqa.set_metrics import is_of

    r = is_of(gen, o)
    return {"is": r.mean, "is_std": r.std}


def _feature_kw(kw: dict[str, Any]) -> dict[str, Any]:
    return {"extractor": kw["extractor"], "mode": kw["mode"], "dims": kw["dims"], "fast": kw["fast"]}


_KERNELS: dict[str, _Kernel] = {
    "fid": _Kernel(lambda kw: FIDOptions(extractor="inception", **_inception_kw(kw), route=kw["route"], fast=kw["fast"]),
                   False, lambda a, b, o, run: {"fid": _distance(a, b, o, run)}, lambda kw: _inception_kw(kw)["mode"]),
    "kid": _Kernel(lambda kw: KIDOptions(**_feature_kw(kw), subsets=kw["subsets"], subset_size=kw["subset_size"],
                                         seed=kw["seed"]), True, _kid),
    "fd": _Kernel(lambda kw: FDOptions(**_feature_kw(kw), route=kw["route"]),
                  False, lambda a, b, o, run: {"fd": _distance(a, b, o, run)}),
    # by definition ViT-L/14 in dgm-eval mode, whatever --mode says
    "fd_dinov2": _Kernel(lambda kw: FDDINOv2Options(route=kw["route"]).feature_options(),
                         False, lambda a, b, o, run: {"fd_dinov2": _distance(a, b, o, run)}, lambda kw: "dgm-eval"),
    # by definition CLIP ViT-L/14@336px in cmmd mode, whatever --extractor says
    "cmmd": _Kernel(lambda kw: CMMDOptions(), True, _cmmd, lambda kw: CMMDOptions().mode),
    **{name: _Kernel(lambda kw: PRDCOptions(**_feature_kw(kw), nearest_k=kw["nearest_k"], inclusive=kw["inclusive"]),
                     True, _prdc(name)) for name in _PRDC},
    "is": _Kernel(lambda kw: ISOptions(mode=_inception_kw(kw)["mode"] or "tf", splits=kw["splits"], seed=kw["seed"],
                                       shuffle=kw["shuffle"], fast=kw["fast"]), True, _is,
                   lambda kw: _inception_kw(kw)["mode"]),
}

#: The metrics whose feature space is ``extractor`` (the others have their own network).
_USES_EXTRACTOR = ("fd", "kid", *_PRDC)


#: The metrics that use each option of :func:`evaluate` (the others ignore it; fd-dinov2 and
#: cmmd have their networks and modes by definition).
OPTION_USERS: dict[str, tuple[str, ...]] = {
    "extractor": _USES_EXTRACTOR,
    "mode": ("fid", "is", *_USES_EXTRACTOR),
    "dims": ("fid", *_USES_EXTRACTOR),  # IS takes the 1008 logits
    "fast": ("fid", "is", *_USES_EXTRACTOR),
    "nearest_k": _PRDC,
    "inclusive": _PRDC,
    "route": ("fid", "fd", "fd_dinov2"),
    "subsets": ("kid",),
    "subset_size": ("kid",),
    "seed": ("kid", "is"),
    "splits": ("is",),
    "shuffle": ("is",),
}


def check_options_used(metrics: Any, given: Any) -> None:
    """Refuse options (``given``: keywords the user chose) that none of ``metrics`` uses, so
    that an option is never silently ignored (``iqa evaluate -m is --dims 64``).

    Raises:
        OptionError: naming the first such option and the metrics that would use it.
    """
    names = metric_names(metrics, kind=("two-set", "one-set"))
    for option in given:
        users = OPTION_USERS.get(option)
        if users is not None and not set(users) & set(names):
            raise OptionError(
                f"{{opt}} is used by none of the requested metrics ({', '.join(METRICS[n].name for n in names)}); "
                f"it applies to {', '.join(METRICS[n].name for n in users)}", options={"opt": option})


def _space_key(o: Any) -> tuple:
    return (o.extractor, o.mode, o.dims, bool(getattr(o, "fast", False)))


@dataclass
class _Space:
    """One feature space: whether its features are kept and which sets it describes."""

    keep: bool
    roles: tuple[str, ...]
    metrics: list[str]
    #: The mode asked for, if any (see :attr:`_Kernel.asked`).
    asked: str | None = None


# -- the stateful evaluator -------------------------------------------------------------------


class Evaluator:
    """Set metrics accumulated from batches: ``update``, ``compute``, ``reset``, ``merge``,
    ``save``/``load``, under ``torch.distributed`` too.

    Each :meth:`update` runs the networks the metrics need on the batch at once and keeps
    only what the metrics need (moments for FID/FD; float32 features for KID, PRDC; the 1008
    logits for IS); no image is written anywhere. :func:`evaluate` runs on the same machinery.

    Inputs: tensors ``N×C×H×W`` or NumPy arrays ``N×H×W×C`` (or an iterable of them, e.g. a
    DataLoader, or ``(images, labels)`` tuples), on any device (moved to the networks');
    ``uint8`` is [0, 255], ``uint16`` [0, 65535], float is [0, ``data_range``] (default
    [0, 1]; float data outside it by more than 1 % of the range raises :class:`RangeError`).
    Gray is replicated to RGB. Folders, file lists and ``.npz`` statistics from
    ``iqa stats`` are accepted too (a whole set each).

    Under ``torch.distributed`` (``torchrun``, or a group the program initialised), each rank
    updates with its own images; :meth:`compute` sums the moments across ranks
    (``all_reduce``) and gathers the kept features in rank order (rank 0's images first, each
    rank's in the order it added them), so every rank gets the values of the union. A folder,
    file list or ``.npz`` given to :meth:`update` or :meth:`load` is a whole set on every
    rank: its folder files are sharded across ranks and counted once. With synchronisation
    (``sync_on_compute``, the default) every rank of the group must call :meth:`update` with
    folders, :meth:`compute`, :meth:`save` and :meth:`load`, with the same metrics, options
    and weights (ranks that differ are refused); a single rank calling them waits forever for
    the others. To evaluate on one rank only (``if rank == 0: ...``), pass
    ``sync_on_compute=False``: the evaluator is then local to its process, as without
    ``torch.distributed``.

    Args:
        metrics: names among ``fid``, ``fd``, ``fd-dinov2``, ``kid``, ``cmmd``, ``precision``,
            ``recall``, ``density``, ``coverage`` (two sets) and ``is`` (``isc``; generated
            set only): a list or a comma-separated string.
        extractor, mode, dims, nearest_k, inclusive, route, subsets, subset_size, seed,
            weights, device, batch_size, workers, alpha, strict, fast, allow_mismatch:
            as :func:`evaluate`.
        splits, shuffle: the Inception Score's splits and row permutation (seed ``seed``).
        data_range: the peak value of float tensors and arrays (integer ones: their dtype's).
        sync_on_compute: combine the images of every rank of ``process_group`` (see above);
            False: this process's images only.
        process_group: the ``torch.distributed`` group to combine over (default: the whole
            world).

    Example:
        >>> ev = Evaluator(metrics="fid,is")  # doctest: +SKIP
        >>> ev.update(real=real_images_uint8)  # doctest: +SKIP
        >>> for _ in range(100):  # doctest: +SKIP
        ...     ev.update(generated=generator(torch.randn(50, 512)).clamp(0, 1))
        >>> ev.compute()["fid"]  # doctest: +SKIP
    """

    def __init__(
        self,
        metrics: Any = DEFAULT_METRICS,
        *,
        extractor: str = "dinov2-vitl14",
        mode: str | None = None,
        dims: int | None = None,
        nearest_k: int = 5,
        inclusive: bool = False,
        route: str = "sqrtm",
        subsets: int = 100,
        subset_size: int = 1000,
        seed: int = 2020,
        splits: int = 10,
        shuffle: bool = True,
        weights: Any = None,
        device: str | None = None,
        batch_size: int = 50,
        workers: int | None = None,
        data_range: float = 1.0,
        alpha: str = "error",
        strict: bool = False,
        fast: bool = False,
        allow_mismatch: bool = False,
        sync_on_compute: bool = True,
        process_group: Any = None,
    ) -> None:
        from iqa.options import check_data_range
        from iqa.runtime import weights_mapping

        names = metric_names(metrics, kind=("two-set", "one-set"))
        kw = dict(extractor=extractor, mode=mode, dims=dims, nearest_k=nearest_k, inclusive=inclusive, route=route,
                  subsets=subsets, subset_size=subset_size, seed=seed, splits=splits, shuffle=shuffle, fast=fast,
                  uses_extractor=any(n in _USES_EXTRACTOR for n in names))
        for name in names:
            if name not in _KERNELS:  # pragma: no cover - every set metric of the registry has one
                raise OptionError(f"{name} is not a metric the evaluator computes")
        self.metrics = names
        self._options = {name: _KERNELS[name].options(kw) for name in names}
        self._spaces: dict[tuple, _Space] = {}
        for name, o in self._options.items():
            sp = self._spaces.setdefault(_space_key(o), _Space(False, (), []))
            sp.keep = sp.keep or _KERNELS[name].keep
            sp.asked = sp.asked or _KERNELS[name].asked(kw)
            two = METRICS[name].kind == "two-set"
            sp.roles = tuple(r for r in _ROLES if r in sp.roles or two or r == "generated")
            sp.metrics.append(name)
        needed = tuple(dict.fromkeys(w for o in self._options.values() for w in o.weights_names()))
        files = weights_mapping(weights, needed=needed)
        self._extractors = {}
        for key in self._spaces:
            o = next(o for o in self._options.values() if _space_key(o) == key)
            mine = {n: p for n, p in files.items() if n in o.weights_names()}
            self._extractors[key] = make_extractor(o, weights=mine or None, device=device, batch_size=batch_size,
                                                   workers=workers)
        self.device = device
        self.alpha, self.strict, self.allow_mismatch = alpha, strict, allow_mismatch
        #: (data range of every source, peak of float tensors and arrays only)
        self._ranges: tuple[float | None, float | None] = (None, check_data_range(data_range))
        self._stats: dict[tuple[str, tuple], Any] = {}
        self._ctx: Any = None
        self.sync_on_compute, self.process_group = sync_on_compute, process_group

    # -- state -------------------------------------------------------------------------------

    @property
    def roles(self) -> tuple[str, ...]:
        """The sets the metrics need: ``("real", "generated")``, or ``("generated",)`` for IS alone."""
        return tuple(r for r in _ROLES if any(r in sp.roles for sp in self._spaces.values()))

    def counts(self) -> dict[str, int]:
        """Images added to each set so far, on this process."""
        return {r: max((st.n for (role, _), st in self._stats.items() if role == r), default=0) for r in self.roles}

    def _context(self) -> Any:
        if self._ctx is None:
            from iqa.distributed import DistContext, init

            self._ctx = init(group=self.process_group) if self.sync_on_compute else DistContext()
        return self._ctx

    def update(self, real: Any = None, generated: Any = None, *, progress: Any = None) -> "Evaluator":
        """Add images to the real set, the generated set, or both; returns self.

        Raises:
            OptionError: ``real`` given when no metric uses a real set (IS alone).
            IQAError, ShapeError, RangeError: as the image layer (float data outside its range...).
        """
        for role, source in (("real", real), ("generated", generated)):
            if source is None:
                continue
            if role not in self.roles:
                raise OptionError(f"no metric of this evaluator ({', '.join(METRICS[n].name for n in self.metrics)}) "
                                  f"uses a {role} set")
            whole = isinstance(source, (str, os.PathLike)) or (
                isinstance(source, (list, tuple)) and bool(source) and all(isinstance(s, (str, os.PathLike)) for s in source))
            self._add(role, source, whole=whole, progress=progress)
        return self

    def _add(self, role: str, source: Any, *, whole: bool, progress: Any = None) -> None:
        """Statistics of ``source`` in every space ``role`` needs, each image decoded once.

        A ``whole`` source (a folder, file list, ``.npz``; every source of :func:`evaluate`)
        is the same on every rank (a folder's files sharded and summed inside): rank 0 alone
        keeps it, so that :meth:`compute` counts it once.
        """
        from iqa.features.pipeline import statistics_of

        ctx = self._context()
        keys = [k for k, sp in self._spaces.items() if role in sp.roles]
        npz = isinstance(source, (str, os.PathLike)) and str(source).lower().endswith(".npz")
        groups = [[k] for k in keys] if npz else [keys]  # an .npz holds one space: checked there
        got = {}
        for group in groups:
            stats = statistics_of(source, [self._extractors[k] for k in group],
                                  keep_features=[self._spaces[k].keep for k in group], data_range=self._ranges[0],
                                  float_range=self._ranges[1], alpha=self.alpha, strict=self.strict,
                                  progress=progress, min_images=2 if whole else 1, context=ctx)
            got.update(zip(group, stats))
        if whole and ctx.active and not ctx.is_main:
            return
        for key, st in got.items():
            self._merge(role, key, st)

    def _merge(self, role: str, key: tuple, st: Any, label: str = "") -> None:
        if self._spaces[key].keep and not st.has_features:
            names = ", ".join(METRICS[n].name for n in self._spaces[key].metrics if _KERNELS[n].keep)
            raise IQAError(f"{label or 'the statistics'}: the {role} set's {key[0]} statistics hold no features, "
                           f"which {names} need")
        mine = self._stats.get((role, key))
        if mine is None:
            self._stats[(role, key)] = _copy(st)
        else:
            mine.merge(st, allow_mismatch=self.allow_mismatch)

    def reset(self) -> "Evaluator":
        """Forget every image of both sets (keep the metrics and networks); returns self."""
        self._stats.clear()
        return self

    def merge(self, other: "Evaluator") -> "Evaluator":
        """Add another evaluator's images (made with the same metrics and options) to this one,
        after this one's; returns self.

        Raises:
            IQAError: other metrics or options, statistics made under other conventions, or
                ``other`` is this evaluator.
        """
        if not isinstance(other, Evaluator):
            raise TypeError(f"expected an Evaluator, got {type(other).__name__}")
        if other is self:
            raise IQAError("cannot merge an evaluator into itself: its images would count twice")
        if self._provenance_options() != other._provenance_options():
            raise IQAError("cannot merge evaluators with different metrics or options: "
                           f"{self._provenance_options()} and {other._provenance_options()}")
        for (role, key), st in other._stats.items():
            self._merge(role, key, st)
        return self

    def _provenance_options(self) -> dict[str, Any]:
        return {METRICS[n].name: o.provenance() for n, o in self._options.items()}

    def _all_stats(self) -> dict[tuple[str, tuple], Any]:
        """Every (set, space) the metrics need, gathered across ranks under torch.distributed."""
        from iqa.distribution.statistics import FIDStatistics

        ctx = self._context()
        if ctx.active:
            self._check_ranks(ctx)
        out = {}
        for key, sp in self._spaces.items():
            for role in sp.roles:
                st = self._stats.get((role, key))
                if st is None:
                    st = FIDStatistics(dims=key[2], mode=key[1], extractor=key[0], keep_features=sp.keep)
                out[(role, key)] = _gathered(st, ctx) if ctx.active else st
        return out

    # -- results -----------------------------------------------------------------------------

    def _check_ranks(self, ctx: Any) -> None:
        """Every rank's metrics, options and networks' weights must be this one's (collective:
        every rank raises the same error, before any other collective)."""
        from iqa.distribution.statistics import FIDStatistics, check_compatible

        def digests(key: tuple) -> set:
            return {st.weights_sha256 for (_, k), st in self._stats.items() if k == key and st.weights_sha256}

        mine = (self._provenance_options(), [(k, sorted(digests(k))) for k in self._spaces])
        theirs = ctx.gather(mine)
        for rank, (options, spaces) in enumerate(theirs):
            if options != theirs[0][0] or [k for k, _ in spaces] != [k for k, _ in theirs[0][1]]:
                raise IQAError(f"rank {rank} evaluates other metrics or options than rank 0: {options} and "
                               f"{theirs[0][0]}; every rank must construct its Evaluator alike")
        for i, key in enumerate(self._spaces):
            held = [d for _, spaces in theirs for d in spaces[i][1]]
            first = FIDStatistics(dims=key[2], mode=key[1], extractor=key[0], weights_sha256=held[0] if held else None)
            for d in held[1:]:
                check_compatible(first, FIDStatistics(dims=key[2], mode=key[1], extractor=key[0], weights_sha256=d),
                                 allow_mismatch=self.allow_mismatch)

    def compute(self) -> "EvaluationResult":
        """The metrics' values on everything added so far (on every rank: collective under
        ``torch.distributed``, every rank must call it).

        Raises:
            IQAError: a set with fewer than 2 images (IS: fewer than ``splits``); statistics
                made under other conventions (modes, weights).
        """
        stats = self._all_stats()
        for (role, key), st in stats.items():
            if st.n < 2 and st._fixed is None:
                raise IQAError(
                    f"the {role} set has {st.n} image(s) in the {key[0]} feature space; set metrics need at least "
                    f"2: add images with update({role}=...)"
                )
        _check_modes(self._spaces, stats, self.allow_mismatch)
        values: dict[str, float] = {}
        run = {"allow_mismatch": self.allow_mismatch, "device": self.device, "cache": {}}
        for name, o in self._options.items():
            key = _space_key(o)
            values.update(_KERNELS[name].value(stats.get(("real", key)), stats[("generated", key)], o, run))
        return EvaluationResult(values, self._provenance(stats), tuple(
            (stats.get(("real", k)), stats[("generated", k)]) for k in self._spaces))

    def _provenance(self, stats: dict) -> dict[str, Any]:
        from iqa import __version__
        from iqa.distribution.statistics import _versions

        def meta(role: str, key: tuple) -> Any:
            return stats[(role, key)].metadata() if (role, key) in stats else None

        spaces = []
        for k, sp in self._spaces.items():
            mine = [stats[(r, k)] for r in sp.roles]
            spaces.append({
                # The mode the features were made in (an .npz's own when no mode was asked for).
                "extractor": k[0], "mode": next((s.mode for s in mine if s.mode), k[1]), "dims": k[2], "fast": k[3],
                "metrics": [METRICS[n].name for n in sp.metrics],
                "weights_sha256": next((s.weights_sha256 for s in mine if s.weights_sha256), None),
                "real": meta("real", k),
                "generated": meta("generated", k),
            })
        return {
            "feature_spaces": spaces,
            "options": self._provenance_options(),
            "allow_mismatch": self.allow_mismatch,
            "versions": {**_versions(), "iqa": __version__},
        }

    # -- files -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path | None:
        """Write the state (every set's moments and kept features, per feature space) to an
        ``.npz`` file (no pickles) that :meth:`load` reads; returns the path.

        Under ``torch.distributed`` it is collective (every rank must call it): rank 0 writes
        the state of all ranks' images and returns the path, the others return None.

        Raises:
            IQAError: statistics loaded without their sums (a pytorch-fid ``.npz``).
            OutputError: the file cannot be written.
        """
        from iqa.outfile import atomic_open

        ctx = self._context()
        stats = self._all_stats()
        if ctx.active and not ctx.is_main:
            return None
        arrays: dict[str, Any] = {}
        states = []
        for i, ((role, key), st) in enumerate((k, s) for k, s in stats.items() if s.n or s._fixed is not None):
            if st._fixed is not None:
                raise IQAError(f"the {role} set's statistics were loaded without their sums (a pytorch-fid .npz) "
                               "and cannot be saved in an evaluator state; keep that file instead")
            prefix = f"{role}/{i}/"
            states.append({"role": role, "prefix": prefix, "extractor": key[0], "mode": key[1], "dims": key[2],
                           "fast": key[3]})
            arrays.update({prefix + name: value for name, value in st.arrays().items()})
        header = {"iqa_evaluator_format": STATE_FORMAT, "metrics": [METRICS[n].name for n in self.metrics],
                  "options": self._provenance_options(), "states": states}
        import numpy as np

        arrays["evaluator"] = np.str_(json.dumps(header, sort_keys=True))
        p = Path(path)
        with atomic_open(p, "wb", what="evaluator state") as fh:
            np.savez(fh, **arrays)
        return p

    def load(self, path: str | os.PathLike) -> "Evaluator":
        """Add the images of a state written by :meth:`save` (e.g. a real set's, computed
        once) to this evaluator; returns self. Spaces of the file this evaluator does not use
        are ignored; the others must match its conventions (mode, weights) as in :meth:`merge`.

        Raises:
            ImageLoadError: not an evaluator state, or a damaged one. IQAError: it holds none
                of the feature spaces this evaluator needs; statistics under other conventions.
        """
        from iqa.decode import open_regular_file
        from iqa.distribution.statistics import FIDStatistics, _NpzReader, _Prefixed

        p = Path(path)
        loaded = []
        with open_regular_file(p, what="an evaluator state") as (fh, _size):
            with _NpzReader(fh, p) as npz:
                if "evaluator" not in npz.keys:
                    raise npz.bad("no 'evaluator' key: not a state written by Evaluator.save (statistics from "
                                  "iqa stats are given to update(real=...))", prefix="")
                header = npz.json("evaluator", dict)
                try:
                    if header["iqa_evaluator_format"] != STATE_FORMAT:
                        raise npz.bad(f"evaluator state format {header['iqa_evaluator_format']!r}; this iqa reads "
                                      f"{STATE_FORMAT}")
                    for s in header["states"]:
                        role, prefix = str(s["role"]), str(s["prefix"])
                        key = (str(s["extractor"]), str(s["mode"]), int(s["dims"]), bool(s["fast"]))
                        if role not in _ROLES or not prefix.startswith(role + "/"):
                            raise ValueError(role)
                        loaded.append((role, key, FIDStatistics._from_npz(_Prefixed(npz, prefix), p, min_images=1)))
                except (KeyError, TypeError, ValueError):
                    raise npz.bad("its 'evaluator' header is malformed") from None
        used = [(r, k, st) for r, k, st in loaded if k in self._spaces and r in self._spaces[k].roles]
        if not used:
            held = ", ".join(sorted({f"{k[0]} {k[1]} {k[2]}-d" for _, k, _ in loaded})) or "nothing"
            raise IQAError(f"{p}: holds none of the feature spaces this evaluator needs (it holds {held})")
        ctx = self._context()
        if ctx.active and not ctx.is_main:  # every rank read the whole file: rank 0 keeps it
            return self
        for role, key, st in used:
            self._merge(role, key, st, label=str(p))
        return self


def _copy(st: Any) -> Any:
    """An independent copy of a statistics object (its kept features shared, never mutated)."""
    from dataclasses import replace

    out = replace(st, sum=st.sum.copy(), sum_outer=st.sum_outer.copy(), skipped=list(st.skipped),
                  notes=list(st.notes), versions=dict(st.versions))
    out._features = list(st._features)
    out._fixed = st._fixed
    return out


def _gathered(st: Any, ctx: Any) -> Any:
    """The statistics of every rank's images: moments summed (all_reduce), features gathered
    in rank order. Collective: every rank calls it for the same spaces in the same order."""
    import numpy as np

    if any(ctx.gather(st._fixed is not None)):
        held = [o for o in ctx.gather(st if st._fixed is not None or st.n else None) if o is not None]
        if len(held) != 1:
            raise IQAError("statistics loaded without their sums (a pytorch-fid .npz) cannot be combined with "
                           "other images")
        return held[0]
    out = _copy(st)
    local = st.features if st.keep_features else None
    out.weights_sha256 = next((s for s in ctx.gather(st.weights_sha256) if s), None)
    out.all_reduce(ctx)
    if st.keep_features:
        out._features = [np.concatenate(ctx.gather(local))]
    return out


def _check_modes(spaces: dict, stats: dict, allow_mismatch: bool) -> None:
    """An ``.npz`` brings its own mode: the one asked for must be that one."""
    for k, sp in spaces.items():
        made = {stats[(r, k)].mode for r in sp.roles if stats[(r, k)].mode}
        # (Files that disagree among themselves are refused when they are compared.)
        if sp.asked is not None and len(made) == 1 and made != {sp.asked} and not allow_mismatch:
            (theirs,) = made
            raise IQAError(
                f"statistics made in mode {theirs} were given, but mode {sp.asked} was asked for; pass the "
                "files' {mode}, recompute them, or pass {allow}",
                options={"mode": ("mode", theirs), "allow": ("allow_mismatch", True)},
            )


def evaluate(
    real: Any,
    generated: Any = None,
    *,
    metrics: Any = DEFAULT_METRICS,
    extractor: str = "dinov2-vitl14",
    mode: str | None = None,
    dims: int | None = None,
    nearest_k: int = 5,
    inclusive: bool = False,
    route: str = "sqrtm",
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 2020,
    splits: int = 10,
    shuffle: bool = True,
    weights: Any = None,
    device: str | None = None,
    batch_size: int = 50,
    workers: int | None = None,
    data_range: float | None = None,
    alpha: str = "error",
    strict: bool = False,
    fast: bool = False,
    allow_mismatch: bool = False,
    progress: Any = None,
) -> EvaluationResult:
    """Evaluate a generated image set against a real one with several set metrics at once.

    Args:
        real, generated: folders, file lists (``.txt``), ``.npz`` statistics (``iqa stats``;
            with ``--keep-features`` for KID and PRDC; one feature space per file), NumPy
            batches, tensors or DataLoaders. With one source and only one-set metrics
            (``is``), that source is the generated set: ``evaluate("samples/", metrics="is")``.
        metrics: names among ``fid``, ``fd``, ``fd-dinov2``, ``kid``, ``cmmd``, ``precision``,
            ``recall``, ``density``, ``coverage`` and ``is`` (``isc``: the Inception Score of
            the generated set) (a list or a comma-separated string).
        extractor: the feature space of ``fd``, ``kid`` and the PRDC metrics (default DINOv2
            ViT-L/14); ``fid`` and ``is`` are always Inception's, ``fd-dinov2`` ViT-L/14's,
            ``cmmd`` CLIP ViT-L/14@336px's.
        mode: the preprocessing of ``extractor`` (default: its first: ``dgm-eval`` for DINOv2,
            ``pytorch-fid`` for Inception); it applies to ``fid`` and ``is`` when ``extractor``
            is inception or no metric uses ``extractor`` (``is`` defaults to ``tf``).
        dims: the feature dimension of ``extractor`` (Inception: 2048, 768, 192 or 64).
        nearest_k: k of precision, recall, density and coverage (prdc's 5; 3 is Kynkäänniemi's).
        inclusive: count points exactly on a radius (``<=``, Kynkäänniemi's and torch-fidelity's)
            instead of prdc's strict ``<``; they differ only at exact ties.
        route: the Fréchet distance's matrix square root (``"sqrtm"`` or ``"eigh"``).
        subsets, subset_size, seed: KID's subsets (``seed`` also permutes IS's rows).
        splits, shuffle: the Inception Score's splits (10) and row permutation.
        weights: one file per network: ``{"dinov2-vitl14": path, "inception-fid": path,
            "clip-vitl14-336": path}``.
        device, batch_size, workers: where the networks run, images per batch, decoding threads.
        data_range, alpha, strict: the image layer's options (see :func:`iqa.fid`).
        fast: Inception's channels-last fast path.
        allow_mismatch: compare statistics made with different modes or weights.
        progress: ``progress(done, total)`` called while each set is read.

    Returns:
        An :class:`EvaluationResult`: ``result["fid"]``, ``result.values``, ``result.provenance``.

    Raises:
        OptionError: an unknown metric or option value; one source for two-set metrics.
        IQAError: see :func:`iqa.fid`; an ``.npz`` of another extractor or mode, or one
        feature space for several needed.

    Example:
        >>> r = evaluate("real/", "generated/", metrics="fid,precision,recall")  # doctest: +SKIP
        >>> r["precision"]  # doctest: +SKIP

    References: Heusel et al. 2017 (FID); Stein et al. 2023 (FD-DINOv2); Bińkowski et al. 2018
    (KID); Kynkäänniemi et al. 2019, Naeem et al. 2020 (precision, recall, density, coverage);
    Jayasumana et al. 2024 (CMMD); Salimans et al. 2016 (IS).
    """
    ev = Evaluator(metrics, extractor=extractor, mode=mode, dims=dims, nearest_k=nearest_k, inclusive=inclusive,
                   route=route, subsets=subsets, subset_size=subset_size, seed=seed, splits=splits, shuffle=shuffle,
                   weights=weights, device=device, batch_size=batch_size, workers=workers, alpha=alpha,
                   strict=strict, fast=fast, allow_mismatch=allow_mismatch)
    ev._ranges = (data_range, None)  # as every other set metric: float data needs data_range
    sources = {"real": real, "generated": generated}
    if generated is None:
        if "real" in ev.roles:
            two = [METRICS[n].name for n in ev.metrics if METRICS[n].kind == "two-set"]
            verb = "compares" if len(two) == 1 else "compare"
            raise OptionError(f"{', '.join(two)} {verb} two sets: give a real and a generated set")
        sources = {"generated": real}
    for role in ev.roles:
        ev._add(role, sources[role], whole=True, progress=progress)
    return ev.compute()

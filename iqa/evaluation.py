"""Generative-model evaluation in one pass: several set metrics, each feature space once.

:func:`evaluate` decodes every image of each set once, runs each network the requested
metrics need once (Inception for FID; DINOv2 ViT-L/14 for FD-DINOv2; the chosen
``extractor`` for FD, KID and PRDC; CLIP ViT-L/14@336px for CMMD), and computes every metric from the statistics it kept:
the moments (constant memory) for the Fréchet distances, the features themselves for KID,
PRDC and CMMD (``4·d`` bytes per image: 31 MB per 10,000 images for CLIP ViT-L/14's 768-d,
41 MB for DINOv2 ViT-L/14's 1024-d, 82 MB for Inception's 2048-d).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from iqa.errors import IQAError, OptionError
from iqa.registry import METRICS, metric_names
from iqa.set_metrics import (
    CMMDOptions,
    FDDINOv2Options,
    FDOptions,
    FIDOptions,
    KIDOptions,
    PRDCOptions,
    make_extractor,
)

__all__ = ["DEFAULT_METRICS", "EvaluationResult", "evaluate"]

#: What ``iqa evaluate`` computes when no metric is named.
DEFAULT_METRICS = ("fid", "fd_dinov2", "kid", "precision", "recall", "density", "coverage")

_PRDC = ("precision", "recall", "density", "coverage")


@dataclass(frozen=True)
class EvaluationResult:
    """The values of :func:`evaluate` (``result["fid"]``, ``result.values``) and their provenance.

    Attributes:
        values: metric name (registry's Python name) → value; KID adds ``kid_std``.
        provenance: per feature space, the extractor, mode, dims, weights SHA-256 and the
            number of images of each set; the metrics' options; versions.
    """

    values: dict[str, float]
    provenance: dict[str, Any] = field(default_factory=dict)
    #: Per feature space (in provenance order), the statistics of the real and generated sets.
    statistics: tuple = field(default=(), repr=False)

    def __getitem__(self, name: str) -> float:
        return self.values[name.replace("-", "_")]

    def as_dict(self) -> dict[str, Any]:
        return {**{k.replace("_", "-") if k != "kid_std" else k: v for k, v in self.values.items()},
                "provenance": self.provenance}


def _spaces(names: tuple[str, ...], extractor: str, mode: str | None, dims: int | None, route: str, nearest_k: int,
            inclusive: bool, subsets: int, subset_size: int, seed: int, fast: bool) -> tuple[dict[str, Any], dict[tuple, bool]]:
    """Each metric's options, and the feature spaces (extractor, mode, dims) they need with
    whether the features themselves must be kept."""
    opts: dict[str, Any] = {}
    chosen = dict(extractor=extractor, mode=mode, dims=dims)
    for name in names:
        if name == "fid":
            # FID is FD on Inception; --mode and --dims apply when --extractor is inception.
            same = extractor == "inception"
            opts[name] = FIDOptions(extractor="inception", mode=mode if same else None, dims=dims if same else None,
                                    route=route, fast=fast)
        elif name == "fd_dinov2":  # by definition ViT-L/14 in dgm-eval mode, whatever --mode says
            opts[name] = FDDINOv2Options(route=route).feature_options()
        elif name == "cmmd":  # by definition CLIP ViT-L/14@336px in cmmd mode, whatever --extractor says
            opts[name] = CMMDOptions()
        elif name == "fd":
            opts[name] = FDOptions(**chosen, route=route, fast=fast)
        elif name == "kid":
            opts[name] = KIDOptions(**chosen, subsets=subsets, subset_size=subset_size, seed=seed, fast=fast)
        elif name in _PRDC:
            opts[name] = PRDCOptions(**chosen, nearest_k=nearest_k, inclusive=inclusive, fast=fast)
        else:  # pragma: no cover - metric_names checked the kind
            raise OptionError(f"{name} is not a metric iqa evaluate computes")
    spaces: dict[tuple, bool] = {}
    for name, o in opts.items():
        key = (o.extractor, o.mode, o.dims, bool(getattr(o, "fast", False)))
        spaces[key] = spaces.get(key, False) or name in ("kid", "cmmd") or name in _PRDC
    return opts, spaces


def evaluate(
    real: Any,
    generated: Any,
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
            batches, tensors or DataLoaders.
        metrics: names among ``fid``, ``fd``, ``fd-dinov2``, ``kid``, ``cmmd``, ``precision``,
            ``recall``, ``density``, ``coverage`` (a list or a comma-separated string).
        extractor: the feature space of ``fd``, ``kid`` and the PRDC metrics (default DINOv2
            ViT-L/14); ``fid`` is always Inception's, ``fd-dinov2`` always ViT-L/14's and
            ``cmmd`` always CLIP ViT-L/14@336px's.
        mode: the preprocessing of ``extractor`` (default: its first: ``dgm-eval`` for DINOv2,
            ``pytorch-fid`` for Inception).
        dims: the feature dimension of ``extractor`` (Inception: 2048, 768, 192 or 64).
        nearest_k: k of precision, recall, density and coverage (prdc's 5; 3 is Kynkäänniemi's).
        inclusive: count points exactly on a radius (``<=``, Kynkäänniemi's and torch-fidelity's)
            instead of prdc's strict ``<``; they differ only at exact ties.
        route: the Fréchet distance's matrix square root (``"sqrtm"`` or ``"eigh"``).
        subsets, subset_size, seed: KID's subsets.
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
        OptionError: an unknown metric or option value. IQAError: see :func:`iqa.fid`; an
        ``.npz`` of another extractor or mode, or one feature space for several needed.

    Example:
        >>> r = evaluate("real/", "generated/", metrics="fid,precision,recall")  # doctest: +SKIP
        >>> r["precision"]  # doctest: +SKIP

    References: Heusel et al. 2017 (FID); Stein et al. 2023 (FD-DINOv2); Bińkowski et al. 2018
    (KID); Kynkäänniemi et al. 2019, Naeem et al. 2020 (precision, recall, density, coverage);
    Jayasumana et al. 2024 (CMMD).
    """
    from iqa import __version__
    from iqa.distribution.frechet import distance
    from iqa.distribution.statistics import _versions
    from iqa.features.pipeline import statistics_of
    from iqa.runtime import weights_mapping
    from iqa.set_metrics import cmmd_of, kid_of, prdc_of

    names = metric_names(metrics, kind="two-set")
    opts, spaces = _spaces(names, extractor, mode, dims, route, nearest_k, inclusive, subsets, subset_size, seed,
                          fast)
    needed = tuple(dict.fromkeys(w for o in opts.values() for w in o.weights_names()))
    files = weights_mapping(weights, needed=needed)
    extractors = {}
    for key in spaces:
        o = next(o for o in opts.values() if (o.extractor, o.mode, o.dims, o.fast) == key)
        mine = {n: p for n, p in files.items() if n in o.weights_names()}
        extractors[key] = make_extractor(o, weights=mine or None, device=device, batch_size=batch_size,
                                         workers=workers)
    keys = list(spaces)
    stats: dict[tuple, list] = {k: [] for k in keys}
    for source in (real, generated):
        npz = isinstance(source, (str, os.PathLike)) and str(source).lower().endswith(".npz")
        groups = [[k] for k in keys] if npz else [keys]  # an .npz holds one space: checked there
        for group in groups:
            got = statistics_of(source, [extractors[k] for k in group], keep_features=[spaces[k] for k in group],
                                data_range=data_range, alpha=alpha, strict=strict, progress=progress)
            for k, st in zip(group, got):
                stats[k].append(st)
    for k in keys:  # an .npz brings its own mode: one asked for explicitly must be that one
        made = {st.mode for st in stats[k] if st.mode}
        # (Files that disagree among themselves are refused when they are compared.)
        if k[1] is not None and len(made) == 1 and made != {k[1]} and not allow_mismatch:
            (theirs,) = made
            raise IQAError(
                f"statistics made in mode {theirs} were given, but mode {k[1]} was asked for; pass the "
                "files' {mode}, recompute them, or pass {allow}",
                options={"mode": ("mode", theirs), "allow": ("allow_mismatch", True)},
            )
    values: dict[str, float] = {}
    prdc_cache: dict[tuple, Any] = {}
    for name, o in opts.items():
        key = (o.extractor, o.mode, o.dims, o.fast)
        a, b = stats[key]
        if name in ("fid", "fd", "fd_dinov2"):
            values[name] = distance(a, b, route=o.route, allow_mismatch=allow_mismatch)
        elif name == "kid":
            r = kid_of(a, b, o, allow_mismatch=allow_mismatch)
            values["kid"], values["kid_std"] = r.mean, r.std
        elif name == "cmmd":
            values[name] = cmmd_of(a, b, o, allow_mismatch=allow_mismatch)
        else:
            if key not in prdc_cache:
                prdc_cache[key] = prdc_of(a, b, o, allow_mismatch=allow_mismatch, device=device)
            values[name] = getattr(prdc_cache[key], name)
    provenance = {
        "feature_spaces": [
            {
                # The mode the features were made in (an .npz's own when no mode was asked for).
                "extractor": k[0], "mode": stats[k][0].mode or stats[k][1].mode or k[1], "dims": k[2], "fast": k[3],
                "metrics": [METRICS[n].name for n, o in opts.items() if (o.extractor, o.mode, o.dims, o.fast) == k],
                "weights_sha256": stats[k][0].weights_sha256 or stats[k][1].weights_sha256,
                "real": stats[k][0].metadata(),
                "generated": stats[k][1].metadata(),
            }
            for k in keys
        ],
        "options": {METRICS[n].name: o.provenance() for n, o in opts.items()},
        "allow_mismatch": allow_mismatch,
        "versions": {**_versions(), "iqa": __version__},
    }
    return EvaluationResult(values, provenance, tuple(tuple(stats[k]) for k in keys))

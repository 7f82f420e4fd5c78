"""The one path from a pair of images to a pair metric's values.

The public functions (``iqa.ssim``...), the pair commands (``iqa ssim``...) and the batch
scorer (:mod:`iqa.scoring`) all go through here: the image layer prepares the pair once,
the conventions (border crop, colour space) are applied for the metrics that take them, and
the metric's kernel, found in the registry, computes one value per image.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from iqa import registry
from iqa.color import apply_conventions
from iqa.io import Pair, prepare_pair
from iqa.options import Conventions, ImageOptions, Options

__all__ = ["PreparedPair", "evaluate", "prepare"]


def prepare(reference: Any, distorted: Any, image: ImageOptions, *, warn: bool = True) -> Pair:
    """Validate and convert a pair with the image layer's options (``warn``: see
    :func:`iqa.io.prepare_pair`)."""
    return prepare_pair(reference, distorted, **asdict(image), warn=warn)


class PreparedPair:
    """A prepared pair that scores several metrics, converting it under the conventions once.

    Args:
        pair: from :func:`prepare`.
        conventions: the border crop and colour space for the metrics that take them.
    """

    def __init__(self, pair: Pair, conventions: Conventions) -> None:
        self.pair = pair
        self.conventions = conventions
        self._converted: Pair | None = None

    def for_metric(self, spec: registry.MetricSpec) -> Pair:
        if not spec.conventions:
            return self.pair
        if self._converted is None:
            self._converted = apply_conventions(self.pair, self.conventions)
        return self._converted

    def score(
        self, spec: registry.MetricSpec, options: Options, runtime: Any = None, want_map: bool = False
    ) -> tuple[Any, Any]:
        """``(values, maps)``: one value per image (NumPy array or tensor), and the maps
        when ``want_map`` (None otherwise)."""
        return spec.load_kernel()(self.for_metric(spec), options, runtime, want_map)


def evaluate(
    metric: str,
    reference: Any,
    distorted: Any,
    *,
    image: ImageOptions,
    options: Options,
    conventions: Conventions | None = None,
    runtime: Any = None,
    return_map: bool = False,
) -> Any:
    """Score one pair (or batch) with one metric, shaped the way the input was given.

    Returns:
        A Python float for paths and single NumPy images, a NumPy array for a NumPy batch,
        a tensor for tensors; with ``return_map``, a tuple ``(value, map)`` whose map loses
        its batch dimension for a single image.
    """
    spec = registry.get(metric)
    prepared = PreparedPair(prepare(reference, distorted, image), conventions or Conventions())
    values, maps = prepared.score(spec, options, runtime, want_map=return_map)
    result = prepared.pair.result(values)
    if not return_map:
        return result
    return result, (maps if prepared.pair.batched else maps[0])

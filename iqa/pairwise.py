"""The one path from a pair of images to a pair metric's values.

The public functions (``iqa.ssim``...), the pair commands (``iqa ssim``...) and the batch
scorer (:mod:`iqa.scoring`) all go through here: the image layer prepares the pair once,
the conventions (border crop, colour space) are applied for the metrics that take them, and
the metric's kernel, found in the registry, computes one value per image.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any

from iqa import registry
from iqa.color import apply_conventions
from iqa.io import Pair, prepare_pair
from iqa.options import Conventions, ImageOptions, Options

__all__ = ["PreparedPair", "evaluate", "prepare"]


_IMAGE_FIELDS = tuple(f.name for f in dataclass_fields(ImageOptions))


def prepare(
    reference: Any, distorted: Any, image: ImageOptions, *, warn: bool = True, defer_checks: bool = False
) -> Pair:
    """Validate a pair with the image layer's options (``warn``, ``defer_checks``: see
    :func:`iqa.io.prepare_pair`). Integer NumPy pixels are kept as they are:
    :class:`PreparedPair` converts them for the kernels that need floats."""
    # A shallow field copy: asdict's deep copy costs more than scoring a small uint8 pair.
    fields = {name: getattr(image, name) for name in _IMAGE_FIELDS}
    return prepare_pair(reference, distorted, **fields, warn=warn, keep_integers=True, defer_checks=defer_checks)


class PreparedPair:
    """A prepared pair that scores several metrics, converting it under the conventions once.

    Args:
        pair: from :func:`prepare`.
        conventions: the border crop and colour space for the metrics that take them.
    """

    def __init__(self, pair: Pair, conventions: Conventions) -> None:
        self.pair = pair
        self.conventions = conventions
        self._forms: dict[Any, Pair] = {}

    def for_metric(self, spec: registry.MetricSpec) -> Pair:
        """The pair as ``spec``'s kernel takes it: integer pixels where it takes them (else
        float64, converted once), under the conventions where they apply (applied once).
        Values left unchecked for a kernel that checks them (:attr:`iqa.io.Pair.unchecked`)
        are checked here for any other kernel, or one that would see them converted."""
        as_given = not spec.conventions or self.conventions.identity
        if self.pair.unchecked is not None and not (spec.checks_values and as_given):
            self.pair = self.pair.checked()
            self._forms.clear()
        key = (spec.integer_pixels and self.pair.integer, spec.conventions)
        if key not in self._forms:
            pair = self.pair if key[0] else self._float()
            if not as_given:
                # Y from RGB is computed in floats; a border crop keeps integers.
                pair = apply_conventions(pair if self.conventions.color == "rgb" else self._float(),
                                         self.conventions)
            self._forms[key] = pair
        return self._forms[key]

    def _float(self) -> Pair:
        """The pair in float64, converted once for every metric that needs it."""
        if "float" not in self._forms:
            self._forms["float"] = self.pair.as_float()
        return self._forms["float"]

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
    conventions = conventions or Conventions()
    # A kernel that checks the values it reads gets them unchecked when it sees them as
    # given: one pass over the pixels instead of two. (Not in batch scoring, where several
    # metrics share a pair and its range note goes into the results.)
    defer = spec.checks_values and conventions.identity
    prepared = PreparedPair(prepare(reference, distorted, image, defer_checks=defer), conventions)
    values, maps = prepared.score(spec, options, runtime, want_map=return_map)
    result = prepared.pair.result(values)
    if not return_map:
        return result
    return result, (maps if prepared.pair.batched else maps[0])

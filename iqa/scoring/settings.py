"""What a scoring run computes and how: metrics, their options, the image layer, the runtime."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from iqa import registry
from iqa.errors import OptionError
from iqa.options import Conventions, ImageOptions, Options, renamed_keyword
from iqa.runtime import Runtime, check_device
from iqa.scoring.stats import DEFAULT_METRICS

__all__ = ["ScoreSettings"]

_RUNTIME_KEYS = ("device", "weights", "batch_size")


@dataclass(frozen=True)
class ScoreSettings:
    """Every option that changes a number, plus where the networks run.

    Build it with :meth:`build` from keywords; each metric's options are given with the
    metric's name as prefix (``ms_ssim_scales=3``, ``ssim_win_size=7``, ``lpips_net="vgg"``),
    as ``iqa score`` spells them (``--ms-ssim-scales 3``).

    Attributes:
        metrics: Python metric names, in registry order.
        image: the image layer's options.
        conventions: colour space and border crop, for the metrics that take them (LPIPS
            always sees the whole RGB image, as ``iqa lpips`` does).
        options: metric → its options object (defaults for every metric not configured).
        runtime: device, local weight files and network batch size; the device is checked
            at construction, so a missing GPU stops a run before its first pair.
    """

    metrics: tuple[str, ...] = DEFAULT_METRICS
    image: ImageOptions = field(default_factory=ImageOptions)
    conventions: Conventions = field(default_factory=Conventions)
    options: Mapping[str, Options] = field(default_factory=dict)
    runtime: Runtime = field(default_factory=Runtime)

    def __post_init__(self) -> None:
        metrics = registry.metric_names(self.metrics)
        object.__setattr__(self, "metrics", metrics)
        given = dict(self.options)
        unknown = [k for k in given if k not in metrics]
        if unknown:
            raise OptionError(f"options given for {', '.join(unknown)}, which is not among the metrics {list(metrics)}")
        opts = {}
        for m in metrics:
            cls = registry.METRICS[m].options_class()
            value = given.get(m)
            if value is None:
                value = cls()
            elif isinstance(value, Mapping):
                value = cls(**value)
            elif not isinstance(value, cls):
                raise OptionError(f"options for {m} must be a {cls.__name__} or a dict, got {type(value).__name__}")
            opts[m] = value
        object.__setattr__(self, "options", opts)
        check_device(self.runtime.device, cuda=any(s.networks for s in self.specs))

    @property
    def specs(self) -> list[registry.MetricSpec]:
        return [registry.METRICS[m] for m in self.metrics]

    @classmethod
    def build(cls, metrics: Any = DEFAULT_METRICS, **kwargs: Any) -> "ScoreSettings":
        """Settings from flat keywords: the image layer's (``data_range``, ``bit_depth``,
        ``alpha``), the conventions (``color``, ``crop_border``), the runtime (``device``,
        ``weights``, ``batch_size``) and prefixed metric options (``ms_ssim_scales``).

        Raises:
            OptionError: an unknown keyword, or an option of a metric not requested.
        """
        kwargs = dict(kwargs)
        if "lpips_weights" in kwargs:
            path = renamed_keyword("lpips_weights", "weights", kwargs.pop("lpips_weights"))
            if path is not None:
                kwargs["weights"] = path
        names = registry.metric_names(metrics)
        image = ImageOptions.from_kwargs(kwargs)
        conventions = Conventions.from_kwargs(kwargs)
        run = {k: kwargs.pop(k) for k in _RUNTIME_KEYS if k in kwargs}
        options: dict[str, dict[str, Any]] = {}
        for spec in sorted(registry.pair_metrics(), key=lambda s: -len(s.key)):  # ms_ssim_ before ssim_
            prefix = spec.key + "_"
            fields = {f.name for f in spec.options_class().fields()}
            for k in [k for k in kwargs if k.startswith(prefix) and k[len(prefix):] in fields]:
                if spec.key not in names:
                    raise OptionError(f"{k}= is an option of {spec.name}, which is not among the metrics {list(names)}")
                options.setdefault(spec.key, {})[k[len(prefix):]] = kwargs.pop(k)
        if kwargs:
            hints = [f"{m}_{k}" for k in sorted(kwargs) for m in names
                     if k in {f.name for f in registry.METRICS[m].options_class().fields()}]
            raise OptionError(
                f"unknown setting(s): {', '.join(sorted(kwargs))}"
                + (f"; metric options carry the metric's name: {', '.join(hints)}" if hints else "")
            )
        if "weights" in run:
            from iqa.runtime import weights_mapping

            needed = tuple(sorted({w for m in names for w in cls._weights_names(m, options.get(m, {}))}))
            run["weights"] = weights_mapping(run["weights"], needed)
        return cls(metrics=names, image=image, conventions=conventions, options=options, runtime=Runtime(**run))

    @staticmethod
    def _weights_names(metric: str, options: dict[str, Any]) -> tuple[str, ...]:
        """The registry names of the files a metric needs under these options."""
        return registry.METRICS[metric].options_class()(**options).weights_names()

    def provenance(self) -> dict[str, Any]:
        """The settings that change a number, for metadata and for comparing runs.

        Includes the iqa version, every metric's options and constants and, for the network
        metrics, the files (and their SHA-256) actually used.
        """
        from iqa import __version__

        out: dict[str, Any] = {
            "iqa_version": __version__,
            "metrics": list(self.metrics),
            # None: implied by each file's sample type (255 for 8-bit, 65535 for 16-bit).
            **self.image.provenance(),
            **dataclasses.asdict(self.conventions),
            # Which metrics the colour space and border crop apply to (LPIPS sees the whole image).
            "conventions_apply_to": [s.key for s in self.specs if s.conventions],
        }
        for spec in self.specs:
            out[spec.key] = self.options[spec.key].provenance()
            opts = self.options[spec.key]
            mine = {k: v for k, v in self.runtime.weights.items() if k in opts.weights_names()}
            out[spec.key].update(spec.files_provenance(opts, mine or None))
        return out

"""Options objects: a metric's parameters, declared once, validated once, with provenance.

Each metric module declares a frozen dataclass deriving from :class:`Options` whose fields
are its parameters, written with :func:`option` (default, help text, allowed choices).
Everything that takes the options elsewhere is generated from that declaration: the public
function's keywords (checked by a test), the command's ``--option`` flags, the prefixed
``iqa score`` flags (``--ms-ssim-scales``), the JSON provenance and ``iqa metrics``.

The image layer's options (:class:`ImageOptions`: data range, bit depth, alpha policy) and
the super-resolution conventions (:class:`Conventions`: colour space, border crop) are
declared here, once, and mean the same thing for every metric and command.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, ClassVar, Iterable, Sequence

from iqa.errors import NAME, OptionError

__all__ = [
    "ALPHA_POLICIES",
    "COLOR_SPACES",
    "Conventions",
    "DATA_RANGE_BOUNDS",
    "ImageOptions",
    "Options",
    "check_choice",
    "check_integer",
    "check_positive",
    "option",
    "renamed_keyword",
]

#: What to do with an alpha channel: refuse real transparency, drop it, or score it as a channel.
ALPHA_POLICIES = ("error", "drop", "keep")

#: The data ranges iqa accepts: beyond them the squares and constants of the metrics
#: (``data_range²``, ``(k·data_range)²``) overflow or vanish in float32.
DATA_RANGE_BOUNDS = (1e-10, 1e10)

#: ``color=`` values: score the channels as given, or BT.601 luma.
COLOR_SPACES = ("rgb", "y")


def option(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | None = None,
    cli: bool = True,
    metavar: str | None = None,
) -> Any:
    """Declare one field of an options class.

    Args:
        default: the default value (a tuple for sequences: options are immutable).
        help: one sentence for ``--help`` and ``iqa metrics``.
        choices: the allowed values, when they are a fixed list.
        cli: whether the command line offers it (a sequence of floats, say, may not be).
        metavar: how ``--help`` shows the value.
    """
    return dataclasses.field(
        default=default,
        metadata={"help": help, "choices": tuple(choices) if choices else None, "cli": cli, "metavar": metavar},
    )


def renamed_keyword(old: str, new: str, value: Any) -> Any:
    """Accept a keyword under its former name, with a :class:`RenamedOptionWarning`."""
    import warnings

    from iqa.errors import RenamedOptionWarning

    warnings.warn(f"{old}= is now called {new}=; the old name will be removed", RenamedOptionWarning, stacklevel=3)
    return value


def check_choice(metric: str | None, keyword: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise OptionError(
            f"{{kw}} must be one of {', '.join(map(str, choices))}; got {value!r}",
            options={"kw": keyword},
            metric=metric,
        )


def check_integer(
    metric: str | None, keyword: str, value: Any, *, minimum: int | None = None, maximum: int | None = None, hint: str = ""
) -> int:
    """``value`` as an int within bounds, or an :class:`OptionError` naming ``keyword``."""
    ok = type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))
    if ok and minimum is not None and value < minimum:
        ok = False
    if ok and maximum is not None and value > maximum:
        ok = False
    if not ok:
        if minimum is not None and maximum is not None:
            want = f"an integer from {minimum} to {maximum}"
        elif minimum is not None:
            want = f"an integer of at least {minimum}"
        else:
            want = "an integer"
        raise OptionError(f"{{kw}} must be {want}, got {value!r}{hint}", options={"kw": keyword}, metric=metric)
    return int(value)


def check_positive(metric: str | None, keyword: str, value: Any, *, hint: str = "") -> float:
    """``value`` as a positive finite float, or an :class:`OptionError` naming ``keyword``."""
    v = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    if not (math.isfinite(v) and v > 0):
        raise OptionError(
            f"{{kw}} must be a positive finite number, got {value!r}{hint}", options={"kw": keyword}, metric=metric
        )
    return v


def check_data_range(value: Any) -> float:
    """A data range as a float within :data:`DATA_RANGE_BOUNDS`, or an :class:`OptionError`."""
    v = check_positive(None, "data_range", value)
    low, high = DATA_RANGE_BOUNDS
    if not low <= v <= high:
        raise OptionError(
            f"{{kw}} must be between {low:g} and {high:g}, got {value!r}: rescale the data",
            options={"kw": "data_range"},
        )
    return v


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of every options class: frozen, validated in ``__post_init__``.

    Subclasses set :attr:`metric` (the metric's Python name, so errors name the option in
    the caller's language), declare fields with :func:`option`, and override
    :meth:`validate` (which may normalise values with :meth:`_set`) and, for constants that
    change a number without being options, :meth:`constants`.
    """

    metric: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check (and normalise) every field; raise :class:`OptionError` naming the field."""

    def constants(self) -> dict[str, Any]:
        """Fixed values that change the number (recorded in the provenance)."""
        return {}

    def weights_names(self) -> tuple[str, ...]:
        """The :mod:`iqa.weights` registry names of the files these options make the metric
        load (none for metrics without a network)."""
        return ()

    def provenance(self) -> dict[str, Any]:
        """Every field and constant that changes the number, JSON-ready."""
        out = {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out.update(self.constants())
        return out

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _error(self, message: str, keyword: str, value: Any = NAME) -> OptionError:
        """An :class:`OptionError` whose ``{kw}`` placeholder names ``keyword``."""
        return OptionError(message, options={"kw": (keyword, value)}, metric=self.metric)

    @classmethod
    def fields(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    @classmethod
    def cli_fields(cls) -> tuple[dataclasses.Field, ...]:
        return tuple(f for f in dataclasses.fields(cls) if f.metadata.get("cli", True))

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> "Options":
        """Build from the keywords that are fields of this class, removing them from ``kwargs``."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: kwargs.pop(k) for k in list(kwargs) if k in names})


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class ImageOptions(Options):
    """How pixels are read: the image layer's options, the same for every metric."""

    data_range: float | None = option(
        None,
        "Peak value of the pixels. Implied by 8-bit (255) and 16-bit (65535) data; required for float data.",
        metavar="FLOAT",
    )
    bit_depth: int | None = option(
        None, "Significant bits of 16-bit data, e.g. 10 or 12 (data range 2^bits - 1).", metavar="INT"
    )
    alpha: str = option(
        "error", "Alpha channel: refuse transparency, drop the channel, or score it.", choices=ALPHA_POLICIES
    )
    check_range: bool = option(
        True, "Warn when float pixels fall outside [0, data range] by more than 1% (the data range is then wrong)."
    )

    def validate(self) -> None:
        self._set("check_range", bool(self.check_range))
        if self.data_range is not None:
            self._set("data_range", check_data_range(self.data_range))
        if self.bit_depth is not None:
            self._set("bit_depth", check_integer(None, "bit_depth", self.bit_depth, minimum=1, maximum=16))
        check_choice(None, "alpha", self.alpha, ALPHA_POLICIES)


    def provenance(self) -> dict[str, Any]:
        """The options that change a number (``check_range`` only warns)."""
        out = super().provenance()
        out.pop("check_range")
        return out


@dataclasses.dataclass(frozen=True)
class Conventions(Options):
    """The super-resolution conventions: border crop, then colour space.

    Metrics defined on the whole RGB image (LPIPS) do not take them.
    """

    color: str = option(
        "rgb", "rgb: channels as stored; y: BT.601 luma (0-255 scale, not rounded).", choices=COLOR_SPACES
    )
    crop_border: int = option(
        0, "Pixels removed from every edge before scoring (SR papers crop the scale factor).", metavar="INT"
    )

    def validate(self) -> None:
        check_choice(None, "color", self.color, COLOR_SPACES)
        self._set("crop_border", check_integer(None, "crop_border", self.crop_border, minimum=0))

    @property
    def identity(self) -> bool:
        """Whether they leave a pair as given (RGB channels as stored, no border crop)."""
        return self.color == "rgb" and self.crop_border == 0

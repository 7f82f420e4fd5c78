"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import math
from typing import Any, Callable

import click

from iqa import __version__

FORMATS = ("text", "json")


def _apply(f: Callable, options: list[Callable]) -> Callable:
    for option in reversed(options):
        f = option(f)
    return f


def image_options(f: Callable) -> Callable:
    """The image layer's options (data range, bit depth, alpha), for pairs and folders."""
    return _apply(
        f,
        [
            click.option(
                "--data-range",
                type=click.FloatRange(min=0, min_open=True),
                default=None,
                help="Peak value of the pixels. Implied by 8-bit (255) and 16-bit (65535) files; "
                "required for float TIFF.",
            ),
            click.option(
                "--bit-depth",
                type=click.IntRange(1, 16),
                default=None,
                help="Significant bits of 16-bit files, e.g. 10 or 12 (data range 2^bits - 1).",
            ),
            click.option(
                "--alpha",
                type=click.Choice(["error", "drop", "keep"]),
                default="error",
                show_default=True,
                help="Alpha channel: refuse transparency, drop the channel, or score it.",
            ),
        ],
    )


def pair_options(f: Callable) -> Callable:
    """The arguments and options every single-pair command takes."""
    f = click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="text",
        show_default=True,
        help="text: the number alone; json: the number with the settings that produced it.",
    )(f)
    f = image_options(f)
    return _apply(
        f,
        [
            click.argument("reference", type=click.Path(dir_okay=False)),
            click.argument("distorted", type=click.Path(dir_okay=False)),
        ],
    )


def sr_options(f: Callable) -> Callable:
    """The super-resolution conventions: colour space and border crop."""
    f = click.option(
        "--crop-border",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Pixels removed from every edge before scoring (SR papers crop the scale factor).",
    )(f)
    f = click.option(
        "--color",
        type=click.Choice(["rgb", "y"]),
        default="rgb",
        show_default=True,
        help="rgb: channels as stored; y: BT.601 luma (0-255 scale, not rounded).",
    )(f)
    return f


def json_number(value: float) -> float | str:
    """A float for JSON. JSON has no infinity or NaN, so those are written as the strings
    ``"inf"``, ``"-inf"`` and ``"nan"`` (``float()`` reads them back), as in ``iqa score``."""
    return value if math.isfinite(value) else repr(float(value))


def emit(metric: str, value: float, *, fmt: str, pair: Any, settings: dict[str, Any]) -> None:
    """Print one score on stdout: the number alone, or JSON with its provenance."""
    if fmt == "text":
        click.echo(repr(float(value)))
        return
    doc: dict[str, Any] = {
        "metric": metric,
        "value": json_number(float(value)),
        "reference": pair.names[0],
        "distorted": pair.names[1],
        "settings": {"data_range": pair.data_range, "sample_type": pair.source_dtype, **settings},
        "notes": list(pair.notes),
        "iqa_version": __version__,
    }
    click.echo(json.dumps(doc, indent=2, allow_nan=False))

"""Click options generated from the options classes, and the output helpers.

An option is declared once, in its options class (:mod:`iqa.options`, a metric's module);
this module turns its fields into Click options with the same names (``win_size`` ↔
``--win-size``), prefixed with the metric's name where several metrics share a command
(``--ms-ssim-scales``). Values are validated by the options class itself, so a bad value
gets the library's message, naming the option as the command spells it.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Iterable

import click

from iqa import __version__
from iqa.errors import NAME

FORMATS = ("text", "json")

#: Python keywords whose command-line spelling is not the keyword with dashes.
_SPELLING = {"fmt": "format"}


def flag_name(keyword: str, prefix: str | None = None) -> str:
    """``win_size`` → ``--win-size``; with prefix ``ms_ssim``: ``--ms-ssim-win-size``."""
    name = _SPELLING.get(keyword, keyword).replace("_", "-")
    return f"--{prefix.replace('_', '-')}-{name}" if prefix else f"--{name}"


def cli_namer(prefixed: Iterable[str] = ()) -> Callable[[Any, str, Any], str]:
    """How errors name options on the command line: ``--scales 2``, and ``--ms-ssim-scales 2``
    for the metrics in ``prefixed`` (those sharing one command)."""
    prefixed = set(prefixed)

    def namer(metric: Any, keyword: str, value: Any) -> str:
        text = flag_name(keyword, metric if metric in prefixed else None)
        if value is NAME or value is True:
            return text
        if isinstance(value, dict):
            return " ".join(f"{text} {k}={v}" for k, v in value.items())
        return f"{text} {value}"

    return namer


def _click_type(field: Any) -> Any:
    choices = field.metadata.get("choices")
    if choices:
        return click.Choice([str(c) for c in choices])
    t = str(field.type)
    if t.startswith("int"):
        return click.INT
    if t.startswith("float"):
        return click.FLOAT
    return click.STRING


def field_option(field: Any, prefix: str | None = None, dest: str | None = None, hidden: bool = False) -> click.Option:
    """A Click option for one options-class field (validation is left to the class)."""
    name = flag_name(field.name, prefix)
    dest = dest or (f"{prefix}_{field.name}" if prefix else field.name)
    help_text = field.metadata.get("help", "")
    if str(field.type) == "bool":
        # Both spellings, so that an option whose default is True can be turned off.
        return click.Option([f"{name}/--no-{name[2:]}", dest], default=None, hidden=hidden,
                            help=f"{help_text}  [default: {'on' if field.default else 'off'}]")
    default = field.default
    kind = _click_type(field)
    metavar = field.metadata.get("metavar") or {click.INT: "INT", click.FLOAT: "FLOAT"}.get(kind)
    return click.Option(
        [name, dest], type=kind, default=None, hidden=hidden, metavar=metavar,
        help=help_text + ("" if default is None else f"  [default: {default}]"),
    )


def field_values(cls: Any, params: dict[str, Any], prefix: str | None = None) -> dict[str, Any]:
    """The keywords for ``cls`` from parsed Click parameters (unset options omitted, so the
    class's defaults apply); choices given as text become the declared value."""
    out = {}
    for f in cls.fields():
        key = f"{prefix}_{f.name}" if prefix else f.name
        value = params.get(key)
        if value is None:
            continue
        choices = f.metadata.get("choices")
        if choices:  # text back to the declared value; anything else is the class's to refuse
            value = {str(c): c for c in choices}.get(value, value)
        out[f.name] = value
    return out


def build(cls: Any, params: dict[str, Any], prefix: str | None = None, namer: Any = None) -> Any:
    """``cls(**field_values(...))``, a bad value becoming a usage error (exit 2) that names
    the option as the command spells it."""
    from iqa.errors import OptionError

    try:
        return cls(**field_values(cls, params, prefix))
    except OptionError as exc:
        raise click.UsageError(exc.render(namer or cli_namer())) from None


def add_options(params: list[click.Parameter], cls: Any, prefix: str | None = None) -> None:
    params.extend(field_option(f, prefix) for f in cls.cli_fields())


def runtime_options(params: list[click.Parameter], *, batch_size: int | None, pairs: bool = False) -> None:
    """``--weights``, ``--device`` and (for commands that batch) ``--batch-size``: the same
    names and units everywhere."""
    params.extend([
        click.Option(
            ["--weights", "weights"], multiple=True, metavar="[NAME=]FILE",
            help="A local weights file instead of the registry's download: NAME=FILE (NAME as in "
            "'iqa weights list'), or FILE alone when the command runs one network. Repeatable.",
        ),
        click.Option(["--device", "device"], default="auto", show_default=True,
                     help="Where networks run: auto (CUDA when available), cpu, cuda, cuda:N."),
    ])
    if batch_size is not None:
        params.append(click.Option(
            ["--batch-size", "batch_size"], type=click.IntRange(min=1), default=batch_size, show_default=True,
            help="Images per network batch" + (" (a pair counts as two)." if pairs else "."),
        ))


def workers_option(params: list[click.Parameter], what: str) -> None:
    params.append(click.Option(
        ["--workers", "workers"], type=click.IntRange(min=0), default=None,
        help=f"Threads that {what} beside the main one; 0 works in the main thread "
        "[default: the number of cores, at most 4].",
    ))


def default_workers() -> int:
    # Under torchrun the ranks of one machine share its cores.
    cores = max(1, (os.cpu_count() or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    return min(cores, 4)


def parse_weights(values: tuple[str, ...]) -> Any:
    """``--weights`` values: ``NAME=FILE`` pairs into a mapping, or one bare ``FILE``."""
    from iqa.weights import REGISTRY

    if not values:
        return None
    mapping: dict[str, str] = {}
    bare = []
    for v in values:
        name, sep, path = v.partition("=")
        if sep and name in REGISTRY:
            mapping[name] = path
        elif sep and name and not os.path.exists(v) and "/" not in name and os.sep not in name:
            raise click.BadParameter(
                f"{name!r} is not a weights name (names: {', '.join(REGISTRY)}; 'iqa weights list' shows "
                "which network each is)", param_hint="--weights",
            )
        else:
            bare.append(v)
    if bare and (mapping or len(bare) > 1):
        raise click.BadParameter(
            f"give one FILE, or NAME=FILE for each network (names: {', '.join(REGISTRY)})", param_hint="--weights"
        )
    return bare[0] if bare else mapping


def alias(params: list[click.Parameter], old: str, dest: str, **kwargs: Any) -> None:
    """A former option name, hidden from ``--help``; :func:`take_alias` reads it with a warning."""
    params.append(click.Option([old, dest], hidden=True, default=None, **kwargs))


def take_alias(kw: dict[str, Any], dest: str, old: str, new: str, target: str) -> None:
    value = kw.pop(dest, None)
    if value is None or value == () or value is False:
        return
    click.echo(f"iqa: warning: {old} is now {new}; the old name will be removed", err=True)
    if isinstance(kw.get(target), tuple):
        kw[target] = (*kw[target], *(value if isinstance(value, tuple) else (value,)))
    else:
        kw[target] = value


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

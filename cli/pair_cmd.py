"""The pair commands (``iqa psnr``, ``iqa ssim``, ``iqa ms-ssim``, ``iqa lpips``...), one per
pair metric of the registry, generated from its entry and options class."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import click

from iqa.errors import IQAWarning
from iqa.options import Conventions, ImageOptions

from .options import (
    FORMATS,
    add_options,
    alias,
    build,
    cli_namer,
    emit,
    parse_weights,
    runtime_options,
    take_alias,
)

#: Former option names of a metric's command: (old flag, dest, new flag, new dest).
_ALIASES = {
    "lpips": [
        ("--lpips-version", "alias_version", "--version", "version"),
        ("--backbone-weights", "alias_weights", "--weights", "weights"),
    ],
}


def make_pair_command(spec: Any) -> click.Command:
    """The command of a pair metric: REFERENCE DISTORTED, the image layer's options, the
    conventions (when the metric takes them), the metric's own options under their own
    names, the runtime options (network metrics), ``--map FILE`` (metrics with a map) and
    ``--format``."""
    cls = spec.options_class()
    params: list[click.Parameter] = [
        click.Argument(["reference"], type=click.Path(readable=False)),
        click.Argument(["distorted"], type=click.Path(readable=False)),
    ]
    add_options(params, ImageOptions)
    if spec.conventions:
        add_options(params, Conventions)
    add_options(params, cls)
    if spec.networks:
        runtime_options(params, batch_size=None)
    for old, dest, _new, _target in _ALIASES.get(spec.key, []):
        alias(params, old, dest)
    if spec.map_view is not None:
        params.append(click.Option(
            ["--map", "map_path"], type=click.Path(), default=None,
            help="Also write the per-pixel map as a heat-map PNG with a colour bar (a new file).",
        ))
        params.append(click.Option(["--overwrite"], is_flag=True, help="Replace an existing --map file."))
    params.append(click.Option(
        ["--format", "fmt"], type=click.Choice(FORMATS), default="text", show_default=True,
        help="text: the number alone; json: the number with the settings that produced it.",
    ))

    def callback(**kw: Any) -> None:
        for old, dest, new, target in _ALIASES.get(spec.key, []):
            take_alias(kw, dest, old, new, target)
        run_pair(spec, cls, kw)

    help_text = f"{spec.summary}\n\nMatches: {spec.matches}.\n\nReference: {spec.reference}."
    return click.Command(spec.name, params=params, callback=callback, help=help_text, short_help=spec.summary)


def run_pair(spec: Any, cls: Any, kw: dict[str, Any]) -> None:
    from iqa.pairwise import PreparedPair, prepare
    from iqa.runtime import Runtime

    namer = cli_namer()
    click.get_current_context().ensure_object(dict)["namer"] = namer
    image = build(ImageOptions, kw, namer=namer)
    conventions = build(Conventions, kw, namer=namer) if spec.conventions else Conventions()
    options = build(cls, kw, namer=namer)
    runtime, weights = None, None
    if spec.networks:
        from iqa.errors import OptionError
        from iqa.runtime import check_device, weights_mapping

        try:
            weights = weights_mapping(parse_weights(kw["weights"]), needed=options.weights_names())
            runtime = Runtime(device=check_device(kw["device"]), weights=weights)
        except OptionError as exc:
            raise click.UsageError(exc.render(namer)) from None
    map_path = kw.get("map_path")
    if map_path:
        from iqa.outfile import check_output

        # Before any work: never an input, never a FIFO or a device, never an existing file
        # unless asked.
        check_output(map_path, overwrite=kw["overwrite"], what="map", inputs=(kw["reference"], kw["distorted"]))
    with warnings.catch_warnings(record=True) as caught:  # the library's warnings as one line each
        warnings.simplefilter("always", IQAWarning)
        prepared = PreparedPair(prepare(kw["reference"], kw["distorted"], image), conventions)
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, IQAWarning)):
        click.echo(f"iqa: warning: {' '.join(message.split())}", err=True)
    for w in caught:
        if not issubclass(w.category, IQAWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    values, maps = prepared.score(spec, options, runtime, want_map=bool(map_path))
    if map_path:
        from iqa.maps import render_heatmap

        plane, style = spec.load_map_view()(maps, 0, options)
        render_heatmap(plane, map_path, **style)
    settings: dict[str, Any] = {"alpha": image.alpha}
    if spec.conventions:
        settings.update(dataclasses.asdict(conventions))
    settings.update(options.provenance())
    if kw["fmt"] != "text":
        settings.update(spec.files_provenance(options, weights or None))
    value = values[0]
    emit(spec.key, float(value), fmt=kw["fmt"], pair=prepared.pair, settings=settings)

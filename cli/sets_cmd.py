"""``iqa fid``, ``iqa kid``, ``iqa cmmd``, ``iqa evaluate`` and ``iqa stats``: the set metrics over folders.

Each input is a folder (recursive, sorted), a ``.txt`` list of image files (one a line,
relative to the list's folder) or an ``.npz`` of statistics. The value goes to
stdout (rank 0 only under ``torchrun``); progress, skipped files and warnings to stderr. Exit
codes: 0 success, 1 an error or at least one unreadable image (the value is still printed).
The metric options are generated from :class:`iqa.set_metrics.FIDOptions` and ``KIDOptions``.
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click

from iqa import __version__
from iqa.options import ALPHA_POLICIES, ImageOptions
from iqa.set_metrics import CMMDOptions, FDOptions, FIDOptions, ISOptions, KIDOptions, FeatureOptions, PRDCOptions

from .options import (
    alias,
    build,
    cli_namer,
    default_workers,
    field_option,
    json_number,
    parse_weights,
    runtime_options,
    take_alias,
    workers_option,
)
from .progress import progress_bar

_LIST_LIMIT = 20


def _is_main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _params(cls: Any, *, sources: int) -> list[click.Parameter]:
    params: list[click.Parameter] = [
        click.Argument([f"source{i + 1}" if sources > 1 else "source"], type=click.Path(readable=False))
        for i in range(sources)
    ]
    for f in cls.cli_fields():
        opt = field_option(f)
        if f.name == "dims" and sources > 1:
            opt.help = f"{f.metadata['help']} [default: an .npz input's dimension, else the extractor's]"
        params.append(opt)
    runtime_options(params, batch_size=50, pairs=False)
    workers_option(params, "decode images (and resize them in clean mode)")
    image = {f.name: f for f in ImageOptions.fields()}
    params.append(field_option(image["data_range"]))
    # Networks take RGB: the alpha channel cannot be kept as a fourth channel here.
    params.append(click.Option(["--alpha", "alpha"], type=click.Choice([p for p in ALPHA_POLICIES if p != "keep"]),
                               default=image["alpha"].default, show_default=True,
                               help="Alpha channel: refuse transparency, or drop the channel."))
    params.append(click.Option(["--strict"], is_flag=True,
                               help="Stop at the first unreadable image instead of skipping it."))
    params.append(click.Option(["--progress/--no-progress"], default=None,
                               help="Progress bar on stderr [default: when stderr is a terminal]."))
    return params


@contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Show the library's warnings as one line each on stderr (rank 0), not as Python
    warnings; skipped files are listed by the command itself, so their category is left out."""
    from iqa.errors import SkippedFilesWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            if _is_main_rank():
                seen = set()
                for w in caught:
                    msg = str(w.message)
                    if not issubclass(w.category, SkippedFilesWarning) and msg not in seen:
                        seen.add(msg)
                        click.echo(f"iqa: warning: {msg}", err=True)


def _npz_space(source: str) -> tuple[int | None, str | None]:
    """An ``.npz`` input's feature dimension and extractor (None when unknown)."""
    if not source.lower().endswith(".npz") or not os.path.isfile(source):
        return None, None
    import numpy as np

    try:
        with np.load(source, allow_pickle=False) as f:
            dims = int(f["dims"]) if "dims" in f.files else int(np.asarray(f["mu"]).size)
            extractor = str(f["extractor"]) if "extractor" in f.files else None
            return dims, extractor or None
    except Exception:  # an unreadable file is reported with its reason when it is loaded
        return None, None


def _default_space(kw: dict[str, Any], sources: tuple[str, ...]) -> None:
    """``--extractor`` and ``--dims`` default to an ``.npz`` input's (files made by ``iqa stats``)."""
    found = [s for s in map(_npz_space, sources) if s[0] is not None]
    if not found:
        return
    if kw.get("extractor") is None and found[0][1] is not None:
        kw["extractor"] = found[0][1]
    if kw.get("dims") is None and (found[0][1] is None or found[0][1] == kw.get("extractor")):
        from iqa.features import EXTRACTORS

        # A dimension the extractor does not give is left for the file's own error, naming it.
        spec = EXTRACTORS.get(kw.get("extractor") or "inception")
        if spec is None or found[0][0] in spec.dims:
            kw["dims"] = str(found[0][0])


def _setup(cls: Any, kw: dict[str, Any], sources: tuple[str, ...]) -> tuple[Any, Any]:
    """The options (``--dims`` defaulting to an ``.npz`` input's) and the feature extractor."""
    from iqa.errors import OptionError
    from iqa.set_metrics import make_extractor

    namer = cli_namer()
    click.get_current_context().ensure_object(dict)["namer"] = namer
    _default_space(kw, sources)
    options = build(cls, kw, namer=namer)
    try:
        from iqa.runtime import check_device

        check_device(kw["device"])
        ext = make_extractor(options, weights=parse_weights(kw["weights"]), device=kw["device"],
                        batch_size=kw["batch_size"], workers=default_workers() if kw["workers"] is None else kw["workers"])
    except OptionError as exc:
        raise click.UsageError(exc.render(namer)) from None
    return options, ext


def _statistics(ext: Any, source: str, kw: dict[str, Any], keep_features: bool) -> Any:
    from iqa.errors import naming_options

    bar = progress_bar(None, "img", os.path.basename(os.path.normpath(source)) or source, kw["progress"])
    try:
        with naming_options(click.get_current_context().ensure_object(dict).get("namer")):
            return ext.statistics(source, data_range=kw["data_range"], alpha=kw["alpha"], strict=kw["strict"],
                                  keep_features=keep_features, progress=bar)
    finally:
        bar.close()


def _report_skipped(stats_list: list[Any]) -> int:
    total = 0
    for stats in stats_list:
        real = [s for s in stats.skipped if s[0] != "(not recorded)"]
        total += len(real)
        if real and _is_main_rank():
            click.echo(f"iqa: {len(real)} unreadable image(s) skipped:", err=True)
            for path, reason in real[:_LIST_LIMIT]:
                click.echo(f"  {reason if reason.startswith(path) else f'{path}: {reason}'}", err=True)
            if len(real) > _LIST_LIMIT:
                click.echo(f"  ... and {len(real) - _LIST_LIMIT} more", err=True)
    return total


def _inputs(sources: tuple[str, ...], stats: list[Any]) -> list[dict[str, Any]]:
    return [{"path": s, **st.metadata()} for s, st in zip(sources, stats)]


def _finish(skipped: int) -> None:
    if skipped:
        click.get_current_context().exit(1)


def _command(name: str, cls: Any, sources: int, extra: list[click.Parameter], callback: Callable, help: str) -> click.Command:
    params = _params(cls, sources=sources) + extra
    return click.Command(name, params=params, callback=callback, help=help, short_help=help.split("\n")[0])


def _format_option(text_help: str) -> click.Option:
    return click.Option(["--format", "fmt"], type=click.Choice(["text", "json"]), default="text", show_default=True,
                        help=text_help)


_ALLOW = click.Option(["--allow-mismatch"], is_flag=True, help="Compare statistics made with different modes or weights.")


def _one_value(name: str, cls: Any, kw: dict[str, Any], keep_features: bool,
               compute: Callable[[Any, Any, Any], float], extra: Callable[[Any], dict[str, Any]]) -> None:
    """A set metric with one value (FID, CMMD): compute, print text or JSON, exit status."""
    sources = (kw["source1"], kw["source2"])
    options, ext = _setup(cls, kw, sources)
    with _warnings_to_stderr():
        stats = [_statistics(ext, s, kw, keep_features=keep_features) for s in sources]
        value = compute(stats[0], stats[1], options)
    skipped = _report_skipped(stats)
    if _is_main_rank():
        if kw["fmt"] == "text":
            click.echo(repr(value))
        else:
            doc = {
                "metric": name,
                "value": json_number(value),
                **extra(options),
                "options": options.provenance(),
                "inputs": _inputs(sources, stats),
                "allow_mismatch": kw["allow_mismatch"],
                "iqa_version": __version__,
            }
            click.echo(json.dumps(doc, indent=2, allow_nan=False))
    _finish(skipped)


def _fid(**kw: Any) -> None:
    from iqa.distribution.frechet import distance

    _one_value("fid", FIDOptions, kw, False,
               lambda a, b, o: distance(a, b, route=o.route, allow_mismatch=kw["allow_mismatch"]),
               lambda o: {"route": o.route})


def _kid(**kw: Any) -> None:
    from iqa.set_metrics import kid_of

    sources = (kw["source1"], kw["source2"])
    options, ext = _setup(KIDOptions, kw, sources)
    with _warnings_to_stderr():
        stats = [_statistics(ext, s, kw, keep_features=True) for s in sources]
        result = kid_of(stats[0], stats[1], options, allow_mismatch=kw["allow_mismatch"])
    skipped = _report_skipped(stats)
    if _is_main_rank():
        if kw["fmt"] == "text":
            click.echo(f"{result.mean!r} {result.std!r}")
        else:
            doc = {
                "metric": "kid",
                "mean": json_number(result.mean),
                "std": json_number(result.std),
                "subsets": result.subsets,
                "subset_size": result.subset_size,
                "subset_size_requested": options.subset_size,
                "seed": result.seed,
                "kernel": options.constants()["kernel"],
                "options": options.provenance(),
                "notes": list(result.notes),
                "inputs": _inputs(sources, stats),
                "iqa_version": __version__,
            }
            click.echo(json.dumps(doc, indent=2, allow_nan=False))
    _finish(skipped)


def _cmmd(**kw: Any) -> None:
    from iqa.set_metrics import cmmd_of

    _one_value("cmmd", CMMDOptions, kw, True,
               lambda a, b, o: cmmd_of(a, b, o, allow_mismatch=kw["allow_mismatch"]), lambda o: {})


def _source_files(source: str) -> Iterator[str]:
    """The files ``iqa stats`` reads (listed only if the output already exists)."""
    yield source
    if os.path.isdir(source):
        from iqa.decode import iter_image_files

        yield from map(os.fspath, iter_image_files(source))


def _stats(**kw: Any) -> None:
    take_alias(kw, "alias_features", "--features", "--keep-features", "keep_features")
    from iqa.outfile import check_output

    if kw["output"] == "-":
        raise click.UsageError("-o -: the statistics are a binary .npz file; give a file name ending in .npz")
    # Before any image is read: an existing file is replaced only when asked (and never
    # the source list), a FIFO or a device never.
    check_output(kw["output"], overwrite=kw["overwrite"], what="statistics", inputs=_source_files(kw["source"]))
    if not kw["output"].lower().endswith(".npz"):
        # Another extension would make iqa fid read the file as a list of images.
        raise click.UsageError(f"-o {kw['output']}: the statistics are an .npz file; give a name ending in .npz")
    _options, ext = _setup(FeatureOptions, kw, ())
    with _warnings_to_stderr():
        stats = _statistics(ext, kw["source"], kw, keep_features=kw["keep_features"])
    skipped = _report_skipped([stats])
    if _is_main_rank():
        path = stats.save(kw["output"], feature_dtype=kw["feature_dtype"])
        click.echo(
            f"iqa stats: wrote {path} ({stats.n} images, {stats.extractor} {stats.dims}-d, mode {stats.mode}"
            f"{', with features' if kw['keep_features'] else ''})",
            err=True,
        )
    _finish(skipped)


fid_cmd = _command(
    "fid", FIDOptions, 2,
    [_ALLOW, _format_option("text: the number alone; json: the number with the settings that produced it.")],
    _fid,
    "Fréchet Inception Distance between two folders (or .txt file lists, or .npz statistics).\n\n"
    "Matches `python -m pytorch_fid SOURCE1 SOURCE2` with --mode pytorch-fid (the default).",
)

kid_cmd = _command(
    "kid", KIDOptions, 2,
    [_ALLOW, _format_option("text: 'mean std' on one line; json: both with the settings that produced them.")],
    _kid,
    "Kernel Inception Distance (mean and std over subsets) between two folders.\n\n"
    "An .npz input must hold the features: make it with `iqa stats --keep-features`.",
)

cmmd_cmd = _command(
    "cmmd", CMMDOptions, 2,
    [_ALLOW, _format_option("text: the number alone; json: the number with the settings that produced it.")],
    _cmmd,
    "CMMD between a real and a generated folder: 1000 x squared MMD of CLIP ViT-L/14@336px embeddings.\n\n"
    "Gaussian kernel with sigma 10, the authors' biased estimator, in float64. Every image is used (the "
    "authors' loader drops the last partial batch of 32). An .npz input must hold the features: make it "
    "with `iqa stats --extractor clip-vitl14-336 --keep-features`.",
)

_stats_extra: list[click.Parameter] = [
    click.Option(["-o", "--output"], type=click.Path(), required=True,
                 help="The .npz file to write (readable by pytorch-fid: keys mu and sigma); a new file."),
    click.Option(["--overwrite"], is_flag=True, help="Replace an existing output file (once the new one is complete)."),
    click.Option(["--keep-features"], is_flag=True,
                 help="Also store the features (key feats, as clean-fid) so that KID and PRDC can use the file."),
    click.Option(["--feature-dtype", "feature_dtype"], type=click.Choice(["float32", "float16"]), default="float32",
                 show_default=True, help="How --keep-features stores them (float16 halves the file; the moments "
                 "stay float64)."),
]
alias(_stats_extra, "--features", "alias_features", is_flag=True)

stats_cmd = _command(
    "stats", FeatureOptions, 1, _stats_extra, _stats,
    "Feature statistics of a folder (or .txt file list) in any --extractor's space, saved as .npz "
    "for later `iqa fid`/`kid`/`evaluate`.",
)


def _evaluate(**kw: Any) -> None:
    from iqa.errors import OptionError, naming_options
    from iqa.evaluation import OPTION_USERS, check_options_used, evaluate
    from iqa.runtime import check_device

    namer = cli_namer()
    click.get_current_context().ensure_object(dict)["namer"] = namer
    sources = tuple(kw["sources"])
    if len(sources) > 2:
        raise click.UsageError(f"expected REAL GENERATED (or GENERATED alone for is), got {len(sources)} paths")
    _default_space(kw, sources)
    options = {}
    for cls in _EVALUATE_OPTIONS:
        for f in cls.fields():
            if kw.get(f.name) is not None and f.name not in options:
                choices = f.metadata.get("choices")
                value = kw[f.name]
                options[f.name] = {str(c): c for c in choices}.get(value, value) if choices else value
    if isinstance(options.get("dims"), str) and options["dims"].isdigit():
        options["dims"] = int(options["dims"])
    bars: list = []

    def progress(done: int, total: int) -> None:
        if not bars or bars[-1][1] != total or done == 1:
            if bars:
                bars[-1][0].close()
            bars.append((progress_bar(None, "img", "images", kw["progress"]), total))
        bars[-1][0](done, total)

    try:
        ctx = click.get_current_context()
        check_options_used(kw["metrics"], [name for name in OPTION_USERS if ctx.get_parameter_source(name) in (
            click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)])
        check_device(kw["device"])
        with _warnings_to_stderr(), naming_options(namer):
            result = evaluate(
                *sources, metrics=kw["metrics"], weights=parse_weights(kw["weights"]), device=kw["device"],
                batch_size=kw["batch_size"], workers=default_workers() if kw["workers"] is None else kw["workers"],
                data_range=kw["data_range"], alpha=kw["alpha"], strict=kw["strict"],
                allow_mismatch=kw["allow_mismatch"], progress=progress, **options,
            )
    except OptionError as exc:
        raise click.UsageError(exc.render(namer)) from None
    finally:
        for bar, _ in bars:
            bar.close()
    # every space read the same files
    skipped = _report_skipped([st for st in result.statistics[0] if st is not None])
    if _is_main_rank():
        if kw["fmt"] == "text":
            for name, value in result.as_dict().items():
                if name != "provenance":
                    click.echo(f"{name}\t{value!r}")
        else:
            doc = {k: (json_number(v) if k != "provenance" else v) for k, v in result.as_dict().items()}
            doc["inputs"] = list(sources)
            click.echo(json.dumps(doc, indent=2, allow_nan=False))
    _finish(skipped)


#: The options classes whose fields ``iqa evaluate`` offers (a field shared by several, once).
_EVALUATE_OPTIONS = (PRDCOptions, KIDOptions, FDOptions, ISOptions)


def _evaluate_params() -> list[click.Parameter]:
    params: list[click.Parameter] = [
        click.Argument(["sources"], nargs=-1, required=True, type=click.Path(exists=True),
                       metavar="[REAL] GENERATED"),
        click.Option(["-m", "--metrics", "metrics"], default="fid,fd-dinov2,kid,precision,recall,density,coverage",
                     show_default=True, help="Comma-separated: fid, fd, fd-dinov2, kid, cmmd, precision, recall, "
                     "density, coverage (two sets), is (isc: the Inception Score of GENERATED; one source suffices). "
                     "Each image is decoded once and each feature space (network and mode) computed once; fid and is "
                     "run Inception in their own modes."),
    ]
    seen = set()
    for cls in _EVALUATE_OPTIONS:
        for f in cls.cli_fields():
            if f.name not in seen:
                seen.add(f.name)
                opt = field_option(f)
                if f.name == "extractor":
                    opt.help = ("Feature space of fd, kid, precision, recall, density and coverage (fid is "
                                "always inception's, fd-dinov2 dinov2-vitl14's, cmmd clip-vitl14-336's).  "
                                "[default: an .npz input's, else dinov2-vitl14]")
                elif f.name == "seed":
                    opt.help = "Seed of kid's subset draws and of is's row permutation (torch-fidelity's).  [default: 2020]"
                elif f.name == "mode":
                    opt.help = (f"{opt.help} It applies to fid and is when --extractor is inception or no metric "
                                "uses --extractor (is defaults to tf).")
                params.append(opt)
    runtime_options(params, batch_size=50, pairs=False)
    workers_option(params, "decode and resize images")
    image = {f.name: f for f in ImageOptions.fields()}
    params.append(field_option(image["data_range"]))
    params.append(click.Option(["--alpha", "alpha"], type=click.Choice([p for p in ALPHA_POLICIES if p != "keep"]),
                               default=image["alpha"].default, show_default=True,
                               help="Alpha channel: refuse transparency, or drop the channel."))
    params.append(click.Option(["--strict"], is_flag=True, help="Stop at the first unreadable image instead of skipping it."))
    params.append(click.Option(["--progress/--no-progress"], default=None,
                               help="Progress bar on stderr [default: when stderr is a terminal]."))
    params.append(_ALLOW)
    params.append(_format_option("text: one 'metric<TAB>value' line each; json: one object, a key per metric and "
                                 "the provenance (extractors, modes, weights SHA-256, images per set, versions)."))
    return params


evaluate_cmd = click.Command(
    "evaluate", params=_evaluate_params(), callback=_evaluate,
    short_help="FID, FD-DINOv2, KID, precision, recall, density, coverage, IS in one pass.",
    help="Evaluate a GENERATED image set against a REAL one: FID, FD-DINOv2, KID, precision, recall, "
    "density and coverage in one pass; the Inception Score (-m is) of GENERATED, which needs no REAL "
    "set.\n\nEach input is a folder, a .txt file list or an .npz from "
    "`iqa stats` (one feature space per file; --keep-features for kid and PRDC). Files made with "
    "another extractor or mode are refused.",
)

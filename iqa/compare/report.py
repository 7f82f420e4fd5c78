"""``iqa report``: a static HTML report of a comparison (``iqa compare``'s folder) or of
one ``iqa score`` output.

The report is a folder that opens from disk in any browser, offline: ``index.html`` with the
data embedded as a JSON ``<script>`` (browsers block ``fetch()`` from ``file://``), plain
CSS and JavaScript beside it (no CDN, no server), plots as PNG files, and previews of the
gallery images; the originals are linked, not copied. The page shows the summary table
(best mean per metric and significance against the baseline marked), per metric the
distributions and paired differences, a per-image table (sortable, filterable, paged) and
galleries of the worst images and of the images where two methods differ most, with SSIM
(and LPIPS) heat maps, and the provenance of the numbers.

The folder is built beside its destination and moved into place when complete; an existing
folder is replaced only with ``overwrite=True``, and only if it is a report.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sys
import time
import warnings
from datetime import datetime, timezone
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from iqa.compare.report_data import Results, differing, json_value, load_results, worst
from iqa.errors import IQAError, IQAWarning, OptionError

__all__ = ["check_output", "report"]

#: The marker written into every report's index.html: only such a folder is replaced.
GENERATOR = "iqa report"

_ASSETS = ("report.css", "report.js", "missing.svg")
_PLACEHOLDER_RE = re.compile(r"<!--IQA:([A-Z]+)-->")


def _options(option: str) -> dict[str, Any]:
    """How errors name the options: the destination as ``option`` (``output``, or
    ``report`` in ``iqa compare``) and ``overwrite``."""
    return {"overwrite": ("overwrite", True), "output": option}
_MISSING_LISTED = 20

#: The file in a report being built that names the process building it.
_OWNER = ".iqa-owner.json"


def report(
    results: Any,
    output: str | os.PathLike,
    *,
    overwrite: bool = False,
    gallery_size: int = 6,
    thumbnail_size: int = 256,
    title: str | None = None,
    lpips_maps: bool = True,
    output_option: str = "output",
) -> Path:
    """Write an HTML report of ``results`` into the folder ``output``.

    Args:
        results: ``iqa compare``'s output folder (with ``summary.json``), one ``iqa score``
            output file (CSV, JSON or JSONL), or a saved comparison (an object with an
            ``outdir`` attribute naming its folder).
        output: the report's folder (created; its parents too).
        overwrite: replace an existing report folder. A folder that is not a report is
            never replaced.
        gallery_size: images per gallery (the worst per metric and method, the most
            different per metric and pair of methods); 0 leaves the galleries out.
        thumbnail_size: the longest side of a preview, in pixels.
        title: the page's title (default: the results' folder or file name).
        lpips_maps: draw LPIPS heat maps in the galleries when LPIPS was scored and its
            weights are on this machine (the report never downloads).
        output_option: how errors name ``output`` (``iqa compare`` passes ``"report"``).

    Returns:
        The path of the report's ``index.html``.

    Raises:
        IQAError: matplotlib is missing, the results cannot be read, or ``output`` exists
            (without ``overwrite``, or is not a report) or cannot be written.

    Warns:
        IQAWarning: images that are missing or unreadable (drawn as placeholders), and other
            problems the page lists.

    Example:
        >>> iqa.report("compare-out", "report")  # doctest: +SKIP
        PosixPath('report/index.html')
    """
    from iqa.compare.report_figures import require_matplotlib

    require_matplotlib()
    gallery_size = _count(gallery_size, "gallery_size", 0)
    thumbnail_size = _count(thumbnail_size, "thumbnail_size", 16)
    source = getattr(results, "outdir", results)
    if source is None:
        raise IQAError("this comparison has not been saved: call its save(outdir) first, then report on outdir")
    data = load_results(source)
    out = Path(output)
    check_output(out, overwrite, output_option)
    started = time.perf_counter()
    target = Path(os.path.abspath(out))  # "." has no name to put a sibling beside
    _remove_dead_leftovers(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        _write_owner(tmp)
        notes = _build(data, tmp, target, gallery_size, thumbnail_size, title, lpips_maps, started)
        (tmp / _OWNER).unlink()
        _move_into_place(tmp, target)
    except OSError as exc:
        raise IQAError(
            f"{out}: cannot write the report ({exc.strerror or exc}); choose a writable {{output}}",
            options=_options(output_option),
        ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for message in notes:
        warnings.warn(message, IQAWarning, stacklevel=2)
    return out / "index.html"


def _write_owner(tmp: Path) -> None:
    """Record who builds ``tmp`` (PID, host, start time), so that a later run can tell a
    dead run's leftover from a live one's."""
    from iqa.scoring.sidecar import owner

    (tmp / _OWNER).write_text(json.dumps({"owner": owner()}), encoding="utf-8")


def _remove_dead_leftovers(out: Path) -> None:
    """Remove the ``.NAME.tmp-PID`` folders that runs killed without a chance to clean up
    (SIGKILL, a power cut) left beside ``out``: those whose recorded owner is a process of
    this host that no longer exists. A live run's folder, another host's, or one without an
    owner record is left alone."""
    from iqa.scoring.sidecar import owner_state

    parent = out.absolute().parent
    try:
        candidates = list(parent.glob(f".{glob.escape(out.name)}.tmp-*"))
    except OSError:
        return
    for folder in candidates:
        try:
            doc = json.loads((folder / _OWNER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("owner"), dict) and owner_state(doc, folder) == "dead":
            shutil.rmtree(folder, ignore_errors=True)


def _count(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise OptionError(f"{{kw}} must be an integer of at least {low}, got {value!r}", options={"kw": name})
    return value


def is_report(folder: Path) -> bool:
    """Whether ``folder`` holds a report written by this module."""
    index = folder / "index.html"
    try:
        with open(index, encoding="utf-8", errors="replace") as fh:
            head = fh.read(2048)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}' in head


def check_output(out: Path, overwrite: bool, option: str = "output") -> None:
    """Refuse a destination that exists (without ``overwrite``, or that is not a report),
    before any work.

    Raises:
        IQAError: naming the folder and the option that would allow it.
    """
    names = _options(option)
    if out.exists() and not out.is_dir():
        raise IQAError(f"{out}: is a file; the report is a folder: choose another {{output}}", options=names)
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise IQAError(f"{out}: already exists; pass {{overwrite}} to replace it", options=names)
        if not is_report(out):
            raise IQAError(
                f"{out}: not empty and not a report written by iqa report, so it is not replaced; choose "
                "a new or empty {output}",
                options=names,
            )


def _move_into_place(tmp: Path, out: Path) -> None:
    """Put the built report at ``out``. An existing folder (empty, or a report, as
    :func:`check_output` ensured) keeps its identity, so that a shell inside it stays valid:
    its old entries are moved aside, the new ones moved in, then the old ones removed."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    old.mkdir()
    for child in list(out.iterdir()):
        os.replace(child, old / child.name)
    for child in list(tmp.iterdir()):
        os.replace(child, out / child.name)
    tmp.rmdir()
    shutil.rmtree(old, ignore_errors=True)


def _versions() -> dict[str, str]:
    from iqa import __version__

    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {"iqa": __version__, "python": sys.version.split()[0],
            **{d: v(d) for d in ("numpy", "scipy", "matplotlib", "pillow", "torch")}}


def _weights(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file with a SHA-256 named in the settings (network weights, LPIPS heads...)."""
    found = []

    def walk(node: Any, where: list[str]) -> None:
        if isinstance(node, dict):
            if "sha256" in node:
                found.append({"setting": ".".join(where), **{k: node.get(k) for k in ("name", "file", "sha256",
                                                                                        "source", "package")
                                                              if k in node}})
            for k, v in node.items():
                walk(v, [*where, str(k)])

    walk(settings, [])
    return found


def _table(data: Results, linker: Any) -> dict[str, Any]:
    """The per-image table, column-wise: keys, reference links, and per method its output
    links, values (non-finite as text) and errors."""
    from iqa.compare.report_gallery import image_paths

    ref_links: list[str | None] = []
    for key in data.keys:
        holder = next((m for m in data.methods if key in m.rows), None)
        ref_links.append(linker.file(image_paths(holder, holder.rows[key])[0]) if holder else None)
    methods = []
    for m in data.methods:
        outs, errors, present, partner = [], [], [], []
        values: dict[str, list[Any]] = {x.key: [] for x in data.metrics}
        for key in data.keys:
            row = m.rows.get(key)
            present.append(row is not None)
            partner.append(row is None or bool(row["distorted"]))  # iqa score's row of an unpaired reference
            outs.append(linker.file(image_paths(m, row)[1]) if row is not None else None)
            errors.append(row["error"] if row is not None else "")
            for x in data.metrics:
                values[x.key].append(json_value(row.get(x.key)) if row is not None else None)
        methods.append({"name": m.name, "present": present, "paired": partner, "out": outs, "error": errors,
                        "values": values})
    return {"keys": data.keys, "ref": ref_links, "methods": methods}


def _galleries(data: Results, pictures: Any, k: int) -> dict[str, Any]:
    map_metrics = ["ssim"] + (["lpips"] if pictures.draws_lpips else [])
    worst_groups, differ_groups = [], []
    if k == 0:
        return {"worst": [], "differ": []}
    for metric in data.metrics:
        for m in data.methods:
            items = []
            for key, value in worst(m, metric, k):
                tiles = [pictures.reference(m, key), pictures.output(m, key)]
                tiles += [t for t in (pictures.heat_map(x, m, key) for x in map_metrics) if t is not None]
                items.append({"key": key, "values": {m.name: json_value(value)}, "tiles": tiles})
            if items:
                worst_groups.append({"metric": metric.key, "methods": [m.name], "items": items})
        if data.baseline is None:
            continue
        base = data.method(data.baseline)
        for m in data.methods:
            if m.name == data.baseline:
                continue
            items = []
            for key, va, vb, diff in differing(data, metric, base.name, m.name, k):
                tiles = [pictures.reference(m, key), pictures.output(base, key), pictures.output(m, key)]
                for x in map_metrics:
                    tiles += [t for t in (pictures.heat_map(x, base, key), pictures.heat_map(x, m, key)) if t]
                items.append({"key": key, "values": {base.name: json_value(va), m.name: json_value(vb)},
                              "diff": json_value(diff), "tiles": tiles})
            if items:
                differ_groups.append({"metric": metric.key, "methods": [base.name, m.name], "items": items})
    return {"worst": worst_groups, "differ": differ_groups}


def _build(data: Results, folder: Path, final: Path, k: int, size: int, title: str | None, lpips_maps: bool,
           started: float) -> list[str]:
    """Write the report into ``folder`` (links made for ``final``); return its warnings."""
    from iqa.compare.report_figures import draw_plots
    from iqa.compare.report_gallery import Linker, Pictures

    assets = folder / "assets"
    assets.mkdir()
    package = resources.files("iqa.compare") / "report_assets"
    for name in _ASSETS:
        (assets / name).write_bytes((package / name).read_bytes())
    linker = Linker(final)
    plots = draw_plots(data, folder / "plots")
    pictures = Pictures(data, folder, linker, size, lpips=lpips_maps)
    galleries = _galleries(data, pictures, k)
    table = _table(data, linker)
    notes = list(data.warnings) + pictures.warnings
    if linker.missing:
        shown = ", ".join(linker.missing[:3])
        notes.append(f"{len(linker.missing)} image file(s) not found, shown as placeholders without links: {shown}"
                     + (" ..." if len(linker.missing) > 3 else ""))
    lpips_note = pictures.lpips_note if "lpips" in {m.key for m in data.metrics} else ""
    payload = {
        "format": "iqa-report/1",
        "title": title or Path(os.path.abspath(data.source)).name or str(data.source),
        "kind": data.kind,
        "baseline": data.baseline,
        "metrics": [{"key": m.key, "label": m.label, "higher": m.higher, "unit": m.unit} for m in data.metrics],
        "methods": [
            {"name": m.name, "scores": str(m.scores), "scores_href": linker.file(m.scores), "n_rows": len(m.rows),
             "n_failed": m.n_failed, "missing": m.missing[:1000], "n_missing": len(m.missing)}
            for m in data.methods
        ],
        "summary": _clean(data.summary),
        "paired": _clean(data.paired),
        "statistics": _clean(data.statistics),
        "n_common": data.n_common,
        "table": table,
        "plots": {key: {**v, "distribution": v["distribution"] and f"plots/{v['distribution']}",
                        "differences": v["differences"] and f"plots/{v['differences']}"} for key, v in plots.items()},
        "galleries": galleries,
        "gallery_size": k,
        "lpips_note": lpips_note,
        "warnings": notes,
        "missing_files": linker.missing[:_MISSING_LISTED],
        "provenance": {
            "source": str(data.source.absolute()),
            "command": data.command,
            "created": data.created,
            "iqa_version": data.iqa_version,
            "settings": _clean(data.settings),
            "weights": _weights(data.settings),
            "report": {
                "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "versions": _versions(),
                "seconds": None,
            },
        },
    }
    payload["provenance"]["report"]["seconds"] = round(time.perf_counter() - started, 3)
    template = (package / "report.html").read_text(encoding="utf-8")
    (folder / "index.html").write_text(render(template, payload), encoding="utf-8")
    return notes


def _clean(node: Any) -> Any:
    """JSON-ready: non-finite floats as text (JSON has none)."""
    if isinstance(node, dict):
        return {str(k): _clean(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_clean(v) for v in node]
    return json_value(node)


def script_json(payload: Any) -> str:
    """JSON that is safe inside an HTML ``<script>`` element: ``<``, ``>`` and ``&`` as
    ``\\u`` escapes (no ``</script>`` or ``<!--`` can end or change the element), every
    non-ASCII character escaped too (names that are not UTF-8 survive as escapes)."""
    text = json.dumps(payload, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(template: str, payload: dict[str, Any]) -> str:
    """The page: the template with its title and data filled in, in one pass (so that text
    in the data is never taken for a placeholder)."""
    import html

    values = {
        "TITLE": html.escape(payload["title"], quote=True),
        "GENERATOR": html.escape(f"{GENERATOR} {payload['provenance']['report']['versions']['iqa']}", quote=True),
        "DATA": script_json(payload),
    }
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)

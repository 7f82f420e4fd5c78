"""Row files: CSV, JSON and JSONL writers and readers, atomic rewrites, sidecar paths.

Rows are written and flushed one at a time so that a killed run loses nothing written;
readers tolerate a last row cut by a kill. Non-finite values: CSV writes ``inf``; JSON and
JSONL, which have no infinity, the string ``"inf"``; ``float()`` reads both.

CSV follows RFC 4180's quoting: a cell holding a comma, a quote, a line feed or a carriage
return is quoted, so that a file name with any of them stays in its cell for every CSV
reader; lines end with ``\n`` (which RFC 4180 readers, Python's ``csv`` and pandas accept).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from iqa.errors import IQAError, OutputError
from iqa.outfile import atomic_open, describe, temp_path, write_error

__all__ = ["FORMATS", "RowWriter", "check_writable", "columns_for", "csv_line", "meta_path", "part_path",
           "read_rows", "write_atomic", "write_error", "write_json_atomic", "write_text_atomic"]

#: Output formats.
FORMATS = ("csv", "json", "jsonl")

#: How JSON and JSONL write non-finite values (JSON has no infinity); ``float()`` reads them.
_NON_FINITE_TEXT = {math.inf: "inf", -math.inf: "-inf"}

_PAIR_COLUMNS = ("reference", "distorted")




def columns_for(metrics: Sequence[str]) -> list[str]:
    return [*_PAIR_COLUMNS, *metrics, "error"]


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # shortest text that reads back to the same float: 'inf' for +inf
    return str(v)


def csv_line(cells: Sequence[Any]) -> str:
    """One CSV record ending in ``\n``, every cell holding a delimiter, a quote, ``\n`` or
    ``\r`` quoted.

    ``csv.writer`` quotes a cell when it holds a character of the line terminator: with
    ``"\n"`` alone as terminator a bare ``\r`` would go out unquoted, and every reader
    treats it as a line break. The record is written with ``"\r\n"`` (both quoted) and
    ends in ``"\n"``.
    """
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(cells)
    return buf.getvalue()[:-2] + "\n"


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        # JSON has no infinity: the cell says it in text that float() reads back.
        return _NON_FINITE_TEXT.get(v, "nan")
    return v


class RowWriter:
    """Appends rows to an open text stream in one format, flushing after each row.

    JSON is written so that the stream is valid once closed and parseable line by line while
    open: a first line holding the metadata and ``"rows": [``, one row per line (each but
    the last ending with a comma), then ``]}``.
    """

    def __init__(
        self,
        stream: Any,
        fmt: str,
        columns: list[str],
        metadata: dict[str, Any] | None,
        *,
        header: bool = True,
        first: bool = True,
    ):
        self.stream, self.fmt, self.columns = stream, fmt, columns
        self._first = first  # no row in the stream yet (JSON puts commas between rows)
        if header:
            if fmt == "csv":
                stream.write(csv_line(columns))
            elif fmt == "json":
                meta = json.dumps(metadata or {}, allow_nan=False)
                stream.write('{"metadata": ' + meta + ', "columns": ' + json.dumps(columns) + ', "rows": [')
            stream.flush()

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self.stream.write(csv_line([_csv_cell(row.get(c)) for c in self.columns]))
        else:
            text = json.dumps({c: _json_value(row.get(c)) for c in self.columns}, allow_nan=False)
            if self.fmt == "json":
                text = ("\n" if self._first else ",\n") + text
            else:
                text += "\n"
            self.stream.write(text)
        self._first = False
        self.stream.flush()

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]}\n")
        self.stream.flush()


def _parse_value(text: Any, fmt: str) -> Any:
    if fmt == "csv":
        return float(text) if text not in ("", None) else None
    if isinstance(text, bool):
        raise ValueError("not a number")
    return None if text is None else float(text)  # "inf" in JSON is +inf


def _normalise_row(raw: dict[str, Any], columns: list[str], fmt: str) -> dict[str, Any] | None:
    if any(c not in raw for c in columns):
        return None
    row: dict[str, Any] = {"reference": str(raw["reference"]), "distorted": str(raw["distorted"])}
    error = raw.get("error") or ""
    for c in columns[2:-1]:
        try:
            row[c] = _parse_value(raw[c], fmt)
        except (TypeError, ValueError):
            return None
    row["error"] = error
    return row


def read_rows(path: Path, fmt: str, columns: list[str]) -> list[dict[str, Any]]:
    """Rows of an output file, tolerating a run that was killed mid-write: an unfinished
    last line is dropped, as is any line that does not parse as a full row."""
    # newline="": a carriage return inside a quoted cell is data, not a line break to translate.
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
            text = fh.read()
    except OSError as exc:
        raise OutputError(f"{path}: cannot read the earlier rows: {describe(exc)}") from None
    if fmt == "json":
        try:
            doc = json.loads(text)
            raw_rows = doc.get("rows", []) if isinstance(doc, dict) else []
        except json.JSONDecodeError:
            raw_rows = []
            # Unfinished: the first line holds the metadata, then one row per line (the
            # last one without its newline yet); a row cut by a crash does not parse.
            for line in text.split("\n")[1:]:
                line = line.strip().rstrip(",")
                if line.startswith("{"):
                    try:
                        raw_rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
        return [r for r in (_normalise_row(x, columns, fmt) for x in raw_rows if isinstance(x, dict)) if r]
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    if not text:
        # A part file is created empty, then gets its header: a kill in between (or in the
        # middle of the header) leaves no complete line, which holds no row.
        return []
    rows = []
    if fmt == "jsonl":
        for line in text.split("\n"):
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(raw, dict) and (r := _normalise_row(raw, columns, fmt)):
                rows.append(r)
        return rows
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error:
        header = None
    if header != columns:
        raise IQAError(f"{path}: columns {header} do not match this run's {columns}; cannot resume")
    while True:
        start = reader.line_num + 1  # the physical line this record starts on
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error:
            fields = None
        if fields is not None and len(fields) == len(columns):
            if r := _normalise_row(dict(zip(columns, fields)), columns, fmt):
                rows.append(r)
            continue
        # A record of the wrong shape. A kill leaves one only at the end; an unclosed quote
        # (an edited file) swallows every line after it into one cell. Complete rows in what
        # it swallowed mean the file was damaged, not cut: refuse rather than lose them.
        if fields is None or reader.line_num > start:
            rest = "".join(text.splitlines(keepends=True)[start:])
            if rest and read_rows_text_has_rows(rest, columns, fmt):
                raise IQAError(
                    f"{path}:{start}: a malformed row (an unclosed quote?) hides the complete rows after "
                    "it; fix or remove that line, or start again with --overwrite"
                )
            if fields is None:
                break
    return rows


def read_rows_text_has_rows(text: str, columns: list[str], fmt: str) -> bool:
    """Whether CSV text (without a header) holds at least one complete row."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for fields in reader:
            if len(fields) == len(columns) and _normalise_row(dict(zip(columns, fields)), columns, fmt):
                return True
    except csv.Error:
        return False
    return False


def write_atomic(
    path: Path,
    fmt: str,
    columns: list[str],
    rows: Iterable[dict[str, Any]],
    metadata: dict[str, Any] | None,
    *,
    finished: bool = True,
) -> None:
    """Write a file next to ``path`` and rename it over ``path`` (atomic on POSIX).

    ``finished=False`` leaves a JSON document open so that rows can be appended to it.

    Raises:
        OutputError: naming ``path`` and the cause; ``path`` is left as it was.
    """
    with atomic_open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
        w = RowWriter(fh, fmt, columns, metadata)
        for row in rows:
            w.write(row)
        if finished:
            w.close()


def write_json_atomic(path: Path, doc: dict[str, Any], what: str = "") -> None:
    write_text_atomic(path, json.dumps(doc, indent=2, allow_nan=False) + "\n", what)


def write_text_atomic(path: Path, text: str, what: str = "") -> None:
    """Write UTF-8 text next to ``path`` and rename it over ``path``."""
    with atomic_open(path, "w", encoding="utf-8", what=what) as fh:
        fh.write(text)


def check_writable(path: Path) -> None:
    """Create and remove a file next to ``path``: the folder must take new files (the
    sidecar, temporary files, the final rename).

    Raises:
        OutputError: naming ``path`` and the system's reason.
    """
    tmp = temp_path(path, "probe")
    try:
        with open(tmp, "w", encoding="utf-8"):
            pass
        tmp.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"{path}: cannot create files in {path.parent}: {describe(exc)}") from None


def meta_path(output: str | os.PathLike) -> Path:
    """The sidecar of an output file: ``<output>.meta.json``."""
    p = Path(output)
    return p.with_name(p.name + ".meta.json")


def part_path(output: Path, rank: int) -> Path:
    return output.with_name(f"{output.name}.part{rank}")

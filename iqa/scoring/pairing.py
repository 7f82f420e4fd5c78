"""Pairing: which distorted file goes with which reference (folders or a pair list)."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from iqa.decode import IMAGE_EXTENSIONS, iter_image_files, read_text_file
from iqa.errors import IQAError

__all__ = ["PairJob", "Pairing", "pair_folders", "read_pairs_file"]




@dataclass(frozen=True, order=True)
class PairJob:
    """One pair to score: the names written in the row and the files to open.

    ``missing`` holds why a reference has no distorted partner (then ``distorted`` is
    empty): scoring it gives a row with that error, so that a pipeline notices.
    """

    reference: str
    distorted: str
    reference_path: str = field(compare=False, default="")
    distorted_path: str = field(compare=False, default="")
    missing: str = field(compare=False, default="")

    @property
    def key(self) -> tuple[str, str]:
        return (self.reference, self.distorted)


@dataclass
class Pairing:
    """The result of matching two folders.

    Attributes:
        pairs: matched pairs, sorted by (reference, distorted).
        unpaired: one job per reference image without a partner (unmatched, or ambiguous
            under ``match_stem``), with ``distorted == ""`` and the reason in ``missing``.
        unmatched_reference, unmatched_distorted: image files (relative paths) with no
            partner on the other side.
        ambiguous: messages for names that match several files (``match_stem`` with
            ``a.png`` and ``a.jpg`` side by side); those files are not paired.
        ignored_reference, ignored_distorted: files without an image extension.
    """

    pairs: list[PairJob]
    unmatched_reference: list[str] = field(default_factory=list)
    unmatched_distorted: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    ignored_reference: list[str] = field(default_factory=list)
    ignored_distorted: list[str] = field(default_factory=list)
    unpaired: list[PairJob] = field(default_factory=list)

    @property
    def jobs(self) -> list[PairJob]:
        """What ``iqa score`` scores: the pairs and, as error rows, the unpaired references."""
        return sorted([*self.pairs, *self.unpaired])


def _non_images(root: Path) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for name in files:
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                out.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(out)


def pair_folders(
    reference_dir: str | os.PathLike, distorted_dir: str | os.PathLike, *, match_stem: bool = False
) -> Pairing:
    """Match the image files of two folders by relative path (recursively).

    Args:
        reference_dir: the folder of pristine images.
        distorted_dir: the folder of images to score, mirroring ``reference_dir``'s layout.
        match_stem: match on the relative path without its extension, so ``a/b.png`` pairs
            with ``a/b.jpg``. A stem with several files on one side is ambiguous and skipped.

    Returns:
        A :class:`Pairing`; its ``jobs`` are the pairs plus one job per reference without a
        partner, which scores as an error row.

    Raises:
        ImageLoadError: a folder does not exist or contains a symbolic link loop.

    Example:
        >>> p = pair_folders("data/samples/reference", "data/samples/blur")  # doctest: +SKIP
        >>> [(j.reference, j.distorted) for j in p.pairs][:1]  # doctest: +SKIP
        [('astronaut.png', 'astronaut.png')]
    """
    ref_root, dist_root = Path(reference_dir), Path(distorted_dir)
    refs = {p.relative_to(ref_root).as_posix(): p for p in iter_image_files(ref_root)}
    dists = {p.relative_to(dist_root).as_posix(): p for p in iter_image_files(dist_root)}
    ambiguous: list[str] = []
    clashes: dict[str, dict[str, str]] = {"reference": {}, "distorted": {}}  # stem -> message

    def keyed(files: dict[str, Path], side: str) -> dict[str, str]:
        if not match_stem:
            return {k: k for k in files}
        groups: dict[str, list[str]] = {}
        for rel in files:
            stem = rel.rsplit(".", 1)[0]
            groups.setdefault(stem, []).append(rel)
        out = {}
        for stem, rels in groups.items():
            if len(rels) == 1:
                out[stem] = rels[0]
            else:
                text = f"{side} {stem}.*: several files match ({', '.join(sorted(rels))})"
                ambiguous.append(text)
                clashes[side][stem] = text
        return out

    ref_keys, dist_keys = keyed(refs, "reference"), keyed(dists, "distorted")
    pairs = [
        PairJob(ref_keys[k], dist_keys[k], os.fspath(refs[ref_keys[k]]), os.fspath(dists[dist_keys[k]]))
        for k in ref_keys
        if k in dist_keys
    ]
    paired = {j.reference for j in pairs}
    unpaired = []
    for rel, path in refs.items():
        if rel in paired:
            continue
        stem = rel.rsplit(".", 1)[0]
        if match_stem and stem in clashes["reference"]:
            why = f"not paired: {clashes['reference'][stem]}"
        elif match_stem and stem in clashes["distorted"]:
            why = f"not paired: {clashes['distorted'][stem]}"
        elif match_stem:
            why = f"no distorted partner: no file {stem}.* in {dist_root}"
        else:
            why = f"no distorted partner: {dist_root / rel} does not exist"
        unpaired.append(PairJob(rel, "", os.fspath(path), "", missing=why))
    return Pairing(
        pairs=sorted(pairs),
        unpaired=sorted(unpaired),
        unmatched_reference=sorted(ref_keys[k] for k in ref_keys if k not in dist_keys),
        unmatched_distorted=sorted(dist_keys[k] for k in dist_keys if k not in ref_keys),
        ambiguous=sorted(ambiguous),
        ignored_reference=_non_images(ref_root),
        ignored_distorted=_non_images(dist_root),
    )


def read_pairs_file(
    path: str | os.PathLike,
    reference_dir: str | os.PathLike | None = None,
    distorted_dir: str | os.PathLike | None = None,
) -> list[PairJob]:
    """Read an explicit pair list: a CSV with a header holding ``reference`` and ``distorted``.

    Relative paths are resolved against ``reference_dir`` and ``distorted_dir`` (default: the
    CSV's folder); absolute paths are used as they are. Rows keep the names as written.
    Files that do not exist become rows with an error when scored, not a failure here.

    Raises:
        IQAError: the file is missing, not a regular file, not UTF-8 text or holds a NUL
            byte, has no such columns, has a row with more cells than the header or an empty
            cell, or lists a pair twice.
    """
    p = Path(path)
    # Refuses what is not a regular file before opening it (a FIFO would block), a file
    # over TEXT_BYTES, and binary or sparse files (NUL bytes in the first 64 KiB).
    data = read_text_file(p, "a pair list")
    try:
        text = data.decode("utf-8-sig")  # newlines kept as they are: a quoted \r is part of a name
    except UnicodeDecodeError as exc:
        text_line = exc.object[: exc.start].count(b"\n") + 1
        raise IQAError(
            f"{p}:{text_line}: the pair list is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); "
            "save it as UTF-8 CSV"
        ) from None
    if "\x00" in text:
        raise IQAError(f"{p}:{text[: text.index(chr(0))].count(chr(10)) + 1}: the pair list holds a NUL byte; "
                       "it must be CSV text (UTF-8)")
    try:
        return _pair_rows(p, text, reference_dir, distorted_dir)
    except csv.Error as exc:
        raise IQAError(f"{p}: not a readable CSV pair list ({exc})") from None


def _pair_rows(p: Path, text: str, reference_dir: str | os.PathLike | None,
               distorted_dir: str | os.PathLike | None) -> list[PairJob]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    if "reference" not in fields or "distorted" not in fields:
        raise IQAError(
            f"{p}: expected a CSV header with columns 'reference' and 'distorted', got {fields}"
        )
    base = p.parent
    ref_root = Path(reference_dir) if reference_dir is not None else base
    dist_root = Path(distorted_dir) if distorted_dir is not None else base
    jobs, seen = [], set()
    for row in reader:
        line = reader.line_num  # the physical line where this row ends
        if None in row:
            extra = [v for v in row[None] if v.strip()]
            if extra:
                raise IQAError(
                    f"{p}:{line}: {len(fields) + len(row[None])} cells but the header has "
                    f"{len(fields)} ({', '.join(fields)}); quote paths that contain a comma"
                )
            del row[None]  # trailing empty cells (a trailing comma)
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        ref, dist = row.get("reference", ""), row.get("distorted", "")
        if not ref and not dist and not any(row.values()):
            continue  # blank line
        if not ref or not dist:
            raise IQAError(f"{p}:{line}: empty 'reference' or 'distorted' cell")
        if (ref, dist) in seen:
            raise IQAError(f"{p}:{line}: pair ({ref}, {dist}) is listed twice")
        seen.add((ref, dist))
        jobs.append(PairJob(ref, dist, os.fspath(ref_root / ref), os.fspath(dist_root / dist)))
    return sorted(jobs)

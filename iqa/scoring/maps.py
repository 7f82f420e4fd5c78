"""Per-pair heat-maps of the metrics that have one (``iqa score --maps``)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence

from iqa.errors import OutputError
from iqa.outfile import InputFiles, check_output

__all__ = ["MapWriter"]


def _escape(part: str) -> str:
    """One path component, made safe and kept distinct: ``%`` → ``%25``, ``\\`` → ``%5C``,
    ``.`` and ``..`` → ``%2E`` and ``%2E%2E``."""
    part = part.replace("%", "%25").replace("\\", "%5C")
    return part.replace(".", "%2E") if part in (".", "..") else part


def _parts(name: str) -> list[str]:
    """``name``'s components, escaped, an absolute path's root as ``%2F``."""
    parts = name.split("/")
    head = ["%2F"] if name.startswith("/") else []
    return head + [_escape(p) for p in parts if p]


class MapWriter:
    """Writes per-pair heat-maps as ``<folder>/<metric>/<distorted path>.png``.

    The distorted file's relative path is kept and ``.png`` is appended (``a.jpg`` →
    ``a.jpg.png``, ``a.png`` → ``a.png.png``), so that no two names collide; a ``%`` in a name
    is written ``%25``, a ``\\`` ``%5C``, a ``.``/``..`` component ``%2E``/``%2E%2E`` and an
    absolute path's root ``%2F``, so that every map stays inside ``folder`` and two names
    never share a map. A distorted file listed with several references (``--pairs``) gets
    one map per pair: ``<distorted path>%vs%<reference path, / as %2F>.png`` (``%vs%`` cannot
    come out of the escaping). The pictures are drawn as the pair commands' ``--map`` draws
    them. Called by the engine as ``writer(spec, score, maps, index, options)``.
    """

    def __init__(self, folder: str | os.PathLike, jobs: Sequence[Any] = (), metrics: Sequence[str] = ()) -> None:
        self.folder = Path(folder)
        self.jobs, self.metrics = jobs, list(metrics)
        counts = Counter("/".join(_parts(j.distorted)) for j in jobs)
        self._shared = {k for k, n in counts.items() if n > 1}

    def path(self, metric: str, distorted: str, reference: str = "") -> Path:
        """Where the map of ``metric`` for the pair (``reference``, ``distorted``) goes."""
        parts = _parts(distorted) or ["%00"]
        if "/".join(parts) in self._shared:
            parts[-1] += "%vs%" + "%2F".join(_parts(reference))
        return self.folder.joinpath(metric, *parts[:-1], parts[-1] + ".png")

    def check(self, *, overwrite: bool, inputs: InputFiles | Iterable[str] = ()) -> None:
        """Before any pair is scored: the folder is a folder, and no map to be written is an
        existing file (without ``overwrite``), a non-regular file or an input.

        Raises:
            OutputError: naming the first such path.
        """
        if os.path.lexists(self.folder) and not self.folder.is_dir():
            raise OutputError(f"{self.folder}: exists and is not a folder; name a folder for the maps")
        if not self.folder.is_dir():
            return  # nothing in it yet
        if not isinstance(inputs, InputFiles):
            inputs = InputFiles(inputs)
        for job in self.jobs:
            for metric in self.metrics:
                p = self.path(metric, job.distorted, job.reference)
                if os.path.lexists(p):
                    check_output(p, overwrite=overwrite, what="map", inputs=inputs,
                                 hint=" (or choose another maps folder)")

    def __call__(self, spec: Any, score: Any, maps: Any, index: int, options: Any) -> None:
        from iqa.maps import render_heatmap

        plane, style = spec.load_map_view()(maps, index, options)
        out = self.path(spec.key, score.distorted, score.reference)
        out.parent.mkdir(parents=True, exist_ok=True)
        render_heatmap(plane, out, **style)

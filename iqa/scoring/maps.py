"""Per-pair heat-maps of the metrics that have one (``iqa score --maps``)."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["MapWriter"]


class MapWriter:
    """Writes per-pair heat-maps as ``<folder>/<metric>/<distorted path>.png``.

    The distorted file's relative path is kept (its extension replaced by ``.png`` when it
    is ``.png`` already, appended otherwise, so ``a.png`` and ``a.jpg`` never collide);
    absolute paths and ``..`` lose their leading parts so that every map stays inside
    ``folder``. The pictures are drawn as the pair commands' ``--map`` draws them.
    Called by the engine as ``writer(spec, distorted, maps, index, options)``.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def path(self, metric: str, distorted: str) -> Path:
        parts = [p for p in PurePosixPath(distorted.replace("\\", "/")).parts if p not in ("/", "..", ".")]
        name = parts[-1] if parts else "image"
        if not name.lower().endswith(".png"):
            name += ".png"
        out = self.folder.joinpath(metric, *parts[:-1], name)
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    def __call__(self, spec: Any, distorted: str, maps: Any, index: int, options: Any) -> None:
        from iqa.maps import render_heatmap

        plane, style = spec.load_map_view()(maps, index, options)
        render_heatmap(plane, self.path(spec.key, distorted), **style)

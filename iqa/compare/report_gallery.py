"""The report's pictures: links to the images, downscaled previews, and heat maps.

Originals are linked, never copied: a link is relative to the report's folder when the
operating system allows it, and every path segment is percent-encoded from its bytes, so
spaces, quotes, ``#``, ``<`` and names that are not UTF-8 stay one working link. Previews
(JPEG, at most ``size`` pixels on the longest side) and heat maps are drawn only for the
gallery's images. A file that is missing or cannot be read becomes a placeholder and one
line in the report's warnings, never an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from iqa import registry
from iqa.compare.report_data import Method, Results
from iqa.errors import IQAError

__all__ = ["Linker", "Pictures", "lpips_weights"]

#: The placeholder drawn instead of a missing picture (one of the report's assets).
PLACEHOLDER = "assets/missing.svg"


class Linker:
    """Turns a file's path into a link from the report's ``index.html``.

    Args:
        base: the report's final folder (links are made for where the report will be).
    """

    def __init__(self, base: Path) -> None:
        self.base = Path(os.path.abspath(base))
        self.missing: list[str] = []
        self._exists: dict[str, bool] = {}

    def href(self, path: Path) -> str:
        p = os.path.abspath(path)
        try:
            rel = os.path.relpath(p, self.base)
        except ValueError:  # another drive (Windows): only an absolute URL reaches it
            return Path(p).as_uri()
        return "/".join(quote(os.fsencode(part), safe="") for part in rel.split(os.sep))

    def file(self, path: Path | None) -> str | None:
        """The link to an existing file; ``None`` (and the file noted as missing) otherwise."""
        if path is None:
            return None
        key = os.path.abspath(path)
        found = self._exists.get(key)
        if found is None:
            found = self._exists[key] = os.path.isfile(key)
            if not found:
                self.missing.append(key)
        return self.href(Path(key)) if found else None


def image_paths(method: Method, row: dict[str, Any]) -> tuple[Path | None, Path | None]:
    """The reference and distorted files of one row (``None`` when the root is unknown, or
    for no file: a reference without a distorted partner has an empty ``distorted``)."""
    ref = method.reference_root / row["reference"] if method.reference_root is not None and row["reference"] else None
    dist = method.distorted_root / row["distorted"] if method.distorted_root is not None and row["distorted"] else None
    return ref, dist


def _to_rgb8(img: np.ndarray) -> np.ndarray:
    """Any decoded image as 8-bit RGB for a preview (alpha dropped; 16-bit and float scaled)."""
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] in (2, 4):
        a = a[..., :-1]
    if a.dtype == np.uint16:
        a = (a.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif a.dtype.kind == "f":
        peak = 1.0 if np.nanmax(a) <= 1.0 else 255.0
        a = (np.clip(np.nan_to_num(a), 0.0, peak) * (255.0 / peak) + 0.5).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def lpips_weights(settings: dict[str, Any]) -> tuple[dict[str, str] | None, str]:
    """The local backbone file that scored LPIPS, if it is on this machine.

    Never downloads: the file recorded in the settings (a user's file whose SHA-256 still
    matches) or the registry's file already in the cache.

    Returns:
        ``({registry name: path}, "")``, or ``(None, why not)``.
    """
    from iqa import weights as store
    from iqa.metrics.lpips import LPIPSOptions

    block = settings.get("lpips") if isinstance(settings.get("lpips"), dict) else {}
    backbone = block.get("backbone") if isinstance(block.get("backbone"), dict) else {}
    try:
        name = backbone.get("name") or LPIPSOptions(net=block.get("net", "alex"),
                                                     version=block.get("version", "0.1")).weights_name
    except IQAError as exc:
        return None, f"LPIPS maps are not drawn: the recorded LPIPS settings are not valid ({exc})"
    if backbone.get("source") == "user":
        path = Path(str(backbone.get("file", "")))
        if not path.is_file():
            return None, f"LPIPS maps are not drawn: the backbone file used for scoring, {path}, is not on this machine"
        if backbone.get("sha256") and store.file_sha256(path) != backbone["sha256"]:
            return None, f"LPIPS maps are not drawn: {path} has changed since scoring (its SHA-256 differs)"
        return {name: str(path)}, ""
    try:
        status = store.status(name, verify=True)
    except IQAError as exc:
        return None, f"LPIPS maps are not drawn: {exc}"
    if status.state != "ok":
        return None, (f"LPIPS maps are not drawn: the {name} weights are not on this machine ({status.state}; "
                      "iqa weights download fetches them; the report never downloads)")
    return {name: str(status.path)}, ""


class Pictures:
    """Previews and heat maps for the galleries, each drawn once.

    Args:
        results: what the report shows.
        folder: the report folder being built (previews go to ``thumbs/``, maps to ``maps/``).
        linker: links to the originals.
        size: the longest side of a preview, in pixels.
        lpips: draw LPIPS maps (when ``lpips`` was scored and its weights are local).
    """

    def __init__(self, results: Results, folder: Path, linker: Linker, size: int, lpips: bool = True) -> None:
        self.results, self.folder, self.linker, self.size = results, folder, linker, size
        self.warnings: list[str] = []
        self._done: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._ids: dict[Any, int] = {}
        (folder / "thumbs").mkdir(parents=True, exist_ok=True)
        (folder / "maps").mkdir(parents=True, exist_ok=True)
        keys = {m.key for m in results.metrics}
        self.lpips_note = ""
        self._lpips_weights: dict[str, str] | None = None
        if "lpips" in keys and lpips:
            self._lpips_weights, self.lpips_note = lpips_weights(results.settings)
        elif "lpips" in keys:
            self.lpips_note = "LPIPS maps were not requested"

    @property
    def draws_lpips(self) -> bool:
        return self._lpips_weights is not None

    def _id(self, thing: Any) -> int:
        return self._ids.setdefault(thing, len(self._ids))

    # -- previews ----------------------------------------------------------------------

    def _preview(self, path: Path | None, label: str) -> dict[str, Any]:
        """A tile: ``{"label", "thumb", "href"}``, the placeholder when the file is missing."""
        key = ("file", str(path))
        if key in self._done:
            return {**self._done[key], "label": label}
        href = self.linker.file(path)
        tile: dict[str, Any] = {"label": label, "thumb": PLACEHOLDER, "href": href}
        if path is None:
            tile["note"] = "the folder of this file is not recorded"
        elif href is None:
            tile["note"] = f"not found: {path}"
        else:
            try:
                from iqa.decode import read_image

                img = _to_rgb8(read_image(path))
                name = f"thumbs/img-{self._id(key)}.jpg"
                self._write_preview(img, name)
                tile["thumb"] = name
                tile["size"] = [int(img.shape[1]), int(img.shape[0])]
            except (IQAError, OSError, ValueError) as exc:
                self.warnings.append(f"{path}: no preview ({exc})")
                tile["note"] = f"unreadable: {exc}"
        self._done[key] = tile
        return tile

    def _write_preview(self, rgb: np.ndarray, name: str, scale: float | None = None) -> None:
        """Write a JPEG preview, downscaled to ``self.size`` (or by ``scale``)."""
        from PIL import Image

        im = Image.fromarray(rgb)
        h, w = rgb.shape[:2]
        scale = min(1.0, self.size / max(h, w)) if scale is None else min(1.0, scale)
        if scale < 1.0:
            im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
        im.save(self.folder / name, format="JPEG", quality=85)

    def reference(self, method: Method, key: str) -> dict[str, Any]:
        ref, _ = image_paths(method, method.rows[key])
        return self._preview(ref, "reference")

    def output(self, method: Method, key: str) -> dict[str, Any]:
        _, dist = image_paths(method, method.rows[key])
        return self._preview(dist, method.name)

    # -- heat maps ---------------------------------------------------------------------

    def _kwargs(self, metric: str) -> dict[str, Any]:
        """The keywords that reproduce the scoring settings for ``metric``'s function."""
        from iqa.options import Conventions, ImageOptions

        spec = registry.get(metric)
        s = self.results.settings
        names = [f.name for f in ImageOptions.fields()]
        if spec.conventions:
            names += [f.name for f in Conventions.fields()]
        kw = {n: s[n] for n in names if n in s}
        block = s.get(spec.key) if isinstance(s.get(spec.key), dict) else {}
        kw.update({f.name: block[f.name] for f in spec.options_class().fields() if f.name in block})
        return kw

    def heat_map(self, metric: str, method: Method, key: str) -> dict[str, Any] | None:
        """The SSIM or LPIPS map of one image of one method, as a tile (``None`` when the
        metric's maps are not drawn)."""
        if metric == "lpips" and not self.draws_lpips:
            return None
        spec = registry.get(metric)
        label = f"{spec.name} map · {method.name}"
        cache = ("map", metric, method.name, key)
        if cache in self._done:
            return {**self._done[cache], "label": label}
        ref, dist = image_paths(method, method.rows[key])
        tile: dict[str, Any] = {"label": label, "thumb": PLACEHOLDER, "href": None}
        if ref is None or dist is None or not (os.path.isfile(ref) and os.path.isfile(dist)):
            tile["note"] = "no map: an image file is missing"
        else:
            try:
                tile.update(self._draw_map(spec, ref, dist, self._id(cache)))
            except (IQAError, OSError, ValueError, RuntimeError) as exc:
                self.warnings.append(f"{dist}: no {spec.name} map ({' '.join(str(exc).split())})")
                tile["note"] = f"no map: {exc}"
        self._done[cache] = tile
        return tile

    def _draw_map(self, spec: registry.MetricSpec, ref: Path, dist: Path, ident: int) -> dict[str, Any]:
        from PIL import Image

        from iqa.maps import colorize, render_heatmap

        kw = self._kwargs(spec.key)
        options = spec.options_class()(**{f.name: kw[f.name] for f in spec.options_class().fields() if f.name in kw})
        if spec.networks:
            kw.update(weights=self._lpips_weights, device="cpu")
        _, plane = spec.load_function()(str(ref), str(dist), return_map=True, **kw)
        plane = np.asarray(plane, dtype=np.float64)
        if spec.key == "ssim" and plane.ndim == 2:
            plane = plane[:, :, None]  # a gray image's map: one channel
        # The registry's view draws it as `iqa score --maps` does (range, direction, title).
        plane, style = spec.load_map_view()([plane], 0, options)
        # The full-size map with its colour bar as a JPEG: a PNG of a noisy map is about as
        # large as the image it describes, several times the JPEG, and slower to write.
        full = f"maps/{spec.key}-{ident}.jpg"
        render_heatmap(plane, self.folder / full, **style)
        h, w = plane.shape
        rgb = colorize(plane, style.get("vmin", float(np.nanmin(plane))), style.get("vmax", float(np.nanmax(plane))),
                       reverse=style.get("reverse", False))
        thumb = f"thumbs/{spec.key}-{ident}.jpg"
        # The image's scale, not the map's own: a map beside its images is at the same zoom.
        with Image.open(ref) as im:
            scale = self.size / max(im.size)
        self._write_preview(rgb, thumb, scale)
        return {"thumb": thumb, "href": full, "size": [int(w), int(h)],
                "note": style.get("title", "")}

"""Images for the report's tests: a reference folder and three methods with known
differences (light noise, heavy noise, and light noise with one image left identical)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers import write_png

#: Image names that an HTML page or a URL would take for syntax if not escaped.
HOSTILE_NAMES = ['a b "q" <x>&amp;.png', "#hash?x=1%20.png", "日本 é.png", "it's.png", "<script>x<!--.png"]


def make_images(root: Path, n: int, *, size: tuple[int, int] = (48, 40), seed: int = 0,
                names: list[str] | None = None) -> dict[str, Path]:
    """A reference folder and three methods' folders of ``n`` images each: ``good`` (light
    noise), ``bad`` (heavy noise) and ``same`` (the reference itself for the first image,
    else light noise), written as PNG. Returns the folders by name."""
    rng = np.random.default_rng(seed)
    h, w = size
    names = names if names is not None else []
    names = names + [f"img{i:04d}.png" for i in range(n - len(names))]
    folders = {k: root / k for k in ("reference", "good", "bad", "same")}
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    for i, name in enumerate(names):
        base = np.stack([(xx * 5 + i * 7) % 256, (yy * 6 + i * 3) % 256, ((xx + yy) * 3 + i) % 256], axis=-1)
        base = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        write_png(folders["reference"] / name, base)
        for method, sd in (("good", 4.0), ("bad", 16.0), ("same", 4.0)):
            if method == "same" and i == 0:
                out = base
            else:
                out = np.clip(base + rng.normal(0, sd * (1 + (i % 3) / 2), base.shape), 0, 255).astype(np.uint8)
            write_png(folders[method] / name, out)
    return folders


def copy_method(comparison: Path, method: str, dest: Path) -> Path:
    """One method's score file of a comparison, with its sidecar and all the images, copied
    into ``dest`` (its roots pointed at the copies), so that a test may delete images."""
    import json
    import shutil

    shutil.copytree(comparison.parent / "images", dest / "images")
    scores = dest / f"{method}.csv"
    shutil.copy(comparison / "scores" / f"{method}.csv", scores)
    meta = json.loads((comparison / "scores" / f"{method}.csv.meta.json").read_text())
    meta.update(reference_root=str(dest / "images" / "reference"), distorted_root=str(dest / "images" / method))
    (dest / f"{method}.csv.meta.json").write_text(json.dumps(meta))
    return scores

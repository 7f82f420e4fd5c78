"""Regenerate ``data/samples/`` from scikit-image's bundled public-domain/CC0 photographs.

Run from the repository root with the test extra installed (it needs scikit-image):

    python data/make_samples.py

Every output is deterministic (fixed seeds, fixed JPEG quality), so re-running reproduces
the committed files byte for byte with the same Pillow/OpenCV versions.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data

OUT = Path(__file__).resolve().parent / "samples"

#: name -> (loader, licence as stated in scikit-image's ``skimage.data`` docstrings)
SOURCES = {
    "astronaut": (data.astronaut, "public domain (NASA); skimage.data.astronaut"),
    "camera": (data.camera, "CC0 by the photographer, Lav Varshney; skimage.data.camera"),
    "chelsea": (data.chelsea, "CC0 by the photographer, Stefan van der Walt; skimage.data.chelsea"),
    "coffee": (data.coffee, "CC0 by the photographer, Rachel Michetti; skimage.data.coffee"),
}

JPEG_QUALITY = 20
BLUR_SIGMA = 2.0
NOISE_SIGMA = 12.0


def distortions(img: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    blur = cv2.GaussianBlur(img, (0, 0), BLUR_SIGMA, borderType=cv2.BORDER_REFLECT)
    rng = np.random.default_rng(seed)
    noisy = np.clip(np.rint(img + rng.normal(0.0, NOISE_SIGMA, img.shape)), 0, 255).astype(np.uint8)
    return {"blur": blur, "noise": noisy}


def main() -> None:
    rows = []
    for folder in ("reference", "jpeg", "blur", "noise"):
        (OUT / folder).mkdir(parents=True, exist_ok=True)
    for seed, (name, (loader, _)) in enumerate(sorted(SOURCES.items())):
        img = np.ascontiguousarray(loader())
        Image.fromarray(img).save(OUT / "reference" / f"{name}.png", optimize=True)
        Image.fromarray(img).save(OUT / "jpeg" / f"{name}.jpg", quality=JPEG_QUALITY)
        rows.append((f"{name}.png", f"jpeg/{name}.jpg"))
        for kind, out in distortions(img, seed).items():
            Image.fromarray(out).save(OUT / kind / f"{name}.png", optimize=True)
            rows.append((f"{name}.png", f"{kind}/{name}.png"))
    with open(OUT / "pairs.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["reference", "distorted"])
        writer.writerows(sorted(rows, key=lambda r: r[1]))
    lines = [
        "# Sample images",
        "",
        "Made by `python data/make_samples.py` from photographs bundled with scikit-image.",
        "",
        "| image | size | licence |",
        "| --- | --- | --- |",
    ]
    for name, (loader, licence) in sorted(SOURCES.items()):
        shape = loader().shape
        lines.append(f"| `{name}` | {shape[1]}×{shape[0]}{'' if len(shape) == 2 else ' RGB'} | {licence} |")
    lines += [
        "",
        "Folders:",
        "",
        "- `reference/`: the originals, as PNG.",
        f"- `jpeg/`: JPEG at quality {JPEG_QUALITY} (Pillow), stored as `.jpg`.",
        f"- `blur/`: Gaussian blur, σ = {BLUR_SIGMA} (OpenCV, reflected edges).",
        f"- `noise/`: additive Gaussian noise, σ = {NOISE_SIGMA} grey levels, seeded, rounded and clipped.",
        "- `pairs.csv`: every (reference, distorted) pair; reference paths are relative to",
        "  `reference/`, distorted paths to this folder.",
        "",
    ]
    (OUT / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()

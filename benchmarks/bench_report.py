"""Size on disk and build time of an ``iqa report``, and the screenshot in docs/.

Makes N reference images (256×256 crops of the bundled sample photographs, flipped and
shifted so that no two are alike) and three methods (JPEG quality 30, a Gaussian blur,
Gaussian noise), compares them with ``iqa.compare`` (PSNR and SSIM; the scoring is not
timed), then times ``iqa.report`` and measures the report folder. Only iqa is timed (there is
no peer): ``--rounds`` builds of the same report (``overwrite=True``), the first one included
(no untimed warm-up: a user's one ``iqa report`` pays its first-use costs, such as importing
matplotlib, and the spread shows them), with the median and spread (min–max) of the build
time printed. With ``--screenshot`` the report is opened in headless Chromium and the top of
the page saved as a PNG.

    python benchmarks/bench_report.py --images 1000 [--rounds 3]
    python benchmarks/bench_report.py --images 40 --screenshot docs/report.png
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import interleaved, machine_line, spread  # noqa: E402


def make_methods(root: Path, n: int, size: int = 256, seed: int = 0) -> dict[str, Path]:
    """Reference crops and three methods' outputs, as PNG (lossless: the method's own
    damage is the only one)."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((ROOT / "data/samples/reference").glob("*.png"))]
    folders = {k: root / k for k in ("reference", "jpeg", "blur", "noise")}
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo = photos[i % len(photos)]
        y = int(rng.integers(0, photo.shape[0] - size + 1))
        x = int(rng.integers(0, photo.shape[1] - size + 1))
        crop = photo[y:y + size, x:x + size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.ascontiguousarray(np.rot90(crop, int(rng.integers(0, 4))))
        name = f"img{i:05d}.png"
        ref = Image.fromarray(crop)
        ref.save(folders["reference"] / name)
        tmp = root / "q.jpg"
        ref.save(tmp, quality=int(rng.integers(20, 45)))
        with Image.open(tmp) as im:
            im.convert("RGB").save(folders["jpeg"] / name)
        ref.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.8, 1.6)))).save(folders["blur"] / name)
        noisy = np.clip(crop + rng.normal(0, rng.uniform(4, 10), crop.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folders["noise"] / name)
    return folders


def folder_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def screenshot(index: Path, png: Path, width: int = 1200, height: int = 1350) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="iqa-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    os.environ.setdefault("SE_OFFLINE", "true")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(index.resolve().as_uri())
        raw = png.with_suffix(".full.png")
        driver.save_screenshot(str(raw))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    from PIL import Image

    # A palette PNG of the page keeps the file small (text and flat colours).
    with Image.open(raw) as im:
        im.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)
    raw.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256, help="side of the generated images")
    ap.add_argument("--gallery-size", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2, help="scoring threads (not timed)")
    ap.add_argument("--rounds", type=int, default=3, help="timed builds of the report (median and spread are printed)")
    ap.add_argument("--work", type=Path, default=None,
                    help="working folder, kept (default: a temporary one, removed); an earlier run's images "
                    "and comparison there are reused")
    ap.add_argument("--screenshot", type=Path, default=None, help="save a screenshot of the report here")
    args = ap.parse_args()

    import iqa

    work = args.work or Path(tempfile.mkdtemp(prefix="iqa-bench-report-"))
    try:
        images = work / "images"
        if len(list((images / "noise").glob("*.png"))) == args.images and (work / "compare" / "summary.json").is_file():
            # --work of an earlier run with as many images: only the report is made again.
            folders, scoring = {}, float("nan")
        else:
            folders = make_methods(images, args.images, args.size)
            t = time.perf_counter()
            iqa.compare(folders["reference"], {k: folders[k] for k in ("jpeg", "blur", "noise")},
                        output=work / "compare", metrics=["psnr", "ssim"], workers=args.workers, overwrite=True)
            scoring = time.perf_counter() - t
        times, outs = interleaved({"report": lambda: iqa.report(
            work / "compare", work / "report", gallery_size=args.gallery_size, overwrite=True,
            title=f"{args.images} images: jpeg, blur and noise")}, args.rounds, warmup=False)
        index = outs["report"]
        total, count = folder_size(work / "report")
        page = index.stat().st_size
        print(machine_line())
        print(f"images: {args.images} ({args.size}x{args.size}), 3 methods, psnr+ssim, galleries of "
              f"{args.gallery_size}; compare (scoring, not part of the report) {scoring:.1f} s")
        print(f"report: built in median {spread(times['report'], 1.0, 's')} over {args.rounds} builds (iqa only, the "
              f"first one included); {total / 1e6:.2f} MB in {count} files "
              f"(index.html {page / 1e6:.2f} MB)")
        for sub in ("plots", "thumbs", "maps", "assets"):
            size, n = folder_size(work / "report" / sub)
            print(f"  {sub}/: {size / 1e6:.2f} MB in {n} files")
        if args.screenshot:
            screenshot(index, args.screenshot)
            print(f"screenshot: {args.screenshot} ({args.screenshot.stat().st_size / 1e3:.0f} kB)")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

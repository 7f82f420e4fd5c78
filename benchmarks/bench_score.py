"""``iqa score`` against a plain Pillow + scikit-image loop, and its memory in the number of pairs.

Generates PAIRS pairs of 512×512 RGB PNGs (smooth random scenes with texture; the distorted
image is blurred and noisy) into a temporary folder, then times, in one run so that both
sides see the same machine load:

* baseline: a straightforward loop: Pillow decoding, ``skimage.metrics.peak_signal_noise_ratio``
  and ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  channel_axis=-1, data_range=255)`` (Wang's settings), one pair after the other;
* iqa: the real command ``iqa score REF DIST -m psnr -m ssim -o scores.csv`` in a subprocess,
  so the time includes starting Python, importing, pairing the folders and writing the CSV.

The loop runs as a script in a subprocess too (``python bench_score.py --loop REF DIST``), as
a user would run it: its time includes starting Python, its imports and (with ``--lpips``)
building the ``lpips`` model. The time the loop itself took inside that process is printed
beside it.

The pairs are split into blocks (default 5) and the two sides alternate block by block
(which side goes first alternates too), so that a change in the machine's load during the
run hits both sides alike; each ``iqa score`` block pays its own process start-up. It prints
the summed wall-clock times, their ratio (baseline / iqa), the CPU time of each side (the
work done, whatever the load), the largest difference between the two sides' numbers, and
the peak resident memory of ``iqa score`` for a growing number of pairs (each measured in a
fresh process): it should stay flat.

With ``--lpips`` both sides add LPIPS-alex: the loop calls the ``lpips`` package (0.1.4,
``normalize=True`` on [0, 1] tensors, one pair at a time, under ``torch.no_grad()``), iqa adds
``-m lpips``; both get the same seeded random AlexNet trunk (``--weights alexnet=FILE`` for
iqa; pretrained weights cannot be downloaded on the benchmark machine, and the cost does not
depend on the values) and the ``lpips`` package's linear heads.

Usage: ``python benchmarks/bench_score.py [--pairs 500] [--blocks 5] [--workers N] [--lpips]`` (``--workers``
as for ``iqa score``: threads beside the main one)
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def make_pairs(root: Path, n: int, size: int = 512, seed: int = 0) -> tuple[Path, Path]:
    import cv2
    from PIL import Image

    ref_dir, dist_dir = root / "reference", root / "distorted"
    ref_dir.mkdir(parents=True)
    dist_dir.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        low = rng.uniform(0, 255, (size // 32, size // 32, 3)).astype(np.float32)
        scene = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
        texture = rng.normal(0, 18, (size, size, 3)).astype(np.float32)
        ref = np.clip(scene + cv2.GaussianBlur(texture, (0, 0), 1.0), 0, 255)
        dist = cv2.GaussianBlur(ref, (0, 0), 1.2) + rng.normal(0, 6, ref.shape).astype(np.float32)
        name = f"{i:04d}.png"
        Image.fromarray(np.rint(ref).astype(np.uint8)).save(ref_dir / name, compress_level=1)
        Image.fromarray(np.clip(np.rint(dist), 0, 255).astype(np.uint8)).save(dist_dir / name, compress_level=1)
    return ref_dir, dist_dir


def lpips_model(trunk: Path) -> object:
    """The ``lpips`` package's LPIPS-alex with the AlexNet trunk of ``trunk`` (torchvision's
    ``features.*`` layout) and its own linear heads."""
    import re

    import lpips
    import torch

    features = torch.load(trunk, weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its torchvision pretrained= call
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    model.net.load_state_dict({k: features["features." + re.match(r"slice\d+\.(.*)", k).group(1)]
                               for k in model.net.state_dict()})
    return model


def baseline(ref_dir: Path, dist_dir: Path, lp: object = None) -> tuple[float, float, dict[str, tuple]]:
    """Wall-clock and CPU seconds of the plain loop, and its numbers (with LPIPS by the
    ``lpips`` package when ``lp`` is its model)."""
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if lp is not None:
        import torch
    out = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for ref_path in sorted(ref_dir.iterdir()):
        with Image.open(ref_path) as im_a, Image.open(dist_dir / ref_path.name) as im_b:
            a, b = np.asarray(im_a), np.asarray(im_b)
        p = peak_signal_noise_ratio(a, b, data_range=255)
        s = structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1, data_range=255
        )
        out[ref_path.name] = (float(p), float(s))
        if lp is not None:
            x, y = (torch.from_numpy(v).permute(2, 0, 1)[None].float() / 255 for v in (a, b))
            with torch.no_grad():
                out[ref_path.name] += (float(lp(x, y, normalize=True)),)
    return time.perf_counter() - t0, time.process_time() - c0, out


def timed_process(cmd: list[str], what: str) -> tuple[float, float, str]:
    """Wall-clock and CPU seconds (all threads, start included) of one process, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stdout


def run_baseline(ref_dir: Path, dist_dir: Path, trunk: Path | None) -> tuple[float, float, float, dict[str, tuple]]:
    """The loop as a script in a fresh process: wall-clock and CPU seconds of the process
    (start and imports included), the loop's own wall-clock seconds, and its numbers."""
    import json

    cmd = [sys.executable, __file__, "--loop", str(ref_dir), str(dist_dir)]
    if trunk is not None:
        cmd += ["--trunk", str(trunk)]
    elapsed, cpu, stdout = timed_process(cmd, "the loop")
    report = json.loads(stdout)
    return elapsed, cpu, report["loop_wall"], {k: tuple(v) for k, v in report["numbers"].items()}


def loop_main(ref_dir: str, dist_dir: str, trunk: str | None) -> None:
    """``--loop``: what a user's script does, printed as JSON for :func:`run_baseline`."""
    import json

    lp = lpips_model(Path(trunk)) if trunk else None
    wall, _, numbers = baseline(Path(ref_dir), Path(dist_dir), lp)
    print(json.dumps({"loop_wall": wall, "numbers": numbers}))


def iqa_exe() -> str:
    return shutil.which("iqa") or str(Path(sys.executable).with_name("iqa"))


def score_cmd(ref_dir: Path, dist_dir: Path, output: Path, workers: int | None, extra: list[str]) -> list[str]:
    cmd = [iqa_exe(), "score", str(ref_dir), str(dist_dir), "-m", "psnr", "-m", "ssim", *extra,
           "-o", str(output), "--overwrite"]
    if workers is not None:  # 0 is meaningful: everything in the main thread
        cmd += ["--workers", str(workers)]
    return cmd


def run_iqa(ref_dir: Path, dist_dir: Path, output: Path, workers: int | None, extra: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads) of one ``iqa score`` process."""
    elapsed, cpu, _ = timed_process(score_cmd(ref_dir, dist_dir, output, workers, extra), "iqa score")
    return elapsed, cpu


def peak_rss_mib(ref_dir: Path, dist_dir: Path, output: Path, workers: int | None, extra: list[str]) -> float:
    """Peak RSS of one ``iqa score`` run, measured by a fresh wrapper process."""
    cmd = score_cmd(ref_dir, dist_dir, output, workers, extra)
    probe = (
        "import resource, subprocess, sys; "
        "r = subprocess.run(sys.argv[1:], capture_output=True); "
        "sys.exit(r.returncode) if r.returncode else "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    proc = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    return int(proc.stdout.strip()) / 1024.0  # ru_maxrss is in KiB on Linux


def link_subset(src_ref: Path, src_dist: Path, root: Path, names: list[str]) -> tuple[Path, Path]:
    """Folders of symbolic links to some of the pairs."""
    ref, dist = root / "reference", root / "distorted"
    ref.mkdir(parents=True)
    dist.mkdir(parents=True)
    for name in names:
        os.symlink(src_ref / name, ref / name)
        os.symlink(src_dist / name, dist / name)
    return ref, dist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--blocks", type=int, default=5, help="alternate the two sides over this many blocks")
    parser.add_argument("--workers", type=int, default=None,
                        help="iqa score --workers: threads beside the main one, 0 = the main thread only "
                        "(default: its own)")
    parser.add_argument("--lpips", action="store_true",
                        help="add LPIPS-alex: the lpips package in the loop, -m lpips for iqa (same AlexNet trunk)")
    parser.add_argument("--loop", nargs=2, metavar=("REF", "DIST"), help=argparse.SUPPRESS)
    parser.add_argument("--trunk", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop:
        loop_main(*args.loop, args.trunk)
        return
    import os as _os
    import sys as _sys

    _sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
    from machine import machine_line, median, spread

    print(machine_line())

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        ref_dir, dist_dir = make_pairs(root / "data", args.pairs)
        print(f"generated {args.pairs} pairs of 512x512 RGB PNG in {time.perf_counter() - t0:.1f} s")
        print(f"cores: {os.cpu_count()}; load average before timing: {os.getloadavg()[0]:.2f}")

        extra: list[str] = []
        trunk = None
        if args.lpips:
            import torch
            import torchvision.models as tvm

            torch.manual_seed(0)  # a random trunk: its cost does not depend on its values
            trunk = root / "alexnet-random.pth"
            torch.save({k: v for k, v in tvm.alexnet(weights=None).state_dict().items() if k.startswith("features.")},
                       trunk)
            extra = ["-m", "lpips", "--weights", f"alexnet={trunk}"]
        names = sorted(p.name for p in ref_dir.iterdir())
        blocks = [names[i :: args.blocks] for i in range(args.blocks)]
        t_iqa = c_iqa = t_base = c_base = t_loop = 0.0
        per_block: dict[str, list[float]] = {"iqa": [], "loop": []}
        base: dict[str, tuple[float, float]] = {}
        rows: list[dict[str, str]] = []
        for k, block in enumerate(blocks):
            r, d = link_subset(ref_dir, dist_dir, root / f"block{k}", block)
            output = root / f"scores{k}.csv"
            for side in ((0, 1) if k % 2 == 0 else (1, 0)):
                if side == 0:
                    wall, cpu = run_iqa(r, d, output, args.workers, extra)
                    t_iqa, c_iqa = t_iqa + wall, c_iqa + cpu
                    per_block["iqa"].append(wall)
                else:
                    wall, cpu, loop_wall, numbers = run_baseline(r, d, trunk)
                    t_base, c_base, t_loop = t_base + wall, c_base + cpu, t_loop + loop_wall
                    per_block["loop"].append(wall)
                    base.update(numbers)
            with open(output, newline="") as fh:
                rows += list(csv.DictReader(fh))
        if len(rows) != args.pairs or any(r["error"] for r in rows):
            raise SystemExit("iqa score did not score every pair")
        d_psnr = max(abs(float(r["psnr"]) - base[r["reference"]][0]) for r in rows)
        d_ssim = max(abs(float(r["ssim"]) - base[r["reference"]][1]) for r in rows)

        print(f"baseline (Pillow + skimage{' + lpips' if trunk else ''} loop, a script in a subprocess): "
              f"{t_base:8.2f} s wall  {c_base:8.2f} s CPU  ({args.pairs / t_base:6.1f} pairs/s; "
              f"the loop alone {t_loop:.2f} s, its {args.blocks} process starts {t_base - t_loop:.2f} s)")
        print(f"iqa score (CLI in a subprocess) : {t_iqa:8.2f} s wall  {c_iqa:8.2f} s CPU  ({args.pairs / t_iqa:6.1f} pairs/s)")
        print(f"ratio baseline / iqa score      : {t_base / t_iqa:8.2f}x wall-clock, {c_base / c_iqa:.2f}x CPU time")
        med = {side: median(v) for side, v in per_block.items()}
        print(f"per block of ~{args.pairs // args.blocks} pairs (the sides alternating, {args.blocks} blocks): "
              + ", ".join(f"{side} median {spread(v, 1.0, 's', '.2f')}" for side, v in per_block.items())
              + f"; ratio of medians {med['loop'] / med['iqa']:.2f}x")
        print(f"load average after timing: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} cores)")
        d_lpips = max((abs(float(r["lpips"]) - base[r["reference"]][2]) for r in rows), default=0.0) if trunk else None
        print(f"largest difference: psnr {d_psnr:.2e} dB, ssim {d_ssim:.2e}"
              + (f", lpips {d_lpips:.2e}" if trunk else ""))

        print("peak resident memory of iqa score:")
        for n in sorted({max(1, args.pairs // 10), max(1, args.pairs // 2), args.pairs}):
            r, d = link_subset(ref_dir, dist_dir, root / f"mem{n}", names[:n])
            mib = peak_rss_mib(r, d, root / f"mem{n}.csv", args.workers, extra)
            print(f"  {n:5d} pairs: {mib:7.1f} MiB")


if __name__ == "__main__":
    main()

"""FID throughput: folder → statistics against pytorch-fid, and the 2048-d distance per route.

    python benchmarks/bench_fid.py [--images 100] [--size 256] [--weights PATH]

Both sides read the same PNG folder and run the same weights (the registry's file when
``--weights`` is given, else a seeded random state dict in pytorch-fid's layout: the network's
cost does not depend on its weights). pytorch-fid runs as its command line does by default:
``--batch-size 50``, ``--num-workers min(8, CPUs)``, ``--dims 2048``, on the CPU. iqa runs
with its defaults (pytorch-fid's own operations, 4 images per network call, separable max
pools: identical features) and with ``fast`` (channels-last, folded batch norm). Timings
on a shared machine are noisy; each line prints a ratio measured in the same run, so both
sides see the same load. Ratios > 1 mean iqa is faster.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def make_images(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    files = []
    for i in range(n):
        img = np.zeros((size, size, 3))
        for _ in range(3):
            cx, cy, r = rng.uniform(0, 1, 3)
            img += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.1 + r) ** 2)[:, :, None] * rng.uniform(0, 255, 3)
        img = np.clip(img / max(img.max(), 1) * 255 + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.png"
        Image.fromarray(img).save(path)
        files.append(path)
    return files


def random_state_dict(seed: int = 0) -> dict:
    import torch
    from torch import nn

    from iqa.features.inception import FIDInceptionV3

    torch.manual_seed(seed)
    model = FIDInceptionV3()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, (2.0 / m.weight[0].numel()) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2)
    return model.state_dict()


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--weights", default=None, help="pytorch-fid's .pth (default: seeded random weights)")
    ap.add_argument("--skip-distance", action="store_true")
    args = ap.parse_args()
    import os as _os
    import sys as _sys

    _sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
    from machine import machine_line

    print(machine_line())

    import torch
    import pytorch_fid.inception as pfi
    from pytorch_fid import fid_score

    from iqa.distribution.frechet import ROUTES, frechet_distance
    from iqa.features.pipeline import InceptionFeatures

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpus} CPUs; "
          f"{args.images} PNG images {args.size}×{args.size}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.weights:
            weights = Path(args.weights)
        else:
            weights = tmp / "inception-random.pth"
            torch.save(random_state_dict(), weights)
        state = torch.load(weights, weights_only=True)
        folder = tmp / "images"
        folder.mkdir()
        files = make_images(folder, args.images, args.size)

        # pytorch-fid at its command line's defaults (see pytorch_fid.fid_score.main).
        pfi.load_state_dict_from_url = lambda *a, **k: state
        model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to("cpu")
        workers = min(cpus, 8)

        def theirs():
            devnull = open(os.devnull, "w")
            stderr, sys.stderr = sys.stderr, devnull  # its tqdm bar
            try:
                return fid_score.calculate_activation_statistics(sorted(folder.glob("*.png")), model, 50, 2048, "cpu", workers)
            finally:
                sys.stderr = stderr
                devnull.close()

        variants = {
            "iqa (default)": InceptionFeatures(weights=weights, device="cpu"),
            "iqa --fast": InceptionFeatures(weights=weights, device="cpu", fast=True),
        }
        theirs()  # warm-up: thread pools, allocator
        for ext in variants.values():
            ext.statistics(files[:4])  # warm-up and weights loading
        # Interleaved rounds (the order reversed every other round): the machine's load
        # drifts, and every side should see the same drift. Medians and spreads are printed.
        times: dict[str, list[float]] = {name: [] for name in ["pytorch-fid", *variants]}
        results: dict = {}
        for r in range(args.repeats):
            sides = [("pytorch-fid", theirs)] + [(name, ext.statistics) for name, ext in variants.items()]
            for name, fn in (sides if r % 2 == 0 else sides[::-1]):
                t, results[name] = best_of((lambda fn=fn: fn(folder)) if name != "pytorch-fid" else fn, 1)
                times[name].append(t)
        mu_ref, sigma_ref = results["pytorch-fid"]
        t_ref = float(np.median(times["pytorch-fid"]))

        def spread(name: str) -> str:
            return f"median {np.median(times[name]):.2f} s ({min(times[name]):.2f}–{max(times[name]):.2f})"

        print(f"pytorch-fid (batch 50, {workers} workers): {args.images / t_ref:6.2f} images/s  "
              f"{spread('pytorch-fid')} over {args.repeats} rounds")
        for name in variants:
            t = float(np.median(times[name]))
            err = np.linalg.norm(results[name].mu - mu_ref) / np.linalg.norm(mu_ref)
            err_s = np.linalg.norm(results[name].sigma - sigma_ref) / np.linalg.norm(sigma_ref)
            print(f"{name:24s}: {args.images / t:6.2f} images/s  {spread(name)}  ratio of medians {t_ref / t:5.2f}×  "
                  f"(vs pytorch-fid: ‖Δμ‖/‖μ‖ {err:.1e}, ‖ΔΣ‖_F/‖Σ‖_F {err_s:.1e})")

    if args.skip_distance:
        return
    rng = np.random.default_rng(0)
    d = 2048
    a, b = rng.standard_normal((d, d)) / np.sqrt(d), rng.standard_normal((d, d)) / np.sqrt(d)
    s1, s2 = a @ a.T + 0.05 * np.eye(d), b @ b.T + 0.05 * np.eye(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pytorch-fid's sqrtm(disp=False)
        t_ref, v_ref = best_of(lambda: fid_score.calculate_frechet_distance(mu1, s1, mu2, s2), 1)
    print(f"2048-d distance, pytorch-fid calculate_frechet_distance: {t_ref:6.2f} s")
    for route in ROUTES:
        t, v = best_of(lambda: frechet_distance(mu1, s1, mu2, s2, route=route), 1)
        print(f"2048-d distance, route {route:5s}: {t:6.2f} s  ratio {t_ref / t:5.2f}×  "
              f"(value vs pytorch-fid: {abs(v - v_ref) / abs(v_ref):.1e} relative)")


if __name__ == "__main__":
    main()

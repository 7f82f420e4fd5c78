"""FID throughput: folder → statistics against pytorch-fid, and the 2048-d distance per route.

    python benchmarks/bench_fid.py [--images 100] [--size 256] [--rounds 3] [--weights PATH] [--skip-distance]

Both sides read the same PNG folder and run the same weights (the registry's file when
``--weights`` is given, else a seeded random state dict in pytorch-fid's layout: the network's
cost does not depend on its weights). pytorch-fid runs as its command line does by default:
``--batch-size 50``, ``--num-workers min(8, CPUs)``, ``--dims 2048``, on the CPU. iqa runs
with its defaults (pytorch-fid's own operations, 4 images per network call, separable max
pools: identical features) and with ``fast`` (channels-last, folded batch norm), each through
``InceptionFeatures(...).statistics(folder)``, in the same process as pytorch-fid's
``calculate_activation_statistics``.

Then the 2048-d Fréchet distance between two random covariances: pytorch-fid's
``calculate_frechet_distance`` against ``iqa.distribution.frechet.frechet_distance`` by
each route.

Every side runs once untimed (thread pools, allocator, page cache), then ``--rounds``
interleaved rounds (each round runs every side in turn, the order reversed every other
round, so that a drift in the machine's load hits all sides alike). Each line prints the
median and the spread (min–max) over the rounds and the ratio of the medians, pytorch-fid /
iqa (> 1: iqa is faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds (median and spread are printed)")
    ap.add_argument("--weights", default=None, help="pytorch-fid's .pth (default: seeded random weights)")
    ap.add_argument("--skip-distance", action="store_true")
    args = ap.parse_args()
    import os as _os
    import sys as _sys

    _sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
    from machine import interleaved, machine_line, median, spread

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
        make_images(folder, args.images, args.size)

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
        sides = {"pytorch-fid": theirs, **{name: (lambda ext=ext: ext.statistics(folder)) for name, ext in variants.items()}}
        times, results = interleaved(sides, args.rounds)
        mu_ref, sigma_ref = results["pytorch-fid"]
        t_ref = median(times["pytorch-fid"])
        print(f"pytorch-fid (batch 50, {workers} workers): {args.images / t_ref:6.2f} images/s  "
              f"median {spread(times['pytorch-fid'], 1.0, 's')} over {args.rounds} rounds")
        for name in variants:
            t = median(times[name])
            err = np.linalg.norm(results[name].mu - mu_ref) / np.linalg.norm(mu_ref)
            err_s = np.linalg.norm(results[name].sigma - sigma_ref) / np.linalg.norm(sigma_ref)
            print(f"{name:24s}: {args.images / t:6.2f} images/s  median {spread(times[name], 1.0, 's')}  "
                  f"ratio of medians {t_ref / t:5.2f}×  "
                  f"(vs pytorch-fid: ‖Δμ‖/‖μ‖ {err:.1e}, ‖ΔΣ‖_F/‖Σ‖_F {err_s:.1e})")

    if args.skip_distance:
        return
    rng = np.random.default_rng(0)
    d = 2048
    a, b = rng.standard_normal((d, d)) / np.sqrt(d), rng.standard_normal((d, d)) / np.sqrt(d)
    s1, s2 = a @ a.T + 0.05 * np.eye(d), b @ b.T + 0.05 * np.eye(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    sides = {"pytorch-fid": lambda: fid_score.calculate_frechet_distance(mu1, s1, mu2, s2),
             **{route: (lambda route=route: frechet_distance(mu1, s1, mu2, s2, route=route)) for route in ROUTES}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pytorch-fid's sqrtm(disp=False)
        times, values = interleaved(sides, args.rounds)
    t_ref, v_ref = median(times["pytorch-fid"]), values["pytorch-fid"]
    print(f"2048-d distance, pytorch-fid calculate_frechet_distance: median {spread(times['pytorch-fid'], 1.0, 's')}")
    for route in ROUTES:
        print(f"2048-d distance, route {route:5s}: median {spread(times[route], 1.0, 's')}  "
              f"ratio of medians {t_ref / median(times[route]):5.2f}×  "
              f"(value vs pytorch-fid: {abs(values[route] - v_ref) / abs(v_ref):.1e} relative)")


if __name__ == "__main__":
    main()

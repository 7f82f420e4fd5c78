"""CMMD: float32 (the authors' formula as written) against iqa's float64, and CLIP's speed.

google-research ``cmmd/distance.py`` computes ``1000 · (mean Kxx + mean Kyy − 2 mean Kxy)``
in float32 (JAX's default). This script evaluates the same expression, term for term, in
NumPy float32 (pairwise summation in ``np.mean``) and torch float32 on synthetic unit
vectors shaped like CLIP ViT-L/14@336px embeddings (768-d, mean pairwise cosine ~0.5), and
prints the difference to :func:`iqa.cmmd_features` (float64). JAX is not needed: the
differences come from rounding means of values within 2 % of 1 to float32, which any float32
reduction does; their size and sign depend on the summation order.

With ``--speed``, also the forward speed of iqa's CLIP image towers of the real sizes
(ViT-L/14@336px and ViT-L/14 at 224 px, randomly initialised: speed does not depend on the
values), ``--batch`` images a call (default 4), on the CPU, under ``torch.inference_mode()``.
Only iqa is timed (no peer runs here): each tower runs once untimed, then ``--rounds``
interleaved rounds (the two towers in turn, the order reversed every other round, so that a
drift in the machine's load hits both alike); it prints images per second at the median and
the median and spread (min–max) of the seconds per call.

Usage: ``python benchmarks/bench_cmmd.py [--sizes 1000,5000] [--dims 768] [--speed [--batch 4] [--rounds 3]]``
"""

from __future__ import annotations

import argparse

import numpy as np


def authors_float32_numpy(x: np.ndarray, y: np.ndarray) -> float:
    g = np.float32(1 / 200)
    x, y = x.astype(np.float32), y.astype(np.float32)
    xs, ys = np.diag(x @ x.T), np.diag(y @ y.T)
    kxx = np.mean(np.exp(-g * (-2 * (x @ x.T) + xs[:, None] + xs[None, :])))
    kxy = np.mean(np.exp(-g * (-2 * (x @ y.T) + xs[:, None] + ys[None, :])))
    kyy = np.mean(np.exp(-g * (-2 * (y @ y.T) + ys[:, None] + ys[None, :])))
    return float(1000 * (kxx + kyy - 2 * kxy))


def authors_float32_torch(x: np.ndarray, y: np.ndarray) -> float:
    import torch

    a, b = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    sa, sb = (a @ a.T).diag(), (b @ b.T).diag()

    def k(p, q, sp, sq):
        return torch.exp(-(1 / 200) * (-2 * (p @ q.T) + sp[:, None] + sq[None, :])).mean()

    return float(1000 * (k(a, a, sa, sa) + k(b, b, sb, sb) - 2 * k(a, b, sa, sb)))


def main() -> None:
    from iqa import cmmd_features

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--dims", type=int, default=768)
    parser.add_argument("--speed", action="store_true", help="also time the real-size CLIP towers")
    parser.add_argument("--batch", type=int, default=4, help="images per call of the towers (--speed)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds of --speed (median and spread)")
    args = parser.parse_args()
    import os as _os
    import sys as _sys

    _sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
    from machine import machine_line

    print(machine_line())
    rng = np.random.default_rng(0)
    centre = rng.normal(size=args.dims)
    for n in map(int, args.sizes.split(",")):
        for shift in (0.2, 1.0):
            def embed(seed: int, sh: float) -> np.ndarray:
                r = np.random.default_rng(seed)
                x = centre + r.normal(size=(n, args.dims)) + sh * r.normal(size=args.dims)
                return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

            x, y = embed(1, 0.0), embed(2, shift)
            ref = cmmd_features(x, y)
            row = f"n = m = {n:6d}: float64 {ref:.6f}"
            for name, f in (("numpy f32", authors_float32_numpy), ("torch f32", authors_float32_torch)):
                v = f(x, y)
                row += f" | {name} {v:.6f} ({v - ref:+.1e}, rel {(v - ref) / ref:+.1e})"
            print(row)
    if args.speed:
        speed(args.batch, args.rounds)


def speed(batch: int, rounds: int) -> None:
    import os

    import torch

    from iqa.features.clip import ARCHS, ClipVisual
    from machine import interleaved, median, spread  # on sys.path since main()

    torch.manual_seed(0)
    sides = {}
    for name in ("vitl14", "vitl14-336"):
        model = ClipVisual(ARCHS[name]).eval()
        r = ARCHS[name].resolution
        x = torch.randn(batch, 3, r, r)
        sides[f"clip-{name}"] = lambda model=model, x=x: model(x)
    with torch.inference_mode():
        times, _ = interleaved(sides, rounds)
    for name, t in times.items():
        print(f"{name}: {batch / median(t):.2f} images/s at the median, median {spread(t, 1.0, 's')} a call of "
              f"{batch} (iqa only, {rounds} interleaved rounds, {torch.get_num_threads()} threads, "
              f"load average {os.getloadavg()[0]:.1f})")

if __name__ == "__main__":
    main()

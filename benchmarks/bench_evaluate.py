"""Generative-model evaluation: PRDC against prdc, and the one-pass gain of ``iqa evaluate``.

    python benchmarks/bench_evaluate.py [--features 10000] [--dims 1024] [--images 40] [--rounds 3] [--skip-one-pass]

1. PRDC on ``N × N`` random ``dims``-d float32 features (default 10,000 × 10,000 in 1024-d,
   DINOv2 ViT-L/14's width): ``iqa.prdc_features(nearest_k=5)`` (exact float64 blocks,
   bounded memory) against ``prdc.compute_prdc(nearest_k=5)`` (0.2: sklearn's full float32
   matrices, 3 × N² × 4 bytes), in this process, and the values compared.
2. The one-pass gain, process starts included on both sides: ``iqa evaluate -m
   fid,fd,precision,recall --extractor dinov2-vits14`` (each image decoded once, Inception and
   DINOv2 each run once) against running pytorch-fid's command line at its defaults
   (``--device cpu``, batch 50, ``min(8, CPUs)`` loader workers, 2048-d) and then a separate
   DINOv2 extraction (``iqa stats --keep-features`` of each folder, as a user would otherwise
   do) plus ``iqa evaluate -m fd,precision,recall`` on the saved features. Weights are
   generated in the official layouts (a network's cost does not depend on its weights).
   ViT-L/14 throughput (iqa's network, images per second at 224 px, batch 8) is reported
   separately (iqa only).

Every side runs once untimed (thread pools, page cache, iqa's record of the weights' digests:
what any run after the first finds), then ``--rounds`` interleaved rounds (each round runs
every side in turn, the order reversed every other round, so that a drift in the machine's
load hits all sides alike). Each line prints the median and spread (min–max) over the rounds
and the ratio of the medians, peer / iqa (> 1: iqa is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from machine import interleaved, machine_line, median, spread  # noqa: E402


def bench_prdc(n: int, dims: int, rounds: int) -> None:
    import iqa
    from prdc import compute_prdc

    rng = np.random.default_rng(0)
    real = rng.normal(size=(n, dims)).astype(np.float32)
    gen = (rng.normal(size=(n, dims)) * 1.01 + 0.01).astype(np.float32)  # close to real: values well inside (0, 1)

    def theirs() -> dict:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints the sizes
            return compute_prdc(real, gen, nearest_k=5)

    times, outs = interleaved({"iqa": lambda: iqa.prdc_features(real, gen, nearest_k=5), "prdc 0.2": theirs}, rounds)
    ours, ref = outs["iqa"], outs["prdc 0.2"]
    diff = max(abs(getattr(ours, k) - float(ref[k])) for k in ("precision", "recall", "density", "coverage"))
    print(f"PRDC {n} x {n}, {dims}-d, k=5, {rounds} rounds: iqa median {spread(times['iqa'], 1.0, 's')}, prdc 0.2 "
          f"median {spread(times['prdc 0.2'], 1.0, 's')}, ratio of medians "
          f"{median(times['prdc 0.2']) / median(times['iqa']):.2f}x; largest value difference {diff:.2g}")
    print(f"  iqa: {ours.as_dict()}")
    print(f"  memory: prdc holds 3 full float32 matrices ({3 * n * n * 4 / 2**20:.0f} MiB); iqa blocks of 2048^2 "
          "float64 (~100 MiB) at any n")


def bench_one_pass(images: int, rounds: int) -> None:
    import torch

    import dinov2_weights as dw
    import fid_weights as fw

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from PIL import Image

        for name, kind, seed in (("real", "smooth", 1), ("gen", "noisy", 2)):
            (root / name).mkdir()
            for i, img in enumerate(fw.synthetic_images(images, 128, seed, kind)):
                Image.fromarray(img).save(root / name / f"{i:04d}.png")
        sys.path.insert(0, str(HERE))
        from bench_fid import random_state_dict

        inc = root / "inception.pth"
        torch.save(random_state_dict(), inc)
        vits = dw.weights_file(root, "vits14")
        exe = Path(sys.executable).with_name("iqa")
        env = dict(os.environ)

        def run(cmd: list[str]) -> None:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if done.returncode:
                sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")

        def one_pass() -> None:
            run([str(exe), "evaluate", str(root / "real"), str(root / "gen"), "-m", "fid,fd,precision,recall",
                 "--extractor", "dinov2-vits14", "--weights", f"inception-fid={inc}",
                 "--weights", f"dinov2-vits14={vits}", "--format", "json"])

        # The separate route: pytorch-fid's command line for FID, then a DINOv2 extraction of
        # both folders (iqa stats) and PRDC/FD on the saved features.
        patch = (
            "import sys, torch, pytorch_fid.inception as pi; sd = torch.load(sys.argv.pop(1));"
            "pi.load_state_dict_from_url = lambda *a, **k: sd;"
            "from pytorch_fid.fid_score import main; sys.argv[0] = 'pytorch_fid'; main()"
        )

        def separate() -> None:
            run([sys.executable, "-W", "ignore", "-c", patch, str(inc), "--device", "cpu",
                 str(root / "real"), str(root / "gen")])
            for name in ("real", "gen"):
                run([str(exe), "stats", str(root / name), "--extractor", "dinov2-vits14", "--keep-features",
                     "--weights", str(vits), "-o", str(root / f"{name}.npz"), "--overwrite"])
            run([str(exe), "evaluate", str(root / "real.npz"), str(root / "gen.npz"), "-m",
                 "fd,precision,recall", "--extractor", "dinov2-vits14"])

        times, _ = interleaved({"iqa evaluate": one_pass, "separate": separate}, rounds)
        print(f"one pass, {images}+{images} images 128 px, FID + FD/precision/recall on dinov2-vits14, {rounds} rounds: "
              f"iqa evaluate median {spread(times['iqa evaluate'], 1.0, 's')}, pytorch-fid (its CLI's defaults, CPU) "
              f"then a separate DINOv2 extraction median {spread(times['separate'], 1.0, 's')}, ratio of medians "
              f"{median(times['separate']) / median(times['iqa evaluate']):.2f}x")

        from iqa.features.dinov2 import ARCHS, DinoV2

        model = DinoV2(ARCHS["vitl14"]).eval()  # random weights: the cost does not depend on them
        x = torch.randn(8, 3, 224, 224)
        with torch.inference_mode():
            times, _ = interleaved({"vitl14": lambda: model(x)}, rounds)
        print(f"ViT-L/14 forward at 224 px on the CPU (iqa only): {8 / median(times['vitl14']):.2f} images/s at the "
              f"median (batch 8; median {spread(times['vitl14'], 1.0, 's')} a call, {rounds} rounds)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", type=int, default=10000)
    ap.add_argument("--dims", type=int, default=1024)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds (median and spread are printed)")
    ap.add_argument("--skip-one-pass", action="store_true")
    args = ap.parse_args()
    print(machine_line())
    bench_prdc(args.features, args.dims, args.rounds)
    if not args.skip_one_pass:
        bench_one_pass(args.images, args.rounds)


if __name__ == "__main__":
    main()

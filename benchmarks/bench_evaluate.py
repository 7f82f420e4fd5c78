"""Generative-model evaluation: PRDC against prdc, and the one-pass gain of ``iqa evaluate``.

    python benchmarks/bench_evaluate.py [--features 10000] [--dims 1024] [--images 40] [--skip-one-pass]

1. PRDC on ``N × N`` random ``dims``-d float32 features (default 10,000 × 10,000 in 1024-d,
   DINOv2 ViT-L/14's width): ``iqa.prdc_features`` (exact float64 blocks, bounded memory)
   against ``prdc.compute_prdc`` (sklearn's full float32 matrices, 3 × N² × 4 bytes), and the
   values compared.
2. The one-pass gain: ``iqa evaluate -m fid,fd,precision,recall --extractor dinov2-vits14``
   (each image decoded once, Inception and DINOv2 each run once) against running
   pytorch-fid's command line and then a separate DINOv2 extraction (iqa's ``stats``, as a
   user would otherwise do) plus PRDC on its features. Weights are generated in the
   official layouts (a network's cost does not depend on its weights). ViT-L/14 throughput
   (images per second at 224 px) is reported separately.

Timings on a shared machine are noisy; every ratio is measured in the same run, so both
sides see the same load. Ratios > 1 mean iqa is faster.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from machine import machine_line  # noqa: E402


def bench_prdc(n: int, dims: int) -> None:
    import iqa
    from prdc import compute_prdc

    rng = np.random.default_rng(0)
    real = rng.normal(size=(n, dims)).astype(np.float32)
    gen = (rng.normal(size=(n, dims)) * 1.01 + 0.01).astype(np.float32)  # close to real: values well inside (0, 1)
    t = time.perf_counter()
    ours = iqa.prdc_features(real, gen, nearest_k=5)
    t_iqa = time.perf_counter() - t
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        ref = compute_prdc(real, gen, nearest_k=5)
    t_ref = time.perf_counter() - t
    diff = max(abs(getattr(ours, k) - float(ref[k])) for k in ("precision", "recall", "density", "coverage"))
    print(f"PRDC {n} x {n}, {dims}-d, k=5: iqa {t_iqa:.2f} s, prdc 0.2 {t_ref:.2f} s, ratio {t_ref / t_iqa:.2f}x; "
          f"largest value difference {diff:.2g}")
    print(f"  iqa: {ours.as_dict()}")
    print(f"  memory: prdc holds 3 full float32 matrices ({3 * n * n * 4 / 2**20:.0f} MiB); iqa blocks of 2048^2 "
          "float64 (~100 MiB) at any n")


def bench_one_pass(images: int) -> None:
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

        t = time.perf_counter()
        subprocess.run([str(exe), "evaluate", str(root / "real"), str(root / "gen"), "-m", "fid,fd,precision,recall",
                        "--extractor", "dinov2-vits14", "--weights", f"inception-fid={inc}",
                        "--weights", f"dinov2-vits14={vits}", "--format", "json"],
                       check=True, capture_output=True, env=env)
        t_iqa = time.perf_counter() - t

        # The separate route: pytorch-fid's command line for FID, then a DINOv2 extraction of
        # both folders (iqa stats) and PRDC/FD on the saved features.
        t = time.perf_counter()
        patch = (
            "import sys, torch, pytorch_fid.inception as pi; sd = torch.load(sys.argv.pop(1));"
            "pi.load_state_dict_from_url = lambda *a, **k: sd;"
            "from pytorch_fid.fid_score import main; sys.argv[0] = 'pytorch_fid'; main()"
        )
        subprocess.run([sys.executable, "-W", "ignore", "-c", patch, str(inc), "--device", "cpu",
                        str(root / "real"), str(root / "gen")], check=True, capture_output=True, env=env)
        for name in ("real", "gen"):
            subprocess.run([str(exe), "stats", str(root / name), "--extractor", "dinov2-vits14", "--keep-features",
                            "--weights", str(vits), "-o", str(root / f"{name}.npz")], check=True, capture_output=True,
                           env=env)
        subprocess.run([str(exe), "evaluate", str(root / "real.npz"), str(root / "gen.npz"), "-m",
                        "fd,precision,recall", "--extractor", "dinov2-vits14"], check=True, capture_output=True,
                       env=env)
        t_sep = time.perf_counter() - t
        print(f"one pass, {images}+{images} images 128 px, FID + FD/precision/recall on dinov2-vits14: iqa evaluate "
              f"{t_iqa:.1f} s, pytorch-fid then a separate DINOv2 extraction {t_sep:.1f} s, ratio {t_sep / t_iqa:.2f}x")

        from iqa.features.dinov2 import ARCHS, DinoV2

        model = DinoV2(ARCHS["vitl14"]).eval()  # random weights: the cost does not depend on them
        x = torch.randn(8, 3, 224, 224)
        with torch.inference_mode():
            model(x[:2])
            t = time.perf_counter()
            model(x)
            dt = time.perf_counter() - t
        print(f"ViT-L/14 forward at 224 px on the CPU: {8 / dt:.2f} images/s (batch 8)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", type=int, default=10000)
    ap.add_argument("--dims", type=int, default=1024)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--skip-one-pass", action="store_true")
    args = ap.parse_args()
    print(machine_line())
    bench_prdc(args.features, args.dims)
    if not args.skip_one_pass:
        bench_one_pass(args.images)


if __name__ == "__main__":
    main()

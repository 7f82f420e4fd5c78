"""Feature parity on a CUDA GPU: iqa on CUDA against iqa on the CPU and pytorch-fid on CUDA.

    python benchmarks/parity_cuda.py [--images 64] [--size 299] [--weights PATH]

For a machine with a GPU (it exits with a message on one without). It writes PNG images to a
temporary folder and computes Inception pool3 features of them four ways, all with the same
weights (the registry's file with ``--weights``, else a seeded random state dict in
pytorch-fid's layout):

* iqa on the CPU (its default mode: pytorch-fid's operations, bit-identical to pytorch-fid
  on the CPU);
* iqa on CUDA (TF32 off during the forward pass, as iqa always does on CUDA);
* pytorch-fid on CUDA (``get_activations``, batch 50) with PyTorch's default TF32 setting
  (convolutions may use TF32 on Ampere and later), and again with TF32 off.

It prints the largest relative difference of each against iqa on the CPU and fails (exit 1)
when iqa on CUDA differs from iqa on the CPU by more than 1e-4 relative (float32 kernels of
another device, with full float32 products) or from pytorch-fid on CUDA with TF32 off by more
than 1e-5 relative.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fid import make_images, random_state_dict  # noqa: E402
from machine import machine_line  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", type=int, default=299)
    ap.add_argument("--weights", default=None, help="pytorch-fid's .pth (default: seeded random weights)")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this script checks feature parity on a GPU")
    import pytorch_fid.inception as pfi
    from pytorch_fid.fid_score import get_activations

    from iqa.features.pipeline import full_float32, make_features

    print(machine_line())
    print(f"GPU: {torch.cuda.get_device_name(0)}; {args.images} PNG images {args.size}×{args.size}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = Path(args.weights) if args.weights else tmp / "inception-random.pth"
        if not args.weights:
            torch.save(random_state_dict(), weights)
        folder = tmp / "images"
        folder.mkdir()
        files = make_images(folder, args.images, args.size)

        def iqa_features(device: str) -> np.ndarray:
            stats = make_features("inception", weights=weights, device=device).statistics(files, keep_features=True)
            return stats.features

        state = torch.load(weights, weights_only=True)
        pfi.load_state_dict_from_url = lambda *a, **k: state
        model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to("cuda")

        def theirs(tf32_off: bool) -> np.ndarray:
            if tf32_off:
                with full_float32("cuda"):
                    return get_activations(files, model, 50, 2048, "cuda", 0)
            return get_activations(files, model, 50, 2048, "cuda", 0)

        cpu = iqa_features("cpu")
        rows = {
            "iqa CUDA (TF32 off)": iqa_features("cuda"),
            "pytorch-fid CUDA (PyTorch's default TF32)": theirs(False),
            "pytorch-fid CUDA (TF32 off)": theirs(True),
        }

    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b).max() / np.abs(b).max())

    for name, feats in rows.items():
        print(f"{name:44s}: max |Δ| / max |f| vs iqa CPU {rel(feats, cpu):.1e}")
    ours = rows["iqa CUDA (TF32 off)"]
    theirs_off = rows["pytorch-fid CUDA (TF32 off)"]
    d_cpu, d_pfid = rel(ours, cpu), rel(ours, theirs_off)
    print(f"iqa CUDA vs pytorch-fid CUDA (both TF32 off): {d_pfid:.1e}")
    if d_cpu > 1e-4 or d_pfid > 1e-5:
        sys.exit(f"FAIL: iqa CUDA vs CPU {d_cpu:.1e} (limit 1e-4), vs pytorch-fid CUDA {d_pfid:.1e} (limit 1e-5)")
    print("OK")


if __name__ == "__main__":
    main()

"""DISTS, VIFp, GMSD, MS-GMSD, FSIM, FSIMc and HaarPSI: iqa against piq (and DISTS_pytorch).

torch float32 tensors on the CPU, no gradient, 512×512 RGB (256×256 for DISTS, whose VGG16
dominates), batch 1 and 16, the same thread count on both sides, in one process. Each side
runs once untimed (which also builds the networks), then ``--rounds`` interleaved rounds
(iqa, peer, peer, iqa, ...: which side goes first alternates), so both see the same machine
load; a fast call is repeated to fill about 50 ms of a round and timed per call; the table prints each side's median time and spread (min–max over the rounds), the
ratio of the medians, peer / iqa (> 1: iqa is faster), and the largest relative difference
between the two sides' values. The network's weights are random (generated here: nothing is
downloaded); the cost does not depend on them.

Peers, with the settings that reproduce iqa's values (docs/conventions.md):
    piq 0.8: ``vif_p(distorted, reference)``, ``gmsd``, ``multi_scale_gmsd``,
    ``fsim(chromatic=False|True)``, ``haarpsi``, all with ``data_range=1.0, reduction="none"``.
    DISTS_pytorch 0.1: ``DISTS()(reference, distorted, batch_average=False)`` with its VGG16
    replaced by one holding the same generated weights as iqa's.

Usage: ``python benchmarks/bench_full_reference.py [--rounds 5] [--batch 16] [--metrics gmsd,fsim]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from machine import interleaved, machine_line, median, spread

METRICS = ("vifp", "gmsd", "ms-gmsd", "fsim", "fsimc", "haarpsi", "dists")


def make_images(n: int, size: int, seed: int = 0) -> tuple[Any, Any]:
    """Smooth random scenes with texture in [0, 1], and a blurred, noisy copy (float32 N×3×H×W)."""
    import cv2
    import torch

    rng = np.random.default_rng(seed)
    ref = np.empty((n, size, size, 3), np.float32)
    dist = np.empty_like(ref)
    for i in range(n):
        img = cv2.resize(rng.random((size // 16, size // 16, 3)), (size, size), interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1)
        ref[i] = img
        dist[i] = np.clip(cv2.GaussianBlur(img, (5, 5), 1.0) + 0.03 * rng.standard_normal(img.shape), 0, 1)
    to = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return to(ref), to(dist)


def sides(metric: str, weights: Path) -> tuple[Callable, Callable]:
    """(iqa, peer) callables taking (reference, distorted) float32 tensors in [0, 1]."""
    import piq

    import iqa

    if metric == "dists":
        import torch
        import torchvision
        from DISTS_pytorch import DISTS_pt

        state = torch.load(weights, weights_only=True)
        # DISTS_pt.models is torchvision.models itself: keep the real constructor before replacing it.
        make_vgg16 = torchvision.models.vgg16

        def vgg16(*args: Any, **kwargs: Any) -> Any:
            model = make_vgg16(weights=None)
            model.load_state_dict(state)
            return model

        DISTS_pt.models.vgg16 = vgg16
        try:
            peer_model = DISTS_pt.DISTS().eval()
        finally:
            torchvision.models.vgg16 = make_vgg16  # iqa's own loader must not go through the patch
        ours = lambda x, y: iqa.dists(x, y, data_range=1.0, weights=weights)  # noqa: E731
        return ours, lambda x, y: peer_model(x, y, batch_average=False)
    fn = {
        "vifp": (iqa.vifp, lambda x, y: piq.vif_p(y, x, data_range=1.0, reduction="none")),
        "gmsd": (iqa.gmsd, lambda x, y: piq.gmsd(x, y, data_range=1.0, reduction="none")),
        "ms-gmsd": (iqa.ms_gmsd, lambda x, y: piq.multi_scale_gmsd(x, y, data_range=1.0, reduction="none")),
        "fsim": (iqa.fsim, lambda x, y: piq.fsim(x, y, data_range=1.0, reduction="none", chromatic=False)),
        "fsimc": (iqa.fsimc, lambda x, y: piq.fsim(x, y, data_range=1.0, reduction="none", chromatic=True)),
        "haarpsi": (iqa.haarpsi, lambda x, y: piq.haarpsi(x, y, data_range=1.0, reduction="none")),
    }[metric]
    ours = fn[0]
    return (lambda x, y: ours(x, y, data_range=1.0)), fn[1]


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds per side")
    parser.add_argument("--batch", type=int, default=16, help="the large batch size")
    parser.add_argument("--metrics", default=",".join(METRICS), help="comma-separated subset of " + ", ".join(METRICS))
    args = parser.parse_args()
    print(machine_line())
    print(f"torch float32, CPU, {torch.get_num_threads()} threads both sides, no gradient; {args.rounds} "
          "interleaved rounds; ratio = peer median / iqa median (> 1: iqa faster)")
    print(f"{'metric':<8} {'batch':>5} {'size':>5} {'iqa s, median (spread)':>26} {'peer s, median (spread)':>26} "
          f"{'ratio':>6} {'max rel diff':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        import torchvision

        torch.manual_seed(0)
        weights = Path(tmp) / "vgg16_random.pth"
        torch.save(torchvision.models.vgg16(weights=None).state_dict(), weights)
        for metric in [m.strip() for m in args.metrics.split(",") if m.strip()]:
            ours, peer = sides(metric, weights)
            size = 256 if metric == "dists" else 512
            for n in (1, args.batch):
                x, y = make_images(n, size)
                with torch.inference_mode():
                    times, outs = interleaved({"iqa": lambda: ours(x, y), "peer": lambda: peer(x, y)}, args.rounds,
                                               target=0.05)
                a = np.atleast_1d(np.asarray(outs["iqa"], dtype=np.float64))
                b = np.atleast_1d(outs["peer"].detach().double().numpy().reshape(-1))
                diff = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))
                mo, mp = median(times["iqa"]), median(times["peer"])
                print(f"{metric:<8} {n:>5} {size:>5} {spread(times['iqa'], 1.0, '', '.4f'):>26} "
                      f"{spread(times['peer'], 1.0, '', '.4f'):>26} {mp / mo:>6.2f} {diff:>12.2e}")

if __name__ == "__main__":
    main()

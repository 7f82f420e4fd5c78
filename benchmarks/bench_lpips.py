"""LPIPS-alex forward pass: iqa against the ``lpips`` package and torchmetrics.

A batch of ``--batch`` (16) pairs of ``--size``×``--size`` (256×256) RGB float tensors in
[0, 1] is scored by:

* lpips: ``lpips.LPIPS(net="alex", pnet_rand=True)`` (0.1.4) under ``torch.no_grad()``, called
  with ``normalize=True`` (its documented way to take [0, 1] input);
* torchmetrics: the network behind ``LearnedPerceptualImagePatchSimilarity``
  (``torchmetrics.functional.image.lpips._NoTrainLpips(net="alex", pnet_rand=True)``) under
  ``torch.no_grad()``, ``normalize=True``;
* iqa: ``iqa.metrics.lpips.compute_lpips(prepare(x, y, ImageOptions(data_range=1.0)), ...)``
  (``iqa.pairwise.prepare``, which includes iqa's input validation) with all the images in
  one network call (``Runtime(batch_size=2 * batch)``: a pair counts as two images), as the
  peers run them.

All three get the same seeded random AlexNet backbone (pretrained weights cannot be
downloaded on the benchmark machine; the cost does not depend on the values), iqa through
its ``weights`` path override. Each side runs once untimed, then ``--rounds`` interleaved
rounds (each round runs the three in turn, the order reversed every other round, so that a
drift in the machine's load hits all alike); the median and spread (min–max) of each are
printed with the ratios of the medians (peer / iqa, > 1: iqa is faster) and the largest
relative difference between the values (iqa and lpips must agree to 1e-5).

Usage: ``python benchmarks/bench_lpips.py [--batch 16] [--size 256] [--rounds 5] [--threads N]``
"""

from __future__ import annotations

import argparse
import re
import tempfile
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    import os as _os
    import sys as _sys

    _sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
    from machine import interleaved, machine_line, median, spread

    print(machine_line())

    import torch
    import torchvision.models as tvm

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    features = {k: v for k, v in tvm.alexnet(weights=None).state_dict().items() if k.startswith("features.")}
    tmp = Path(tempfile.mkdtemp())
    weights_path = tmp / "alexnet-random.pth"
    torch.save(features, weights_path)

    import lpips
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    from iqa.metrics.lpips import LPIPSOptions, compute_lpips
    from iqa.options import ImageOptions
    from iqa.pairwise import prepare
    from iqa.runtime import Runtime

    def trunk_state(module: torch.nn.Module) -> dict:
        return {k: features["features." + re.match(r"slice\d+\.(.*)", k).group(1)] for k in module.state_dict()}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both peers call torchvision's deprecated pretrained=
        ref = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
        tm = _NoTrainLpips(net="alex", pnet_rand=True).eval()
    ref.net.load_state_dict(trunk_state(ref.net))
    tm.net.load_state_dict(trunk_state(tm.net))

    gen = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=gen)
    y = (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1)

    def run_lpips():
        with torch.no_grad():
            return ref(x, y, normalize=True).view(-1)

    def run_torchmetrics():
        with torch.no_grad():
            return tm(x, y, normalize=True).view(-1)

    options = LPIPSOptions(net="alex")
    runtime = Runtime(device="cpu", weights={options.weights_name: str(weights_path)}, batch_size=2 * args.batch)

    def run_iqa():
        values, _maps = compute_lpips(prepare(x, y, ImageOptions(data_range=1.0)), options, runtime)
        return values

    sides = {"lpips 0.1.4": run_lpips, "torchmetrics": run_torchmetrics, "iqa": run_iqa}
    times, values = interleaved(sides, args.rounds)

    med = {name: median(t) for name, t in times.items()}
    print(
        f"LPIPS-alex forward, batch {args.batch} x 3x{args.size}x{args.size}, float32 CPU, "
        f"{torch.get_num_threads()} threads, median (min–max) of {args.rounds} interleaved rounds"
    )
    for name, t in times.items():
        print(f"  {name:<13} {spread(t, fmt='.1f'):>24}  ({args.batch / med[name]:6.1f} pairs/s)")
    for name in ("lpips 0.1.4", "torchmetrics"):
        print(f"  ratio of medians {name} / iqa: {med[name] / med['iqa']:.2f}x")
    base = values["lpips 0.1.4"].double()
    for name in ("torchmetrics", "iqa"):
        rel = ((values[name].double() - base).abs() / base.abs()).max().item()
        print(f"  max relative difference {name} vs lpips: {rel:.2e}")


if __name__ == "__main__":
    main()

"""Inception Score: iqa against torch-fidelity's ISC on the same images and weights.

Both sides run the FID Inception network (randomly initialised here with iqa's layout, saved
once and given to both: speed does not depend on the values) on the same uint8 images, in
the same process, in interleaved rounds (best of each, since a shared machine's load drifts):
iqa through ``iqa.Evaluator(metrics="is")`` fed tensors batch by batch, torch-fidelity through
its ``FeatureExtractorInceptionV3`` (``logits_unbiased``) and ``isc_features_to_metric``.
It prints images per second, the ratio and both scores (a random network classifies every
image alike, so both are ~1: a check that each side ran, not a parity test, which lives in
tests/metrics/test_is.py).

Usage: ``python benchmarks/bench_is.py [--images 50] [--size 128] [--batch 25] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.metric_isc import isc_features_to_metric

    import iqa
    from iqa.features.inception import FIDInceptionV3
    from machine import machine_line

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    u8 = torch.from_numpy(rng.integers(0, 256, (args.images, 3, args.size, args.size), dtype=np.uint8))
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "inception-random.pth"
        torch.save(FIDInceptionV3().state_dict(), weights)
        theirs_net = FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"],
                                                 feature_extractor_weights_path=str(weights))

        def ours() -> float:
            ev = iqa.Evaluator("is", weights={"inception-fid": weights}, batch_size=args.batch)
            for i in range(0, args.images, args.batch):
                ev.update(generated=u8[i : i + args.batch])
            return ev.compute()["is"]

        def theirs() -> float:
            with torch.no_grad():
                logits = torch.cat([theirs_net(u8[i : i + args.batch])[0] for i in range(0, args.images, args.batch)])
            return isc_features_to_metric(logits)["inception_score_mean"]

        best = {"iqa": float("inf"), "torch-fidelity": float("inf")}
        scores = {}
        for _ in range(args.rounds):
            for name, fn in (("iqa", ours), ("torch-fidelity", theirs)):
                t = time.perf_counter()
                scores[name] = fn()
                best[name] = min(best[name], time.perf_counter() - t)
    print(machine_line())
    print(f"{args.images} images {args.size}x{args.size}, batch {args.batch}, best of {args.rounds} rounds")
    for name, sec in best.items():
        print(f"{name:15s} {args.images / sec:6.2f} images/s  IS {scores[name]!r}")
    print(f"ratio iqa/torch-fidelity time: {best['iqa'] / best['torch-fidelity']:.2f}")


if __name__ == "__main__":
    main()

"""Inception Score: iqa against torch-fidelity's ISC on the same images and weights.

Both sides run the FID Inception network (randomly initialised here with iqa's layout, saved
once and given to both: speed does not depend on the values) on the same uint8 images, in
the same process, each network built once before the timing:

* iqa: one ``iqa.Evaluator("is", weights={"inception-fid": W}, batch_size=BATCH)``, reset and
  fed tensors batch by batch, then ``compute()`` (mode ``tf``: torch-fidelity's convention,
  10 splits);
* torch-fidelity: ``FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"],
  feature_extractor_weights_path=W)`` under ``torch.no_grad()``, batch by batch, then
  ``isc_features_to_metric`` at its defaults (10 splits, shuffle, seed 2020).

Each side runs once untimed, then ``--rounds`` interleaved rounds (each round runs both in
turn, the order reversed every other round, so that a drift in the machine's load hits both
alike). It prints images per second at the median, the median and spread (min–max) of the
seconds per set, the ratio of the medians, torch-fidelity / iqa (> 1: iqa is faster), and
both scores (a random network classifies every image alike, so both are ~1: a check that
each side ran, not a parity test, which lives in tests/metrics/test_is.py).

Usage: ``python benchmarks/bench_is.py [--images 50] [--size 128] [--batch 25] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds (median and spread are printed)")
    args = parser.parse_args()

    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.metric_isc import isc_features_to_metric

    import iqa
    from iqa.features.inception import FIDInceptionV3
    from machine import interleaved, machine_line, median, spread

    print(machine_line())
    rng = np.random.default_rng(0)
    u8 = torch.from_numpy(rng.integers(0, 256, (args.images, 3, args.size, args.size), dtype=np.uint8))
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "inception-random.pth"
        torch.save(FIDInceptionV3().state_dict(), weights)
        theirs_net = FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"],
                                                 feature_extractor_weights_path=str(weights))
        ev = iqa.Evaluator("is", weights={"inception-fid": weights}, batch_size=args.batch)

        def ours() -> float:
            ev.reset()
            for i in range(0, args.images, args.batch):
                ev.update(generated=u8[i : i + args.batch])
            return ev.compute()["is"]

        def theirs() -> float:
            with torch.no_grad():
                logits = torch.cat([theirs_net(u8[i : i + args.batch])[0] for i in range(0, args.images, args.batch)])
            return isc_features_to_metric(logits)["inception_score_mean"]

        times, scores = interleaved({"iqa": ours, "torch-fidelity": theirs}, args.rounds)
    print(f"{args.images} images {args.size}x{args.size}, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"one untimed run then {args.rounds} interleaved rounds")
    for name, t in times.items():
        print(f"{name:15s} {args.images / median(t):6.2f} images/s  median {spread(t, 1.0, 's')}  IS {scores[name]!r}")
    print(f"ratio of medians torch-fidelity / iqa: {median(times['torch-fidelity']) / median(times['iqa']):.2f}× "
          "(> 1: iqa faster)")


if __name__ == "__main__":
    main()

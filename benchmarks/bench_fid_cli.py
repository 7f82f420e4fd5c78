"""``iqa stats`` against pytorch-fid's command line, process start included, as users run them.

    python benchmarks/bench_fid_cli.py [--images 100] [--size 299] [--rounds 3] [--weights PATH]

Each side runs once untimed (filling the page cache and iqa's record of the weights' digests,
as on any machine after the first use), then ``--rounds`` rounds run every side in fresh
processes, in turn, the order reversed every other round (so that a drift in the machine's
load hits all alike):

* pytorch-fid: ``python -m pytorch_fid --save-stats FOLDER out.npz --device cpu`` at its
  other defaults (``--batch-size 50``, ``--num-workers min(8, CPUs)``, ``--dims 2048``);
* iqa: ``iqa stats FOLDER -o out.npz --weights W`` at its defaults (``pytorch-fid`` mode).

Both read the same PNG folder and run the same weights: the registry's file when ``--weights``
is given, else a seeded random state dict in pytorch-fid's layout (the network's cost does not
depend on its weights), put where pytorch-fid's ``load_state_dict_from_url`` finds it
(``$TORCH_HOME/hub/checkpoints``). ``--busy N`` keeps N busy-looping processes running
beside both (a machine shared with another job). A third line times ``python -c "import torch"``, the floor
of any torch command. The script prints the machine line, the median and the range of each
side's wall-clock time (min–max), the ratio of the medians (pytorch-fid / iqa; > 1: iqa is faster), and
the largest difference between the two sides' μ and Σ (0 when the features are identical).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fid import make_images, random_state_dict  # noqa: E402
from machine import interleaved, machine_line, median, spread  # noqa: E402


def run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--size", type=int, default=299)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--weights", default=None, help="pytorch-fid's .pth (default: seeded random weights)")
    ap.add_argument("--busy", type=int, default=0,
                    help="busy-looping neighbour processes during the run (a shared machine)")
    args = ap.parse_args()

    import torch

    print(machine_line())
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.images} PNG images {args.size}×{args.size}; pytorch-fid: batch 50, "
          f"{min(8, cpus)} loader workers, CPU; iqa: its defaults; {args.busy} busy neighbour process(es)")
    iqa_cmd = shutil.which("iqa", path=str(Path(sys.executable).parent)) or shutil.which("iqa")
    if iqa_cmd is None:
        sys.exit("the iqa command is not installed (pip install -e .)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        hub = tmp / "torch" / "hub" / "checkpoints"
        hub.mkdir(parents=True)
        weights = hub / "pt_inception-2015-12-05-6726825d.pth"
        if args.weights:
            shutil.copyfile(args.weights, weights)
        else:
            torch.save(random_state_dict(), weights)
        folder = tmp / "images"
        folder.mkdir()
        make_images(folder, args.images, args.size)
        env = {**os.environ, "TORCH_HOME": str(tmp / "torch"), "IQA_CACHE_DIR": str(tmp / "cache")}
        out = {"pytorch-fid": tmp / "pfid.npz", "iqa": tmp / "iqa.npz"}
        cmds = {
            "pytorch-fid": [sys.executable, "-m", "pytorch_fid", "--save-stats", str(folder), str(out["pytorch-fid"]),
                            "--device", "cpu"],
            "iqa": [iqa_cmd, "stats", str(folder), "-o", str(out["iqa"]), "--weights", str(weights)],
            "import torch": [sys.executable, "-c", "import torch"],
        }

        def side(name: str) -> None:
            if name in out:
                out[name].unlink(missing_ok=True)
            run(cmds[name], env)

        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            times, _ = interleaved({name: (lambda name=name: side(name)) for name in cmds}, args.rounds)
        finally:
            for hog in hogs:
                hog.kill()
        with np.load(out["pytorch-fid"]) as a, np.load(out["iqa"]) as b:
            d_mu = float(np.abs(a["mu"] - b["mu"]).max())
            d_sigma = float(np.abs(a["sigma"] - b["sigma"]).max())
    med = {name: median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:12s}: median {spread(t, 1.0, 's', '.2f')}  ({len(t)} rounds)")
    print(f"ratio of medians pytorch-fid / iqa: {med['pytorch-fid'] / med['iqa']:.2f}×; iqa − import torch: "
          f"{med['iqa'] - med['import torch']:.2f} s")
    print(f"max |Δμ| {d_mu:.1e}, max |ΔΣ| {d_sigma:.1e} (iqa vs pytorch-fid)")


if __name__ == "__main__":
    main()

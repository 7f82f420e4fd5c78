"""Feature extraction under torch.distributed: two CPU processes (gloo) launched by torchrun.

Each rank must take a disjoint, non-empty shard of the files; the summed statistics must
equal one process's; rank 0 alone reports on the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import fid_weights as fw  # tests/ is on sys.path
from iqa.distribution.frechet import distance
from iqa.distribution.statistics import FIDStatistics
from iqa.errors import IQAWarning
from iqa.features.pipeline import InceptionFeatures

if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from iqa.distributed import init, shard
    from iqa.decode import iter_image_files
    from iqa.features.pipeline import InceptionFeatures

    folder, weights, out = sys.argv[1:4]
    ctx = init()
    mine = shard(list(iter_image_files(folder)), ctx)
    totals = []
    ext = InceptionFeatures(dims=64, weights=weights, batch_size=4, workers=1)
    stats = ext.statistics(folder, keep_features=True, progress=lambda done, total: totals.append(total))
    stats.save(Path(out) / f"rank{ctx.rank}.npz")
    info = {"rank": ctx.rank, "world": ctx.world_size, "shard": [str(p) for p in mine], "local": totals[-1]}
    (Path(out) / f"rank{ctx.rank}.json").write_text(json.dumps(info))
    """
)


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")  # two processes on two cores
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _why(res: subprocess.CompletedProcess) -> str:
    """The workers' own messages first (torchrun's summary at the end hides them)."""
    err = res.stderr
    return err if len(err) < 6000 else err[:3000] + "\n...\n" + err[-3000:]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from PIL import Image

    weights = fw.weights_file(tmp_path_factory.getbasetemp())
    root = tmp_path_factory.mktemp("dist")
    folders = []
    for name, kind, seed in (("a", "smooth", 51), ("b", "stripes", 52)):
        folder = root / name
        (folder / "sub").mkdir(parents=True)
        for i, img in enumerate(fw.synthetic_images(9, 40, seed, kind)):  # odd count: unequal shards
            Image.fromarray(img).save(folder / ("sub" if i % 3 == 0 else "") / f"{i:02d}.png")
        folders.append(folder)
    return weights, root, folders


def test_two_gloo_processes_equal_one(setup, tmp_path):
    weights, _, (folder, _) = setup
    (tmp_path / "run.py").write_text(SCRIPT)
    res = _torchrun([str(tmp_path / "run.py"), str(folder), str(weights), str(tmp_path)], tmp_path)
    assert res.returncode == 0, _why(res)
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [i["world"] for i in infos] == [2, 2]
    shards = [set(i["shard"]) for i in infos]
    all_files = {str(p) for p in sorted(folder.rglob("*.png"))}
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert shards[0] | shards[1] == all_files
    assert [i["local"] for i in infos] == [len(s) for s in shards] == [5, 4]

    single = InceptionFeatures(dims=64, weights=weights, batch_size=4, workers=1).statistics(folder, keep_features=True)
    for r in (0, 1):
        got = FIDStatistics.load(tmp_path / f"rank{r}.npz")
        assert got.n == single.n == 9
        # The reduction is exact: the summed statistics are the sums over the gathered
        # features of both ranks (float64 sums of float32 features), to 1e-12 relative.
        f = got.features.astype(np.float64)
        np.testing.assert_allclose(got.sum, f.sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(got.sum_outer, f.T @ f, rtol=1e-12)
        # Against one process: features in file order, equal up to float32 round-off (the
        # ranks run one thread and other batch shapes, which round differently: measured
        # 1.3e-7 relative), so 1e-6 of the largest feature and 1e-6 relative for the sums.
        np.testing.assert_allclose(got.features, single.features, rtol=0, atol=1e-6 * np.abs(single.features).max())
        np.testing.assert_allclose(got.mu, single.mu, rtol=1e-6)
        np.testing.assert_allclose(got.sum_outer, single.sum_outer, rtol=1e-6)


def test_cli_under_torchrun_reports_once_with_the_same_fid(setup, tmp_path):
    weights, _, (a, b) = setup
    exe = Path(sys.executable).with_name("iqa")
    res = _torchrun(["--no-python", str(exe), "fid", str(a), str(b), "--dims", "64", "--weights", str(weights), "--workers", "1"], tmp_path)
    assert res.returncode == 0, _why(res)
    lines = res.stdout.split()
    assert len(lines) == 1  # rank 0 alone prints
    ext = InceptionFeatures(dims=64, weights=weights, workers=1)
    with pytest.warns(IQAWarning, match="covariance is singular"):
        expected = distance(ext.statistics(a), ext.statistics(b))
    # The ranks run one thread and other batch shapes (features off by float32 round-off, see
    # above), and 9 images in 64-d give singular covariances, whose square root amplifies it:
    # measured 1.8e-8 relative, so 1e-6.
    assert float(lines[0]) == pytest.approx(expected, rel=1e-6)


def test_evaluate_under_torchrun_equals_one_process(setup, tmp_path):
    """Each rank extracts its shard; rank 0 gathers the features (in file order) and computes."""
    from click.testing import CliRunner

    from iqa.cli import main

    weights, _, (a, b) = setup
    args = ["evaluate", str(a), str(b), "-m", "fd,kid,precision,recall,density,coverage", "--extractor", "inception",
            "--dims", "64", "--nearest-k", "3", "--subset-size", "5", "--weights", str(weights), "--workers", "1",
            "--format", "json"]
    exe = Path(sys.executable).with_name("iqa")
    res = _torchrun(["--no-python", str(exe), *args], tmp_path)
    assert res.returncode == 0, _why(res)
    got = json.loads(res.stdout)  # rank 0 alone prints: one JSON object
    one = CliRunner().invoke(main, args)
    assert one.exit_code == 0, one.output
    want = json.loads(one.stdout)
    for name in ("precision", "recall", "density", "coverage"):
        assert got[name] == want[name], name  # counts: identical (features equal to ~1e-7)
    # features off by float32 round-off across ranks (see above), moments summed in another
    # order: 1e-6 relative for FD and KID.
    assert got["fd"] == pytest.approx(want["fd"], rel=1e-6) and got["kid"] == pytest.approx(want["kid"], rel=1e-6)
    assert got["provenance"]["feature_spaces"][0]["real"]["n"] == 9


EVALUATOR_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np, torch
    import iqa
    from iqa.distributed import init

    folder, weights, gen, out = sys.argv[1:5]
    ctx = init()
    gen = torch.from_numpy(np.load(gen))
    mine = gen[:6] if ctx.rank == 0 else gen[6:]  # each rank its own images, unequal shares
    ev = iqa.Evaluator("kid,precision,recall,is", extractor="inception", dims=64, nearest_k=3, subset_size=5,
                       splits=2, weights={"inception-fid": weights}, workers=1)
    ev.update(real=folder)  # a whole set: its files sharded across the ranks
    for i in range(0, len(mine), 4):
        ev.update(generated=mine[i : i + 4])
    result = ev.compute()
    saved = ev.save(Path(out) / "state.npz")
    info = {"values": result.values, "n": ev.counts(), "saved": saved is not None}
    (Path(out) / f"rank{ctx.rank}.json").write_text(json.dumps(info))
    """
)


def test_evaluator_under_two_gloo_processes_equals_one(setup, tmp_path):
    """Each rank updates with its own tensors (and its shard of a real folder); compute sums
    the moments and gathers the features (logits for IS) in rank order on every rank."""
    import iqa

    weights, _, (folder, _) = setup
    gen = torch.from_numpy(fw.synthetic_images(10, 40, 81, "stripes")).permute(0, 3, 1, 2).contiguous()
    np.save(tmp_path / "gen.npy", gen.numpy())
    (tmp_path / "run.py").write_text(EVALUATOR_SCRIPT)
    res = _torchrun([str(tmp_path / "run.py"), str(folder), str(weights), str(tmp_path / "gen.npy"), str(tmp_path)],
                    tmp_path)
    assert res.returncode == 0, _why(res)
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [i["saved"] for i in infos] == [True, False]  # rank 0 alone writes the state
    assert infos[0]["n"] == {"real": 9, "generated": 6} and infos[1]["n"] == {"real": 0, "generated": 4}
    one = iqa.Evaluator("kid,precision,recall,is", extractor="inception", dims=64, nearest_k=3, subset_size=5,
                        splits=2, weights={"inception-fid": weights}, workers=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank: the same kernels, so the same float32 round-off
    try:
        one.update(real=folder)
        for i in (0, 4, 6):  # the ranks' batches, in rank order
            one.update(generated=gen[i : i + (2 if i == 4 else 4)])
    finally:
        torch.set_num_threads(threads)
    want = one.compute().values
    loaded = iqa.Evaluator("kid,precision,recall,is", extractor="inception", dims=64, nearest_k=3, subset_size=5,
                           splits=2, weights={"inception-fid": weights}).load(tmp_path / "state.npz")
    from_file = loaded.compute().values
    for got in (infos[0]["values"], infos[1]["values"], from_file):  # every rank: the values of the union
        assert (got["precision"], got["recall"]) == (want["precision"], want["recall"])  # counts: identical
        # Same threads and batches: features measured identical; the sums over ranks add in
        # another order: 1e-9 relative.
        for name in ("kid", "is", "is_std"):
            assert got[name] == pytest.approx(want[name], rel=1e-9), name
    assert want["is"] > 1.01 and want["is_std"] > 1e-4  # two splits of 5 that differ
    # In another order (rank 1's images first) the IS splits differ: the gathering order matters.
    swapped = iqa.Evaluator("is", splits=2, weights={"inception-fid": weights}).update(generated=gen[6:])
    swapped.update(generated=gen[:6])
    assert swapped.compute()["is_std"] != pytest.approx(want["is_std"], rel=1e-3)


RANKS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np, torch
    import iqa
    from iqa.distributed import init

    w0, w1, gen, out = sys.argv[1:5]
    ctx = init()
    gen = torch.from_numpy(np.load(gen))
    info = {}
    if ctx.rank == 0:  # rank 0 alone evaluates: a local evaluator, no collective
        ev = iqa.Evaluator("kid", extractor="inception", dims=64, subset_size=4, weights={"inception-fid": w0},
                           workers=0, sync_on_compute=False)
        ev.update(real=gen[:5], generated=gen[5:])
        info["local"] = ev.compute().values
        info["saved"] = ev.save(Path(out) / "local.npz") is not None
    ctx.barrier()
    # Each rank its own weights: pooling their features would mix two networks.
    ev = iqa.Evaluator("kid", extractor="inception", dims=64, subset_size=4,
                       weights={"inception-fid": [w0, w1][ctx.rank]}, workers=0)
    ev.update(real=gen[:5], generated=gen[5:])
    try:
        ev.compute()
    except iqa.IQAError as exc:
        info["weights"] = str(exc)
    # Other options on each rank (here dims): refused before any collective that would hang.
    ev = iqa.Evaluator("kid", extractor="inception", dims=[64, 192][ctx.rank], subset_size=4,
                       weights={"inception-fid": w0}, workers=0)
    ev.update(real=gen[:5], generated=gen[5:])
    try:
        ev.compute()
    except iqa.IQAError as exc:
        info["options"] = str(exc)
    (Path(out) / f"rank{ctx.rank}.json").write_text(json.dumps(info))
    """
)


def test_evaluator_on_one_rank_and_ranks_that_differ(setup, tmp_path):
    """sync_on_compute=False: rank 0 alone computes and saves (no collective waiting for rank 1);
    ranks with other weights or options are refused on every rank instead of pooled."""
    import iqa

    w0, root, _ = setup
    w1 = fw.weights_file(root, seed=1)
    gen = torch.from_numpy(fw.synthetic_images(10, 40, 82, "noisy")).permute(0, 3, 1, 2).contiguous()
    np.save(tmp_path / "gen.npy", gen.numpy())
    (tmp_path / "run.py").write_text(RANKS_SCRIPT)
    res = _torchrun([str(tmp_path / "run.py"), str(w0), str(w1), str(tmp_path / "gen.npy"), str(tmp_path)], tmp_path)
    assert res.returncode == 0, _why(res)
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    one = iqa.Evaluator("kid", extractor="inception", dims=64, subset_size=4, weights={"inception-fid": w0},
                        workers=0).update(real=gen[:5], generated=gen[5:])
    # rank 0's own 10 images: the same as one process. It ran one thread (float32 round-off of
    # ~1e-7 in the features), which KID, a difference of kernel means, amplifies: measured
    # 4.6e-6 relative, so 1e-4 (a wrong set or pooled rank would be off by far more).
    assert infos[0]["local"]["kid"] == pytest.approx(one.compute()["kid"], rel=1e-4)
    assert infos[0]["saved"] and (tmp_path / "local.npz").exists() and "local" not in infos[1]
    for info in infos:
        assert "different Inception weights" in info["weights"] and "allow_mismatch=True" in info["weights"]
        assert "rank 1 evaluates other metrics or options than rank 0" in info["options"]

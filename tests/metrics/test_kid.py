"""KID: the unbiased cubic-kernel MMD² against torchmetrics and torch-fidelity.

torchmetrics draws its subsets with ``torch.randperm``; with one subset of all n images the
draw is a permutation, which the estimator does not see, so the comparison is deterministic.
torch-fidelity draws with ``numpy.random.RandomState(seed)`` as iqa does, so several subsets
compare exactly too. Features come from the FID network with generated weights (64-d, cheap)
over two different image sets, so the value is far above round-off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import torch  # noqa: E402

from click.testing import CliRunner  # noqa: E402

from iqa.cli import main  # noqa: E402
from iqa.errors import IQAError, IQAWarning, ShapeError  # noqa: E402
from iqa.metrics import fid as F  # noqa: E402


import fid_weights as fw  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return fw.weights_file(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def sets(tmp_path_factory, weights):
    """Two folders of 24 and 30 images and their 64-d features."""
    from PIL import Image

    root = tmp_path_factory.mktemp("kid")
    ext = F.InceptionFeatures(dims=64, weights=weights, batch_size=30)
    out = {}
    for name, n, kind, seed in (("a", 24, "smooth", 41), ("b", 30, "noisy", 42)):
        folder = root / name
        folder.mkdir()
        for i, img in enumerate(fw.synthetic_images(n, 48, seed, kind)):
            Image.fromarray(img).save(folder / f"{i:03d}.png")
        out[name] = (folder, ext.statistics(folder, keep_features=True))
    return out


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all extracted features:UserWarning")
def test_matches_torchmetrics_with_one_full_subset(sets):
    from torchmetrics.image.kid import KernelInceptionDistance

    fa = sets["a"][1].features.astype(np.float64)
    fb = sets["b"][1].features[:24].astype(np.float64)  # torchmetrics needs equal sizes here
    metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=1, subset_size=24)
    metric.update(torch.from_numpy(fa), real=True)
    metric.update(torch.from_numpy(fb), real=False)
    ref_mean, ref_std = metric.compute()
    ours = F.kernel_distance(fa, fb, subsets=1, subset_size=24)
    # float64 on both sides; the value is ~1e-1, far above round-off: 1e-10 relative.
    assert float(ref_mean) > 1e-3
    assert ours.mean == pytest.approx(float(ref_mean), rel=1e-10)
    assert ours.std == pytest.approx(float(ref_std), abs=1e-12)


def test_matches_torch_fidelity_subsets_with_the_same_seed(sets):
    from torch_fidelity.metric_kid import kid_features_to_metric

    fa, fb = sets["a"][1].features.astype(np.float64), sets["b"][1].features.astype(np.float64)
    ref = kid_features_to_metric(
        torch.from_numpy(fa), torch.from_numpy(fb), kid_subsets=10, kid_subset_size=12, rng_seed=7, verbose=False
    )
    ours = F.kernel_distance(fa, fb, subsets=10, subset_size=12, seed=7)
    assert ours.mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-10)
    assert ours.std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-8)
    other = F.kernel_distance(fa, fb, subsets=10, subset_size=12, seed=8)
    assert other.mean != ours.mean and other.seed == 8


def test_subset_size_is_reduced_with_a_warning(sets):
    fa, fb = sets["a"][1].features, sets["b"][1].features
    with pytest.warns(IQAWarning, match="reduced from 1000 to 24"):
        r = F.kernel_distance(fa, fb, subsets=3)
    assert r.subset_size == 24 and r.subsets == 3 and "reduced" in r.notes[0]


def test_symmetric_with_full_subsets(sets):
    fa, fb = sets["a"][1].features, sets["b"][1].features[:24]
    ab = F.kernel_distance(fa, fb, subsets=1, subset_size=24)
    ba = F.kernel_distance(fb, fa, subsets=1, subset_size=24)
    assert ab.mean == pytest.approx(ba.mean, rel=1e-12)


def test_closed_form_on_two_points():
    # m = 2, d = 1: x = (0, 1), y = (2, 3); k(a, b) = (ab + 1)³.
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    kxx = 2 * (0 * 1 + 1) ** 3 / 2
    kyy = 2 * (2 * 3 + 1) ** 3 / 2
    kxy = sum((a * b + 1) ** 3 for a in (0, 1) for b in (2, 3)) / 4
    r = F.kernel_distance(x, y, subsets=1, subset_size=2)
    assert r.mean == pytest.approx(kxx + kyy - 2 * kxy)


def test_bad_inputs():
    with pytest.raises(ShapeError):
        F.kernel_distance(np.zeros((4, 3)), np.zeros((4, 5)))
    with pytest.raises(ShapeError, match="at least 2"):
        F.kernel_distance(np.zeros((1, 3)), np.zeros((4, 3)))


def test_kid_from_folders_and_from_npz(sets, weights, tmp_path):
    (fa_dir, sa), (fb_dir, sb) = sets["a"], sets["b"]
    with pytest.warns(IQAWarning, match="reduced"):
        mean, std = F.kid(fa_dir, fb_dir, dims=64, weights=weights, subsets=5, subset_size=50, seed=3)
    expected = F.kernel_distance(sa.features, sb.features, subsets=5, subset_size=24, seed=3)
    assert (mean, std) == pytest.approx((expected.mean, expected.std), rel=1e-12)
    sa.save(tmp_path / "a.npz")
    with pytest.warns(IQAWarning, match="reduced"):
        from_npz = F.kid(tmp_path / "a.npz", fb_dir, dims=64, weights=weights, subsets=5, subset_size=50, seed=3)
    assert from_npz == pytest.approx((mean, std), rel=1e-12)


def test_npz_without_features_names_the_flag(sets, tmp_path, weights):
    path = sets["a"][1].save(tmp_path / "plain.npz", features=False)
    with pytest.raises(IQAError, match="--features"):
        F.kid(path, sets["b"][0], dims=64, weights=weights)
    res = CliRunner().invoke(main, ["kid", str(path), str(sets["b"][0]), "--weights", str(weights)])
    assert res.exit_code == 1 and "--features" in res.stderr


def test_cli_kid(sets, weights, tmp_path):
    runner = CliRunner()
    out = tmp_path / "a.npz"
    res = runner.invoke(main, ["stats", str(sets["a"][0]), "-o", str(out), "--dims", "64", "--features", "--weights", str(weights)])
    assert res.exit_code == 0, res.output
    with np.load(out) as f:
        assert f["feats"].shape == (24, 64)
    res = runner.invoke(main, ["kid", str(out), str(sets["b"][0]), "--weights", str(weights), "--subsets", "4", "--seed", "5", "--format", "json"])
    assert res.exit_code == 0, res.output
    import json

    doc = json.loads(res.stdout)
    expected = F.kernel_distance(sets["a"][1].features, sets["b"][1].features, subsets=4, subset_size=24, seed=5)
    assert doc["mean"] == pytest.approx(expected.mean, rel=1e-12)
    assert doc["subset_size"] == 24 and doc["subset_size_requested"] == 1000 and doc["seed"] == 5
    assert "reduced from 1000 to 24" in res.stderr

"""KID: the unbiased cubic-kernel MMD² against torchmetrics and torch-fidelity.

torchmetrics draws its subsets with ``torch.randperm``; with one subset of all n images the
draw is a permutation, which the estimator does not see, so the comparison is deterministic.
torch-fidelity draws with ``numpy.random.RandomState(seed)`` as iqa does, so several subsets
compare exactly too. Features come from the FID network with generated weights (64-d, cheap)
over two different image sets, so the value is far above round-off.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fid_weights as fw  # tests/ is on sys.path
from iqa.cli import main
from iqa.distribution.kid import kernel_distance
from iqa.errors import IQAError, IQAWarning, ShapeError
from iqa.features.pipeline import InceptionFeatures
from iqa.set_metrics import kid


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return fw.weights_file(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def sets(tmp_path_factory, weights):
    """Two folders of 24 and 30 images and their 64-d features."""
    from PIL import Image

    root = tmp_path_factory.mktemp("kid")
    ext = InceptionFeatures(dims=64, weights=weights, batch_size=30)
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
    ours = kernel_distance(fa, fb, subsets=1, subset_size=24)
    # float64 on both sides: the same 3·24² kernel values summed in another order, the three
    # means (1.6 + 4.1 − 4.6) cancelling little to 1.2: ≲ 24²·ε₆₄·4 ≈ 5e-13 relative at
    # worst (measured 1.5e-15), so 1e-12.
    assert float(ref_mean) > 1e-3
    assert ours.mean == pytest.approx(float(ref_mean), rel=1e-12)
    assert ours.std == pytest.approx(float(ref_std), abs=1e-12)


def test_matches_torch_fidelity_subsets_with_the_same_seed(sets):
    from torch_fidelity.metric_kid import kid_features_to_metric

    fa, fb = sets["a"][1].features.astype(np.float64), sets["b"][1].features.astype(np.float64)
    ref = kid_features_to_metric(
        torch.from_numpy(fa), torch.from_numpy(fb), kid_subsets=10, kid_subset_size=12, rng_seed=7, verbose=False
    )
    ours = kernel_distance(fa, fb, subsets=10, subset_size=12, seed=7)
    # The same subsets in float64: the values differ by summation order only (measured 2e-16
    # relative), 1e-12 as above. The std's error is the values' absolute error over their
    # spread, mean/std ≈ 14 times the mean's relative error (measured 5e-16): 1e-11.
    assert ours.std > 0.01 * ours.mean  # the subsets really differ
    assert ours.mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-12)
    assert ours.std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-11)
    other = kernel_distance(fa, fb, subsets=10, subset_size=12, seed=8)
    assert other.mean != ours.mean and other.seed == 8


def test_subset_size_is_reduced_with_a_warning(sets):
    fa, fb = sets["a"][1].features, sets["b"][1].features
    with pytest.warns(IQAWarning, match="reduced from 1000 to 24"):
        r = kernel_distance(fa, fb, subsets=3)
    assert r.subset_size == 24 and r.subsets == 3 and "reduced" in r.notes[0]


def test_symmetric_with_full_subsets(sets):
    fa, fb = sets["a"][1].features, sets["b"][1].features[:24]
    ab = kernel_distance(fa, fb, subsets=1, subset_size=24)
    ba = kernel_distance(fb, fa, subsets=1, subset_size=24)
    assert ab.mean == pytest.approx(ba.mean, rel=1e-12)


def test_closed_form_on_two_points():
    # m = 2, d = 1: x = (0, 1), y = (2, 3); k(a, b) = (ab + 1)³.
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    kxx = 2 * (0 * 1 + 1) ** 3 / 2
    kyy = 2 * (2 * 3 + 1) ** 3 / 2
    kxy = sum((a * b + 1) ** 3 for a in (0, 1) for b in (2, 3)) / 4
    r = kernel_distance(x, y, subsets=1, subset_size=2)
    # Every kernel value is an integer and every sum exact in float64.
    assert r.mean == kxx + kyy - 2 * kxy == 297.5


def test_bad_inputs():
    with pytest.raises(ShapeError):
        kernel_distance(np.zeros((4, 3)), np.zeros((4, 5)))
    with pytest.raises(ShapeError, match="at least 2"):
        kernel_distance(np.zeros((1, 3)), np.zeros((4, 3)))


def test_kid_from_folders_and_from_npz(sets, weights, tmp_path):
    (fa_dir, sa), (fb_dir, sb) = sets["a"], sets["b"]
    with pytest.warns(IQAWarning, match="reduced"):
        mean, std = kid(fa_dir, fb_dir, dims=64, weights=weights, subsets=5, subset_size=50, seed=3)
    expected = kernel_distance(sa.features, sb.features, subsets=5, subset_size=24, seed=3)
    assert (mean, std) == pytest.approx((expected.mean, expected.std), rel=1e-12)
    sa.save(tmp_path / "a.npz")
    with pytest.warns(IQAWarning, match="reduced"):
        from_npz = kid(tmp_path / "a.npz", fb_dir, dims=64, weights=weights, subsets=5, subset_size=50, seed=3)
    assert from_npz == pytest.approx((mean, std), rel=1e-12)


def test_npz_without_features_names_the_option(sets, tmp_path, weights):
    """Python names the keyword, the command line the flag that makes such a file."""
    path = sets["a"][1].save(tmp_path / "plain.npz", features=False)
    with pytest.raises(IQAError, match="keep_features=True"):
        kid(path, sets["b"][0], dims=64, weights=weights)
    res = CliRunner().invoke(main, ["kid", str(path), str(sets["b"][0]), "--weights", str(weights)])
    assert res.exit_code == 1 and "--keep-features" in res.stderr and "keep_features=" not in res.stderr


def test_cli_kid(sets, weights, tmp_path):
    runner = CliRunner()
    out = tmp_path / "a.npz"
    res = runner.invoke(main, ["stats", str(sets["a"][0]), "-o", str(out), "--dims", "64", "--keep-features", "--weights", str(weights)])
    assert res.exit_code == 0, res.output
    with np.load(out) as f:
        assert f["feats"].shape == (24, 64)
    res = runner.invoke(main, ["kid", str(out), str(sets["b"][0]), "--weights", str(weights), "--subsets", "4", "--seed", "5", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    expected = kernel_distance(sets["a"][1].features, sets["b"][1].features, subsets=4, subset_size=24, seed=5)
    assert doc["mean"] == pytest.approx(expected.mean, rel=1e-12)
    assert doc["subset_size"] == 24 and doc["subset_size_requested"] == 1000 and doc["seed"] == 5
    assert "reduced from 1000 to 24" in res.stderr


def test_cli_stats_former_features_flag_works_and_warns(sets, weights, tmp_path):
    """--features (now --keep-features) still stores the features, with a warning on stderr."""
    out = tmp_path / "a.npz"
    res = CliRunner().invoke(main, ["stats", str(sets["a"][0]), "-o", str(out), "--dims", "64", "--features",
                                    "--weights", str(weights)])
    assert res.exit_code == 0, res.output
    assert "warning" in res.stderr and "--features" in res.stderr and "--keep-features" in res.stderr
    with np.load(out) as f:
        np.testing.assert_array_equal(f["feats"], sets["a"][1].features)
    res = CliRunner().invoke(main, ["stats", "--help"])
    assert "--keep-features" in res.stdout and "--features " not in res.stdout

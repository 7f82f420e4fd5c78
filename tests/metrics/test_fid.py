"""FID: statistics, distances, preprocessing modes, files and the CLI.

References: pytorch-fid 0.3.0 (``calculate_fid_given_paths``, ``calculate_activation_statistics``,
``calculate_frechet_distance``, ``.npz`` files), clean-fid's ``make_resizer("PIL", False,
"bicubic")``, torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``. Both networks
run the generated weights of tests/fid_weights.py. Distances are compared where they are well
conditioned (64-d features over 80 images per set); 2048-d over 10 images compares the means
and covariances instead (a singular covariance makes any square root amplify round-off).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import pytorch_fid.fid_score as fid_score
import pytorch_fid.inception as pytorch_fid_inception
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import fid_weights as fw  # tests/ is on sys.path
from iqa.cli import main
from iqa.distribution.frechet import ROUTES, distance, frechet_distance
from iqa.distribution.statistics import FIDStatistics
from iqa.errors import IQAError, IQAWarning, ImageLoadError, OptionError, ShapeError, SkippedFilesWarning
from iqa.features import MODES
from iqa.features.pipeline import CPU_CHUNK, InceptionFeatures
from iqa.features.preprocess import preprocess

# pytorch-fid 0.3.0 calls scipy.linalg.sqrtm(..., disp=False), deprecated in SciPy 1.16.
PYTORCH_FID_SQRTM = pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


# --------------------------------------------------------------------------------------
# Fixtures: weights, folders, pytorch-fid offline
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return fw.weights_file(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def state_dict(weights):
    return torch.load(weights, weights_only=True)


@pytest.fixture(scope="module")
def offline_pytorch_fid(state_dict):
    """pytorch-fid with its weight download replaced by the generated state dict."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pytorch_fid_inception, "load_state_dict_from_url", lambda *a, **k: state_dict)
        yield fid_score


def _write_folder(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fid-folders")
    return {
        # 80 images per set for well-conditioned 64-d covariances.
        "a80": _write_folder(root / "a80", fw.synthetic_images(80, 40, 21, "smooth")),
        "b80": _write_folder(root / "b80", fw.synthetic_images(80, 40, 22, "stripes")),
        # Small sets for 2048-d statistics (each image costs a full network pass).
        "a10": _write_folder(root / "a10", fw.synthetic_images(10, 96, 23, "smooth")),
        "b10": _write_folder(root / "b10", fw.synthetic_images(10, 96, 24, "noisy")),
    }


@pytest.fixture(scope="module")
def ext64(weights):
    return InceptionFeatures(dims=64, weights=weights, batch_size=40, workers=2)


@pytest.fixture(scope="module")
def ext2048(weights):
    return InceptionFeatures(dims=2048, weights=weights, batch_size=10, workers=2)


@pytest.fixture(scope="module")
def stats64(ext64, folders):
    return {k: ext64.statistics(folders[k], keep_features=True) for k in ("a80", "b80")}


@pytest.fixture(scope="module")
def stats2048(ext2048, folders):
    return {k: ext2048.statistics(folders[k], keep_features=True) for k in ("a10", "b10")}


# --------------------------------------------------------------------------------------
# Parity with pytorch-fid
# --------------------------------------------------------------------------------------


@PYTORCH_FID_SQRTM
def test_fid_64d_matches_pytorch_fid(offline_pytorch_fid, stats64, folders):
    ref = offline_pytorch_fid.calculate_fid_given_paths(
        [str(folders["a80"]), str(folders["b80"])], batch_size=40, device="cpu", dims=64, num_workers=0
    )
    ours = distance(stats64["a80"], stats64["b80"])
    # The value is far above round-off (the two sets differ). The features are the same bits
    # (see the 2048-d test), so the two differ only in float64 statistics and the same sqrtm:
    # measured 4e-13 relative. 1e-8 (tighter than the 1e-4) still allows float32
    # round-off in the features, should another machine's kernels round differently (1e-7 per
    # feature moves this FID by ~1e-9), and fails on real mistakes that 1e-4 lets through:
    # statistics accumulated in float32 (1.3e-7) or ε·I always added to the covariances (1.3e-5).
    assert ref > 1.0
    assert abs(ours - ref) <= 1e-8 * abs(ref)


def test_2048d_statistics_match_pytorch_fid(offline_pytorch_fid, stats2048, folders, weights):
    model = pytorch_fid_inception.InceptionV3([3]).eval()
    fast = InceptionFeatures(dims=2048, weights=weights, batch_size=10, fast=True)
    for key in ("a10", "b10"):
        files = sorted(folders[key].glob("*.png"))
        ref_feats = offline_pytorch_fid.get_activations(files, model, batch_size=10, dims=2048, num_workers=0)
        mu, sigma = ref_feats.mean(axis=0), np.cov(ref_feats, rowvar=False)  # calculate_activation_statistics
        # The default runs pytorch-fid's operations. The network runs CPU_CHUNK images at a
        # time, pytorch-fid all 10 at once: the features are still the same bits.
        ours = stats2048[key]
        assert CPU_CHUNK < 10
        assert np.array_equal(ours.features, ref_feats)
        # From the same features, mu and sigma differ only in float64 summation (one-pass
        # Σx, Σxxᵀ against np.mean and np.cov): measured 0 and 1.3e-15 relative; 1e-12
        # allows for another BLAS's order and the one-pass formula's cancellation.
        assert rel(ours.mu, mu) <= 1e-12
        assert rel(ours.sigma, sigma) <= 1e-12
        # fast=True (channels-last, folded batch norm) rounds differently: float32 round-off
        # through ~95 layers, ~1e-5 of the largest feature (pytorch-fid's own error against
        # float64 is as large; measured up to 1.3e-5 on these sets). Features are held to
        # 2e-5·max|f|, and the covariance to what that implies:
        # |Δσ| ≤ n/(n−1)·(4δ·max|x − μ| + 4δ²), δ = 2e-5·max|f|.
        quick = fast.statistics(folders[key], keep_features=True)
        delta = 2e-5 * np.abs(ref_feats).max()
        assert np.abs(quick.features - ref_feats).max() <= delta
        assert rel(quick.mu, mu) <= 2e-5
        n, spread = len(files), np.abs(ref_feats - mu).max()
        assert np.abs(quick.sigma - sigma).max() <= n / (n - 1) * (4 * delta * spread + 4 * delta**2)
    # The two sets really differ: their means are far apart compared with the tolerance.
    assert rel(stats2048["a10"].mu, stats2048["b10"].mu) > 1e-2


def test_features_vary_and_sets_differ(stats64, stats2048):
    fa = stats2048["a10"].features
    assert float(np.mean(fa.std(axis=0)) / np.mean(fa)) > 0.1
    assert distance(stats64["a80"], stats64["b80"]) > 1.0


def test_sqrtm_route_matches_pytorch_fid_formula(stats64):
    mu1, s1 = stats64["a80"].compute()
    mu2, s2 = stats64["b80"].compute()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The `disp` argument is deprecated", DeprecationWarning)
        ref = fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-12, abs=0)


# --------------------------------------------------------------------------------------
# Fréchet distance: routes and analytic cases
# --------------------------------------------------------------------------------------


def _random_cov(rng, d, floor=0.05):
    a = rng.standard_normal((d, d)) / np.sqrt(d)
    return a @ a.T + floor * np.eye(d)


def test_routes_agree_on_full_rank_high_dimensional_gaussians():
    # 1024-d rather than FID's 2048: scipy's sqrtm is O(d³) and takes ~12 s at 2048-d on a
    # 2-core machine (1.5 s here); the routes' agreement does not depend on d beyond the
    # κ·d·ε bound below, and the 2048-d pipeline is covered against pytorch-fid above.
    rng = np.random.default_rng(7)
    d = 1024
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    a = frechet_distance(mu1, s1, mu2, s2, route="sqrtm")
    b = frechet_distance(mu1, s1, mu2, s2, route="eigh")
    # Full rank, condition number κ ~ 100: each route is accurate to about κ·d·ε₆₄
    # = 100·1024·2.2e-16 ≈ 2e-11 relative (1.5e-15 measured at 2048-d), so 1e-10.
    assert a > 100
    assert abs(a - b) <= 1e-10 * abs(a)


@pytest.mark.parametrize("route", ROUTES)
def test_commuting_gaussians_have_the_closed_form(route):
    rng = np.random.default_rng(3)
    d = 32
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    la, lb = rng.uniform(0.1, 4, d), rng.uniform(0.1, 4, d)
    s1, s2 = (q * la) @ q.T, (q * lb) @ q.T
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(la) - np.sqrt(lb)) ** 2)
    # Condition number ≤ 40 in 32-d: κ·d·ε₆₄ ≈ 3e-13 relative (measured ≤ 7e-16).
    assert frechet_distance(mu1, s1, mu2, s2, route=route) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("route", ROUTES)
def test_identical_statistics_give_zero(route):
    rng = np.random.default_rng(4)
    s = _random_cov(rng, 64)
    mu = rng.standard_normal(64)
    # κ ~ 80 in 64-d: round-off ≈ κ·d·ε₆₄·Tr Σ ≈ 1e-12·Tr Σ (measured ≤ 4e-15·Tr Σ).
    assert abs(frechet_distance(mu, s, mu, s, route=route)) <= 1e-11 * np.trace(s)


def test_one_dimensional_gaussians():
    # N(0, 1) vs N(3, 4): 3² + (1 - 2)² = 10; a few float64 operations on exact numbers.
    assert frechet_distance(np.zeros(1), np.eye(1), np.full(1, 3.0), 4 * np.eye(1)) == pytest.approx(10.0, rel=1e-14)


def test_identical_folders_give_zero(stats64):
    a = stats64["a80"]
    assert abs(distance(a, a)) <= 1e-9 * np.trace(a.sigma)


def test_imaginary_root_is_refused():
    s1 = np.diag([1.0, -1.0])  # not a covariance: its product with I has a negative eigenvalue
    with pytest.raises(IQAError, match="imaginary component"):
        frechet_distance(np.zeros(2), s1, np.zeros(2), np.eye(2))


def test_singular_product_retries_with_eps_and_never_prints(capfd):
    """A product of covariances whose square root scipy's sqrtm cannot take (it returns inf)
    is retried with ε·I added, as pytorch-fid does: same value, an iqa warning, no output."""
    # Σ1 = wwᵀ (two images), Σ2 full rank: Σ1Σ2 has rank 1 (eigenvalue wᵀΣ2w = 22) and a
    # double zero eigenvalue, where sqrtm's Schur recurrence divides by zero.
    s1 = np.array([[0.0, 0, 0], [0, 1, -1], [0, -1, 1]])
    s2 = np.array([[6.0, -4, 3], [-4, 5, -4], [3, -4, 9]])
    assert np.linalg.eigvalsh(s2).min() > 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = frechet_distance(np.zeros(3), s1, np.ones(3), s2)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert any(issubclass(w.category, IQAWarning) and "adding 1e-06" in str(w.message) for w in caught)
    assert all(not issubclass(w.category, DeprecationWarning) for w in caught)
    # The same operations as pytorch-fid's retry (float64): the same value.
    with warnings.catch_warnings():
        # pytorch-fid's sqrtm(disp=False) deprecation and SciPy's singular-matrix note (theirs, not ours)
        warnings.filterwarnings("ignore", "The `disp` argument is deprecated", DeprecationWarning)
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        ref = fid_score.calculate_frechet_distance(np.zeros(3), s1, np.ones(3), s2)
    assert value == pytest.approx(ref, rel=1e-12)
    # Against the exact 3 + Tr Σ1 + Tr Σ2 − 2√22: the retry's ε moves the two zero
    # eigenvalues of the product to ~ε·λ(Σ2), whose roots add ~2√(ε·λ) ≈ 7e-3 to the trace
    # term (measured 6.9e-3); the eigh route, which needs no retry, is exact.
    exact = 3 + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(22)
    assert 1e-3 < exact - value < 2e-2
    assert frechet_distance(np.zeros(3), s1, np.ones(3), s2, route="eigh") == pytest.approx(exact, rel=1e-12)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ShapeError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(OptionError, match="route"):
        frechet_distance(np.zeros(1), np.eye(1), np.zeros(1), np.eye(1), route="svd")


def test_fewer_images_than_dims_warns():
    rng = np.random.default_rng(6)
    a, b = FIDStatistics(dims=8), FIDStatistics(dims=8)
    a.update(rng.random((5, 8)))
    b.update(rng.random((20, 8)))
    with pytest.warns(IQAWarning, match="5 images for 8-d features: the covariance is singular"):
        distance(a, b, route="eigh")


# --------------------------------------------------------------------------------------
# The accumulator
# --------------------------------------------------------------------------------------


def test_covariance_equals_numpy_cov():
    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, 1.0, size=(300, 16))
    s = FIDStatistics(dims=16)
    s.update(x[:100])
    s.update(x[100:])
    assert rel(s.mu, x.mean(0)) <= 1e-13
    assert rel(s.sigma, np.cov(x, rowvar=False)) <= 1e-12


def test_tensor_batches_accumulate_as_arrays_do():
    rng = np.random.default_rng(8)
    x = rng.gamma(2.0, 1.0, size=(60, 16)).astype(np.float32)
    arrays, tensors = FIDStatistics(dims=16), FIDStatistics(dims=16)
    for start in range(0, 60, 7):
        arrays.update(x[start : start + 7])
        tensors.update(torch.from_numpy(x[start : start + 7]))
    assert tensors.n == arrays.n == 60
    np.testing.assert_array_equal(tensors.sum, arrays.sum)
    # Σxxᵀ by torch's BLAS (tensors) and NumPy's (arrays): the same float64 products of
    # float32 values, added in another order; ≲ 7·ε₆₄ relative per batch, so 1e-12.
    assert rel(tensors.sum_outer, arrays.sum_outer) <= 1e-12
    assert rel(tensors.sigma, np.cov(x.astype(np.float64), rowvar=False)) <= 1e-12


def test_tensor_batches_follow_numpy_rules_for_a_sum_given_by_the_caller():
    # torch's in-place Σxxᵀ is only for iqa's own float64 sum: a read-only sum is refused as
    # NumPy refuses it (torch would write into it), a float32 one accumulates as NumPy does.
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(5, 8)).astype(np.float32))
    frozen = np.zeros((8, 8))
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        FIDStatistics(dims=8, sum_outer=frozen).update(x)
    assert not frozen.any()
    f32 = FIDStatistics(dims=8, sum_outer=np.zeros((8, 8), np.float32))
    f32.update(x)
    assert rel(f32.sum_outer, x.double().T.numpy() @ x.double().numpy()) <= 1e-6


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=2, max_size=5), st.integers(0, 2**31 - 1))
def test_merge_of_shards_equals_one_pass(sizes, seed):
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.5, 1.0, size=(sum(sizes), 8)) * rng.uniform(0.5, 2, 8)
    whole = FIDStatistics(dims=8, mode="pytorch-fid")
    whole.update(x)
    merged = FIDStatistics(dims=8, mode="pytorch-fid")
    start = 0
    for n in sizes:
        part = FIDStatistics(dims=8, mode="pytorch-fid")
        part.update(x[start : start + n])
        merged.merge(part)
        start += n
    # float64 sums of the same ≤ 200 rows in another order: ≲ n·ε₆₄ ≈ 4e-14 relative
    # (measured ≤ 4e-15 over 300 random draws), so 1e-12.
    assert merged.n == whole.n
    assert rel(merged.sum_outer, whole.sum_outer) <= 1e-12
    assert rel(merged.mu, whole.mu) <= 1e-12
    assert rel(merged.sigma, whole.sigma) <= 1e-12


def test_merge_of_folder_shards_equals_one_pass(ext64, folders, stats64):
    files = sorted(folders["a80"].glob("*.png"))
    parts = [ext64.statistics(files[i::3]) for i in range(3)]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    whole = stats64["a80"]
    # The same float32 features summed in another order (measured ≤ 1.4e-15): 1e-12.
    assert merged.n == whole.n == 80
    assert rel(merged.mu, whole.mu) <= 1e-12
    assert rel(merged.sigma, whole.sigma) <= 1e-12


def test_merge_refuses_other_conventions():
    a = FIDStatistics(dims=4, mode="pytorch-fid", weights_sha256="a" * 64)
    with pytest.raises(IQAError, match="preprocessing modes"):
        a.merge(FIDStatistics(dims=4, mode="clean", weights_sha256="a" * 64))
    with pytest.raises(IQAError, match="Inception weights"):
        a.merge(FIDStatistics(dims=4, mode="pytorch-fid", weights_sha256="b" * 64))
    with pytest.raises(ShapeError):
        a.merge(FIDStatistics(dims=5, mode="pytorch-fid"))


def test_fewer_than_two_images_is_an_error():
    s = FIDStatistics(dims=4)
    s.update(np.ones((1, 4)))
    with pytest.raises(IQAError, match="at least 2 images"):
        s.compute()


def test_features_are_not_kept_by_default(stats64, ext64, folders):
    plain = ext64.statistics([*sorted(folders["a80"].glob("*.png"))[:4]])
    assert plain.features is None and plain._features == []
    assert stats64["a80"].features.shape == (80, 64)


# --------------------------------------------------------------------------------------
# .npz files: both ways with pytorch-fid
# --------------------------------------------------------------------------------------


@PYTORCH_FID_SQRTM
def test_npz_round_trip_with_pytorch_fid(offline_pytorch_fid, stats64, tmp_path):
    pa, pb = tmp_path / "a.npz", tmp_path / "b.npz"
    stats64["a80"].save(pa)
    stats64["b80"].save(pb)
    # pytorch-fid reads ours...
    ref = offline_pytorch_fid.calculate_fid_given_paths([str(pa), str(pb)], batch_size=1, device="cpu", dims=64, num_workers=0)
    ours = distance(stats64["a80"], stats64["b80"])
    assert ref == pytest.approx(ours, rel=1e-12)
    loaded = FIDStatistics.load(pa)
    assert loaded.n == 80 and loaded.mode == "pytorch-fid" and loaded.dims == 64
    assert loaded.weights_sha256 == stats64["a80"].weights_sha256
    assert set(loaded.versions) == {"iqa", "torch", "numpy", "scipy", "pillow"}
    np.testing.assert_array_equal(loaded.sum_outer, stats64["a80"].sum_outer)
    np.testing.assert_array_equal(loaded.features, stats64["a80"].features)
    # ... and we read pytorch-fid's (mu and sigma only), with a warning.
    theirs = tmp_path / "theirs.npz"
    mu, sigma = offline_pytorch_fid.compute_statistics_of_path(str(pb), None, 1, 64, "cpu")
    np.savez_compressed(theirs, mu=mu, sigma=sigma)
    with pytest.warns(IQAWarning, match="unknown"):
        foreign = FIDStatistics.load(theirs)
    assert foreign.mode is None and foreign.features is None
    assert distance(loaded, foreign) == pytest.approx(ours, rel=1e-12)


def test_saved_file_holds_what_numpy_savez_writes(stats64, tmp_path):
    import zipfile

    stats = stats64["a80"]  # with its features: float32 beside the float64 moments and 0-d keys
    ours, theirs = stats.save(tmp_path / "ours.npz"), tmp_path / "theirs.npz"
    np.savez(theirs, **stats.arrays())
    with zipfile.ZipFile(ours) as a, zipfile.ZipFile(theirs) as b:
        assert a.namelist() == b.namelist()
        for name in a.namelist():
            assert a.read(name) == b.read(name), name  # .npy header and data, byte for byte


def test_npz_without_iqa_keys_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, something=np.zeros(3))
    with pytest.raises(ImageLoadError, match="expected the keys 'mu' and 'sigma'"):
        FIDStatistics.load(path)


def test_comparing_other_modes_is_an_error_unless_allowed(stats64):
    other = FIDStatistics(dims=64, mode="clean", weights_sha256=stats64["a80"].weights_sha256)
    other.update(stats64["b80"].features)
    with pytest.raises(IQAError, match="different preprocessing modes"):
        distance(stats64["a80"], other)
    assert distance(stats64["a80"], other, allow_mismatch=True) == pytest.approx(
        distance(stats64["a80"], stats64["b80"]), rel=1e-9
    )


# --------------------------------------------------------------------------------------
# Preprocessing modes
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def odd_images() -> list[np.ndarray]:
    rng = np.random.default_rng(9)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((37, 53), (300, 299), (512, 400))]


def test_clean_mode_is_clean_fids_resize(odd_images):
    from cleanfid.resize import make_resizer

    resize = make_resizer("PIL", False, "bicubic", (299, 299))
    for img in odd_images:
        expected = (torch.from_numpy(resize(img)).permute(2, 0, 1) - 128) / 128
        assert torch.equal(preprocess(img, "clean"), expected)


def test_tf_mode_is_torch_fidelitys_resize(odd_images):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    for img in odd_images:
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
        expected = (interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False) - 128) / 128
        assert torch.equal(preprocess(img, "tf"), expected[0])


def test_pytorch_fid_mode_is_its_forward_preprocessing(odd_images):
    import torchvision.transforms as TF

    for img in odd_images:
        x = TF.ToTensor()(img)[None]
        expected = 2 * torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
        assert torch.equal(preprocess(img, "pytorch-fid"), expected[0])


def test_mode_scalings_differ_enough_to_fail_parity(stats2048, folders, ext2048):
    """(x−128)/128 instead of 2x−1 moves every pixel by up to 1/128: the features move far
    outside the parity tolerance, so a swapped scaling cannot pass the pytorch-fid tests."""
    img = np.array(Image.open(sorted(folders["a10"].glob("*.png"))[0]))
    right = preprocess(img, "pytorch-fid")
    wrong = (torch.nn.functional.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].float(), size=(299, 299),
                                             mode="bilinear", align_corners=False)[0] - 128) / 128
    fr, fwrong = ext2048.features(right[None]), ext2048.features(wrong[None])
    assert np.abs(fr - fwrong).max() > 100 * 1e-5 * max(1, np.abs(fr).max())
    np.testing.assert_allclose(fr[0], stats2048["a10"].features[0], rtol=0, atol=1e-5 * np.abs(fr).max())


@pytest.mark.parametrize("mode", MODES)
def test_float_tensors_follow_data_range(mode):
    rng = np.random.default_rng(2)
    u8 = torch.from_numpy(rng.integers(0, 256, (2, 3, 40, 50), dtype=np.uint8))
    ref = preprocess(u8, mode)
    # Exactly the same input: k/255 and 257k/65535 are the same correctly rounded float32
    # quotient, and (k/255)·255 rounds back to k for every 8-bit k (checked for all 256).
    assert torch.equal(preprocess(u8.float() / 255, mode, data_range=1.0), ref)
    assert torch.equal(preprocess(u8.double() * 257, mode, data_range=65535.0), ref)
    # A data range that is ignored or misapplied moves the input far away.
    assert not torch.allclose(preprocess(u8.float() / 255, mode, data_range=255.0), ref, atol=1e-2)


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------


def test_tensor_and_dataloader_inputs_equal_the_folder(ext64, folders, stats64):
    files = sorted(folders["a80"].glob("*.png"))
    arr = np.stack([np.asarray(Image.open(f)) for f in files])
    tensor = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    from_tensor = ext64.statistics(tensor)
    from_numpy = ext64.statistics(arr)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(tensor.float() / 255, torch.zeros(80)), batch_size=32)
    from_loader = ext64.statistics(loader, data_range=1.0)
    # Tensors reach the network as the same bits as the decoded files (measured: mu equal,
    # sigma within 8e-16 from another batching of the float64 sums): 1e-12.
    for s in (from_tensor, from_loader):
        assert s.n == 80
        assert rel(s.mu, stats64["a80"].mu) <= 1e-12
        assert rel(s.sigma, stats64["a80"].sigma) <= 1e-12
    # A NumPy batch is channels-last: the resize runs on other strides and rounds otherwise
    # in float32 (measured 2e-8 for mu, 1e-7 for sigma): 1e-6.
    assert from_numpy.n == 80
    assert rel(from_numpy.mu, stats64["a80"].mu) <= 1e-6
    assert rel(from_numpy.sigma, stats64["a80"].sigma) <= 1e-6


def _write_png(path: Path, arr: np.ndarray) -> None:
    import cv2

    if arr.ndim == 3:
        arr = arr[:, :, ::-1]
    cv2.imwrite(str(path), arr)


def test_gray_and_16_bit_files(ext64, tmp_path):
    imgs = fw.synthetic_images(4, 40, 31, "smooth")
    gray = imgs[..., 1]
    for name, data in (("rgb8", np.repeat(gray[..., None], 3, axis=-1)), ("gray8", gray), ("rgb16", imgs.astype(np.uint16) * 257)):
        (tmp_path / name).mkdir()
        for i, a in enumerate(data):
            _write_png(tmp_path / name / f"{i}.png", a)
    rgb8 = ext64.statistics(tmp_path / "rgb8")
    gray8 = ext64.statistics(tmp_path / "gray8")
    np.testing.assert_array_equal(gray8.sum_outer, rgb8.sum_outer)
    rgb16 = ext64.statistics(tmp_path / "rgb16")
    colour = ext64.statistics(list(_folder_from(tmp_path / "c8", imgs)))
    np.testing.assert_array_equal(rgb16.sum_outer, colour.sum_outer)
    assert any("round(x·255/65535)" in n for n in rgb16.notes)


def _folder_from(folder: Path, imgs: np.ndarray) -> list[Path]:
    folder.mkdir()
    out = []
    for i, a in enumerate(imgs):
        _write_png(folder / f"{i}.png", a)
        out.append(folder / f"{i}.png")
    return out


def test_txt_file_list_equals_the_list_of_paths(ext64, folders, tmp_path):
    files = sorted(folders["a80"].glob("*.png"))[:6]
    listing = folders["a80"].parent / "list.txt"
    listing.write_text("# six images\n" + "\n".join(f"a80/{f.name}" for f in files) + "\n\n")
    from_txt = ext64.statistics(listing)
    from_list = ext64.statistics(files)
    assert from_txt.n == 6
    np.testing.assert_array_equal(from_txt.sum_outer, from_list.sum_outer)


def test_unreadable_files_are_skipped_and_counted(ext64, folders, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    for f in sorted(folders["a80"].glob("*.png"))[:5]:
        (d / f.name).write_bytes(f.read_bytes())
    (d / "broken.PNG").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.warns(SkippedFilesWarning, match="1 unreadable image") as caught:
        s = ext64.statistics(d)
    assert [w.message.skipped for w in caught] == [s.skipped]
    assert s.n == 5 and len(s.skipped) == 1 and s.skipped[0][0].endswith("broken.PNG")
    with pytest.raises(ImageLoadError, match="broken.PNG"):
        ext64.statistics(d, strict=True)


def test_empty_folder_and_single_image_are_errors(ext64, folders, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageLoadError, match="no image files"):
        ext64.statistics(tmp_path / "empty")
    with pytest.raises(IQAError, match="at least 2"):
        ext64.statistics(sorted(folders["a80"].glob("*.png"))[:1])


def test_symlink_loop_is_refused(ext64, tmp_path):
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "again").symlink_to(tmp_path / "loop")
    with pytest.raises(ImageLoadError, match="symbolic link loop"):
        ext64.statistics(tmp_path / "loop")


def test_npz_dims_must_match(ext64, stats64, tmp_path, weights):
    path = stats64["a80"].save(tmp_path / "a.npz")
    ext192 = InceptionFeatures(dims=192, weights=weights)
    with pytest.raises(ShapeError, match="64-d statistics"):
        ext192.statistics(path)


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def test_cli_fid_and_stats(weights, folders, stats64, tmp_path):
    runner = CliRunner()
    expected = distance(stats64["a80"], stats64["b80"])
    pb = stats64["b80"].save(tmp_path / "b.npz")
    w = ["--weights", str(weights)]
    res = runner.invoke(main, ["fid", str(folders["a80"]), str(pb), *w])  # --dims from the .npz
    assert res.exit_code == 0, res.output
    assert float(res.stdout) == pytest.approx(expected, rel=1e-12)
    res = runner.invoke(main, ["stats", str(folders["a80"]), "-o", str(tmp_path / "a.npz"), *w, "--dims", "64"])
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    with np.load(tmp_path / "a.npz") as f:
        np.testing.assert_allclose(f["mu"], stats64["a80"].mu, rtol=1e-12)
        assert "feats" not in f.files
    res = runner.invoke(main, ["fid", str(tmp_path / "a.npz"), str(pb), "--format", "json", "--route", "eigh"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["route"] == "eigh" and doc["inputs"][0]["mode"] == "pytorch-fid"
    assert doc["inputs"][0]["weights_sha256"] == stats64["a80"].weights_sha256
    assert doc["value"] == pytest.approx(expected, rel=1e-6)
    small = tmp_path / "small"
    small.mkdir()
    for f in sorted(folders["a80"].glob("*.png"))[:4]:
        (small / f.name).write_bytes(f.read_bytes())
    res = runner.invoke(main, ["fid", str(small), str(pb), *w, "--mode", "tf"])
    assert res.exit_code == 1 and "different preprocessing modes" in res.stderr
    res = runner.invoke(main, ["fid", str(small), str(pb), *w, "--dims", "192"])
    assert res.exit_code == 1 and "use --dims 64" in res.stderr


def test_cli_skipped_image_exits_1_with_the_value(weights, folders, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    for f in sorted(folders["a80"].glob("*.png"))[:6]:
        (d / f.name).write_bytes(f.read_bytes())
    (d / "zz.png").write_bytes(b"")
    res = CliRunner().invoke(main, ["fid", str(d), str(folders["b80"]), "--weights", str(weights), "--dims", "64"])
    assert res.exit_code == 1
    float(res.stdout)
    assert "zz.png" in res.stderr and "1 unreadable image(s) skipped" in res.stderr
    res = CliRunner().invoke(main, ["fid", str(d), str(folders["b80"]), "--weights", str(weights), "--dims", "64", "--strict"])
    assert res.exit_code == 1 and res.stdout == "" and "zz.png" in res.stderr


def test_cli_subprocess_on_npz_files(stats64, tmp_path):
    pa = stats64["a80"].save(tmp_path / "a.npz")
    pb = stats64["b80"].save(tmp_path / "b.npz")
    exe = Path(sys.executable).with_name("iqa")
    out = subprocess.run([str(exe), "fid", str(pa), str(pb)], capture_output=True, text=True, check=True)
    assert out.stderr == ""
    assert float(out.stdout) == pytest.approx(distance(stats64["a80"], stats64["b80"]), rel=1e-12)

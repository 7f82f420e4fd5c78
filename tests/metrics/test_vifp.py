"""VIFp: parity with piq's ``vif_p`` (distorted first there), MATLAB's published value, the
conventions (plain luma, the 0–255 scale), torch, gradients, errors and the command line."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import piq
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import write_png
from iqa.cli import main
from iqa.color import rgb_to_y
from iqa.errors import OptionError, ShapeError
from iqa.metrics import vifp as vifp_module
from iqa.metrics.vifp import MIN_SIZE, VIFpOptions, compute_vifp, vifp

# float64 on both sides, the same operations up to the order of sums (separable windows as
# banded matrix products here, 2-D convolutions in piq) and a mean shift that changes no
# variance: measured differences are at most 1.1e-14 relative, so 1e-10 catches any change
# in the formula while leaving room for BLAS's summation order.
TOL = 1e-10
# float32 tensors against piq in float64 (the exact value): the moments are filtered in
# float32 (relative rounding 6e-8 per operation); measured at most 2.2e-7 relative.
TOL_F32 = 2e-6


def piq_vifp(reference, distorted, data_range=255.0, **kw) -> np.ndarray:
    """piq.vif_p in float64 with its arguments in piq's order: distorted first."""
    return piq.vif_p(
        to_tensor(distorted), to_tensor(reference), data_range=data_range, reduction="none", **kw
    ).numpy()


def to_tensor(a: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    """A NumPy ``H×W``, ``H×W×C`` or ``N×H×W×C`` image as an ``N×C×H×W`` tensor."""
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim == 3:
        a = a[None]
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1))).to(dtype)


def distorted_pair(rng, shape, dtype=np.uint8, noise=0.06):
    """A smoothed random reference and a noisy copy (values far from 0 and 1)."""
    peak = np.iinfo(dtype).max
    ref = rng.integers(0, peak + 1, shape).astype(np.float64)
    ref = (ref + np.roll(ref, 1, 0) + np.roll(ref, 1, 1) + np.roll(ref, (1, 1), (0, 1))) / 4
    ref = np.rint(ref).astype(dtype)
    dist = np.clip(np.rint(ref + rng.normal(0, noise * peak, shape)), 0, peak).astype(dtype)
    return ref, dist


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# --------------------------------------------------------------------------------------
# Parity with piq
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [
        (41, 41),  # the smallest size: one value at the fourth scale
        (64, 64),
        (77, 50),  # odd, non-square
        (50, 77, 3),
        (97, 128, 3),
        (45, 700),  # wide: the banded passes split into blocks (and the last block is short)
        (700, 43, 3),  # tall: the same along the other axis
        (3, 60, 53, 3),  # a batch
    ],
    ids=str,
)
def test_matches_piq_uint8(rng, shape):
    ref, dist = distorted_pair(rng, shape)
    expected = piq_vifp(ref, dist)
    got = vifp(ref, dist)
    assert np.shape(got) == (np.shape(expected) if len(shape) == 4 else ())
    assert rel(got, expected) <= TOL


@pytest.mark.parametrize("channels", [1, 3])
def test_matches_piq_uint16_given_the_same_data_scaled(rng, channels):
    ref, dist = distorted_pair(rng, (67, 58, channels), dtype=np.uint16)
    expected = piq_vifp(ref / 65535.0, dist / 65535.0, data_range=1.0)
    assert rel(vifp(ref, dist), expected) <= TOL
    assert rel(vifp(ref, dist), piq_vifp(ref, dist, data_range=65535.0)) <= TOL


def test_bit_depth_and_float_data_range_match_piq(rng):
    ref, dist = distorted_pair(rng, (52, 61, 3), dtype=np.uint16)
    ref10, dist10 = ref >> 6, dist >> 6  # 10-bit data in uint16
    assert rel(vifp(ref10, dist10, bit_depth=10), piq_vifp(ref10, dist10, data_range=1023.0)) <= TOL
    r, d = ref / 65535.0, dist / 65535.0
    assert rel(vifp(r, d, data_range=1.0), piq_vifp(r, d, data_range=1.0)) <= TOL


def test_sigma_n_sq_matches_piq(rng):
    ref, dist = distorted_pair(rng, (48, 56, 3))
    for s in (0.5, 10.0):
        assert rel(vifp(ref, dist, sigma_n_sq=s), piq_vifp(ref, dist, sigma_n_sq=s)) <= TOL


def test_16_bit_scores_as_its_8_bit_original(rng):
    # sigma_n_sq and the stabiliser are on the 0-255 scale: x·257 (uint16) is x (uint8).
    ref, dist = distorted_pair(rng, (50, 50, 3))
    wide = vifp(ref.astype(np.uint16) * 257, dist.astype(np.uint16) * 257)
    assert rel(wide, vifp(ref, dist)) <= TOL


def test_paths_give_the_array_value(tmp_path, rng):
    ref, dist = distorted_pair(rng, (47, 52, 3))
    a, b = write_png(tmp_path / "a.png", ref), write_png(tmp_path / "b.png", dist)
    assert vifp(a, b) == vifp(ref, dist)
    assert isinstance(vifp(a, b), float)


def test_crop_border_is_the_cropped_image(rng):
    ref, dist = distorted_pair(rng, (60, 57, 3))
    assert vifp(ref, dist, crop_border=5) == vifp(ref[5:-5, 5:-5], dist[5:-5, 5:-5])


# --------------------------------------------------------------------------------------
# The conventions: argument order, luma, the 0-255 scale
# --------------------------------------------------------------------------------------


def test_not_symmetric_and_piq_takes_the_distorted_image_first(rng):
    ref, dist = distorted_pair(rng, (64, 64, 3))
    forward, swapped = vifp(ref, dist), vifp(dist, ref)
    assert rel(forward, piq_vifp(ref, dist)) <= TOL  # piq.vif_p(dist, ref)
    assert rel(swapped, piq.vif_p(to_tensor(ref), to_tensor(dist), data_range=255.0).numpy()) <= TOL
    assert abs(forward - swapped) > 1e6 * TOL * forward  # measured 2.4e-2 relative
    # A contrast loss: below 1 one way, above 1 the other.
    low = (ref // 2).astype(np.uint8)
    assert vifp(ref, low) < 0.8 and vifp(low, ref) > 1.2  # 0.74 and 1.34


def test_rgb_uses_the_plain_luma_not_bt601(rng):
    ref, dist = distorted_pair(rng, (64, 64, 3))
    luma = np.array([0.299, 0.587, 0.114])
    gray = piq_vifp(ref.astype(np.float64) @ luma, dist.astype(np.float64) @ luma)
    assert rel(vifp(ref, dist), gray) <= TOL
    # color="y" scores BT.601 Y (offset 16, other weights, 0-255 scale) as a gray image: a
    # different number, far above the tolerance (measured 4.4e-2 relative).
    y_ref, y_dist = (rgb_to_y(x[None].astype(np.float64), 255.0, "numpy")[0, :, :, 0] for x in (ref, dist))
    bt601 = vifp(ref, dist, color="y")
    assert rel(bt601, piq_vifp(y_ref, y_dist)) <= TOL
    assert rel(bt601, gray) > 1e6 * TOL


def test_sigma_n_sq_is_not_in_the_input_units(rng):
    # The default noise variance 2 is on the 0-255 scale; the same 2 in 16-bit units is
    # 2·(255/65535)² on that scale, and a very different number.
    ref, dist = distorted_pair(rng, (56, 56), dtype=np.uint16)
    unscaled = vifp(ref, dist, sigma_n_sq=2.0 * (255 / 65535) ** 2)
    assert rel(unscaled, piq_vifp(ref, dist, data_range=65535.0, sigma_n_sq=2.0 * (255 / 65535) ** 2)) <= TOL
    assert rel(unscaled, vifp(ref, dist)) > 1e6 * TOL  # measured 0.63 relative


def test_identical_images_score_one(rng):
    ref, _ = distorted_pair(rng, (50, 63, 3))
    value = vifp(ref, ref)
    # The stabiliser 1e-8 in the gain g = σ_rd / (σ_r² + 1e-8) leaves 1 - 9.6e-10 here.
    assert value == pytest.approx(1.0, abs=1e-8)
    assert rel(value, piq_vifp(ref, ref)) <= TOL


def test_flat_images(rng):
    flat = np.full((48, 48), 180, np.uint8)
    other = np.full((48, 48), 30, np.uint8)
    textured, _ = distorted_pair(rng, (48, 48))
    # A flat reference has no information: (0 + 1e-8) / (0 + 1e-8) = 1 whatever the distorted image.
    assert vifp(flat, other) == 1.0 == piq_vifp(flat, other)[0]
    assert vifp(flat, textured) == 1.0 == piq_vifp(flat, textured)[0]
    # A flat distorted image keeps nothing of a textured reference.
    assert 0 <= vifp(textured, flat) < 1e-10
    # float32 too: the moments are taken about each image's mean, so nothing cancels.
    # (piq's float32 gives 7e-5 for this pair: E[x²] - μ² leaves round-off above 1e-8.)
    t = torch.from_numpy(np.stack([flat, other]) / 255.0).float()[:, None]
    assert vifp(t[:1], t[1:], data_range=1.0).item() == 1.0


def test_variances_below_the_stabiliser_count_as_zero():
    # Checkerboards of amplitude 1.2e-4 and 0.8e-4 (0-255 scale): local variances about
    # 1.4e-8 (kept) and 0.6e-8 (below 1e-8: the distorted image counts as flat, so g = 0).
    # Counting the second one would give 0.44 instead of 0.0014. The terms are log10(1 + ~7e-9),
    # where 1 + x rounds at 1.5e-8 relative: hence 1e-6 here (measured 1.2e-7).
    checker = (np.indices((64, 64)).sum(0) % 2) * 2.0 - 1
    for a, b, expected in [(1.2e-4, 0.8e-4, 0.0013861), (1.2e-4, 1.1e-4, 0.29364), (0.8e-4, 1.2e-4, 1.0)]:
        ref, dist = 1 + a * checker, 1 + b * checker
        value = vifp(ref, dist, data_range=255.0)
        assert rel(value, piq_vifp(ref, dist)) <= 1e-6
        assert value == pytest.approx(expected, rel=1e-4)


# --------------------------------------------------------------------------------------
# Batches and torch
# --------------------------------------------------------------------------------------


def test_batch_equals_one_by_one_across_chunks(rng, monkeypatch):
    ref, dist = distorted_pair(rng, (5, 44, 51, 3))
    one_by_one = np.array([vifp(r, d) for r, d in zip(ref, dist)])
    # Batches are scored a few images at a time: make chunks of two images (2, 2, 1).
    monkeypatch.setattr(vifp_module, "_CHUNK_PIXELS", 2 * 44 * 51)
    batch = vifp(ref, dist)
    assert batch.shape == (5,)
    np.testing.assert_allclose(batch, one_by_one, rtol=1e-13, atol=0)
    assert rel(batch, piq_vifp(ref, dist)) <= TOL


def test_torch_float32_within_tolerance(rng):
    ref, dist = distorted_pair(rng, (2, 72, 65, 3))
    exact = piq_vifp(ref, dist)
    got = vifp(to_tensor(ref, torch.float32), to_tensor(dist, torch.float32), data_range=255.0)
    assert got.dtype == torch.float32 and got.shape == (2,)
    assert rel(got.numpy(), exact) <= TOL_F32
    one = vifp(to_tensor(ref[:1], torch.float32)[0], to_tensor(dist[:1], torch.float32)[0], data_range=255.0)
    assert one.shape == () and rel(one.item(), exact[0]) <= TOL_F32


def test_torch_float32_bright_low_contrast(rng):
    # Values 0.900-0.902 of the range with noise 0.001: E[x²] - μ² cancels about 4 digits in
    # float32, and piq's float32 is 21% off here (1.222 for 1.011). About each image's mean
    # nothing cancels (measured 1.4e-8). The float64 reference is given the same float32 data.
    ref = (0.9 + 0.002 * rng.random((1, 64, 64, 1))).astype(np.float32)
    dist = np.clip(ref + rng.normal(0, 0.001, ref.shape), 0, 1).astype(np.float32)
    exact = piq_vifp(ref, dist, data_range=1.0)
    got = vifp(to_tensor(ref, torch.float32), to_tensor(dist, torch.float32), data_range=1.0)
    assert rel(got.numpy(), exact) <= TOL_F32


def test_torch_float64_and_uint8_tensors(rng):
    ref, dist = distorted_pair(rng, (2, 49, 45, 3))
    expected = vifp(ref, dist)
    got = vifp(to_tensor(ref), to_tensor(dist), data_range=255.0)
    assert got.dtype == torch.float64 and rel(got.numpy(), expected) <= 1e-14
    as_uint8 = vifp(to_tensor(ref, torch.uint8), to_tensor(dist, torch.uint8))
    assert as_uint8.dtype == torch.float32 and rel(as_uint8.numpy(), expected) <= TOL_F32


def test_half_precision_is_computed_in_float32(rng):
    # 1e-8 and moments up to 255² are out of float16's reach: computed in float32, returned
    # in the input's dtype.
    ref, dist = distorted_pair(rng, (1, 48, 48, 3))
    exact = piq_vifp(ref, dist)
    for dtype in (torch.float16, torch.bfloat16):
        got = vifp(to_tensor(ref, dtype), to_tensor(dist, dtype), data_range=255.0)
        assert got.dtype == dtype and rel(got.float().numpy(), exact) <= 1e-2  # the dtype's rounding


def test_gradient_is_correct():
    # gradcheck's fast mode (random projections of the Jacobian) on a small float64 pair.
    g = torch.Generator().manual_seed(0)
    ref = (0.2 + 0.6 * torch.rand(1, 1, 43, 45, generator=g, dtype=torch.float64)).requires_grad_()
    dist = (ref.detach() + 0.05 * torch.randn(1, 1, 43, 45, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda r, d: vifp(r, d, data_range=1.0), (ref, dist), fast_mode=True)


def test_gradient_equals_piqs(rng):
    ref, dist = distorted_pair(rng, (1, 50, 47, 3))
    grads = []
    for f in (lambda r, d: vifp(r, d, data_range=255.0), lambda r, d: piq.vif_p(d, r, data_range=255.0)):
        r, d = to_tensor(ref).requires_grad_(), to_tensor(dist).requires_grad_()
        f(r, d).sum().backward()
        grads.append((r.grad, d.grad))
    for ours, theirs in zip(*grads):
        assert ours.abs().max() > 0
        assert (ours - theirs).abs().max() <= 1e-9 * theirs.abs().max()  # measured 2e-13


def test_float32_backward_gives_finite_nonzero_gradients(rng):
    ref, dist = distorted_pair(rng, (2, 64, 64, 3))
    d = to_tensor(dist, torch.float32).div(255).requires_grad_()
    value = vifp(to_tensor(ref, torch.float32).div(255), d, data_range=1.0)
    (1 - value).sum().backward()
    assert torch.isfinite(d.grad).all() and d.grad.abs().max() > 0


@settings(deadline=None, max_examples=10)
@given(
    h=st.integers(MIN_SIZE, 60), w=st.integers(MIN_SIZE, 60), channels=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_properties(h, w, channels, seed):
    ref, dist = distorted_pair(np.random.default_rng(seed), (2, h, w, channels))
    values = vifp(ref, dist)
    assert np.all(values >= 0) and np.all(np.isfinite(values))
    # uint8 and float/255 with data_range=1 are the same data.
    np.testing.assert_allclose(vifp(ref / 255.0, dist / 255.0, data_range=1.0), values, rtol=1e-12)
    np.testing.assert_allclose([vifp(ref[i], dist[i]) for i in range(2)], values, rtol=1e-13)


# --------------------------------------------------------------------------------------
# Errors and options
# --------------------------------------------------------------------------------------


def test_smaller_than_41_is_an_error(rng):
    ref, dist = distorted_pair(rng, (41, 41))
    assert 0 < vifp(ref, dist) < 1
    ref, dist = distorted_pair(rng, (42, 42))
    for shape in [(40, 41), (41, 40), (20, 300)]:
        a = np.zeros(shape, np.uint8)
        with pytest.raises(ShapeError, match=r"at least 41×41 .*got \d+×\d+; no option lowers this"):
            vifp(a, a)
    with pytest.raises(ShapeError, match=r"got 40×40.*crop less with crop_border"):
        vifp(ref, dist, crop_border=1)
    with pytest.raises(ValueError, match="at least 41x41"):  # piq's limit is the same
        piq.vif_p(to_tensor(dist[:40]), to_tensor(ref[:40]), data_range=255.0)


def test_alpha_kept_is_an_error(rng):
    ref, dist = distorted_pair(rng, (48, 48, 4))
    ref[..., 3] = dist[..., 3] = 255
    assert vifp(ref, dist) == vifp(ref[..., :3], dist[..., :3])  # opaque alpha dropped
    for c in (2, 4):
        with pytest.raises(ShapeError, match=rf"gray or RGB images, got {c} channels.*alpha='drop'"):
            vifp(ref[..., :c], dist[..., :c], alpha="keep")


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "2", True, None])
def test_sigma_n_sq_must_be_positive_and_finite(bad):
    with pytest.raises(OptionError, match=r"^sigma_n_sq must be a positive finite number"):
        VIFpOptions(sigma_n_sq=bad)


def test_options_and_provenance():
    opts = VIFpOptions(sigma_n_sq=3)
    assert opts.sigma_n_sq == 3.0 and isinstance(opts.sigma_n_sq, float)
    prov = opts.provenance()
    assert prov["sigma_n_sq"] == 3.0 and prov["windows"] == [17, 9, 5, 3] and prov["eps"] == 1e-8
    json.dumps(prov)


def test_kernel_on_a_prepared_pair(rng):
    from iqa.io import prepare_pair

    ref, dist = distorted_pair(rng, (2, 46, 50, 3))
    values, maps = compute_vifp(prepare_pair(ref, dist), VIFpOptions())
    assert maps is None and rel(values, piq_vifp(ref, dist)) <= TOL


# --------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_command_and_score_column_give_the_library_value(tmp_path, rng):
    ref, dist = distorted_pair(rng, (53, 61, 3))
    (tmp_path / "r").mkdir(), (tmp_path / "d").mkdir()
    a, b = write_png(tmp_path / "r" / "x.png", ref), write_png(tmp_path / "d" / "x.png", dist)
    result = run("vifp", a, b)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{vifp(a, b)!r}\n"
    result = run("vifp", a, b, "--sigma-n-sq", "3.5", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["value"] == vifp(a, b, sigma_n_sq=3.5) and doc["settings"]["sigma_n_sq"] == 3.5
    out = tmp_path / "scores.csv"
    result = run("score", tmp_path / "r", tmp_path / "d", "-m", "vifp", "--vifp-sigma-n-sq", "3.5", "-o", out)
    assert result.exit_code == 0, result.output
    with open(out, newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["vifp"]) == vifp(a, b, sigma_n_sq=3.5)


def test_command_errors_name_the_flags(tmp_path, rng):
    ref, dist = distorted_pair(rng, (45, 45))
    a, b = write_png(tmp_path / "a.png", ref), write_png(tmp_path / "b.png", dist)
    result = run("vifp", a, b, "--sigma-n-sq", "0")
    assert result.exit_code == 2 and "--sigma-n-sq must be a positive finite number" in result.output
    result = run("vifp", a, b, "--crop-border", "3")
    assert result.exit_code == 1 and "crop less with --crop-border)" in result.output
    # In iqa score too: the crop is a convention shared by the metrics, never prefixed.
    (tmp_path / "r").mkdir(), (tmp_path / "d").mkdir()
    write_png(tmp_path / "r" / "x.png", ref), write_png(tmp_path / "d" / "x.png", dist)
    out = tmp_path / "scores.csv"
    result = run("score", tmp_path / "r", tmp_path / "d", "-m", "vifp", "--crop-border", "3", "-o", out)
    assert result.exit_code == 1 and "crop less with --crop-border)" in out.read_text()


# --------------------------------------------------------------------------------------
# Published values (piq's test images; optional)
# --------------------------------------------------------------------------------------

ASSETS = {
    "goldhill.gif": "d91c0c802805c8574b938adbf8ee6331fb6c567fbbb161251251d5d711a2d993",
    "goldhill_jpeg.gif": "801c0871583503a22c63d257e336bc7e6b34e33381592f31aff987b2096548c4",
    "I01.BMP": "43d3c92154c48529fae107749bb60777950ccb8e324b120a63c142f4279df63f",
    "i01_01_5.bmp": "74ec08fde9c5e6d6ec0168ca8a6b8c6824d55557c9bd6b816a52b99b2db3e4ed",
}


def piq_asset(name: str) -> np.ndarray:
    """A verified image of piq's tests/assets (piq 0.8.0, Apache-2.0), from IQA_TEST_ASSETS."""
    from PIL import Image

    folder = os.environ.get("IQA_TEST_ASSETS")
    if not folder or not (Path(folder) / name).is_file():
        pytest.skip(f"published vifp values: set IQA_TEST_ASSETS to a folder with piq's tests/assets/{name}")
    path = Path(folder) / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == ASSETS[name], f"{path}: not piq's file (SHA-256 {digest})"
    with Image.open(path) as im:
        return np.asarray(im.convert("L" if im.mode in ("L", "P") else "RGB"))


def test_goldhill_matches_matlab_vifp_mscale():
    # piq 0.8.0 tests/test_vif.py records 0.2665 as MATLAB's vifp_mscale.m for goldhill_jpeg
    # vs goldhill (gray, 512×512). Tolerance: half a unit of the 4th published decimal.
    value = vifp(piq_asset("goldhill.gif"), piq_asset("goldhill_jpeg.gif"))
    assert abs(value - 0.2665) <= 0.5e-4  # iqa: 0.266468


def test_tid2013_matches_piqs_recorded_luma_value():
    # The same test records 0.3147 for TID2013's i01_01_5.bmp vs I01.BMP, "after taking the
    # luminance channel from YIQ" (vifp_mscale.m is gray-only): piq's value, not MATLAB's.
    value = vifp(piq_asset("I01.BMP"), piq_asset("i01_01_5.bmp"))
    assert abs(value - 0.3147) <= 0.5e-4

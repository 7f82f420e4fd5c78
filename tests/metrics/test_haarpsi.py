"""HaarPSI: parity with piq's ``haarpsi`` and with Reisenhofer's ``HaarPSI.m`` (published value)."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import piq
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from scipy.signal import convolve2d

from iqa.cli import main
from iqa.cli.options import cli_namer
from iqa.color import YIQ_MATRIX
from iqa.decode import read_image
from iqa.errors import OptionError, ShapeError
from iqa.metrics.haarpsi import HaarPSIOptions, haarpsi
import helpers

# float64 on both sides, the same operations up to summation order (iqa builds the Haar
# coefficients from block sums, piq convolves): measured ≤ 1.1e-14 relative over 80 random
# pairs of 16–128 px (the final logit amplifies round-off). 1e-10 catches any change of formula.
TOL = 1e-10
# float32 tensors against the float64 value: iqa's float32 error measured up to 2.9e-6
# relative on 16–128 px images (piq's own float32 error: 3.6e-6); 3e-5 leaves a margin.
TOL_F32 = 3e-5


def distorted_pair(rng, shape, dtype=np.uint8, sigma=0.08):
    """A smooth-ish random image and a noisy copy, far from both 0 and 1 in HaarPSI."""
    peak = np.iinfo(dtype).max
    ref = rng.integers(0, peak + 1, shape).astype(np.float64)
    ref = (ref + np.roll(ref, 1, 0) + np.roll(ref, 1, 1) + np.roll(ref, (1, 1), (0, 1))) / 4
    ref = np.rint(ref).astype(dtype)
    dist = np.clip(np.rint(ref + rng.normal(0, sigma * peak, shape)), 0, peak).astype(dtype)
    return ref, dist


def to_tensor(a: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    """H×W → 1×1×H×W, H×W×C → 1×C×H×W, N×H×W×C → N×C×H×W."""
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim == 3:
        a = a[None]
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1))).to(dtype)


def piq_value(ref: np.ndarray, dist: np.ndarray, data_range: float, **kw) -> np.ndarray:
    """piq 0.8.0 in float64 (its alpha is iqa's logistic_alpha)."""
    return piq.haarpsi(to_tensor(ref), to_tensor(dist), data_range=data_range, reduction="none", **kw).numpy()


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) / np.abs(np.asarray(b))))


# --------------------------------------------------------------------------------------
# Parity with piq
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(16, 16, 3), (37, 53, 3), (64, 47, 3), (17, 16, 3), (50, 41), (33, 128), (16, 23)])
@pytest.mark.parametrize("subsample", [True, False])
def test_matches_piq_uint8(rng, shape, subsample):
    ref, dist = distorted_pair(rng, shape)
    got = haarpsi(ref, dist, subsample=subsample)
    assert isinstance(got, float)
    assert rel(got, piq_value(ref, dist, 255, subsample=subsample)) < TOL


def test_matches_piq_uint16_given_the_same_data_and_range(rng):
    ref, dist = distorted_pair(rng, (40, 35, 3), dtype=np.uint16)
    assert rel(haarpsi(ref, dist), piq_value(ref, dist, 65535)) < TOL
    # 12-bit data in a 16-bit container: piq is given the range 4095.
    ref12, dist12 = ref >> 4, dist >> 4
    assert rel(haarpsi(ref12, dist12, bit_depth=12), piq_value(ref12, dist12, 4095)) < TOL


def test_uint16_scores_as_its_8_bit_version(rng):
    # c = 30 is on the 0–255 scale: pixels are rescaled by 255/data_range, so x·257 in 16 bits
    # is the same image (c = 30·257² in raw 16-bit units).
    ref, dist = distorted_pair(rng, (33, 35, 3))
    wide = haarpsi(ref.astype(np.uint16) * 257, dist.astype(np.uint16) * 257)
    assert abs(wide - haarpsi(ref, dist)) < 1e-13


def test_float_input_with_its_data_range(rng):
    ref, dist = distorted_pair(rng, (32, 30, 3))
    assert abs(haarpsi(ref / 255.0, dist / 255.0, data_range=1.0) - haarpsi(ref, dist)) < 1e-13


def test_torch_float64_batches_match_piq_and_one_by_one(rng):
    ref, dist = distorted_pair(rng, (3, 41, 37, 3))
    x, y = to_tensor(ref) / 255, to_tensor(dist) / 255
    got = haarpsi(x, y, data_range=1.0)
    assert got.dtype == torch.float64 and got.shape == (3,)
    want = piq.haarpsi(x, y, data_range=1.0, reduction="none")
    assert rel(got.numpy(), want.numpy()) < TOL
    for i in range(3):  # batch == one by one, in torch and in NumPy
        one = haarpsi(x[i], y[i], data_range=1.0)
        assert one.shape == () and abs(float(one) - float(got[i])) < 1e-14
    np.testing.assert_allclose(haarpsi(ref, dist), [haarpsi(ref[i], dist[i]) for i in range(3)], rtol=0, atol=1e-14)


def test_torch_float32_within_the_float32_tolerance(rng):
    ref, dist = distorted_pair(rng, (2, 96, 80, 3))
    x, y = to_tensor(ref, torch.float32) / 255, to_tensor(dist, torch.float32) / 255
    got = haarpsi(x, y, data_range=1.0)
    assert got.dtype == torch.float32
    truth = piq_value(ref, dist, 255)
    assert rel(got.double().numpy(), truth) < TOL_F32
    gray = haarpsi(x[:, :1], y[:, :1], data_range=1.0)
    assert rel(gray.double().numpy(), piq_value(ref[..., :1], dist[..., :1], 255)) < TOL_F32


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(rng, dtype):
    # The 0–255 block sums and their squares overflow float16 (piq 0.8 returns NaN).
    ref, dist = distorted_pair(rng, (32, 32, 3))
    x, y = to_tensor(ref, dtype) / 255, to_tensor(dist, dtype) / 255
    got = haarpsi(x, y, data_range=1.0)
    assert got.dtype == dtype
    assert abs(float(got) - float(haarpsi(x.float(), y.float(), data_range=1.0))) <= 4e-3  # one bfloat16 ulp


def test_large_batch_is_chunked_without_changing_values(rng):
    # Batches are split into chunks of at most _CHUNK_PIXELS output pixels (a memory bound);
    # a small bound makes five 32×36 images (16×18 after subsampling) three chunks: 2, 2, 1.
    import iqa.metrics.haarpsi as module

    ref, dist = distorted_pair(rng, (5, 32, 36, 3))
    x, y = to_tensor(ref), to_tensor(dist)
    whole = haarpsi(x, y, data_range=255.0)
    saved = module._CHUNK_PIXELS
    module._CHUNK_PIXELS = 2 * 16 * 18
    try:
        parts = haarpsi(x, y, data_range=255.0)
    finally:
        module._CHUNK_PIXELS = saved
    assert torch.equal(whole, parts)


# --------------------------------------------------------------------------------------
# Scales other than 3 (piq raises for them): the same rule, checked against piq's own
# convolutions generalised (finest scales-1 compared, coarsest as weight)
# --------------------------------------------------------------------------------------


def piq_generalised(x: torch.Tensor, y: torch.Tensor, scales: int, c: float = 30.0, alpha: float = 4.2) -> torch.Tensor:
    """piq.haarpsi's code (data_range 255, subsample) with ``scales`` as a parameter."""
    xy = []
    for t in (x, y):
        t = piq.functional.rgb2yiq(t) if t.shape[1] == 3 else t
        pad = max(t.shape[2] % 2, t.shape[3] % 2)
        xy.append(F.avg_pool2d(F.pad(t, [0, pad, 0, pad]), kernel_size=2, stride=2))
    coefs = []
    for t in xy:
        per = []
        for k in range(scales):
            size = 2 ** (k + 1)
            h = piq.functional.haar_filter(size, dtype=t.dtype)
            pad = [size // 2 - 1, size // 2, size // 2 - 1, size // 2]
            per.append(F.conv2d(F.pad(t[:, :1], pad), torch.stack([h, h.transpose(-1, -2)])))
        coefs.append(per)
    weights = torch.max(coefs[0][-1].abs(), coefs[1][-1].abs())
    sim = sum(
        piq.functional.similarity_map(coefs[0][k].abs(), coefs[1][k].abs(), constant=c) for k in range(scales - 1)
    ) / (scales - 1)
    if x.shape[1] == 3:
        iq = [F.avg_pool2d(F.pad(t[:, 1:], [0, 1, 0, 1]), 2, stride=1).abs() for t in xy]
        sim = torch.cat([sim, piq.functional.similarity_map(iq[0], iq[1], constant=c).sum(1, keepdim=True) / 2], 1)
        weights = torch.cat([weights, weights.mean(1, keepdim=True)], 1)
    eps = torch.finfo(x.dtype).eps
    score = (((sim * alpha).sigmoid() * weights).sum(dim=[1, 2, 3]) + eps) / (weights.sum(dim=[1, 2, 3]) + eps)
    return (torch.log(score / (1 - score)) / alpha) ** 2


@pytest.mark.parametrize("scales", [2, 3, 4])
@pytest.mark.parametrize("shape", [(70, 66, 3), (65, 71)])
def test_scales_follow_piqs_rule(rng, scales, shape):
    ref, dist = distorted_pair(rng, shape)
    want = piq_generalised(to_tensor(ref), to_tensor(dist), scales).numpy()
    if scales == 3:  # the generalisation is piq itself at 3 scales
        assert rel(want, piq_value(ref, dist, 255)) < 1e-14
    assert rel(haarpsi(ref, dist, scales=scales), want) < TOL


def test_c_and_logistic_alpha_are_piqs_c_and_alpha(rng):
    ref, dist = distorted_pair(rng, (40, 44, 3))
    got = haarpsi(ref, dist, c=12.5, logistic_alpha=2.0)
    assert rel(got, piq_value(ref, dist, 255, c=12.5, alpha=2.0)) < TOL
    assert abs(got - haarpsi(ref, dist)) > 1e-3


# --------------------------------------------------------------------------------------
# A changed convention is far above the tolerance
# --------------------------------------------------------------------------------------


def test_each_convention_changes_the_number_far_above_the_tolerance(rng):
    ref, dist = distorted_pair(rng, (48, 52, 3))
    base = haarpsi(ref, dist)
    # BT.601 Y (color="y") instead of the YIQ luma and chroma.
    assert abs(haarpsi(ref, dist, color="y") - base) > 1e4 * TOL
    # The YIQ luma alone (no chroma term) is not the RGB value either.
    luma = (ref.astype(np.float64) @ np.array(YIQ_MATRIX[0])) / 255.0
    luma_d = (dist.astype(np.float64) @ np.array(YIQ_MATRIX[0])) / 255.0
    assert abs(haarpsi(luma, luma_d, data_range=1.0) - base) > 1e4 * TOL
    # No 2×2 subsampling.
    assert abs(haarpsi(ref, dist, subsample=False) - base) > 1e4 * TOL
    # Constants not rescaled: c = 30 on raw 16-bit values is c = 30·(255/65535)² on 0–255.
    wide_ref, wide_dist = ref.astype(np.uint16) * 257, dist.astype(np.uint16) * 257
    unscaled = haarpsi(wide_ref, wide_dist, c=30.0 * (255.0 / 65535.0) ** 2)
    assert abs(unscaled - haarpsi(wide_ref, wide_dist)) > 1e4 * TOL
    # HaarPSI.m's rounded I and Q coefficients (see the published-value test): small, but
    # still well above the float64 tolerance.
    assert abs(haarpsi_m(ref, dist) - base) > 100 * TOL * base


# --------------------------------------------------------------------------------------
# Identity, symmetry, flat images, gradients
# --------------------------------------------------------------------------------------


def test_identical_images_score_one(rng):
    ref, _ = distorted_pair(rng, (2, 35, 40, 3))
    np.testing.assert_allclose(haarpsi(ref, ref), 1.0, rtol=0, atol=1e-12)
    x = to_tensor(ref, torch.float32) / 255
    assert torch.allclose(haarpsi(x, x, data_range=1.0), torch.ones(2), rtol=0, atol=1e-5)


def test_symmetric(rng):
    ref, dist = distorted_pair(rng, (33, 45, 3))
    assert abs(haarpsi(ref, dist) - haarpsi(dist, ref)) < 1e-14


def test_flat_images_match_piq():
    # Flat images still have Haar responses at the zero-padded bottom/right borders.
    grey = np.full((24, 20, 3), 128, np.uint8)
    light = np.full((24, 20, 3), 200, np.uint8)
    assert rel(haarpsi(grey, light), piq_value(grey, light, 255)) < TOL
    assert abs(haarpsi(grey, grey) - 1.0) < 1e-12
    black = np.zeros((24, 20, 3), np.uint8)
    assert rel(haarpsi(black, light), piq_value(black, light, 255)) < TOL


def test_identical_black_images_score_one_where_piq_gives_inf():
    # Every weight is zero: piq's (0 + eps) / (0 + eps) = 1 has logit +inf (HaarPSI.m: 0/0).
    black = np.zeros((20, 24, 3), np.uint8)
    assert math.isinf(float(piq_value(black, black, 255)[0]))
    assert haarpsi(black, black) == 1.0
    assert haarpsi(black[..., 0], black[..., 0]) == 1.0
    x = torch.zeros(2, 3, 20, 24, requires_grad=True)
    v = haarpsi(x, x.detach(), data_range=1.0)
    assert torch.equal(v, torch.ones(2))
    v.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_gradcheck_float64(rng):
    g = torch.Generator().manual_seed(0)
    x = (0.1 + 0.8 * torch.rand(2, 3, 17, 16, generator=g, dtype=torch.float64)).requires_grad_()
    y = (0.1 + 0.8 * torch.rand(2, 3, 17, 16, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: haarpsi(a, b, data_range=1.0), (x, y), fast_mode=True)
    xg, yg = x[:, :1].detach().requires_grad_(), y[:, :1].detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: haarpsi(a, b, data_range=1.0, subsample=False), (xg, yg), fast_mode=True)


def test_float32_gradient_is_finite_and_matches_no_grad_values(rng):
    ref, dist = distorted_pair(rng, (2, 64, 64, 3))
    x = (to_tensor(ref, torch.float32) / 255).requires_grad_()
    y = to_tensor(dist, torch.float32) / 255
    v = haarpsi(x, y, data_range=1.0)
    (1 - v).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0
    with torch.no_grad():  # the in-place route computes the same operations
        assert torch.equal(haarpsi(x, y, data_range=1.0), v.detach())


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def test_too_small_names_the_minimum_and_the_scales_option():
    a = np.zeros((15, 40), np.uint8)
    with pytest.raises(ShapeError, match=r"3 scales needs both sides of at least 16 pixels, got 40×15; "
                                         r"pass scales=2 \(not the published 3-scale index\)$") as info:
        haarpsi(a, a)
    assert info.value.render(cli_namer()).endswith("pass --scales 2 (not the published 3-scale index)")
    assert info.value.render(cli_namer(["haarpsi"])).endswith("pass --haarpsi-scales 2 (not the published 3-scale index)")
    assert haarpsi(a, a, scales=2) == 1.0
    with pytest.raises(ShapeError, match=r"at least 16 pixels, got 40×7$"):
        haarpsi(np.zeros((7, 40), np.uint8), np.zeros((7, 40), np.uint8))
    with pytest.raises(ShapeError, match=r"4 scales needs both sides of at least 32 pixels, got 20×20; pass scales=3$"):
        haarpsi(np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8), scales=4)
    # piq refuses the same sizes.
    with pytest.raises(ValueError):
        piq.haarpsi(torch.zeros(1, 1, 15, 40), torch.zeros(1, 1, 15, 40))


@pytest.mark.parametrize("channels", [2, 4])
def test_alpha_kept_is_refused(rng, channels):
    a = rng.integers(0, 256, (20, 20, channels), dtype=np.uint8)
    with pytest.raises(ShapeError, match=f"gray \\(1 channel\\) or RGB \\(3 channels\\) images, got {channels} "
                                         "channels; drop the alpha channel with alpha='drop'"):
        haarpsi(a, a, alpha="keep")


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"scales": 1}, "scales must be an integer from 2 to 16, got 1"),
        ({"scales": 2.5}, "scales must be an integer from 2 to 16"),
        ({"scales": True}, "scales must be an integer from 2 to 16"),
        ({"c": 0.0}, "c must be a positive finite number, got 0.0"),
        ({"c": float("nan")}, "c must be a positive finite number"),
        ({"logistic_alpha": -1.0}, "logistic_alpha must be a positive finite number"),
        ({"logistic_alpha": float("inf")}, "logistic_alpha must be a positive finite number"),
        ({"subsample": "yes"}, "subsample must be True or False"),
    ],
)
def test_bad_options(kw, message):
    a = np.zeros((20, 20), np.uint8)
    with pytest.raises(OptionError, match=message):
        haarpsi(a, a, **kw)


def test_options_record_what_changes_the_number():
    p = HaarPSIOptions().provenance()
    assert (p["scales"], p["subsample"], p["c"], p["logistic_alpha"]) == (3, True, 30.0, 4.2)
    assert "0-255" in p["constants_scale"] and "alpha" not in p  # alpha is the image layer's


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def pair_files(tmp_path, rng):
    ref, dist = distorted_pair(rng, (36, 41, 3))
    (tmp_path / "ref").mkdir()
    (tmp_path / "dist").mkdir()
    Image.fromarray(ref).save(tmp_path / "ref" / "a.png")
    Image.fromarray(dist).save(tmp_path / "dist" / "a.png")
    return tmp_path / "ref" / "a.png", tmp_path / "dist" / "a.png"


def test_command_prints_the_library_value(pair_files):
    ref, dist = pair_files
    result = run("haarpsi", ref, dist)
    assert result.exit_code == 0, result.stderr
    assert float(result.stdout) == haarpsi(ref, dist)
    assert abs(float(result.stdout) - float(piq_value(read_image(ref), read_image(dist), 255)[0])) < TOL
    result = run("haarpsi", ref, dist, "--scales", "2", "--c", "12.5", "--logistic-alpha", "2")
    assert result.exit_code == 0, result.stderr
    assert float(result.stdout) == haarpsi(ref, dist, scales=2, c=12.5, logistic_alpha=2.0)


def test_command_bad_option_is_a_usage_error(pair_files):
    result = run("haarpsi", *pair_files, "--logistic-alpha", "0")
    assert result.exit_code == 2
    assert "--logistic-alpha must be a positive finite number" in result.stderr


def test_iqa_score_column_is_the_library_value(pair_files):
    ref, dist = pair_files
    result = run("score", ref.parent, dist.parent, "-m", "haarpsi", "--haarpsi-logistic-alpha", "3.5")
    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header == "reference,distorted,haarpsi,error"
    assert row.split(",")[2] == repr(haarpsi(ref, dist, logistic_alpha=3.5))
    assert row.split(",")[2] == run("haarpsi", ref, dist, "--logistic-alpha", "3.5").stdout.strip()


# --------------------------------------------------------------------------------------
# Published value (optional: piq's test images)
# --------------------------------------------------------------------------------------

# piq's test images (tests/helpers.py: PIQ_ASSETS), optional.
def piq_asset(name: str) -> Path:
    return helpers.piq_asset(name, "HaarPSI.m value")



#: HaarPSI.m's (and the authors' haarPsi.py's) YIQ rows: rounded to three decimals.
MATLAB_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def conv2_same(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """MATLAB's ``conv2(a, k, 'same')``: the full convolution from index floor(size(k)/2)."""
    r, c = k.shape[0] // 2, k.shape[1] // 2
    return convolve2d(a, k, mode="full")[r : r + a.shape[0], c : c + a.shape[1]]


def haarpsi_m(ref: np.ndarray, dist: np.ndarray, yiq=MATLAB_YIQ, c: float = 30.0, alpha: float = 4.2) -> float:
    """Reisenhofer's ``HaarPSI.m`` (github.com/rgcda/haarpsi), transcribed line by line in
    float64 for 0–255 images: its YIQ rows, ``conv2(., ones(2)/4, 'same')`` then every other
    pixel, Haar filters 2^-k·ones(2^k) with the top half negated, C = 30, α = 4.2."""
    colour = ref.ndim == 3

    def planes(img):
        img = img.astype(np.float64)
        return [sum(row[i] * img[:, :, i] for i in range(3)) for row in yiq] if colour else [img]

    def subsample(p):
        return conv2_same(p, np.ones((2, 2)) / 4)[::2, ::2]

    def decompose(p):
        out = []
        for k in (1, 2, 3):
            f = 2.0**-k * np.ones((2**k, 2**k))
            f[: 2 ** (k - 1)] *= -1
            out.append((conv2_same(p, f), conv2_same(p, f.T)))
        return out

    def sim(a, b):
        return (2 * a * b + c) / (a**2 + b**2 + c)

    pr, pd = [subsample(p) for p in planes(ref)], [subsample(p) for p in planes(dist)]
    cr, cd = decompose(pr[0]), decompose(pd[0])
    weights, local = [], []
    for o in range(2):
        weights.append(np.maximum(np.abs(cr[2][o]), np.abs(cd[2][o])))
        local.append((sim(np.abs(cr[0][o]), np.abs(cd[0][o])) + sim(np.abs(cr[1][o]), np.abs(cd[1][o]))) / 2)
    if colour:
        iq_r = [np.abs(conv2_same(p, np.ones((2, 2)) / 4)) for p in pr[1:]]
        iq_d = [np.abs(conv2_same(p, np.ones((2, 2)) / 4)) for p in pd[1:]]
        local.append((sim(iq_r[0], iq_d[0]) + sim(iq_r[1], iq_d[1])) / 2)
        weights.append((weights[0] + weights[1]) / 2)
    s = np.sum(1 / (1 + np.exp(-alpha * np.stack(local))) * np.stack(weights)) / np.sum(np.stack(weights))
    return float((np.log(s / (1 - s)) / alpha) ** 2)


def test_matlab_transcription_equals_iqa_up_to_the_yiq_rows(rng):
    # The transcription with piq's YIQ rows is iqa's number; on gray images there is no
    # chroma term, and HaarPSI.m is iqa exactly.
    ref, dist = distorted_pair(rng, (37, 50, 3))
    assert abs(haarpsi_m(ref, dist, yiq=YIQ_MATRIX) - haarpsi(ref, dist)) < TOL
    assert abs(haarpsi_m(ref[..., 0], dist[..., 0]) - haarpsi(ref[..., 0], dist[..., 0])) < TOL


def test_tid2013_matches_the_published_haarpsi_m_value():
    # piq 0.8.0 tests/test_haarpsi.py (test_haarpsi_compare_with_matlab): HaarPSI.m gives
    # 0.71706527 for TID2013's i01_01_5.bmp vs I01.BMP; piq asserts it with atol 1e-4.
    ref, dist = read_image(piq_asset("I01.BMP")), read_image(piq_asset("i01_01_5.bmp"))
    assert ref.shape == (384, 512, 3)
    # The transcription of HaarPSI.m reproduces the published digits (half a unit of the 8th
    # decimal; measured 7e-11 away), which pins down what MATLAB computed.
    assert abs(haarpsi_m(ref, dist) - 0.71706527) <= 5e-9
    # iqa (piq's YIQ rows 0.5959, −0.2746, …, not HaarPSI.m's rounded 0.596, −0.274, …) is
    # 0.717035508, 3.0e-5 below: within piq's stated atol 1e-4, and the whole gap is the rows.
    value = haarpsi(ref, dist)
    assert abs(value - 0.71706527) <= 1e-4
    assert abs(value - haarpsi_m(ref, dist, yiq=YIQ_MATRIX)) < TOL
    assert abs(haarpsi(dist, ref) - value) < 1e-14

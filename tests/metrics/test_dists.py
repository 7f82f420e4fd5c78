"""DISTS: parity with DISTS_pytorch, range handling, gradients, files, errors, the CLI.

The reference is ``DISTS_pytorch.DISTS()`` (DISTS_pytorch 0.1) with the α/β file it ships;
its torchvision VGG16 constructor is replaced for the construction (it would download the
ImageNet weights) by one returning a VGG16 whose ``features`` hold weights generated here.
iqa receives the same weights as a torchvision-format state dict through ``weights=FILE``,
i.e. through the real loading code. Random weights test every step of the computation
(the [0, 1] mapping, ImageNet normalisation, L2 pooling, the statistics, α/β) as well as
the ImageNet ones, provided the values are well above the tolerance and differ between
pairs (checked below), and a wrong detail is caught (checked below).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import importlib.resources
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import DISTS_pytorch.DISTS_pt as dists_pt
import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import iqa
from iqa.cli import main
from iqa.errors import RangeError, ShapeError, WeightsError
from iqa.metrics import dists as dists_mod
from iqa.metrics.dists import ALPHA_BETA_SHA256, DISTSOptions, compute_dists, dists, dists_provenance

# float32 networks on both sides, the work arranged differently (both images in one batch,
# channels-last, 1 − S summed instead of 1 − ΣS, centred covariances): measured ≤ 1.5e-7
# absolute, ≤ 1.5e-6 relative on values ≥ 0.05. 1e-5 is the tolerance. Below ~0.015
# DISTS_pytorch's own float32 rounding of 1 − Σ (~1e-7 absolute; measured up to 1.3e-5
# relative from its float64 value) would dominate: small values are compared in float64.
RTOL = 1e-5
# float64 on both sides: the same operations up to their arrangement, measured ≤ 5e-16
# relative here (≤ 1e-13 on other pairs); 1e-10 leaves room for other BLAS/oneDNN kernels and still catches any real
# difference (the wrong details below are 1e-2 and more).
RTOL64 = 1e-10


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """No test may see or fill a real cache."""
    monkeypatch.setenv("IQA_CACHE_DIR", str(tmp_path / "iqa-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("IQA_OFFLINE", "1")


@pytest.fixture
def one_thread():
    """float64 convolutions run on torch's generic CPU kernels, one OpenMP parallel region
    per call (and DISTS_pytorch's grouped L2 pooling makes one call per channel: 960 per
    image); on a loaded machine each region may wait for a descheduled thread (measured:
    0.5 s became 10 to 30 s with two threads). One thread changes nothing but the order of
    float64 sums."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def generated_features_state(seed: int) -> dict[str, torch.Tensor]:
    """VGG16 ``features`` weights initialised as torchvision does (Kaiming normal, fan-out;
    zero biases), seeded; keys as in ``vgg16().state_dict()``. The 400 MB classifier plays
    no part in DISTS and is neither built nor saved."""
    with torch.device("meta"):
        features = tvm.vgg16(weights=None).features
    features = features.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for i, layer in enumerate(features):
        if isinstance(layer, nn.Conv2d):
            fan_out = layer.out_channels * 9
            state[f"features.{i}.weight"] = torch.randn(layer.weight.shape, generator=gen) * (2.0 / fan_out) ** 0.5
            state[f"features.{i}.bias"] = torch.zeros(layer.out_channels)
    return state


#: torchvision's constructor (DISTS_pytorch's ``models`` is ``torchvision.models``, whose
#: ``vgg16`` the reference's construction replaces).
_VGG16 = tvm.vgg16


def generated_vgg16(state: dict[str, torch.Tensor]) -> nn.Module:
    """A torchvision VGG16 whose ``features`` hold ``state`` (its classifier stays on the
    meta device: DISTS_pytorch only takes ``.features``)."""
    with torch.device("meta"):
        model = _VGG16(weights=None)
    sub = {k[len("features."):]: v.clone() for k, v in state.items()}
    model.features.load_state_dict(sub, strict=True, assign=True)
    return model


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """(file, state): the generated weights saved as a torchvision state dict."""
    state = generated_features_state(seed=1)
    path = tmp_path_factory.mktemp("vgg") / "vgg16-generated.pth"
    torch.save(state, path)
    return path, state


def reference_model(state: dict) -> nn.Module:
    """``DISTS_pytorch.DISTS()`` with the generated VGG16 (the constructor replaced only
    while the reference is built) and the α/β file it loads itself."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(dists_pt.models, "vgg16", lambda *args, **kwargs: generated_vgg16(state))
        model = dists_pt.DISTS()
    return model.eval()


@pytest.fixture(scope="module")
def reference(backbone):
    """The float32 reference with the generated weights (tests that alter it take a copy)."""
    return reference_model(backbone[1])


def reference_values(model: nn.Module, a: np.ndarray, b: np.ndarray, scale: float = 255.0,
                     dtype: torch.dtype = torch.float32) -> np.ndarray:
    """The reference on N×H×W×3 arrays: x / scale in [0, 1], as DISTS_pytorch expects."""
    ta = torch.from_numpy(a).permute(0, 3, 1, 2).to(dtype) / scale
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).to(dtype) / scale
    with torch.no_grad():
        out = model(ta, tb)
    return out.reshape(-1).double().numpy()


def make_pairs(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Structured uint8 images (colour waves, an edge, grain) and six distortions of
    different kinds, so that DISTS values spread from ~0.01 to ~0.5."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    f = rng.uniform(1, 4, 3)
    img = np.stack([np.sin(2 * np.pi * (f[c] * xx + rng.random()) + 3 * yy * c) for c in range(3)], -1)
    img += (xx > rng.uniform(0.3, 0.7))[..., None] * rng.uniform(-1, 1, 3)
    ref = np.clip((img - img.min()) / np.ptp(img) * 255 + rng.normal(0, 6, img.shape), 0, 255)
    distorted = [
        np.round(ref / 85) * 85,  # quantised
        ref[:, :, ::-1],  # channels swapped
        ref + rng.normal(0, 80, ref.shape),  # strong noise
        255 - ref,  # inverted
        0.3 * ref,  # darkened
        np.full_like(ref, 128),  # flat grey
    ]
    refs = np.repeat(np.rint(ref)[None], len(distorted), 0)
    dists_ = np.stack([np.clip(np.rint(d), 0, 255) for d in distorted])
    return refs.astype(np.uint8), dists_.astype(np.uint8)


def assert_spread(values: np.ndarray, tolerance: float) -> None:
    """The test can fail: values well above the tolerance, and different per pair."""
    assert values.min() > 1e3 * tolerance
    assert (values.max() - values.min()) / values.mean() > 1e3 * tolerance


# --------------------------------------------------------------------------------------
# Parity with DISTS_pytorch
# --------------------------------------------------------------------------------------


def test_reference_reads_the_same_alpha_beta():
    """DISTS_pytorch 0.1 loads ``sys.prefix/weights.pt`` (its wheel installs the file there
    and in the package); iqa reads the package's copy. Both must be the verified bytes."""
    for path in (Path(sys.prefix) / "weights.pt", importlib.resources.files("DISTS_pytorch") / "weights.pt"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == ALPHA_BETA_SHA256, path


@pytest.mark.parametrize(("h", "w"), [(16, 16), (21, 27)])
def test_matches_dists_pytorch(h, w, backbone, reference):
    path, _ = backbone
    a, b = (x[1:] for x in make_pairs(h, w, seed=h))  # 0.05 and above (see RTOL)
    expected = reference_values(reference, a, b)
    got = dists(a, b, weights=path)
    assert_spread(expected, RTOL)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=0)
    assert got.dtype == np.float64 and got.shape == (len(a),)


def test_matches_dists_pytorch_in_float64(backbone, reference, one_thread):
    path, _ = backbone
    a, b = make_pairs(17, 20, seed=3)  # from 0.01 (quantised) to 0.4
    expected = reference_values(copy.deepcopy(reference).double(), a, b, dtype=torch.float64)
    ta = torch.from_numpy(a).permute(0, 3, 1, 2).double() / 255
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).double() / 255
    got = dists(ta, tb, data_range=1.0, weights=path)
    assert got.dtype == torch.float64
    assert_spread(expected, RTOL64)
    np.testing.assert_allclose(got.numpy(), expected, rtol=RTOL64, atol=0)


def test_wrong_details_exceed_the_tolerance(backbone, reference):
    """The parity tolerance detects the mistakes it guards against."""
    path, _ = backbone
    a, b = (x[1:] for x in make_pairs(16, 16, seed=16))  # the pairs of the parity test
    got = dists(a, b, weights=path)
    np.testing.assert_allclose(got, reference_values(reference, a, b), rtol=RTOL)
    # VGG16's max pooling kept instead of DISTS' L2 pooling.
    maxpool = copy.deepcopy(reference)
    for stage in (maxpool.stage2, maxpool.stage3, maxpool.stage4, maxpool.stage5):
        name = next(iter(stage._modules))
        stage._modules[name] = nn.MaxPool2d(2, 2)
    assert np.max(np.abs(reference_values(maxpool, a, b) / got - 1)) > 100 * RTOL
    # No ImageNet normalisation.
    plain = copy.deepcopy(reference)
    plain.mean.zero_()
    plain.std.fill_(1.0)
    assert np.max(np.abs(reference_values(plain, a, b) / got - 1)) > 100 * RTOL
    # [0, 255] input where DISTS expects [0, 1], or a data range off by one grey level.
    assert np.max(np.abs(reference_values(reference, a, b, scale=1.0) / got - 1)) > 100 * RTOL
    off = dists(a.astype(np.float64), b.astype(np.float64), data_range=256.0, weights=path)
    assert np.max(np.abs(off / got - 1)) > 10 * RTOL


def test_tiny_sizes_match_dists_pytorch(backbone, reference):
    """No minimum size: each L2 pooling keeps ceil(n/2) >= 1 pixels, so DISTS_pytorch
    computes every size down to 1×1, and so does iqa."""
    path, _ = backbone
    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (2, 3), (7, 5)]:
        a = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        b = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        np.testing.assert_allclose(dists(a, b, weights=path), reference_values(reference, a, b), rtol=RTOL)


# --------------------------------------------------------------------------------------
# Range, layout and dtype handling
# --------------------------------------------------------------------------------------


def test_data_range_rule(backbone):
    path, _ = backbone
    a, b = make_pairs(16, 16, seed=2)
    v8 = dists(a, b, weights=path)
    v1 = dists(a / 255.0, b / 255.0, data_range=1.0, weights=path)
    v255 = dists(a.astype(np.float32), b.astype(np.float32), data_range=255, weights=path)
    # 16-bit: x * 257 / 65535 == x / 255, so 8- and 16-bit copies give the same value.
    v16 = dists(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257, weights=path)
    for v in (v1, v255, v16):
        np.testing.assert_allclose(v, v8, rtol=RTOL)
    with pytest.raises(RangeError, match="data_range"):
        dists(a / 255.0, b / 255.0, weights=path)


def test_tensors_batches_gray_and_alpha(backbone):
    path, _ = backbone
    a, b = (x[3:] for x in make_pairs(16, 16, seed=4))
    batch = dists(a, b, weights=path, batch_size=4)  # two pairs per network call
    singles = [dists(a[i], b[i], weights=path) for i in range(len(a))]
    assert all(isinstance(s, float) for s in singles)
    # Measured identical; a backend may pick other kernels for another batch shape, which
    # round differently in float32 (RTOL).
    np.testing.assert_allclose(batch, singles, rtol=RTOL)
    ta = torch.from_numpy(a).permute(0, 3, 1, 2)
    tb = torch.from_numpy(b).permute(0, 3, 1, 2)
    t = dists(ta.float() / 255, tb.float() / 255, data_range=1.0, weights=path)
    assert isinstance(t, torch.Tensor) and t.shape == (len(a),) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), batch, rtol=RTOL)
    t0 = dists(ta[0], tb[0], weights=path)  # uint8 tensor: data range implied
    assert t0.ndim == 0 and t0.item() == pytest.approx(batch[0], rel=RTOL)
    # Gray is replicated to three channels: the network sees the same bits.
    ga, gb = a[0, ..., 1], b[0, ..., 1]
    rgb = dists(np.repeat(ga[..., None], 3, -1), np.repeat(gb[..., None], 3, -1), weights=path)
    assert dists(ga, gb, weights=path) == rgb
    # An opaque alpha channel is dropped; real transparency follows the alpha policy.
    opaque = np.full(a.shape[:-1] + (1,), 255, np.uint8)
    with_alpha = dists(np.concatenate([a, opaque], -1), np.concatenate([b, opaque], -1), weights=path)
    np.testing.assert_allclose(with_alpha, batch, rtol=RTOL)
    holey = opaque.copy()
    holey[:, 0, 0] = 0
    with pytest.raises(ShapeError, match="transparent"):
        dists(np.concatenate([a, holey], -1), np.concatenate([b, holey], -1), weights=path)
    with pytest.raises(ShapeError, match="gray or RGB"):
        dists(np.concatenate([a, holey], -1), np.concatenate([b, holey], -1), alpha="keep", weights=path)
    with pytest.raises(ShapeError, match="does not match"):
        dists(a[0], b[0, :15], weights=path)


def test_identity_is_exactly_zero_and_values_are_symmetric(backbone, reference, one_thread):
    path, _ = backbone
    a, b = make_pairs(16, 16, seed=9)
    # DISTS_pytorch's 1 − Σ(...) rounds to ±1e-7 here; iqa's sum of non-negative terms is 0.
    np.testing.assert_array_equal(dists(a, a, weights=path), 0.0)
    ta = torch.from_numpy(a[:2]).permute(0, 3, 1, 2).double()
    assert (dists(ta, ta, data_range=255, weights=path) == 0).all()
    assert np.abs(reference_values(reference, a, a)).max() < 1e-6
    # The images change places in the network's batch: equal up to float32 round-off.
    np.testing.assert_allclose(dists(a, b, weights=path), dists(b, a, weights=path), rtol=1e-6)


# --------------------------------------------------------------------------------------
# Gradients and the module
# --------------------------------------------------------------------------------------


def test_gradcheck_float64(backbone, one_thread):
    path, _ = backbone
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 8, 8, generator=gen, dtype=torch.float64)
    y = (x + 0.3 * torch.rand(x.shape, generator=gen, dtype=torch.float64)).clamp(0, 1).requires_grad_()
    # Central differences in float64 with eps = 1e-6 are off by ~ε₆₄·|f|/eps ≈ 1e-11
    # (|f| ≈ 0.1) plus O(eps²) truncation; atol 1e-8 without rtol.
    assert torch.autograd.gradcheck(
        lambda d: dists(x, d, data_range=1.0, weights=path), (y,), fast_mode=True, eps=1e-6, atol=1e-8, rtol=0
    )


def test_module_is_frozen_eval_and_differentiable(backbone, capsys):
    path, _ = backbone
    loss_fn = dists_mod.DISTS(data_range=1.0, weights=path)
    assert capsys.readouterr() == ("", "")
    assert isinstance(loss_fn, torch.nn.Module)
    assert not loss_fn.training and not any(p.requires_grad for p in loss_fn.parameters())
    loss_fn.train()
    assert not loss_fn.training
    a, b = make_pairs(16, 16, seed=1)
    ta = (torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255).requires_grad_()
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255
    out = loss_fn(ta, tb)
    out.sum().backward()
    assert ta.grad is not None and torch.isfinite(ta.grad).all() and ta.grad.abs().sum() > 0
    np.testing.assert_allclose(out.detach().numpy(), dists(a, b, weights=path), rtol=RTOL)
    # The function keeps the graph too: a float32 tensor loss.
    tb.requires_grad_()
    dists(ta, tb, data_range=1.0, weights=path).mean().backward()
    assert torch.isfinite(tb.grad).all() and tb.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------
# Files: the backbone, α/β, the cache, the provenance
# --------------------------------------------------------------------------------------


def test_provenance_names_both_files(backbone):
    path, _ = backbone
    prov = dists_provenance(DISTSOptions(), path)
    assert prov["backbone"] == {
        "name": "vgg16", "file": str(path), "sha256": iqa.weights.file_sha256(path), "source": "user",
    }
    assert prov["alpha_beta"]["file"] == "DISTS_pytorch/weights.pt"
    assert prov["alpha_beta"]["sha256"] == ALPHA_BETA_SHA256
    assert prov["alpha_beta"]["package"] == "DISTS_pytorch 0.1"
    assert dists_provenance(DISTSOptions(), {"vgg16": path}) == prov
    # The batch scorer passes every metric's files: DISTS takes its own.
    assert dists_provenance(DISTSOptions(), {"vgg16": path, "alexnet": "/elsewhere/alexnet.pth"}) == prov
    assert DISTSOptions().provenance() == {"c1": 1e-6, "c2": 1e-6}
    assert DISTSOptions().weights_names() == ("vgg16",)


def test_torchmetrics_ships_the_same_alpha_beta():
    spec = importlib.util.find_spec("torchmetrics")
    if spec is None:
        pytest.skip("torchmetrics is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "functional" / "image" / "dists_models" / "weights.pt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ALPHA_BETA_SHA256


def test_alpha_beta_file_is_verified(backbone, monkeypatch):
    path, _ = backbone
    monkeypatch.setattr(dists_mod, "ALPHA_BETA_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="reinstall it: pip install --force-reinstall DISTS_pytorch==0.1"):
        dists_provenance(DISTSOptions(), path)


def test_network_is_rebuilt_when_the_weights_file_changes(backbone, tmp_path):
    """One path, other weights (new modification time): the new file's values."""
    _, state = backbone
    a, b = make_pairs(16, 16, seed=15)
    target = tmp_path / "vgg.pth"
    torch.save(state, target)
    first = dists(a, b, weights=target)
    st1 = target.stat()
    other = generated_features_state(seed=2)
    torch.save(other, target)
    os.utime(target, ns=(st1.st_atime_ns, st1.st_mtime_ns + 10**9))
    second = dists(a, b, weights=target)
    assert np.max(np.abs(second / first - 1)) > 1e3 * RTOL  # the weights really differ
    fresh = tmp_path / "fresh.pth"
    torch.save(other, fresh)
    np.testing.assert_array_equal(second, dists(a, b, weights=fresh))


def test_offline_without_weights_names_url_and_path(tmp_path):
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(WeightsError) as err:
        dists(a, a)
    msg = str(err.value)
    assert "\n" not in msg and "IQA_OFFLINE=1" in msg
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in msg
    assert str(tmp_path / "iqa-cache" / "weights" / "vgg16-397923af.pth") in msg


def test_wrong_backbone_file_is_refused(tmp_path):
    a = np.zeros((16, 16, 3), np.uint8)
    other = tmp_path / "squeeze.pth"
    torch.save(tvm.squeezenet1_1(weights=None).features.state_dict(), other)
    with pytest.raises(WeightsError, match="vgg16"):
        dists(a, a, weights=other)
    with pytest.raises(iqa.OptionError, match="squeezenet1_1, which nothing here uses"):
        dists(a, a, weights={"squeezenet1_1": other})


def test_kernel_returns_no_map(backbone):
    from iqa.options import ImageOptions
    from iqa.pairwise import prepare
    from iqa.runtime import Runtime

    path, _ = backbone
    a, b = make_pairs(16, 16, seed=6)
    pair = prepare(a, b, ImageOptions())
    values, maps = compute_dists(pair, DISTSOptions(), Runtime(weights={"vgg16": str(path)}), want_map=False)
    assert maps is None and values.shape == (len(a),)


def test_import_is_light():
    """The options, function and kernel names load without torch (the CLI reads them)."""
    code = "import sys, iqa.metrics.dists as m; m.DISTSOptions(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def test_cli_command_and_score_column(backbone, reference, tmp_path):
    from helpers import write_png

    path, _ = backbone
    a, b = make_pairs(16, 16, seed=12)
    ref_dir, dist_dir = tmp_path / "ref", tmp_path / "dist"
    ref_dir.mkdir(), dist_dir.mkdir()
    for i in (2, 3):
        write_png(ref_dir / f"{i}.png", a[i]), write_png(dist_dir / f"{i}.png", b[i])
    pa, pb = ref_dir / "2.png", dist_dir / "2.png"
    expected = reference_values(reference, a[2:3], b[2:3])[0]
    python = dists(pa, pb, weights=path)
    assert python == pytest.approx(expected, rel=RTOL)
    runner = CliRunner()
    res = runner.invoke(main, ["dists", str(pa), str(pb), "--weights", str(path)])
    assert res.exit_code == 0, res.output
    assert float(res.stdout) == python and res.stderr == ""
    res = runner.invoke(main, ["dists", str(pa), str(pb), "--weights", f"vgg16={path}", "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["value"] == python
    assert out["settings"]["alpha_beta"]["sha256"] == ALPHA_BETA_SHA256
    assert out["settings"]["backbone"]["source"] == "user"
    res = runner.invoke(main, ["score", "-m", "dists", str(ref_dir), str(dist_dir), "--weights", str(path)])
    assert res.exit_code == 0, res.output
    rows = {r["reference"]: r for r in csv.DictReader(io.StringIO(res.stdout))}
    assert float(rows["2.png"]["dists"]) == python
    assert float(rows["3.png"]["dists"]) == pytest.approx(dists(a[3], b[3], weights=path), rel=RTOL)
    # Without weights (offline): one line naming the file and the option that fixes it.
    res = runner.invoke(main, ["dists", str(pa), str(pb)])
    assert res.exit_code == 1 and res.stderr.count("\n") == 1
    assert "vgg16-397923af.pth" in res.stderr and "--weights PATH" in res.stderr


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------


@settings(deadline=None, max_examples=6)
@given(data=st.data())
def test_properties(backbone, data):
    """Identity (exactly 0), non-negativity, symmetry and uint8 == float/255, on arbitrary
    images (one size: oneDNN compiles its kernels once per input shape)."""
    path, _ = backbone
    img = arrays(np.uint8, (12, 10, 3))
    a, b = data.draw(img), data.draw(img)
    v = dists(a, b, weights=path)
    assert v >= 0.0
    assert dists(a, a, weights=path) == 0.0
    assert dists(b, a, weights=path) == pytest.approx(v, rel=1e-5, abs=1e-9)
    assert dists(a / 255.0, b / 255.0, data_range=1.0, weights=path) == pytest.approx(v, rel=1e-5, abs=1e-9)

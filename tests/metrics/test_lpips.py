"""LPIPS: parity with the lpips package, range handling, gradients, errors, the CLI.

The reference is ``lpips.LPIPS(pnet_rand=True, verbose=False)`` (lpips 0.1.4) with the
linear heads it ships, whose random backbone is overwritten with weights generated here;
iqa receives the same backbone weights as a torchvision-format state dict through the
``weights`` path override, i.e. through the real loading code. Pretrained ImageNet
weights cannot be downloaded here, and random weights test every step of the computation
(scaling, normalisation, heads, averaging) just as well, provided the values are well
above the tolerance and differ between pairs (checked below).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import lpips as lpips_pkg
import torch
import torchvision.models as tvm
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import iqa
from iqa.cli.app import main
from iqa.errors import RangeError, RenamedOptionWarning, ShapeError, WeightsError
from iqa.metrics import lpips as lpips_mod
from iqa.metrics import lpips_net
from iqa.metrics.lpips import MIN_SIZE, LPIPSOptions, compute_lpips, lpips, lpips_provenance
from iqa.options import ImageOptions
from iqa.pairwise import prepare
from iqa.runtime import Runtime

# float32 networks on both sides; the work is arranged differently (one batch for both
# images, channels-last, the scaling folded into the first convolution), which moves the
# result by a few float32 ulps (observed <= 1e-6 relative). 1e-5 is the tolerance.
RTOL = 1e-5

BUILDERS = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}
# Small images keep VGG16 affordable on two cores; each is above MIN_SIZE.
SIZES = {"alex": 64, "vgg": 32, "squeeze": 48}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """No test may see or fill a real cache."""
    monkeypatch.setenv("IQA_CACHE_DIR", str(tmp_path / "iqa-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("IQA_OFFLINE", "1")


@pytest.fixture(scope="module")
def backbone_files(tmp_path_factory):
    """Seeded random backbone weights for each net, saved in torchvision's format (features
    only: the classifier plays no part in LPIPS and VGG's would cost 400 MB)."""
    root = tmp_path_factory.mktemp("backbones")
    files, states = {}, {}
    for i, (net, builder) in enumerate(BUILDERS.items()):
        torch.manual_seed(100 + i)
        model = getattr(tvm, builder)(weights=None)
        sd = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
        files[net] = root / f"{builder}-random.pth"
        torch.save(sd, files[net])
        states[net] = sd
    return files, states


def reference_model(net: str, state: dict, version: str = "0.1", spatial: bool = False):
    """lpips.LPIPS with a random trunk replaced by ``state`` (torchvision key names)."""
    with warnings.catch_warnings():
        # lpips 0.1.4 calls torchvision's deprecated pretrained= argument (iqa does not).
        warnings.filterwarnings("ignore", "The parameter 'pretrained' is deprecated", UserWarning)
        warnings.filterwarnings("ignore", "Arguments other than a weight enum", UserWarning)
        model = lpips_pkg.LPIPS(net=net, version=version, pnet_rand=True, spatial=spatial, verbose=False)
    mapped = {k: state["features." + re.match(r"slice\d+\.(.*)", k).group(1)] for k in model.net.state_dict()}
    model.net.load_state_dict(mapped)
    return model.eval()


def reference_values(model, a: np.ndarray, b: np.ndarray, scale01: bool = False) -> np.ndarray:
    """The reference on uint8 N×H×W×3 arrays: x/255 mapped to [-1, 1] as lpips expects."""
    ta = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255
    if not scale01:
        ta, tb = 2 * ta - 1, 2 * tb - 1
    with torch.no_grad():
        out = model(ta, tb)
    return out.view(-1).double().numpy()


def make_pairs(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Structured uint8 images (smooth colour fields with edges) and distortions of
    increasing strength (noise, blur-like averaging, a shift), so LPIPS values spread."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    refs, dists = [], []
    for i in range(n):
        f = rng.uniform(1, 4, 3)
        img = np.stack([np.sin(2 * np.pi * (f[c] * xx + rng.random()) + 3 * yy * c) for c in range(3)], -1)
        img += (xx > rng.uniform(0.3, 0.7))[..., None] * rng.uniform(-1, 1, 3)
        img = (img - img.min()) / (np.ptp(img) + 1e-9) * 255
        ref = np.clip(img + rng.normal(0, 6, img.shape), 0, 255)
        strength = (i + 1) / n
        dist = ref + rng.normal(0, 50 * strength, ref.shape)
        if i % 2:
            dist = 0.5 * (dist + np.roll(dist, int(1 + 3 * strength), axis=1))
        refs.append(np.rint(ref))
        dists.append(np.clip(np.rint(dist), 0, 255))
    return np.stack(refs).astype(np.uint8), np.stack(dists).astype(np.uint8)


# --------------------------------------------------------------------------------------
# Parity with the lpips package
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_matches_lpips_package(net, backbone_files):
    files, states = backbone_files
    a, b = make_pairs(4, SIZES[net], seed=7)
    expected = reference_values(reference_model(net, states[net]), a, b)
    got = lpips(a, b, net=net, weights=files[net])
    # The test must be able to fail: values well above the tolerance, and different per pair.
    assert expected.min() > 1e-3
    assert (expected.max() - expected.min()) / expected.mean() > 1e3 * RTOL
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=0)
    assert got.dtype == np.float64 and got.shape == (4,)


def test_matches_lpips_package_v00_and_paths(backbone_files, tmp_path):
    from helpers import write_png

    files, states = backbone_files
    a, b = make_pairs(3, 64, seed=11)
    expected = reference_values(reference_model("alex", states["alex"], version="0.0"), a, b)
    for i in range(3):
        pa, pb = write_png(tmp_path / f"a{i}.png", a[i]), write_png(tmp_path / f"b{i}.png", b[i])
        got = lpips(pa, pb, version="0.0", weights=files["alex"])
        assert isinstance(got, float)
        assert got == pytest.approx(expected[i], rel=RTOL)


def test_spatial_map_matches_lpips_package(backbone_files):
    files, states = backbone_files
    a, b = make_pairs(2, 64, seed=3)
    ref = reference_model("alex", states["alex"], spatial=True)
    with torch.no_grad():
        ta = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1
        tb = torch.from_numpy(b).permute(0, 3, 1, 2).float() / 127.5 - 1
        expected = ref(ta, tb)[:, 0].double().numpy()
    values, got = lpips(a, b, weights=files["alex"], return_map=True)
    assert got.shape == (2, 64, 64)
    assert np.ptp(expected) > 1e3 * RTOL * expected.max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=RTOL * expected.max())
    # The value that comes with the map is the ordinary one.
    np.testing.assert_allclose(values, lpips(a, b, weights=files["alex"]), rtol=RTOL)
    one_value, one = lpips(a[0], b[0], weights=files["alex"], return_map=True)
    assert one.shape == (64, 64) and isinstance(one_value, float)
    np.testing.assert_allclose(one, expected[0], rtol=0, atol=RTOL * expected.max())


def test_wrong_details_exceed_the_tolerance(backbone_files):
    """The parity tolerance detects the mistakes it guards against."""
    files, states = backbone_files
    a, b = make_pairs(3, 64, seed=5)
    model = reference_model("alex", states["alex"])
    good = reference_values(model, a, b)
    got = lpips(a, b, weights=files["alex"])
    np.testing.assert_allclose(got, good, rtol=RTOL)
    # [0, 1] input where LPIPS expects [-1, 1] (the common wrapper mistake).
    wrong_range = reference_values(model, a, b, scale01=True)
    assert np.max(np.abs(wrong_range / got - 1)) > 100 * RTOL
    # The scaling layer left out (a missing normalisation).
    model.scaling_layer.shift.zero_()
    model.scaling_layer.scale.fill_(1.0)
    no_scaling = reference_values(model, a, b)
    assert np.max(np.abs(no_scaling / got - 1)) > 100 * RTOL
    # Another net's heads or a data range off by one grey level also show.
    off_range = lpips(a.astype(np.float64), b.astype(np.float64), data_range=256.0, weights=files["alex"])
    assert np.max(np.abs(off_range / got - 1)) > 10 * RTOL


# --------------------------------------------------------------------------------------
# Range, layout and dtype handling
# --------------------------------------------------------------------------------------


def test_data_range_rule(backbone_files):
    files, _ = backbone_files
    a, b = make_pairs(2, 40, seed=2)
    w = files["alex"]
    v8 = lpips(a, b, weights=w)
    v1 = lpips(a / 255.0, b / 255.0, data_range=1.0, weights=w)
    v255 = lpips(a.astype(np.float32), b.astype(np.float32), data_range=255, weights=w)
    v16 = lpips(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257, weights=w)
    for v in (v1, v255, v16):
        np.testing.assert_allclose(v, v8, rtol=RTOL)
    with pytest.raises(RangeError, match="data_range"):
        lpips(a / 255.0, b / 255.0, weights=w)


def test_tensor_inputs_batch_gray_and_alpha(backbone_files):
    files, _ = backbone_files
    w = files["alex"]
    a, b = make_pairs(3, 40, seed=4)
    batch = lpips(a, b, weights=w, batch_size=2)
    singles = [lpips(a[i], b[i], weights=w) for i in range(3)]
    # Measured identical; a backend may pick other kernels for another batch shape, which
    # round differently in float32 (RTOL).
    np.testing.assert_allclose(batch, singles, rtol=RTOL)
    ta = torch.from_numpy(a).permute(0, 3, 1, 2)
    tb = torch.from_numpy(b).permute(0, 3, 1, 2)
    t = lpips(ta.float() / 255, tb.float() / 255, data_range=1.0, weights=w)
    assert isinstance(t, torch.Tensor) and t.shape == (3,) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), batch, rtol=RTOL)
    t0 = lpips(ta[0], tb[0], weights=w)
    assert t0.ndim == 0
    # Gray is replicated to three channels: the network sees the same bits.
    g_a, g_b = a[..., 0], b[..., 0]
    rgb = lpips(np.repeat(g_a[0][..., None], 3, -1), np.repeat(g_b[0][..., None], 3, -1), weights=w)
    assert lpips(g_a[0], g_b[0], weights=w) == rgb
    # An opaque alpha channel is dropped; real transparency follows the alpha policy.
    opaque = np.full(a.shape[:-1] + (1,), 255, np.uint8)
    with_alpha = lpips(np.concatenate([a, opaque], -1), np.concatenate([b, opaque], -1), weights=w)
    np.testing.assert_allclose(with_alpha, batch, rtol=RTOL)
    holey = opaque.copy()
    holey[:, 0, 0] = 0
    with pytest.raises(ShapeError, match="transparent"):
        lpips(np.concatenate([a, holey], -1), np.concatenate([b, holey], -1), weights=w)
    with pytest.raises(ShapeError, match="gray or RGB"):
        lpips(np.concatenate([a, holey], -1), np.concatenate([b, holey], -1), alpha="keep", weights=w)


def test_identity_symmetry_and_sizes(backbone_files):
    files, _ = backbone_files
    w = files["alex"]
    a, b = make_pairs(1, 40, seed=9)
    assert lpips(a[0], a[0], weights=w) == 0.0
    # Swapping the images swaps their places in the network's batch: measured identical, but
    # per-image results may depend on the position in a batch by float32 round-off (1e-6).
    assert lpips(a[0], b[0], weights=w) == pytest.approx(lpips(b[0], a[0], weights=w), rel=1e-6)
    with pytest.raises(ShapeError, match="does not match"):
        lpips(a[0], b[0, :39], weights=w)


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_minimum_size(net, backbone_files):
    """MIN_SIZE is exact: the backbone runs at it and fails one pixel below."""
    files, _ = backbone_files
    s = MIN_SIZE[net]
    with torch.device("meta"):
        feats = getattr(tvm, BUILDERS[net])(weights=None).features
    last = lpips_mod.NETS[net]["taps"][-1]
    feats[: last + 1](torch.zeros(1, 3, s, s + 5, device="meta"))
    with pytest.raises(RuntimeError):
        feats[: last + 1](torch.zeros(1, 3, s - 1, s + 5, device="meta"))
    small = np.zeros((s - 1, s + 5, 3), np.uint8)
    with pytest.raises(ShapeError, match=f"at least {s} px"):
        lpips(small, small, net=net, weights=files[net])
    if net != "vgg":  # the smallest valid size runs (VGG is covered by the parity test)
        ok = np.zeros((s, s, 3), np.uint8)
        assert lpips(ok, ok, net=net, weights=files[net]) == 0.0


# --------------------------------------------------------------------------------------
# The module: frozen, eval, differentiable
# --------------------------------------------------------------------------------------


def test_module_is_frozen_eval_and_differentiable(backbone_files, capsys):
    files, states = backbone_files
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing warns, nothing prints
        loss_fn = iqa.LPIPS(net="alex", data_range=1.0, weights=files["alex"])
    assert capsys.readouterr() == ("", "")
    assert isinstance(loss_fn, torch.nn.Module)
    assert not loss_fn.training and not any(p.requires_grad for p in loss_fn.parameters())
    loss_fn.train()
    assert not loss_fn.training
    a, b = make_pairs(2, 40, seed=1)
    ta = (torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255).requires_grad_()
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255
    out = loss_fn(ta, tb)
    out.sum().backward()
    assert ta.grad is not None and torch.isfinite(ta.grad).all() and ta.grad.abs().sum() > 0
    np.testing.assert_allclose(out.detach().numpy(), lpips(a, b, weights=files["alex"]), rtol=RTOL)


def test_gradcheck_float64(backbone_files):
    files, _ = backbone_files
    loss_fn = iqa.LPIPS(net="alex", data_range=1.0, weights=files["alex"]).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 32, 32, generator=gen, dtype=torch.float64)
    y = (x + 0.2 * torch.rand(x.shape, generator=gen, dtype=torch.float64)).clamp(0, 1).requires_grad_()
    # Central differences in float64 with eps = 1e-6 are off by ~ε₆₄·|f|/eps ≈ 3e-12 (round-off;
    # |f| ≈ 0.01) plus O(eps²) truncation; measured ≤ 1e-11 over 40 random projections, and
    # gradcheck passes at 1e-9. atol 1e-8 without rtol (the default 1e-5 plus 1e-3 relative
    # would let a gradient 0.1 % off pass).
    assert torch.autograd.gradcheck(lambda d: loss_fn(x, d), (y,), fast_mode=True, eps=1e-6, atol=1e-8, rtol=0)
    # compute_lpips on a float64 tensor pair runs in float64 and keeps the graph.
    v = lpips(x, y, data_range=1.0, weights=files["alex"])
    assert v.dtype == torch.float64 and v.requires_grad


def test_networks_are_cached(backbone_files):
    """A second call with the same file reuses the built network."""
    files, _ = backbone_files
    a, b = make_pairs(2, 40, seed=6)
    pair = prepare(a, b, ImageOptions())
    options, runtime = LPIPSOptions(net="squeeze"), Runtime(weights={"squeezenet1_1": files["squeeze"]})
    first, _ = compute_lpips(pair, options, runtime)
    cores = set(map(id, lpips_net._cache.values()))
    second, _ = compute_lpips(pair, options, runtime)
    assert set(map(id, lpips_net._cache.values())) == cores
    np.testing.assert_array_equal(first, second)


def test_replaced_weights_file_is_not_served_from_the_cache(tmp_path):
    """The cache key includes the file's size and modification time, not only its path: a
    file replaced in place (other weights, same path) gives the new file's values, whether
    the replacement changes the modification time alone or the size alone."""
    def squeeze_state(seed: int, full: bool) -> dict:
        torch.manual_seed(seed)
        model = tvm.squeezenet1_1(weights=None)
        return model.state_dict() if full else model.features.state_dict()

    a, b = make_pairs(2, 24, seed=15)
    path = tmp_path / "squeeze.pth"
    kw = dict(net="squeeze", weights=path)

    def expected(state: dict) -> np.ndarray:
        # The value of the same weights saved under a path the cache has never seen.
        fresh = tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}.pth"
        torch.save(state, fresh)
        return lpips(a, b, net="squeeze", weights=fresh)

    torch.save(squeeze_state(21, full=False), path)
    first = lpips(a, b, **kw)
    st1 = path.stat()

    # Other weights of the same size; only the modification time tells them apart.
    state2 = squeeze_state(22, full=False)
    torch.save(state2, path)
    os.utime(path, ns=(st1.st_atime_ns, st1.st_mtime_ns + 10**9))
    st2 = path.stat()
    assert st2.st_size == st1.st_size and st2.st_mtime_ns != st1.st_mtime_ns
    second = lpips(a, b, **kw)
    assert np.max(np.abs(second / first - 1)) > 1e3 * RTOL  # the weights really differ
    np.testing.assert_array_equal(second, expected(state2))

    # Other weights of another size (the classifier included) with the same modification time.
    state3 = squeeze_state(23, full=True)
    torch.save(state3, path)
    os.utime(path, ns=(st2.st_atime_ns, st2.st_mtime_ns))
    st3 = path.stat()
    assert st3.st_size != st2.st_size and st3.st_mtime_ns == st2.st_mtime_ns
    third = lpips(a, b, **kw)
    assert np.max(np.abs(third / second - 1)) > 1e3 * RTOL
    np.testing.assert_array_equal(third, expected(state3))


def test_provenance_names_the_files(backbone_files):
    files, _ = backbone_files
    prov = lpips_provenance(LPIPSOptions(net="alex", version="0.1"), files["alex"])
    assert prov["backbone"]["source"] == "user"
    assert prov["backbone"]["sha256"] == iqa.weights.file_sha256(files["alex"])
    assert re.fullmatch(r"[0-9a-f]{64}", prov["linear_heads"]["sha256"])
    assert prov["linear_heads"]["file"] == "lpips/weights/v0.1/alex.pth"


# --------------------------------------------------------------------------------------
# Weights errors
# --------------------------------------------------------------------------------------


def test_offline_without_weights_names_url_and_path(tmp_path):
    a = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(WeightsError) as err:
        lpips(a, a)
    msg = str(err.value)
    target = tmp_path / "iqa-cache" / "weights" / "alexnet-owt-7be5be79.pth"
    assert "\n" not in msg
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in msg
    assert str(target) in msg and "IQA_OFFLINE=1" in msg


def test_wrong_backbone_file_is_refused(backbone_files, tmp_path):
    files, states = backbone_files
    a = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(WeightsError, match="does not fit torchvision alexnet") as err:
        lpips(a, a, net="alex", weights=files["squeeze"])
    # Short, whole, and naming the network the file belongs to in the caller's language.
    msg = str(err.value)
    assert len(msg) < 450 and "\n" not in msg
    assert "looks like a torchvision SqueezeNet 1.1 file (squeezenet1_1): for LPIPS use net='squeeze'" in msg
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="not a PyTorch weights file"):
        lpips(a, a, weights=bad)
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(WeightsError, match="does not fit torchvision alexnet: 10 of its 10 parameters missing") as err:
        lpips(a, a, weights=other)
    assert "looks like" not in str(err.value)
    with pytest.raises(WeightsError, match="no such file"):
        lpips(a, a, weights=tmp_path / "missing.pth")


def test_registry_file_is_loaded_through_the_cache(backbone_files, tmp_path, monkeypatch):
    """A file in the cache whose digest matches the registry is used without any option."""
    files, states = backbone_files
    from iqa import weights

    digest = weights.file_sha256(files["alex"])
    entry = weights.REGISTRY["alexnet"]
    monkeypatch.setitem(weights.REGISTRY, "alexnet", weights.WeightsFile(
        name="alexnet", filename=entry.filename, url=entry.url, sha256=digest, size_mib=None,
        description="test", override_hint=entry.override_hint,
    ))
    target = weights.target_path("alexnet")
    target.parent.mkdir(parents=True)
    target.write_bytes(files["alex"].read_bytes())
    a, b = make_pairs(1, 40, seed=8)
    assert lpips(a, b) == pytest.approx(lpips(a, b, weights=files["alex"]), rel=1e-12)
    assert lpips_provenance(LPIPSOptions(net="alex"))["backbone"] == {
        "name": "alexnet", "file": entry.filename, "sha256": digest, "source": "registry",
    }


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def test_cli_lpips(backbone_files, tmp_path):
    from helpers import write_png

    files, states = backbone_files
    a, b = make_pairs(1, 48, seed=12)
    pa, pb = write_png(tmp_path / "a.png", a[0]), write_png(tmp_path / "b.png", b[0])
    runner = CliRunner()
    res = runner.invoke(main, ["lpips", str(pa), str(pb), "--weights", str(files["alex"])])
    assert res.exit_code == 0, res.output
    expected = reference_values(reference_model("alex", states["alex"]), a, b)[0]
    assert float(res.stdout) == pytest.approx(expected, rel=RTOL)
    out_png = tmp_path / "map.png"
    res = runner.invoke(main, [
        "lpips", str(pa), str(pb), "--weights", str(files["alex"]), "--map", str(out_png),
        "--format", "json",
    ])
    assert res.exit_code == 0, res.output
    assert '"net": "alex"' in res.stdout and '"source": "user"' in res.stdout
    img = iqa.read_image(out_png)
    assert img.ndim == 3 and img.shape[0] > 48 and img.shape[1] > 48
    if not torch.cuda.is_available():
        res = runner.invoke(main, ["lpips", str(pa), str(pb), "--device", "cuda"])
        assert res.exit_code == 2 and "CUDA is not available" in res.stderr
    res = runner.invoke(main, ["lpips", str(pa), str(pb)])
    assert res.exit_code == 1
    assert res.stderr.count("\n") == 1 and "IQA_OFFLINE=1" in res.stderr
    assert "alexnet-owt-7be5be79.pth" in res.stderr
    # The way out is named as the command spells it.
    assert "--weights PATH" in res.stderr and "weights=" not in res.stderr


def test_cli_lpips_version_option(backbone_files, tmp_path):
    from helpers import write_png

    files, states = backbone_files
    a, b = make_pairs(1, 48, seed=16)
    pa, pb = write_png(tmp_path / "a.png", a[0]), write_png(tmp_path / "b.png", b[0])
    res = CliRunner().invoke(main, ["lpips", str(pa), str(pb), "--weights", str(files["alex"]), "--version", "0.0"])
    assert res.exit_code == 0, res.output
    expected = reference_values(reference_model("alex", states["alex"], version="0.0"), a, b)[0]
    v01 = reference_values(reference_model("alex", states["alex"]), a, b)[0]
    assert abs(expected / v01 - 1) > 100 * RTOL  # the two versions' heads really differ
    assert float(res.stdout) == pytest.approx(expected, rel=RTOL)
    assert res.stderr == ""


def test_cli_lpips_former_option_names_work_and_warn(backbone_files, tmp_path):
    """--backbone-weights and --lpips-version still work (hidden), with a warning on stderr."""
    from helpers import write_png

    files, states = backbone_files
    a, b = make_pairs(1, 48, seed=17)
    pa, pb = write_png(tmp_path / "a.png", a[0]), write_png(tmp_path / "b.png", b[0])
    runner = CliRunner()
    res = runner.invoke(main, ["lpips", str(pa), str(pb), "--backbone-weights", str(files["alex"])])
    assert res.exit_code == 0, res.output
    expected = reference_values(reference_model("alex", states["alex"]), a, b)[0]
    assert float(res.stdout) == pytest.approx(expected, rel=RTOL)
    assert "warning" in res.stderr and "--backbone-weights" in res.stderr and "--weights" in res.stderr

    res = runner.invoke(main, ["lpips", str(pa), str(pb), "--weights", str(files["alex"]), "--lpips-version", "0.0"])
    assert res.exit_code == 0, res.output
    expected = reference_values(reference_model("alex", states["alex"], version="0.0"), a, b)[0]
    assert float(res.stdout) == pytest.approx(expected, rel=RTOL)
    assert "warning" in res.stderr and "--lpips-version" in res.stderr and "--version" in res.stderr
    # Hidden from --help: only the new names are advertised.
    res = runner.invoke(main, ["lpips", "--help"])
    assert "--weights" in res.stdout and "--backbone-weights" not in res.stdout
    assert "--lpips-version" not in res.stdout


def test_former_keyword_names_work_and_warn(backbone_files):
    files, _ = backbone_files
    a, b = make_pairs(2, 40, seed=18)
    value, plane = lpips(a, b, weights=files["alex"], return_map=True)
    with pytest.warns(RenamedOptionWarning, match="backbone_weights= is now called weights="):
        old = lpips(a, b, backbone_weights=files["alex"])
    np.testing.assert_array_equal(old, value)
    with pytest.warns(RenamedOptionWarning, match="spatial= is now called return_map="):
        old_map = lpips(a, b, weights=files["alex"], spatial=True)  # the map alone, as before
    np.testing.assert_array_equal(old_map, plane)
    with pytest.warns(RenamedOptionWarning, match="backbone_weights="):
        module = iqa.LPIPS(net="alex", data_range=255, backbone_weights=files["alex"])
    ta = torch.from_numpy(a).permute(0, 3, 1, 2).float()
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).float()
    np.testing.assert_allclose(module(ta, tb).numpy(), value, rtol=RTOL)


@pytest.mark.slow
def test_cli_lpips_subprocess_offline(backbone_files, tmp_path):
    """A fresh environment without weights: one line naming the path; the override works."""
    from helpers import write_png

    files, _ = backbone_files
    a, b = make_pairs(1, 40, seed=13)
    pa, pb = write_png(tmp_path / "a.png", a[0]), write_png(tmp_path / "b.png", b[0])
    cmd = [sys.executable, "-c", "from iqa.cli import main; main()", "lpips", str(pa), str(pb)]
    env = {"IQA_CACHE_DIR": str(tmp_path / "c"), "IQA_OFFLINE": "1", "TORCH_HOME": str(tmp_path / "t"),
           "PATH": "/usr/bin:/bin"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 1 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "c" / "weights" / "alexnet-owt-7be5be79.pth") in lines[0]
    # The override, in this process with the same environment (a second child would only
    # pay torch's import again).
    res = CliRunner().invoke(main, cmd[3:] + ["--weights", str(files["alex"])], env=env)
    assert res.exit_code == 0 and res.stderr == ""
    assert float(res.stdout) == pytest.approx(lpips(a[0], b[0], weights=files["alex"]), rel=RTOL)
    assert Path(tmp_path / "c").exists() is False  # nothing was written to the cache


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------


@settings(deadline=None, max_examples=8)
@given(data=st.data())
def test_properties(backbone_files, data):
    """Identity, symmetry, non-negativity and uint8 == float/255, on arbitrary images.

    One size only: oneDNN compiles its kernels once per input shape, which at this size
    costs far more than the forward pass (sizes are covered by the tests above)."""
    files, _ = backbone_files
    img = arrays(np.uint8, (24, 20, 3))
    a, b = data.draw(img), data.draw(img)
    kw = dict(net="squeeze", weights=files["squeeze"])
    v = lpips(a, b, **kw)
    assert v >= 0.0
    assert lpips(a, a, **kw) == 0.0
    assert lpips(b, a, **kw) == pytest.approx(v, rel=1e-5, abs=1e-9)
    assert lpips(a / 255.0, b / 255.0, data_range=1.0, **kw) == pytest.approx(v, rel=1e-5, abs=1e-9)


def test_backbone_file_layouts(tmp_path):
    """A full torchvision state dict (with the classifier) and a bare ``features`` state dict
    give the same network as the features-only file."""
    torch.manual_seed(5)
    model = tvm.squeezenet1_1(weights=None)
    full, bare = tmp_path / "full.pth", tmp_path / "bare.pth"
    torch.save(model.state_dict(), full)
    torch.save(model.features.state_dict(), bare)
    a, b = make_pairs(2, 24, seed=14)
    v_full = lpips(a, b, net="squeeze", weights=full)
    v_bare = lpips(a, b, net="squeeze", weights=bare)
    np.testing.assert_array_equal(v_full, v_bare)
    assert v_full.min() > 0


@pytest.mark.parametrize("builder", ["alexnet", "vgg16", "squeezenet1_1"])
def test_backbones_are_torchvisions_layer_for_layer(builder):
    """iqa builds the backbones itself (importing torchvision costs ~1.4 s per process):
    same state-dict keys and shapes, same outputs with the same weights."""
    import torchvision.models as tvm

    from iqa.metrics.lpips_net import backbone_features

    torch.manual_seed(0)
    theirs = getattr(tvm, builder)(weights=None).features.eval()
    ours = backbone_features(builder)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict(), assign=True)
    x = torch.rand(1, 3, 67, 75)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))

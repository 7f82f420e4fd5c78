"""The DINOv2 extractors: Meta's checkpoints load unchanged, the features match Meta's code
(the ``dinov2`` package, installed with ``--no-deps``) and timm's port, and the preprocessing
modes reproduce dgm-eval, torch-fidelity and EDM2 step by step.

Weights are generated in Meta's layout (``dinov2_weights``) and loaded through the same
code as the real files. Tolerance for features: 1e-5 of the largest feature (float32
round-off through the network is ~1e-6 here). Each deliberately wrong detail (the
position-embedding interpolation, the resize filter, the normalisation) moves the features
by more than 1e-3: two orders of magnitude above the tolerance.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dinov2_weights as dw  # tests/ is on sys.path
import fid_weights as fw
from iqa.errors import WeightsError
from iqa.features.dinov2 import ARCHS, DinoV2, arch_of, build_from_state_dict, load_dinov2
from iqa.features.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_dinov2

TOL = 1e-5


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def meta():
    """Meta's DinoVisionTransformer from the ``dinov2`` package (it logs that xFormers is absent)."""
    pytest.importorskip("dinov2", reason="pip install --no-deps dinov2 (Meta's code; pins an old torch)")
    logging.getLogger("dinov2").setLevel(logging.ERROR)
    from dinov2.models import vision_transformer as vits

    return vits


def _meta_model(vits, arch, state):
    """Meta's model as torch.hub's ``dinov2_vit*14`` builds it (backbones.py: img_size 518,
    patch 14, init_values 1.0, block_chunks 0; ViT-g with the fused SwiGLU FFN)."""
    builders = {a.width: b for a, b in zip(ARCHS.values(), (vits.vit_small, vits.vit_base, vits.vit_large, vits.vit_giant2))}
    # drop_path_uniform: no drop path either way (eval), and no linspace(...).item() on the meta device
    kwargs = dict(patch_size=14, img_size=518, init_values=1.0, block_chunks=0, drop_path_uniform=True)
    init, vits.DinoVisionTransformer.init_weights = vits.DinoVisionTransformer.init_weights, lambda self: None
    try:  # no random init (slow, and impossible on the meta device): the weights are loaded
        model = _build(vits, builders, arch, kwargs)
    finally:
        vits.DinoVisionTransformer.init_weights = init
    if state is not None:
        model.load_state_dict(state, strict=True)
    return model.eval()


def _build(vits, builders, arch, kwargs):
    if arch in ARCHS.values():
        return builders[arch.width](**kwargs, **({"ffn_layer": "swiglufused"} if arch.ffn == "swiglu" else {}))
    return vits.DinoVisionTransformer(embed_dim=arch.width, depth=arch.depth, num_heads=arch.heads, mlp_ratio=4,
                                      block_fn=vits.partial(vits.Block, attn_class=vits.MemEffAttention), **kwargs)


def _images(n=1, size=224, seed=0):
    x = torch.from_numpy(fw.synthetic_images(n, size, seed, "noisy")).permute(0, 3, 1, 2)
    return preprocess_dinov2(x, "edm2")  # any normalised input; the network is what is tested here


@pytest.mark.parametrize("arch", ["vits14", dw.SMALL], ids=["vits14", "small"])
def test_features_match_meta_code_at_224(meta, arch):
    state = dw.make_state_dict(arch, seed=3)
    ref = _meta_model(meta, ARCHS[arch] if isinstance(arch, str) else arch, state)
    ours = build_from_state_dict(state)
    x = _images(1 if arch == "vits14" else 3)
    with torch.inference_mode():
        want = ref(x)  # Meta's forward: the CLS token after the final norm
        got = ours(x)
        assert _rel(got, want) < TOL
        if arch == "vits14":
            return
        assert float(want.std(0).mean()) > 0.05  # features vary across images
        # the position embedding is interpolated 37 -> 16 here; interpolating to the size
        # (timm's and others' way) instead of by Meta's scale factor moves the features.
        grid = state["pos_embed"][:, 1:].reshape(1, 37, 37, -1).permute(0, 3, 1, 2)
        by_size = F.interpolate(grid, size=(16, 16), mode="bicubic", antialias=False)
        wrong = dict(state)
        ours_wrong = build_from_state_dict(wrong)
        ours_wrong.interpolate_pos_encoding = lambda t, w, h: torch.cat(  # type: ignore[method-assign]
            [state["pos_embed"][:, :1], by_size.permute(0, 2, 3, 1).reshape(1, 256, -1)], dim=1)
        assert _rel(ours_wrong(x), want) > 100 * TOL


def test_features_match_timm_at_518_with_its_official_converter():
    """timm's DINOv2 port with its converter (``checkpoint_filter_fn``) at 518 px, where no
    interpolation happens; at 224 px timm resamples the position embedding its own way
    (antialiased, to a size), which moves the features far beyond the tolerance."""
    from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

    arch = dw.SMALL
    state = dw.make_state_dict(arch, seed=4)
    ours = build_from_state_dict(state)

    def timm_model(size):
        m = VisionTransformer(img_size=size, patch_size=14, embed_dim=arch.width, depth=arch.depth,
                              num_heads=arch.heads, init_values=1.0, num_classes=0, global_pool="token")
        m.load_state_dict(checkpoint_filter_fn(dict(state), m), strict=True)
        return m.eval()

    with torch.inference_mode():
        x518 = torch.randn(1, 3, 518, 518, generator=torch.Generator().manual_seed(0))
        assert _rel(ours(x518), timm_model(518)(x518)) < TOL
        x224 = _images(1)
        assert _rel(ours(x224), timm_model(224)(x224)) > 100 * TOL


@pytest.mark.parametrize("name", ["vitl14", "vitg14"])
def test_large_checkpoints_load_by_keys_and_shapes(meta, name):
    """ViT-L and ViT-g: Meta's models built on the meta device (no memory, no forward)."""
    with torch.device("meta"):
        ref = _meta_model(meta, ARCHS[name], None)
        ours = DinoV2(ARCHS[name])
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == want
    assert arch_of(ref.state_dict()) == ARCHS[name]
    if name == "vitg14":
        assert "blocks.39.mlp.w12.weight" in want and want["blocks.0.mlp.w3.weight"] == (1536, 4096)


def test_registry_size_is_checked_against_the_file(tmp_path):
    small = dw.weights_file(tmp_path, dw.SMALL)
    with pytest.raises(WeightsError, match=r"width 128, depth 2, 2 heads.*dinov2-vits14 has width 384, depth 12, 6 heads"):
        load_dinov2("vits14", small)
    state = dw.make_state_dict(dw.SMALL)
    del state["norm.weight"]
    with pytest.raises(WeightsError, match="not a DINOv2 checkpoint"):
        build_from_state_dict(state)


# -- preprocessing modes -------------------------------------------------------------------


@pytest.fixture(scope="module")
def u8():
    return fw.synthetic_images(3, 61, 5, "stripes")  # odd size: the resize is real on both axes


def test_dgm_eval_mode_is_torchvisions_pil_pipeline(u8):
    import torchvision.transforms as T
    from PIL import Image

    # dgm-eval's DINOv2Encoder.transform (mean/std as NumPy float64, as it passes them)
    tf = T.Compose([T.Resize((224, 224), T.InterpolationMode.BICUBIC), T.ToTensor(),
                    T.Normalize(np.array(IMAGENET_MEAN), np.array(IMAGENET_STD))])
    for img in u8:
        want = tf(Image.fromarray(img).convert("RGB"))
        assert torch.equal(preprocess_dinov2(img, "dgm-eval"), want)
    batch = torch.from_numpy(u8).permute(0, 3, 1, 2)
    assert torch.equal(preprocess_dinov2(batch, "dgm-eval")[1], tf(Image.fromarray(u8[1])))
    # float input in [0, 1] is rounded to 8 bits first, as a PNG of it would be
    assert torch.equal(preprocess_dinov2(batch.float() / 255, "dgm-eval", data_range=1.0), preprocess_dinov2(batch, "dgm-eval"))


def test_tf_mode_is_torch_fidelitys(u8):
    import torchvision.transforms.functional as TF
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = torch.from_numpy(u8).permute(0, 3, 1, 2)
    want = TF.normalize(interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(224, 224), align_corners=False),
                        tuple(255 * m for m in IMAGENET_MEAN), tuple(255 * s for s in IMAGENET_STD))
    assert torch.equal(preprocess_dinov2(x, "tf"), want)


def test_edm2_mode_is_edm2s_detector(u8):
    x = torch.from_numpy(u8).permute(0, 3, 1, 2)
    # EDM2 calculate_metrics.DINOv2Detector with resize_mode='torch'
    y = F.interpolate(x.to(torch.float32), size=(224, 224), mode="bicubic", antialias=True) / 255
    y = y - torch.tensor(IMAGENET_MEAN, dtype=torch.float32).reshape(1, -1, 1, 1)
    y = y / torch.tensor(IMAGENET_STD, dtype=torch.float32).reshape(1, -1, 1, 1)
    assert torch.equal(preprocess_dinov2(x, "edm2"), y)
    # float input keeps its precision (no rounding to 8 bits)
    assert torch.equal(preprocess_dinov2(x.double() / 255, "edm2", data_range=1.0), preprocess_dinov2(x, "edm2"))


def test_wrong_resize_filter_or_normalisation_moves_features_far_beyond_tolerance():
    from PIL import Image

    u8 = fw.synthetic_images(3, 317, 6, "noisy")  # shrunk to 224: the filters differ most there
    model = build_from_state_dict(dw.make_state_dict(dw.SMALL, seed=5))
    right = preprocess_dinov2(torch.from_numpy(u8).permute(0, 3, 1, 2), "dgm-eval")
    bilinear = torch.stack([
        torch.from_numpy(np.array(Image.fromarray(img).resize((224, 224), Image.BILINEAR))).permute(2, 0, 1)
        for img in u8]).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    wrong_filter = (bilinear - mean) / std
    x = torch.from_numpy(np.stack([np.array(Image.fromarray(i).resize((224, 224), Image.BICUBIC)) for i in u8]))
    wrong_norm = (x.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5  # Inception-style [-1, 1]
    with torch.inference_mode():
        want = model(right)
        for name, wrong in (("bilinear", wrong_filter), ("[-1, 1] scaling", wrong_norm)):
            assert _rel(model(wrong), want) > 100 * TOL, name
        # EDM2's torch resize is close to PIL's ("almost the same results"), but not within tolerance
        assert _rel(model(preprocess_dinov2(torch.from_numpy(u8).permute(0, 3, 1, 2), "edm2")), want) > 10 * TOL

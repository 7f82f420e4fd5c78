"""Generated CLIP checkpoints in OpenAI's layout (for the CLIP, CMMD and evaluate tests).

OpenAI's ``ViT-*.pt`` files cannot be downloaded where the tests run, so the tests make
seeded stand-ins with OpenAI's keys (``visual.*`` and a small text tower, which iqa ignores)
and load them through the real loading code: as a plain state dict (``torch.save``) and as a
float16 TorchScript archive made the way OpenAI's files were (``torch.jit`` tracing of the
whole CLIP model, here open_clip's built from the same tensors, then ``.half()``).

Values keep unit-scale activations (linear weights ~ N(0, 1/fan_in), LayerNorm gains near 1,
a unit-scale position embedding and class token), so that embeddings vary across images far
above round-off. Test files import it as ``clip_weights`` (tests/ is on ``sys.path``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from iqa.features.clip import Arch

#: A small CLIP image tower with ViT-L/14@336px's interface (patch 14, 336 px, 768-d
#: output) and a narrow, shallow body: width 128, depth 2. Two 64-wide heads, so that the
#: split of the fused q, k, v projection into heads (and back) is compared with open_clip's:
#: with one head any order of the head dimension would give the same embeddings.
SMALL = Arch(width=128, depth=2, heads=2, patch=14, resolution=336, output=768)

#: The generated text tower (ignored by iqa; open_clip needs it to build the model).
_TEXT = dict(width=64, layers=1, context=8, vocab=32)


def make_state_dict(arch: Arch = SMALL, seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded float32 CLIP state dict in OpenAI's ``build_model`` layout (float16 values)."""
    from iqa.features.clip import ClipVisual

    g = torch.Generator().manual_seed(seed)
    shapes = {f"visual.{k}": tuple(v.shape) for k, v in ClipVisual(arch).state_dict().items()}
    tw, ctx = _TEXT["width"], _TEXT["context"]
    shapes.update({
        "positional_embedding": (ctx, tw), "token_embedding.weight": (_TEXT["vocab"], tw),
        "ln_final.weight": (tw,), "ln_final.bias": (tw,), "text_projection": (tw, arch.output),
        "logit_scale": (),
    })
    for i in range(_TEXT["layers"]):
        b = f"transformer.resblocks.{i}."
        shapes.update({
            b + "attn.in_proj_weight": (3 * tw, tw), b + "attn.in_proj_bias": (3 * tw,),
            b + "attn.out_proj.weight": (tw, tw), b + "attn.out_proj.bias": (tw,),
            b + "ln_1.weight": (tw,), b + "ln_1.bias": (tw,), b + "ln_2.weight": (tw,), b + "ln_2.bias": (tw,),
            b + "mlp.c_fc.weight": (4 * tw, tw), b + "mlp.c_fc.bias": (4 * tw,),
            b + "mlp.c_proj.weight": (tw, 4 * tw), b + "mlp.c_proj.bias": (tw,),
        })
    out = {}
    for k, shape in shapes.items():
        if k.endswith(("class_embedding", "positional_embedding")):
            t = torch.randn(shape, generator=g)
        elif "ln" in k and k.endswith("weight"):
            t = 1 + 0.2 * torch.randn(shape, generator=g)
        elif k.endswith("proj") or k == "text_projection":
            t = torch.randn(shape, generator=g) / math.sqrt(shape[0])
        elif len(shape) > 1:
            t = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        else:
            t = 0.1 * torch.randn(shape, generator=g)
        # Values a float16 file holds exactly: open_clip's builder rounds OpenAI's state dicts
        # to float16 (convert_weights_to_fp16), and the archive stores float16.
        out[k] = t.half().float().contiguous()
    return out


def open_clip_model(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """open_clip's CLIP built from ``state`` (its OpenAI-file path), in float32, eval mode."""
    from open_clip.model import build_model_from_openai_state_dict

    return build_model_from_openai_state_dict(dict(state), quick_gelu=True, cast_dtype=None).float().eval()


def state_dict_file(directory: Path, arch: Arch = SMALL, seed: int = 0) -> Path:
    """Save :func:`make_state_dict` once per (arch, seed) in ``directory``; return the path."""
    path = Path(directory) / f"clip_w{arch.width}d{arch.depth}r{arch.resolution}_seed{seed}.pth"
    if not path.exists():
        torch.save(make_state_dict(arch, seed), path)
    return path


def torchscript_file(directory: Path, arch: Arch = SMALL, seed: int = 0) -> Path:
    """A float16 TorchScript archive of the CLIP model with :func:`make_state_dict`'s tensors,
    traced as OpenAI traced theirs (``torch.jit`` of the whole model; the image path here)."""
    import warnings

    path = Path(directory) / f"clip_w{arch.width}d{arch.depth}r{arch.resolution}_seed{seed}.pt"
    if not path.exists():
        model = open_clip_model(make_state_dict(arch, seed))
        x = torch.zeros(1, 3, arch.resolution, arch.resolution)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation and tracer warnings
            # (check_trace off: with several heads nn.MultiheadAttention's graph records the
            # choice of its fused path, which the re-trace check reports as a difference)
            traced = torch.jit.trace_module(model, {"encode_image": (x,)}, check_trace=False)
            traced.half().save(str(path))
    return path

"""CLIP image towers (OpenAI's ViTs), built by iqa, loading OpenAI's files unchanged.

The module names follow OpenAI's ``VisionTransformer`` (openai/CLIP, ``clip/model.py``), so
that the ``visual.*`` tensors of OpenAI's checkpoints load with ``strict=True``:
``conv1`` (no bias), ``class_embedding``, ``positional_embedding``, ``ln_pre``,
``transformer.resblocks.N.{ln_1, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj,
ln_2, mlp.c_fc, mlp.c_proj}``, ``ln_post`` and ``proj``. The text tower is not built; its
tensors in the file are ignored.

OpenAI distributes TorchScript archives (``torch.jit.save`` of a traced model) with float16
tensors. They are read by :func:`iqa.weights.read_torchscript_tensors` without running the
archive's code, and cast to float32 as ``clip.load(..., device="cpu")`` does
(``model.float()``). A plain state dict in the same layout (``torch.save(model.state_dict())``
of ``clip.model.build_model``) is accepted too.

The feature is ``ln_post(CLS) @ proj``, what ``model.encode_image`` returns, L2-normalised
as the CMMD authors' embedding (scenic's ``encode_image(normalize=True)``). Width, depth,
patch size and input resolution are read from the checkpoint's shapes; the heads are
width / 64, as OpenAI's ``build_model`` sets them (``vision_heads = vision_width // 64``).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from iqa.errors import WeightsError

__all__ = ["ARCHS", "Arch", "ClipVisual", "arch_of", "build_from_state_dict", "load_clip", "visual_state"]


@dataclass(frozen=True)
class Arch:
    """One CLIP image tower: width, depth, heads, patch size, input resolution, output dims."""

    width: int
    depth: int
    heads: int
    patch: int
    resolution: int
    output: int

    @property
    def grid(self) -> int:
        return self.resolution // self.patch


#: OpenAI's ViTs offered as extractors (``clip.available_models()``: ViT-B/32, ViT-L/14,
#: ViT-L/14@336px), keyed by the extractor name's suffix.
ARCHS: dict[str, Arch] = {
    "vitb32": Arch(768, 12, 12, 32, 224, 512),
    "vitl14": Arch(1024, 24, 16, 14, 224, 768),
    "vitl14-336": Arch(1024, 24, 16, 14, 336, 768),
}


class QuickGELU(nn.Module):
    """OpenAI's activation: ``x · sigmoid(1.702 x)`` (not the erf or tanh GELU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _Attention(nn.Module):
    """``nn.MultiheadAttention``'s parameters (``in_proj_weight``, ``in_proj_bias``,
    ``out_proj``) for self-attention on batch-first tokens."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)  # scale head_dim^-0.5, as MultiheadAttention
        return self.out_proj(x.transpose(1, 2).reshape(b, n, c))


class _ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = _Attention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(width, 4 * width)), ("gelu", QuickGELU()),
                         ("c_proj", nn.Linear(4 * width, width))])
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, depth: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*[_ResidualAttentionBlock(width, heads) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class ClipVisual(nn.Module):
    """OpenAI's CLIP ``VisionTransformer`` (its ``state_dict`` is the file's ``visual.*``).

    ``forward(x)`` takes ``N×3×R×R`` normalised images (R the checkpoint's resolution: the
    position embedding is not interpolated, as in OpenAI's code) and returns the projected
    CLS token ``ln_post(x[:, 0]) @ proj``, ``N×output``, not normalised.
    """

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.arch = arch
        w = arch.width
        self.conv1 = nn.Conv2d(3, w, kernel_size=arch.patch, stride=arch.patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(w))
        self.positional_embedding = nn.Parameter(torch.zeros(arch.grid * arch.grid + 1, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = _Transformer(w, arch.depth, arch.heads)
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.zeros(w, arch.output))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.arch.resolution
        if tuple(x.shape[-2:]) != (r, r):
            raise ValueError(f"input {x.shape[-1]}×{x.shape[-2]}, but this CLIP takes {r}×{r}")
        x = self.conv1(x).flatten(2).transpose(1, 2)  # N × grid² × width
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj


def visual_state(state: dict[str, Any]) -> dict[str, Any]:
    """The image tower's tensors of a full CLIP state dict (``visual.`` prefix removed)."""
    return {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}


def arch_of(state: dict[str, Any], label: str = "checkpoint") -> Arch:
    """The architecture of a CLIP ViT from its ``visual.*`` tensors (as OpenAI's
    ``build_model`` reads it: width from ``conv1``, depth from the blocks, patch from the
    kernel, resolution from the position embedding's grid, heads = width / 64).

    Raises:
        WeightsError: not a CLIP ViT checkpoint (a key is missing, a ResNet CLIP, a grid that
            is not square).
    """
    need = ("conv1.weight", "class_embedding", "positional_embedding", "proj", "ln_post.weight")
    missing = [f"visual.{k}" for k in need if k not in state]
    if missing:
        raise WeightsError(f"{label}: not a CLIP ViT checkpoint (missing {', '.join(missing)}); expected OpenAI's "
                           "CLIP file (ViT-*.pt) or its state dict")
    width = int(state["conv1.weight"].shape[0])
    patch = int(state["conv1.weight"].shape[-1])
    blocks = [k for k in state if k.startswith("transformer.resblocks.") and k.endswith(".attn.in_proj_weight")]
    depth = len(blocks)
    positions = int(state["positional_embedding"].shape[0]) - 1
    grid = math.isqrt(positions)
    if grid * grid != positions:
        raise WeightsError(f"{label}: visual.positional_embedding holds {positions} positions, not a square grid")
    if width % 64 or depth == 0:
        raise WeightsError(f"{label}: width {width}, depth {depth}: not a CLIP ViT with 64-wide heads")
    return Arch(width, depth, width // 64, patch, grid * patch, int(state["proj"].shape[1]))


def build_from_state_dict(state: dict[str, Any], label: str = "checkpoint") -> ClipVisual:
    """A float32 :class:`ClipVisual` loaded from a CLIP state dict (full, with the ``visual.``
    prefix; or the image tower's alone), ``strict=True`` on the image tower's tensors."""
    visual = visual_state(state) if any(k.startswith("visual.") for k in state) else dict(state)
    arch = arch_of(visual, label)
    model = ClipVisual(arch)
    visual = {k: v.to(torch.float32) for k, v in visual.items()}  # clip.load on the CPU: model.float()
    from iqa.weights import load_strict

    return load_strict(model, visual, label, "CLIP ViT")


def load_clip(name: str, path: str | os.PathLike | None = None, *, device: Any = "cpu") -> tuple[ClipVisual, str]:
    """The CLIP image tower of the extractor ``clip-NAME`` (``vitl14-336``...) and its file's
    SHA-256.

    The file is the registry's ``clip-NAME`` (OpenAI's TorchScript archive, verified against
    the SHA-256 in its URL) or the user's ``path`` (such an archive, or a state dict); its
    patch size, input resolution and output dimension must be those of ``NAME`` (width and
    depth are read from the file).

    Raises:
        WeightsError: the file cannot be had, is not a CLIP ViT checkpoint, or is another size.
    """
    from iqa.weights import file_sha256, get_path, load_state_dict

    key = f"clip-{name}"
    state = load_state_dict(key, path=path)
    file = get_path(key, path=path)
    model = build_from_state_dict(state, str(file))
    got, want = model.arch, ARCHS[name]
    # The extractor's name promises its input (resolution, patch grid) and its feature
    # dimension; width and depth are the file's (a fine-tuned or distilled tower of the same
    # interface is the user's choice).
    if (got.patch, got.resolution, got.output) != (want.patch, want.resolution, want.output):
        raise WeightsError(
            f"{file}: a CLIP ViT with patch {got.patch}, {got.resolution} px input and {got.output}-d output; "
            f"{key} has patch {want.patch}, {want.resolution} px and {want.output}-d output: pass that model's file"
        )
    return model.to(device), file_sha256(file)

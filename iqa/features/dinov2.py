"""DINOv2 ViT feature extractors, built by iqa, loading Meta's official checkpoints unchanged.

The module names follow Meta's ``DinoVisionTransformer`` (facebookresearch/dinov2,
``dinov2/models/vision_transformer.py`` and ``dinov2/layers``) so that the files published at
``dl.fbaipublicfiles.com/dinov2/dinov2_vit{s,b,l,g}14/dinov2_vit{s,b,l,g}14_pretrain.pth``
load with ``strict=True``: ``cls_token``, ``pos_embed`` (1 + 37² positions: trained at 518 px),
``mask_token``, ``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2,
mlp.fc1, mlp.fc2, ls2.gamma}`` (ViT-g: a SwiGLU ``mlp.w12``, ``mlp.w3``) and ``norm``.

The feature is the CLS token after the final LayerNorm (Meta's ``x_norm_clstoken``, what
``model(x)`` returns and what dgm-eval uses). Width, depth, patch size, grid and FFN type are
read from the checkpoint; the number of heads is not stored in it: every DINOv2 size uses
64-wide heads (ViT-S 6, B 12, L 16, g 24), so it is width / 64, as Meta's constructors set it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from iqa.errors import WeightsError

__all__ = ["ARCHS", "Arch", "DinoV2", "arch_of", "build_from_state_dict", "load_dinov2"]

#: Meta's positional-embedding interpolation offset (``interpolate_offset``; the hub's default).
INTERPOLATE_OFFSET = 0.1


@dataclass(frozen=True)
class Arch:
    """One DINOv2 size: width (embedding dimension), depth, heads, FFN type and hidden width."""

    width: int
    depth: int
    heads: int
    ffn: str  # "mlp" (GELU MLP, fc1/fc2) or "swiglu" (w12/w3)
    hidden: int
    patch: int = 14
    grid: int = 37  # 518 / 14: the resolution the position embedding was trained at


#: Meta's four sizes (``vit_small``, ``vit_base``, ``vit_large``, ``vit_giant2`` with patch 14).
ARCHS: dict[str, Arch] = {
    "vits14": Arch(384, 12, 6, "mlp", 1536),
    "vitb14": Arch(768, 12, 12, "mlp", 3072),
    "vitl14": Arch(1024, 24, 16, "mlp", 4096),
    # SwiGLUFFNFused: hidden = (int(4·1536·2/3) + 7) // 8 · 8
    "vitg14": Arch(1536, 40, 24, "swiglu", 4096),
}


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # Meta's current Attention uses scaled_dot_product_attention (scale head_dim^-0.5).
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # nn.GELU(): the exact (erf) form


class _SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Block(nn.Module):
    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(arch.width, eps=1e-6)
        self.attn = _Attention(arch.width, arch.heads)
        self.ls1 = _LayerScale(arch.width)
        self.norm2 = nn.LayerNorm(arch.width, eps=1e-6)
        self.mlp = (_Mlp if arch.ffn == "mlp" else _SwiGLU)(arch.width, arch.hidden)
        self.ls2 = _LayerScale(arch.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _PatchEmbed(nn.Module):
    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, arch.width, kernel_size=arch.patch, stride=arch.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoV2(nn.Module):
    """A DINOv2 ViT whose ``state_dict`` is Meta's (see the module docstring).

    ``forward(x)`` takes ``N×3×H×W`` normalised images (H and W multiples of the patch size)
    and returns the CLS token after the final norm, ``N×width``.
    """

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.arch = arch
        self.patch_size = arch.patch
        self.cls_token = nn.Parameter(torch.zeros(1, 1, arch.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + arch.grid * arch.grid, arch.width))
        self.mask_token = nn.Parameter(torch.zeros(1, arch.width))  # training only; kept for strict loading
        self.patch_embed = _PatchEmbed(arch)
        self.blocks = nn.ModuleList(_Block(arch) for _ in range(arch.depth))
        self.norm = nn.LayerNorm(arch.width, eps=1e-6)

    def interpolate_pos_encoding(self, x: torch.Tensor, w: int, h: int) -> torch.Tensor:
        """Meta's ``interpolate_pos_encoding`` with the hub's settings (``interpolate_offset``
        0.1, no antialias): bicubic with a *scale factor* of (w0 + 0.1)/M, not a target size.

        ``F.interpolate`` then maps output to input coordinates with 1/scale = M/(w0 + 0.1)
        (37/16.1 at 224 px), not M/w0, which moves every interpolated embedding a little; the
        output size is floor(M·scale) = w0. (As in Meta's code, ``w`` is the tensor's
        dimension 2 and ``h`` its dimension 3.)
        """
        previous_dtype = x.dtype
        npatch = x.shape[1] - 1
        n = self.pos_embed.shape[1] - 1
        if npatch == n and w == h:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        class_pos_embed = pos_embed[:, 0]
        patch_pos_embed = pos_embed[:, 1:]
        dim = x.shape[-1]
        w0 = w // self.patch_size
        h0 = h // self.patch_size
        m = int(math.sqrt(n))
        sx = float(w0 + INTERPOLATE_OFFSET) / m
        sy = float(h0 + INTERPOLATE_OFFSET) / m
        patch_pos_embed = F.interpolate(
            patch_pos_embed.reshape(1, m, m, dim).permute(0, 3, 1, 2),
            scale_factor=(sx, sy),
            mode="bicubic",
            antialias=False,
        )
        if tuple(patch_pos_embed.shape[-2:]) != (w0, h0):  # pragma: no cover - Meta asserts the same
            raise RuntimeError(f"position embedding interpolated to {tuple(patch_pos_embed.shape[-2:])}, expected {(w0, h0)}")
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1).to(previous_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, w, h = x.shape
        if w % self.patch_size or h % self.patch_size:
            raise ValueError(f"input {w}×{h} is not a multiple of the patch size {self.patch_size}")
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.interpolate_pos_encoding(tokens, w, h)
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.norm(tokens)[:, 0]


def arch_of(state: dict[str, Any], label: str = "checkpoint") -> Arch:
    """The architecture of a DINOv2 state dict (width, depth, FFN, patch and grid from the
    tensors' shapes; heads = width / 64, DINOv2's head width).

    Raises:
        WeightsError: the dict is not a DINOv2 ViT's (a key or a shape is missing).
    """
    need = ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight", "blocks.0.norm1.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise WeightsError(f"{label}: not a DINOv2 checkpoint (missing {', '.join(missing)}); expected Meta's "
                           "dinov2_vit*14_pretrain.pth layout")
    width = int(state["cls_token"].shape[-1])
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks.") and k.endswith(".norm1.weight"))
    patch = int(state["patch_embed.proj.weight"].shape[-1])
    positions = int(state["pos_embed"].shape[1]) - 1
    grid = int(math.isqrt(positions))
    if grid * grid != positions:
        raise WeightsError(f"{label}: pos_embed holds {positions} positions, not a square grid")
    if "blocks.0.mlp.w12.weight" in state:
        ffn, hidden = "swiglu", int(state["blocks.0.mlp.w3.weight"].shape[1])
    elif "blocks.0.mlp.fc1.weight" in state:
        ffn, hidden = "mlp", int(state["blocks.0.mlp.fc1.weight"].shape[0])
    else:
        raise WeightsError(f"{label}: blocks.0.mlp has neither fc1/fc2 nor w12/w3")
    if width % 64:
        raise WeightsError(f"{label}: width {width} is not a multiple of DINOv2's 64-wide heads")
    return Arch(width, depth, width // 64, ffn, hidden, patch, grid)


def build_from_state_dict(state: dict[str, Any], label: str = "checkpoint") -> DinoV2:
    """A :class:`DinoV2` with the architecture of ``state``, loaded from it (``strict=True``)."""
    from iqa.weights import load_strict

    return load_strict(DinoV2(arch_of(state, label)), state, label, "DINOv2 ViT")


def load_dinov2(
    name: str,
    path: str | os.PathLike | None = None,
    *,
    device: Any = "cpu",
) -> tuple[DinoV2, str]:
    """The DINOv2 network of the extractor ``dinov2-NAME`` (``vits14``...) and its file's SHA-256.

    The file is the registry's ``dinov2-NAME`` (Meta's, downloaded once and then verified
    against the digest recorded at that download) or the user's ``path``; its width, depth,
    FFN type and heads must be those of ``NAME``.

    Raises:
        WeightsError: the file cannot be had, is not a DINOv2 checkpoint, or is another size.
    """
    from iqa.weights import file_sha256, get_path, load_state_dict

    key = f"dinov2-{name}"
    state = load_state_dict(key, path=path)
    file = get_path(key, path=path)
    arch = arch_of(state, str(file))
    want = ARCHS[name]
    got = (arch.width, arch.depth, arch.heads, arch.ffn, arch.patch)
    expected = (want.width, want.depth, want.heads, want.ffn, want.patch)
    if got != expected:
        raise WeightsError(
            f"{file}: a DINOv2 with width {arch.width}, depth {arch.depth}, {arch.heads} heads, "
            f"{arch.ffn} FFN, patch {arch.patch}; {key} has width {want.width}, depth {want.depth}, "
            f"{want.heads} heads, {want.ffn} FFN, patch {want.patch}: pass that size's file"
        )
    model = build_from_state_dict(state, str(file))
    return model.to(device), file_sha256(file)

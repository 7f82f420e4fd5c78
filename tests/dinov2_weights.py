"""Generated DINOv2 checkpoints in Meta's state-dict layout (for the DINOv2 and evaluate tests).

Meta's ``dinov2_vit*14_pretrain.pth`` cannot be downloaded where the tests run, so the tests
make seeded stand-ins with the same keys and shapes and load them through the real loading
code. Values are scaled so that every layer keeps unit-scale activations: linear weights
~ N(0, 1/fan_in), LayerNorm gains near 1, layer-scale gammas in [0.5, 1.5], and a position
embedding and CLS token of unit scale, so that features vary across images and the
position-embedding interpolation matters far above round-off.

Test files import it as ``dinov2_weights`` (tests/ is on ``sys.path``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from iqa.features.dinov2 import ARCHS, Arch, DinoV2

#: A small DINOv2 (not one of Meta's sizes) for the cheap tests: width 128, depth 2, 2 heads.
SMALL = Arch(128, 2, 2, "mlp", 512)


def make_state_dict(arch: Arch | str = "vits14", seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded state dict with Meta's keys and shapes for ``arch``."""
    arch = ARCHS[arch] if isinstance(arch, str) else arch
    state = DinoV2(arch).state_dict()
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in state.items():
        if k.endswith("gamma"):
            t = 0.5 + torch.rand(v.shape, generator=g)
        elif "norm" in k and k.endswith("weight"):
            t = 1 + 0.2 * torch.randn(v.shape, generator=g)
        elif k in ("pos_embed", "cls_token", "mask_token"):
            t = torch.randn(v.shape, generator=g)
        elif v.ndim > 1:
            t = torch.randn(v.shape, generator=g) / math.sqrt(v[0].numel())
        else:
            t = 0.1 * torch.randn(v.shape, generator=g)
        out[k] = t.to(torch.float32).contiguous()
    return out


def weights_file(directory: Path, arch: Arch | str = "vits14", seed: int = 0) -> Path:
    """Save :func:`make_state_dict` once per (arch, seed) in ``directory``; return the path."""
    name = arch if isinstance(arch, str) else f"w{arch.width}d{arch.depth}"
    path = Path(directory) / f"dinov2_{name}_seed{seed}.pth"
    if not path.exists():
        torch.save(make_state_dict(arch, seed), path)
    return path

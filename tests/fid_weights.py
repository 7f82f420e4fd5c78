"""Generated FID Inception weights in pytorch-fid's state-dict layout (for the FID/KID tests).

The real ``pt_inception-2015-12-05-6726825d.pth`` cannot be downloaded where the tests run, so
the tests make a seeded stand-in with the same keys and shapes and load it through the real
loading code. Random weights alone give features that barely differ between images (deep
random ReLU networks contract), so the batch norms are calibrated: one forward pass over a few
synthetic images sets every batch norm's running mean and variance to the statistics of its
input, which keeps every layer's activations at unit scale, and random γ/β keep channels
distinct. Features then vary across images and FID between different image sets is far
above the parity tolerances.

Test files import it as ``fid_weights``: pytest puts tests/ on ``sys.path`` (``pythonpath``
in pyproject.toml), since tests are imported in importlib mode, without a package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def synthetic_images(n: int, size: int, seed: int, kind: str = "smooth") -> np.ndarray:
    """``n`` uint8 RGB images ``size×size``: smooth colour blobs, or blobs with strong noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        img = np.zeros((size, size, 3))
        for _ in range(4):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.5)
            colour = rng.uniform(0, 255, 3)
            w = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
            img += w[:, :, None] * colour
        img = img / max(img.max(), 1) * rng.uniform(150, 255)
        if kind == "noisy":
            img = img * 0.5 + rng.uniform(0, 128, (size, size, 3))
        elif kind == "stripes":
            f = rng.uniform(4, 16)
            img = img * 0.6 + 100 * (np.sin(2 * np.pi * f * (xx + rng.uniform() * yy)) > 0)[:, :, None]
        out[i] = np.clip(np.rint(img), 0, 255)
    return out


def make_state_dict(seed: int = 0) -> dict:
    """A calibrated, seeded state dict with the keys and shapes of pytorch-fid's file."""
    import torch
    from torch import nn

    from iqa.features.inception import FIDInceptionV3

    gen = torch.Generator().manual_seed(seed)
    model = FIDInceptionV3().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))
            elif isinstance(m, nn.Linear):
                # The classifier makes the Inception Score's logits: large enough that images
                # get distinct class distributions, and a bias that changes the score if used.
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.1)
                m.bias.copy_(2 * torch.randn(m.bias.shape, generator=gen))

    def calibrate(module, inputs):
        x = inputs[0].double()
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)).float())
        module.running_var.copy_(x.var(dim=(0, 2, 3)).float() + 1e-3)

    hooks = [m.register_forward_pre_hook(calibrate) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    imgs = np.concatenate([
        synthetic_images(2, 299, seed + 100, "smooth"),
        synthetic_images(2, 299, seed + 101, "noisy"),
    ])
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        model(x, dims=2048)
    for h in hooks:
        h.remove()
    return model.state_dict()


def weights_file(directory: Path, seed: int = 0) -> Path:
    """Write (once per directory) and return the generated weights file."""
    import torch

    path = Path(directory) / f"inception-generated-{seed}.pth"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        torch.save(make_state_dict(seed), tmp)
        tmp.rename(path)
    return path

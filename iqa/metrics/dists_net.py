"""The DISTS network (torch): VGG16 with L2 pooling, the α/β weights and the statistics.

The options, the public function and the kernel's entry point are in
:mod:`iqa.metrics.dists`, which imports this module (and torch) only when a value is
computed; the definition, the value range and why there is no map are written there.

The value is the one ``DISTS_pytorch`` 0.1 computes (``DISTS_pt.py``): the images in
[0, 1]; VGG16's ``features`` up to relu5_3 with each max pooling replaced by an L2 pooling
(``sqrt(conv(x², h) + 1e-12)``, ``h`` the normalised outer product of the Hann window
[0.5, 1, 0.5], stride 2, zero padding 1); ImageNet normalisation ``(x − mean) / std`` on the
way in; the input and the five stage outputs compared channel by channel through their
global statistics, weighted by α/β divided by their total.

Where the pieces come from:
    The backbone is built with torchvision's current API (``weights=None``) and loaded from
    the verified file in :mod:`iqa.weights` (registry name ``vgg16``, the file LPIPS-vgg
    uses) or from the user's torchvision-format state dict, by the loader LPIPS uses;
    nothing prints, downloads or warns. α/β are ``DISTS_pytorch/weights.pt`` of the
    installed package, read through :mod:`importlib.resources` after its SHA-256 is checked.

How the arithmetic is arranged (the number is unchanged, up to float32 rounding):
    ``DISTS_pytorch`` forms ``1 − Σ (α S1 + β S2) / Σ(α + β)`` with the covariance as
    ``E[xy] − μx μy``; iqa sums the non-negative terms ``α (1 − S1) + β (1 − S2)`` instead
    (equal, as the normalised weights sum to 1), with ``1 − S1 = (μx − μy)² / (μx² + μy² + c1)``
    and ``1 − S2 = E[((x − μx) − (y − μy))²] / (σx² + σy² + c2)``. Nothing cancels: a value is
    never negative, identical images give exactly 0 (the reference gives ±1e-7), and small
    values keep their relative precision. Both images of a pair go through the network as
    one batch; the network runs channels-last on the CPU, under ``torch.inference_mode``
    unless a gradient is needed; networks are built once per (weights file, device, dtype)
    and cached.

Precision: paths and NumPy inputs are scored in float32 (the precision of the published
weights and of the reference implementation) and returned as float64; torch inputs are
scored in their own dtype (float64 for ``gradcheck``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from iqa import weights as _weights
from iqa.errors import ShapeError, WeightsError
from iqa.io import Pair, prepare_pair, to_rgb
from iqa.metrics.dists import C1, C2, WEIGHTS_NAME, alpha_beta_file
from iqa.metrics.lpips_net import _backbone_features
from iqa.runtime import Runtime, resolve_device

__all__ = ["DISTS", "run"]

_MEAN = (0.485, 0.456, 0.406)  # ImageNet, as DISTS_pytorch normalises
_STD = (0.229, 0.224, 0.225)
_POOL_EPS = 1e-12  # DISTS_pytorch's L2pooling: sqrt(conv(x²) + 1e-12)
#: The input's channels and those of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
_CHANNELS = (3, 64, 128, 256, 512, 512)
#: VGG16 ``features`` indices of each stage (the max pooling before stages 2-5, at 4, 9,
#: 16 and 23, is replaced by an L2 pooling).
_STAGES = ((0, 4), (5, 9), (10, 16), (17, 23), (24, 30))

_cache: dict[tuple, Any] = {}
_cache_lock = threading.Lock()


# --------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------


class DISTS(nn.Module):
    """DISTS as a ``torch.nn.Module``, built once, usable as a training loss.

    The network is in eval mode (and stays there), its parameters are frozen, and the
    output is differentiable with respect to both inputs.

    Args:
        data_range: the peak value of float inputs (e.g. 1.0 for images in [0, 1]);
            integer tensors imply it. Inputs are divided by it internally.
        bit_depth: for 10- or 12-bit data stored as uint16.
        alpha: the alpha policy (see :func:`iqa.io.prepare_pair`).
        check_range: warn when float inputs fall outside [0, data_range]; ``False`` in
            training loops.
        weights: a torchvision-format state dict of VGG16 to use instead of the registry's
            file.

    Inputs are ``C×H×W`` or ``N×C×H×W`` tensors (gray is replicated to RGB) and are
    computed in the module's dtype (float32; call ``.double()`` for float64).

    Example:
        >>> loss_fn = DISTS(data_range=1.0)  # doctest: +SKIP
        >>> loss = loss_fn(output, target).mean()  # doctest: +SKIP
        >>> loss.backward()  # doctest: +SKIP

    References and Matches: see :func:`iqa.metrics.dists.dists`.
    """

    def __init__(
        self,
        *,
        data_range: float | None = None,
        bit_depth: int | None = None,
        alpha: str = "error",
        check_range: bool = True,
        weights: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.data_range, self.bit_depth, self.alpha = data_range, bit_depth, alpha
        self.check_range = check_range
        self.core = _build_core(_weights.get_path(WEIGHTS_NAME, path=weights))
        self.eval()

    def train(self, mode: bool = True) -> DISTS:
        # The metric is defined in eval mode; a training loop calling .train() on a
        # parent module must not change it.
        return super().train(False)

    def forward(self, reference: torch.Tensor, distorted: torch.Tensor) -> torch.Tensor:
        pair = prepare_pair(
            reference, distorted, data_range=self.data_range, bit_depth=self.bit_depth, alpha=self.alpha,
            check_range=self.check_range,
        )
        if pair.backend != "torch":
            raise TypeError("DISTS modules take torch tensors; use iqa.dists() for paths and arrays")
        x, y = _rgb_tensors(pair)
        dtype = self.core.a.dtype
        values = self.core(x.to(dtype), y.to(dtype), pair.data_range)
        return values if pair.batched else values[0]


# --------------------------------------------------------------------------------------
# Building the network
# --------------------------------------------------------------------------------------


def _load_alpha_beta() -> tuple[torch.Tensor, torch.Tensor]:
    with alpha_beta_file() as path:
        state = torch.load(path, weights_only=True, map_location="cpu")
    shape = (1, sum(_CHANNELS), 1, 1)
    out = []
    for key in ("alpha", "beta"):
        w = state.get(key) if isinstance(state, dict) else None
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != shape or not bool(torch.isfinite(w).all()):
            raise WeightsError(f"{path}: no valid {key} of shape {shape}; reinstall DISTS_pytorch")
        out.append(w.reshape(-1).double())
    return out[0], out[1]


class _L2Pool(nn.Module):
    """DISTS_pytorch's L2pooling: ``sqrt(conv(x², h) + 1e-12)``, ``h`` the 3×3 Hann
    window [0.5, 1, 0.5]ᵀ[0.5, 1, 0.5] / 4 (exactly [1, 2, 1]ᵀ[1, 2, 1] / 16), stride 2,
    zero padding 1, channel by channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        w = torch.tensor([1.0, 2.0, 1.0])
        h = torch.outer(w, w) / 16.0
        self.register_buffer("filter", h.expand(channels, 1, 3, 3).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.square()
        if s.is_contiguous():
            # The same filter on every plane as one single-channel convolution over N·C
            # planes: torch's float64 CPU convolution would otherwise run the grouped one
            # group by group (C small calls, each a parallel region).
            n, c, h, w = s.shape
            out = F.conv2d(s.view(n * c, 1, h, w), self.filter[:1], stride=2, padding=1)
            out = out.view(n, c, *out.shape[2:])
        else:  # channels-last float32: oneDNN's depthwise convolution
            out = F.conv2d(s, self.filter, stride=2, padding=1, groups=s.shape[1])
        return out.add_(_POOL_EPS).sqrt_() if not out.requires_grad else (out + _POOL_EPS).sqrt()


def _build_core(weights_path: Path, device: Any = "cpu", dtype: Any = None) -> _Core:
    features = _backbone_features("vgg", weights_path)
    alpha, beta = _load_alpha_beta()
    core = _Core(features, alpha, beta).to(device=device, dtype=dtype or torch.float32)
    if core.a.device.type == "cpu" and core.a.dtype == torch.float32:
        # Channels-last weights for channels-last data: otherwise oneDNN reorders every
        # convolution's weights on every call.
        core = core.to(memory_format=torch.channels_last)
    return core


class _Core(nn.Module):
    """The DISTS computation on two N×3×H×W tensors in [0, data_range]."""

    def __init__(self, features: nn.Sequential, alpha: torch.Tensor, beta: torch.Tensor) -> None:
        super().__init__()
        stages = []
        for k, (start, end) in enumerate(_STAGES):
            layers = [features[i] for i in range(start, end)]
            if k > 0:
                layers.insert(0, _L2Pool(_CHANNELS[k]))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        total = alpha.sum() + beta.sum()
        # The weights divided by their total, as DISTS_pytorch does (computed in float64).
        self.register_buffer("a", alpha / total)
        self.register_buffer("b", beta / total)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
        n = x.shape[0]
        graph = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
        u = torch.cat([x, y]) / float(data_range)  # [0, 1], both images in one batch
        h = (u - self.mean) / self.std
        if h.device.type == "cpu" and h.dtype == torch.float32:
            # The CPU convolutions (oneDNN) are fastest on channels-last float32 data (the
            # weights are channels-last too, see _build_core).
            h = h.contiguous(memory_format=torch.channels_last)
        t1, t2 = [], []
        features = u
        for stage in self.stages:
            h = stage(h)
            # The previous representation is no longer needed (the network started from
            # its own normalised copy of the input, and each L2 pooling squares its input
            # into a new tensor): its statistics may now reuse its memory.
            _terms(features, n, graph, t1, t2)
            features = h
        _terms(features, n, graph, t1, t2)
        return torch.cat(t1, 1) @ self.a + torch.cat(t2, 1) @ self.b


def _terms(f: torch.Tensor, n: int, graph: bool, t1: list, t2: list) -> None:
    """Append ``1 − S1`` and ``1 − S2`` (``N×C``) of the features ``f`` (``2N×C×H×W``:
    the first images, then the second). Without a graph, ``f`` is overwritten."""
    mu = f.mean((2, 3), keepdim=True)
    if graph:
        c = f - mu
        diff = c[:n] - c[n:]
        var = c.square().mean((2, 3))
        d = diff.square().mean((2, 3))
    else:
        # The same operations in place, with one new tensor instead of four (on the CPU,
        # writing fresh memory costs more than the arithmetic).
        c = f.sub_(mu)
        diff = c[:n] - c[n:]
        var = c.square_().mean((2, 3))
        d = diff.square_().mean((2, 3))
    mx, my = mu[:n, :, 0, 0], mu[n:, :, 0, 0]
    t1.append((mx - my).square() / (mx.square() + my.square() + C1))
    t2.append(d / (var[:n] + var[n:] + C2))


def _cached_core(backbone_weights: Any, device: Any, dtype: Any) -> _Core:
    path = _weights.get_path(WEIGHTS_NAME, path=backbone_weights)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, str(device), str(dtype))
    with _cache_lock:
        core = _cache.get(key)
        if core is None:
            core = _build_core(path, device=device, dtype=dtype)
            _cache[key] = core
    return core


# --------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------


def _rgb_tensors(pair: Pair) -> tuple[Any, Any]:
    try:
        return to_rgb(pair.reference, pair.backend), to_rgb(pair.distorted, pair.backend)
    except ShapeError as exc:
        raise ShapeError(
            f"{pair.names[0]}: DISTS takes gray or RGB images: {exc}; use {{drop}}",
            options={"drop": ("alpha", "drop")},
        ) from None


def run(pair: Pair, runtime: Runtime) -> Any:
    """DISTS values (``N``) of a prepared pair, ``runtime.pairs_per_batch`` pairs per
    network call: a float64 NumPy array for NumPy input, else a tensor."""
    backbone_weights = runtime.weights_for(WEIGHTS_NAME)
    batch_size = runtime.pairs_per_batch
    x_all, y_all = _rgb_tensors(pair)
    dev = resolve_device(runtime.device, like=pair.reference if pair.backend == "torch" else None)
    n = x_all.shape[0]
    if pair.backend == "numpy":
        core = _cached_core(backbone_weights, dev, torch.float32)
        values = np.empty(n)
        with torch.inference_mode():
            for s in range(0, n, batch_size):
                x, y = (
                    torch.from_numpy(a[s : s + batch_size]).to(dev, torch.float32).permute(0, 3, 1, 2)
                    for a in (x_all, y_all)
                )
                values[s : s + len(x)] = core(x, y, pair.data_range).double().cpu().numpy()
        return values
    core = _cached_core(backbone_weights, dev, x_all.dtype)
    needs_grad = torch.is_grad_enabled() and (x_all.requires_grad or y_all.requires_grad)
    vs = []
    with torch.enable_grad() if needs_grad else torch.inference_mode():
        for s in range(0, n, batch_size):
            x, y = x_all[s : s + batch_size].to(dev), y_all[s : s + batch_size].to(dev)
            vs.append(core(x, y, pair.data_range))
    values = torch.cat(vs).to(pair.reference.device)
    # Tensors made under inference_mode cannot enter autograd later; hand back normal ones.
    return values if needs_grad else values.clone()

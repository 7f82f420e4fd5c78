"""The LPIPS network (torch): the backbone, the linear heads and the distance.

The options, the public function and the kernel's entry point are in
:mod:`iqa.metrics.lpips`, which imports this module (and torch) only when a value is computed.

The distance is computed exactly as the ``lpips`` package (0.1.4) computes it: the images
are mapped to [-1, 1], shifted and scaled per channel (version 0.1 only), passed through
the backbone (AlexNet, VGG16 or SqueezeNet 1.1 ``features``), and at each tapped ReLU the
channel-normalised features ``f / (‖f‖₂ + 1e-10)`` of the two images are subtracted,
squared, weighted by the linear head's 1×1 convolution, averaged over space (or upsampled
bilinearly to the image size for ``spatial=True``) and summed over the layers.

Where the pieces come from:
    The backbone is torchvision's ``features``, layer for layer (built here, see
    :func:`backbone_features`), loaded from
    the verified file in :mod:`iqa.weights` (or from the user's torchvision-format state dict
    given as ``weights``); nothing prints, downloads or warns. The linear heads are
    the ``.pth`` files shipped inside the installed ``lpips`` package
    (``lpips/weights/v0.1/<net>.pth``; ``v0.0`` on request).

How the work is arranged (the number is unchanged, up to float32 rounding):
    Both images of a pair go through the backbone as one batch; the network runs in the
    channels-last layout on the CPU, under ``torch.inference_mode`` unless a gradient is
    needed; the [-1, 1] mapping and the version-0.1 shift become one fused multiply-add on
    the input, and the division by the scaling layer's per-channel scale is folded into the
    first convolution's weights (zero padding stays zero in the scaled domain, so only rounding changes).
    Networks are built once per (net, version, weights file, device, dtype) and cached.

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
from iqa.metrics.lpips import MIN_SIZE, NETS, LPIPSOptions, heads_path
from iqa.options import renamed_keyword
from iqa.runtime import Runtime, resolve_device

__all__ = ["LPIPS", "run"]

# lpips.ScalingLayer: (x - shift) / scale, applied in version 0.1 only.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # lpips.normalize_tensor's epsilon

_cache: dict[tuple, Any] = {}
_cache_lock = threading.Lock()


# --------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------


class LPIPS(nn.Module):
    """LPIPS as a ``torch.nn.Module``, built once, usable as a training loss.

    The network is in eval mode (and stays there), its parameters are frozen, and the
    output is differentiable with respect to both inputs.

    Args:
        net: ``"alex"``, ``"vgg"`` or ``"squeeze"``.
        version: ``"0.1"`` or ``"0.0"``.
        data_range: the peak value of float inputs (e.g. 1.0 for images in [0, 1]);
            integer tensors imply it. Inputs are mapped to [-1, 1] internally.
        bit_depth: for 10- or 12-bit data stored as uint16.
        alpha: the alpha policy (see :func:`iqa.io.prepare_pair`).
        check_range: warn when float inputs fall outside [0, data_range] (one ``aminmax``
            per input, read together with the NaN check); ``False`` in training loops.
        weights: a torchvision-format state dict of the backbone to use instead of the
            registry's file (``backbone_weights`` is its former name).
        return_map: return ``N×1×H×W`` maps instead of one value per image (``spatial`` is
            its former name).

    Inputs are ``C×H×W`` or ``N×C×H×W`` tensors (gray is replicated to RGB) and are
    computed in the module's dtype (float32; call ``.double()`` for float64).

    Example:
        >>> loss_fn = LPIPS(net="alex", data_range=1.0)  # doctest: +SKIP
        >>> loss = loss_fn(output, target).mean()  # doctest: +SKIP
        >>> loss.backward()  # doctest: +SKIP

    References and Matches: see :func:`iqa.lpips`.
    """

    def __init__(
        self,
        net: str = "alex",
        version: str = "0.1",
        *,
        data_range: float | None = None,
        bit_depth: int | None = None,
        alpha: str = "error",
        check_range: bool = True,
        weights: str | os.PathLike | None = None,
        return_map: bool = False,
        backbone_weights: str | os.PathLike | None = None,
        spatial: bool | None = None,
    ) -> None:
        super().__init__()
        if backbone_weights is not None:
            weights = renamed_keyword("backbone_weights", "weights", backbone_weights)
        if spatial is not None:
            return_map = renamed_keyword("spatial", "return_map", spatial)
        LPIPSOptions(net=net, version=version)
        self.net_name, self.version = net, version
        self.data_range, self.bit_depth, self.alpha = data_range, bit_depth, alpha
        self.check_range = check_range
        self.spatial = bool(return_map)
        self.core = _build_core(net, version, _weights.get_path(NETS[net]["weights"], path=weights))
        self.eval()

    def train(self, mode: bool = True) -> "LPIPS":
        # The metric is defined in eval mode; a training loop calling .train() on a
        # parent module must not change it.
        return super().train(False)

    def forward(self, reference: torch.Tensor, distorted: torch.Tensor) -> torch.Tensor:
        pair = prepare_pair(
            reference, distorted, data_range=self.data_range, bit_depth=self.bit_depth, alpha=self.alpha,
            check_range=self.check_range,
        )
        if pair.backend != "torch":
            raise TypeError("LPIPS modules take torch tensors; use iqa.lpips() for paths and arrays")
        x, y = _rgb_tensors(pair, self.net_name)
        dtype = self.core.offset.dtype
        values, maps = self.core(x.to(dtype), y.to(dtype), pair.data_range, not self.spatial, self.spatial)
        out = maps if self.spatial else values
        return out if pair.batched else out[0]

    def extra_repr(self) -> str:
        return f"net={self.net_name!r}, version={self.version!r}, spatial={self.spatial}"


# --------------------------------------------------------------------------------------
# Building the network
# --------------------------------------------------------------------------------------


def _load_heads(net: str, version: str) -> list[Any]:
    path = heads_path(net, version)
    state = torch.load(path, weights_only=True, map_location="cpu")
    heads = []
    for k in range(len(NETS[net]["taps"])):
        key = f"lin{k}.model.1.weight"
        w = state.get(key) if isinstance(state, dict) else None
        if w is None or w.ndim != 4 or w.shape[0] != 1 or not bool(torch.isfinite(w).all()):
            raise WeightsError(f"{path}: no valid {key}; reinstall lpips")
        heads.append(w.float())
    return heads


class _Fire(nn.Module):
    """torchvision's SqueezeNet Fire module (same attribute names, so the same state-dict keys)."""

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


def _vgg16_layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    channels = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = v
    return layers


#: The ``features`` part of torchvision's AlexNet, VGG16 and SqueezeNet 1.1, layer for layer
#: (torchvision/models/{alexnet,vgg,squeezenet}.py), so that torchvision's files load into
#: them unchanged; written here because importing torchvision costs ~1.4 s at every start.
_FEATURES = {
    "alexnet": lambda: [
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2),
    ],
    "vgg16": _vgg16_layers,
    "squeezenet1_1": lambda: [
        nn.Conv2d(3, 64, kernel_size=3, stride=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        _Fire(64, 16, 64, 64), _Fire(128, 16, 64, 64), nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        _Fire(128, 32, 128, 128), _Fire(256, 32, 128, 128), nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        _Fire(256, 48, 192, 192), _Fire(384, 48, 192, 192), _Fire(384, 64, 256, 256), _Fire(512, 64, 256, 256),
    ],
}


def backbone_features(builder: str) -> nn.Sequential:
    """torchvision's ``features`` of ``builder`` (``alexnet``, ``vgg16``, ``squeezenet1_1``),
    uninitialised on the meta device: load a state dict into it with ``assign=True``."""
    with torch.device("meta"):
        return nn.Sequential(*_FEATURES[builder]())


def _backbone_features(net: str, weights_path: Path) -> Any:
    """The ``features`` of ``net``'s torchvision backbone, built on the meta device (no
    random initialisation, no classifier allocated) and loaded from the file."""
    spec = NETS[net]
    features = backbone_features(spec["builder"])
    state = _weights.load_state_dict(spec["weights"], path=weights_path)
    if set(state) == set(features.state_dict()):
        sub = state  # saved from model.features.state_dict(): unambiguous, accepted as well
        stray = []
    else:
        sub = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        stray = [k for k in state if not k.startswith(("features.", "classifier."))]
    expected = features.state_dict()
    fits = bool(sub) and not stray and {k: tuple(v.shape) for k, v in sub.items()} == {
        k: tuple(v.shape) for k, v in expected.items()}
    if not fits:
        prefixed = any(k.startswith("features.") for k in state) or not any(k in expected for k in state)
        wanted = {f"features.{k}": v for k, v in expected.items()} if prefixed else expected
        raise _weights.mismatch_error(weights_path, state, wanted, spec["weights"],
                                      f"torchvision {spec['builder']}", ignore=("classifier.",))
    try:
        features.load_state_dict(sub, strict=True, assign=True)
    except RuntimeError as exc:
        raise WeightsError(f"{weights_path}: does not load into torchvision {spec['builder']} "
                           f"({' '.join(str(exc).split())[:160]})") from None
    return features


def _build_core(net: str, version: str, weights_path: Path, device: Any = "cpu", dtype: Any = None) -> Any:
    features = _backbone_features(net, weights_path)
    core = _Core(features, NETS[net]["taps"], _load_heads(net, version), version)
    core = core.to(device=device, dtype=dtype or torch.float32)
    return core


class _Core(nn.Module):
    """The LPIPS computation on two N×3×H×W tensors in [0, data_range]."""

    def __init__(self, features: nn.Sequential, taps: tuple[int, ...], heads: list, version: str):
        super().__init__()
        stages, start = [], 0
        for t in taps:
            stages.append(nn.Sequential(*[features[i] for i in range(start, t + 1)]))
            start = t + 1
        self.stages = nn.ModuleList(stages)
        first = self.stages[0][0]
        shift = torch.tensor(_SHIFT).view(1, 3, 1, 1)
        scale = torch.tensor(_SCALE).view(1, 3, 1, 1)
        with torch.no_grad():
            if version == "0.1":
                # conv(W, (u - shift) / scale) == conv(W / scale, u - shift), and zero
                # padding is zero in both domains: folding the scaling layer's division
                # into the weights changes nothing but float rounding.
                first.weight.copy_(first.weight / scale)
                offset = -1.0 - shift
            else:  # v0.0 had no scaling layer
                offset = torch.full((1, 3, 1, 1), -1.0)
        self.register_buffer("offset", offset)
        self.heads = nn.ParameterList([nn.Parameter(w, requires_grad=False) for w in heads])
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor, data_range: float, want_value: bool, want_map: bool):
        n, (h, w) = x.shape[0], x.shape[2:]
        graph = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
        # The CPU convolutions (oneDNN) are fastest on channels-last float32 data.
        layout = torch.channels_last if x.device.type == "cpu" and x.dtype == torch.float32 else None
        alpha = 2.0 / float(data_range)
        # 2·x/L − 1 − shift: one multiply-add per image, both images in one batch.
        if graph:
            z = torch.add(self.offset, torch.cat([x, y]), alpha=alpha)
            z = z.contiguous(memory_format=layout) if layout is not None else z
        else:
            z = torch.empty(
                (2 * n, *x.shape[1:]), dtype=x.dtype, device=x.device,
                memory_format=layout or torch.contiguous_format,
            )
            torch.add(self.offset, x, alpha=alpha, out=z[:n])
            torch.add(self.offset, y, alpha=alpha, out=z[n:])
        value = None
        spatial_map = None
        tiny = torch.finfo(z.dtype).tiny
        for stage, head in zip(self.stages, self.heads):
            z = stage(z)
            f0, f1 = z[:n], z[n:]
            # lpips.normalize_tensor: f / (sqrt(sum f²) + 1e-10), then the squared
            # difference of the two normalised features.
            if graph:
                # The clamp only keeps the gradient of an all-zero feature vector finite
                # (0, not NaN); it cannot change a value (the 1e-10 dominates).
                n0 = f0.square().sum(1, keepdim=True).clamp_min(tiny).sqrt() + _EPS
                n1 = f1.square().sum(1, keepdim=True).clamp_min(tiny).sqrt() + _EPS
                d = (f0 / n0 - f1 / n1).square()
            else:
                # The same quantities in fewer passes over the features
                # (a fused norm, reciprocals of the small norm maps, in-place updates).
                r0 = torch.linalg.vector_norm(f0, dim=1, keepdim=True).add_(_EPS).reciprocal_()
                r1 = torch.linalg.vector_norm(f1, dim=1, keepdim=True).add_(_EPS).reciprocal_()
                # (Not addcmul: its fused multiply-add would make identical images
                # differ by a rounding error instead of giving exactly 0.)
                d = torch.mul(f0, r0).sub_(torch.mul(f1, r1)).square_()
            layer = F.conv2d(d, head)  # the linear head: a 1×1 convolution, no bias
            if want_value:
                v = layer.mean((2, 3))
                value = v if value is None else value + v
            if want_map:
                m = F.interpolate(layer, size=(h, w), mode="bilinear", align_corners=False)
                spatial_map = m if spatial_map is None else spatial_map + m
        return (
            value.view(n) if value is not None else None,
            spatial_map.contiguous() if spatial_map is not None else None,
        )


def _cached_core(net: str, version: str, backbone_weights: Any, device: Any, dtype: Any) -> Any:
    path = _weights.get_path(NETS[net]["weights"], path=backbone_weights)
    st = path.stat()
    key = (net, version, str(path.resolve()), st.st_size, st.st_mtime_ns, str(device), str(dtype))
    with _cache_lock:
        core = _cache.get(key)
        if core is None:
            core = _build_core(net, version, path, device=device, dtype=dtype)
            _cache[key] = core
    return core


# --------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------


def _check_size(pair: Pair, net: str) -> None:
    if pair.backend == "numpy":
        h, w = pair.reference.shape[1:3]
    else:
        h, w = pair.reference.shape[2:4]
    need = MIN_SIZE[net]
    if min(h, w) < need:
        raise ShapeError(
            f"{pair.names[0]}: {w}×{h} is too small for LPIPS-{net}: height and width must be "
            f"at least {need} px (alex 31, vgg 16, squeeze 17); upsample the images or pick "
            "another {net}",
            options={"net": "net"}, metric="lpips",
        )


def _rgb_tensors(pair: Pair, net: str) -> tuple[Any, Any]:
    _check_size(pair, net)
    try:
        return to_rgb(pair.reference, pair.backend), to_rgb(pair.distorted, pair.backend)
    except ShapeError as exc:
        raise ShapeError(
            f"{pair.names[0]}: LPIPS takes gray or RGB images: {exc}; use {{drop}}",
            options={"drop": ("alpha", "drop")},
        ) from None


def run(pair: Pair, options: LPIPSOptions, runtime: Runtime, want_value: bool, want_map: bool) -> tuple[Any, Any]:
    """LPIPS values (``N``) and/or maps (NumPy ``N×H×W`` or tensors ``N×1×H×W``) of a
    prepared pair, ``runtime.pairs_per_batch`` pairs per network call."""
    net, version = options.net, options.version
    backbone_weights = runtime.weights_for(NETS[net]["weights"])
    batch_size = runtime.pairs_per_batch
    x_all, y_all = _rgb_tensors(pair, net)
    dev = resolve_device(runtime.device, like=pair.reference if pair.backend == "torch" else None)
    n = x_all.shape[0]
    if pair.backend == "numpy":
        core = _cached_core(net, version, backbone_weights, dev, torch.float32)
        values = np.empty(n) if want_value else None
        maps = np.empty((n, *x_all.shape[1:3])) if want_map else None
        with torch.inference_mode():
            for s in range(0, n, batch_size):
                x, y = (
                    torch.from_numpy(a[s : s + batch_size]).to(dev, torch.float32).permute(0, 3, 1, 2)
                    for a in (x_all, y_all)
                )
                v, m = core(x, y, pair.data_range, want_value, want_map)
                if want_value:
                    values[s : s + len(x)] = v.double().cpu().numpy()
                if want_map:
                    maps[s : s + len(x)] = m[:, 0].double().cpu().numpy()
        return values, maps
    dtype = x_all.dtype
    core = _cached_core(net, version, backbone_weights, dev, dtype)
    needs_grad = torch.is_grad_enabled() and (x_all.requires_grad or y_all.requires_grad)
    vs, ms = [], []
    with torch.enable_grad() if needs_grad else torch.inference_mode():
        for s in range(0, n, batch_size):
            x, y = x_all[s : s + batch_size].to(dev), y_all[s : s + batch_size].to(dev)
            v, m = core(x, y, pair.data_range, want_value, want_map)
            vs.append(v)
            ms.append(m)
    home = pair.reference.device
    values = torch.cat(vs).to(home) if want_value else None
    maps = torch.cat(ms).to(home) if want_map else None
    if not needs_grad:
        # Tensors made under inference_mode cannot enter autograd later; hand back normal ones.
        values = values.clone() if values is not None else None
        maps = maps.clone() if maps is not None else None
    return values, maps

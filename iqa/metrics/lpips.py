"""LPIPS, the learned perceptual image patch similarity (Zhang et al. 2018).

The distance is computed exactly as the ``lpips`` package (0.1.4) computes it: the images
are mapped to [-1, 1], shifted and scaled per channel (version 0.1 only), passed through
the backbone (AlexNet, VGG16 or SqueezeNet 1.1 ``features``), and at each tapped ReLU the
channel-normalised features ``f / (‖f‖₂ + 1e-10)`` of the two images are subtracted,
squared, weighted by the linear head's 1×1 convolution, averaged over space (or upsampled
bilinearly to the image size for ``spatial=True``) and summed over the layers.

Where the pieces come from:
    The backbone is built with torchvision's current API (``weights=None``) and loaded from
    the verified file in :mod:`iqa.weights` (or from the user's torchvision-format state dict
    given as ``backbone_weights``); nothing prints, downloads or warns. The linear heads are
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

import importlib.util
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

__all__ = ["LPIPS", "MIN_SIZE", "NETS", "compute_lpips", "compute_lpips_and_map", "lpips", "lpips_provenance"]

#: The backbones: registry name of the torchvision weights, torchvision builder, and the
#: indices in ``features`` whose outputs are compared (the ends of the ``lpips`` slices).
NETS: dict[str, dict[str, Any]] = {
    "alex": {"weights": "alexnet", "builder": "alexnet", "taps": (1, 4, 7, 9, 11)},
    "vgg": {"weights": "vgg16", "builder": "vgg16", "taps": (3, 8, 15, 22, 29)},
    "squeeze": {"weights": "squeezenet1_1", "builder": "squeezenet1_1", "taps": (1, 4, 7, 9, 10, 11, 12)},
}

#: The smallest height and width each backbone accepts (every tapped layer keeps >= 1 pixel).
MIN_SIZE = {"alex": 31, "vgg": 16, "squeeze": 17}

VERSIONS = ("0.1", "0.0")

# lpips.ScalingLayer: (x - shift) / scale, applied in version 0.1 only.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # lpips.normalize_tensor's epsilon

_cache: dict[tuple, Any] = {}
_cache_lock = threading.Lock()


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def lpips(
    reference: Any,
    distorted: Any,
    *,
    net: str = "alex",
    version: str = "0.1",
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    backbone_weights: str | os.PathLike | None = None,
    spatial: bool = False,
    device: str = "auto",
    batch_size: int = 16,
) -> Any:
    """Learned perceptual image patch similarity: 0 for identical images, larger is worse.

    Args:
        reference: the pristine image: a path, a NumPy array (``H×W``, ``H×W×C``,
            ``N×H×W×C``) or a torch tensor (``C×H×W``, ``N×C×H×W``).
        distorted: the image being scored, in the same form and size.
        net: the backbone, ``"alex"``, ``"vgg"`` or ``"squeeze"``.
        version: the linear heads, ``"0.1"`` (default) or ``"0.0"`` (the first release,
            without the scaling layer).
        data_range: the peak value; implied by integer dtypes (uint8 → 255), required for
            float input. Pixels are mapped from [0, data_range] to LPIPS' [-1, 1].
        bit_depth: for 10- or 12-bit data stored as uint16.
        alpha: ``"error"`` (default), ``"drop"``; ``"keep"`` is refused (LPIPS takes RGB).
        backbone_weights: a torchvision-format state dict of the backbone (a file saved
            from ``torchvision.models.alexnet().state_dict()``; the classifier may be left
            out, and ``model.features.state_dict()`` is accepted too) instead of the
            registry's ImageNet weights, for offline or fine-tuned use. Used as-is (not hashed).
        spatial: return the per-pixel distance map instead of its summary value.
        device: ``"auto"`` (CUDA when available; a tensor's own device), ``"cpu"``, ``"cuda"``.
        batch_size: images per forward pass for batches.

    Returns:
        A float (paths, one NumPy image), a float64 array (NumPy batch) or a tensor
        (differentiable), one value per image. Paths and NumPy arrays are scored with the
        network in float32, like the reference; tensors in their own dtype. With ``spatial=True`` the ``H×W`` map
        (``N×H×W`` for a NumPy batch, ``1×H×W`` / ``N×1×H×W`` for tensors).

    Raises:
        ShapeError: mismatched sizes, an image smaller than the backbone accepts
            (:data:`MIN_SIZE`), two or four channels left after the alpha policy.
        RangeError, ImageLoadError: from the image layer.
        WeightsError: the backbone weights are missing (offline) or fail verification.

    Example:
        >>> lpips("ref.png", "dist.png", net="alex")  # doctest: +SKIP
        0.2134...

    References: Zhang, Isola, Efros, Shechtman & Wang, "The unreasonable effectiveness of
    deep features as a perceptual metric", CVPR 2018.
    Matches: ``lpips.LPIPS(net=net, version=version)(2*x/L - 1, 2*y/L - 1)`` of the ``lpips``
    package 0.1.4, with the same backbone weights, to float32 rounding (1e-5 relative).
    """
    pair = prepare_pair(reference, distorted, data_range=data_range, bit_depth=bit_depth, alpha=alpha)
    out = compute_lpips(
        pair, net=net, version=version, backbone_weights=backbone_weights, device=device,
        spatial=spatial, batch_size=batch_size,
    )
    if spatial:
        return out if pair.batched else out[0]
    return pair.result(out)


def compute_lpips(
    pair: Pair,
    *,
    net: str = "alex",
    version: str = "0.1",
    backbone_weights: str | os.PathLike | None = None,
    device: str = "auto",
    spatial: bool = False,
    batch_size: int = 16,
) -> Any:
    """LPIPS of a prepared pair: one value per image (NumPy float64 array or tensor), or
    the maps (``N×H×W`` float64 array, ``N×1×H×W`` tensor) with ``spatial=True``.

    Networks are cached per (net, version, weights file, device, dtype), so calling this
    for many pairs builds each network once.
    """
    values, maps = _run(pair, net, version, backbone_weights, device, batch_size, not spatial, spatial)
    return maps if spatial else values


def compute_lpips_and_map(
    pair: Pair,
    *,
    net: str = "alex",
    version: str = "0.1",
    backbone_weights: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 16,
) -> tuple[Any, Any]:
    """Values and spatial maps of a prepared pair from one forward pass (see
    :func:`compute_lpips`)."""
    return _run(pair, net, version, backbone_weights, device, batch_size, True, True)


def lpips_provenance(
    net: str = "alex", version: str = "0.1", backbone_weights: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Which files produce an LPIPS value: the backbone and the linear heads, with SHA-256.

    Resolving the backbone may download it (see :func:`iqa.weights.get_path`).

    Returns:
        ``{"net", "version", "backbone": {"name", "file", "sha256", "source"},
        "linear_heads": {"file", "sha256", "package"}}``; ``source`` is ``"registry"`` or
        ``"user"``.
    """
    _check_options(net, version)
    spec = NETS[net]
    path = _weights.get_path(spec["weights"], path=backbone_weights)
    heads = _heads_path(net, version)
    from importlib import metadata

    try:
        lpips_version = metadata.version("lpips")
    except metadata.PackageNotFoundError:  # pragma: no cover - the heads would be missing too
        lpips_version = "unknown"
    return {
        "net": net,
        "version": version,
        "backbone": {
            "name": spec["weights"],
            "file": str(path) if backbone_weights is not None else path.name,
            "sha256": _weights.file_sha256(path),
            "source": "user" if backbone_weights is not None else "registry",
        },
        "linear_heads": {
            "file": f"lpips/weights/v{version}/{net}.pth",
            "sha256": _weights.file_sha256(heads),
            "package": f"lpips {lpips_version}",
        },
    }


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
        backbone_weights: a torchvision-format state dict to use instead of the registry.
        spatial: return ``N×1×H×W`` maps instead of one value per image.

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
        backbone_weights: str | os.PathLike | None = None,
        spatial: bool = False,
    ) -> None:
        super().__init__()
        _check_options(net, version)
        self.net_name, self.version = net, version
        self.data_range, self.bit_depth, self.alpha = data_range, bit_depth, alpha
        self.spatial = spatial
        self.core = _build_core(net, version, _weights.get_path(NETS[net]["weights"], path=backbone_weights))
        self.eval()

    def train(self, mode: bool = True) -> "LPIPS":
        # The metric is defined in eval mode; a training loop calling .train() on a
        # parent module must not change it.
        return super().train(False)

    def forward(self, reference: torch.Tensor, distorted: torch.Tensor) -> torch.Tensor:
        pair = prepare_pair(
            reference, distorted, data_range=self.data_range, bit_depth=self.bit_depth, alpha=self.alpha
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


def _check_options(net: str, version: str) -> None:
    if net not in NETS:
        raise ValueError(f"net must be one of {', '.join(NETS)}, got {net!r}")
    if version not in VERSIONS:
        raise ValueError(f"version must be '0.1' or '0.0', got {version!r}")


def _heads_path(net: str, version: str) -> Path:
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the LPIPS linear heads ship with the lpips package, which is not installed: "
            "pip install lpips"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / f"v{version}" / f"{net}.pth"
    if not path.is_file():
        raise WeightsError(f"{path}: the lpips package has no linear heads for {net} v{version}; reinstall lpips")
    return path


def _load_heads(net: str, version: str) -> list[Any]:
    path = _heads_path(net, version)
    state = torch.load(path, weights_only=True, map_location="cpu")
    heads = []
    for k in range(len(NETS[net]["taps"])):
        key = f"lin{k}.model.1.weight"
        w = state.get(key) if isinstance(state, dict) else None
        if w is None or w.ndim != 4 or w.shape[0] != 1 or not bool(torch.isfinite(w).all()):
            raise WeightsError(f"{path}: no valid {key}; reinstall lpips")
        heads.append(w.float())
    return heads


def _backbone_features(net: str, weights_path: Path) -> Any:
    """torchvision's ``features`` for ``net``, built with ``weights=None`` on the meta
    device (no random initialisation, no classifier allocated) and loaded from the file."""
    import torchvision.models as tvm

    spec = NETS[net]
    with torch.device("meta"):
        features = getattr(tvm, spec["builder"])(weights=None).features
    state = _weights.load_state_dict(spec["weights"], path=weights_path)
    if set(state) == set(features.state_dict()):
        sub = state  # saved from model.features.state_dict(): unambiguous, accepted as well
        stray = []
    else:
        sub = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        stray = [k for k in state if not k.startswith(("features.", "classifier."))]
    if not sub or stray:
        example = (stray or list(state))[:3]
        raise WeightsError(
            f"{weights_path}: not a torchvision {spec['builder']} state dict (keys such as "
            f"{example}); expected 'features.0.weight', ... as saved from "
            f"torchvision.models.{spec['builder']}().state_dict()"
        )
    try:
        features.load_state_dict(sub, strict=True, assign=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise WeightsError(
            f"{weights_path}: does not fit torchvision {spec['builder']}: {detail}"
        ) from None
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


def _resolve_device(device: str, pair: Pair) -> Any:
    if device == "auto":
        if pair.backend == "torch":
            return pair.reference.device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use --device cpu")
    return torch.device(device)


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
            "another net"
        )


def _rgb_tensors(pair: Pair, net: str) -> tuple[Any, Any]:
    _check_size(pair, net)
    try:
        return to_rgb(pair.reference, pair.backend), to_rgb(pair.distorted, pair.backend)
    except ShapeError as exc:
        raise ShapeError(
            f"{pair.names[0]}: LPIPS takes gray or RGB images: {exc}; use alpha='drop'"
        ) from None


def _run(
    pair: Pair,
    net: str,
    version: str,
    backbone_weights: Any,
    device: str,
    batch_size: int,
    want_value: bool,
    want_map: bool,
) -> tuple[Any, Any]:
    _check_options(net, version)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    x_all, y_all = _rgb_tensors(pair, net)
    dev = _resolve_device(device, pair)
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

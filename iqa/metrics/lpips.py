"""LPIPS, the learned perceptual image patch similarity (Zhang et al. 2018).

Its options, public function, kernel entry point and provenance. The network itself (torch)
is in :mod:`iqa.metrics.lpips_net`, imported when a value is computed, so that the command
line and the registry can read the options without importing torch.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iqa.errors import WeightsError
from iqa.io import Pair
from iqa.options import ImageOptions, Options, check_choice, option, renamed_keyword

__all__ = [
    "LPIPS",
    "LPIPSOptions",
    "MIN_SIZE",
    "NETS",
    "VERSIONS",
    "compute_lpips",
    "lpips",
    "lpips_map_view",
    "lpips_provenance",
]

#: The backbones: registry name of the torchvision weights, torchvision builder, and the
#: indices in ``features`` whose outputs are compared (the ends of the ``lpips`` slices).
NETS: dict[str, dict[str, Any]] = {
    "alex": {"weights": "alexnet", "builder": "alexnet", "taps": (1, 4, 7, 9, 11)},
    "vgg": {"weights": "vgg16", "builder": "vgg16", "taps": (3, 8, 15, 22, 29)},
    "squeeze": {"weights": "squeezenet1_1", "builder": "squeezenet1_1", "taps": (1, 4, 7, 9, 10, 11, 12)},
}

#: The smallest height and width each backbone accepts (every tapped layer keeps >= 1 pixel).
MIN_SIZE = {"alex": 31, "vgg": 16, "squeeze": 17}

#: The linear heads shipped with the lpips package.
VERSIONS = ("0.1", "0.0")


@dataclass(frozen=True)
class LPIPSOptions(Options):
    """The parameters of LPIPS: the backbone and the version of the linear heads."""

    metric = "lpips"

    net: str = option("alex", "Backbone network.", choices=tuple(NETS))
    version: str = option(
        "0.1", "Linear heads shipped with the lpips package (0.0: the first release, no scaling layer).",
        choices=VERSIONS,
    )

    def validate(self) -> None:
        check_choice(self.metric, "net", self.net, NETS)
        check_choice(self.metric, "version", self.version, VERSIONS)

    @property
    def weights_name(self) -> str:
        """The registry name of this backbone's weights."""
        return NETS[self.net]["weights"]

    def weights_names(self) -> tuple[str, ...]:
        return (self.weights_name,)


def lpips(
    reference: Any,
    distorted: Any,
    *,
    net: str = "alex",
    version: str = "0.1",
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    check_range: bool = True,
    weights: str | os.PathLike | None = None,
    return_map: bool = False,
    device: str = "auto",
    batch_size: int = 32,
    backbone_weights: str | os.PathLike | None = None,
    spatial: bool | None = None,
) -> Any:
    """Learned perceptual image patch similarity: 0 for identical images, larger is worse.

    The images are mapped to [-1, 1], shifted and scaled per channel (version 0.1 only),
    passed through the backbone (AlexNet, VGG16 or SqueezeNet 1.1 ``features``), and at each
    tapped ReLU the channel-normalised features ``f / (‖f‖₂ + 1e-10)`` of the two images are
    subtracted, squared, weighted by the linear head's 1×1 convolution, averaged over space
    (or upsampled bilinearly to the image size for the map) and summed over the layers.

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
        check_range: warn (:class:`~iqa.errors.RangeWarning`) when float pixels fall outside
            [0, data range] by more than 1 %; ``False`` skips the check (training loops).
        weights: a torchvision-format state dict of the backbone (a file saved from
            ``torchvision.models.alexnet().state_dict()``; the classifier may be left out,
            and ``model.features.state_dict()`` is accepted too) instead of the registry's
            ImageNet weights, for offline or fine-tuned use; or ``{registry name: path}``.
        return_map: return the per-pixel distance map as well: ``(value, map)``.
        device: ``"auto"`` (a tensor's own device; else CUDA when available), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"``.
        batch_size: images per network call (a pair counts as two).
        backbone_weights: the former name of ``weights``; deprecated.
        spatial: deprecated: ``spatial=True`` returned the map alone; use ``return_map``.

    Returns:
        A float (paths, one NumPy image), a float64 array (NumPy batch) or a tensor
        (differentiable), one value per image. Paths and NumPy arrays are scored with the
        network in float32, like the reference; tensors in their own dtype. With
        ``return_map=True`` also the ``H×W`` map (``N×H×W`` for a NumPy batch, ``1×H×W`` /
        ``N×1×H×W`` for tensors).

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
    from iqa.pairwise import evaluate
    from iqa.runtime import Runtime

    if backbone_weights is not None:
        weights = renamed_keyword("backbone_weights", "weights", backbone_weights)
    options = LPIPSOptions(net=net, version=version)
    runtime = Runtime(device=device, batch_size=batch_size, weights=_weights_for(options, weights))
    image = ImageOptions(data_range=data_range, bit_depth=bit_depth, alpha=alpha, check_range=check_range)
    if spatial is not None:
        renamed_keyword("spatial", "return_map", spatial)
        if spatial:
            return evaluate("lpips", reference, distorted, image=image, options=options, runtime=runtime,
                            return_map=True)[1]
    return evaluate("lpips", reference, distorted, image=image, options=options, runtime=runtime,
                    return_map=return_map)


def _weights_for(options: LPIPSOptions, weights: Any) -> dict[str, str]:
    from iqa.runtime import weights_mapping

    return weights_mapping(weights, needed=options.weights_names())


def compute_lpips(pair: Pair, options: LPIPSOptions, runtime: Any = None, want_map: bool = False) -> tuple[Any, Any]:
    """The LPIPS kernel: ``(values, maps)`` of a prepared pair, one value per image; ``maps``
    (NumPy ``N×H×W`` or tensors ``N×1×H×W``) is None unless ``want_map``.

    Networks are cached per (net, version, weights file, device, dtype), so calling this
    for many pairs builds each network once.
    """
    from iqa.metrics.lpips_net import run
    from iqa.runtime import Runtime

    return run(pair, options, runtime or Runtime(), True, want_map)


def lpips_map_view(maps: Any, index: int, options: LPIPSOptions) -> tuple[np.ndarray, dict[str, Any]]:
    """Image ``index``'s LPIPS map as one plane and how to draw it."""
    m = maps[index]
    plane = np.asarray(m.detach().cpu().double()[0] if hasattr(m, "detach") else m, dtype=np.float64)
    h, w = plane.shape
    return plane, {
        "vmin": 0.0,
        "title": f"LPIPS distance ({options.net}, v{options.version}), {w}x{h}: bright = different",
    }


def heads_path(net: str, version: str) -> Path:
    """The linear heads' file inside the installed ``lpips`` package."""
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


def lpips_provenance(options: LPIPSOptions | None = None, weights: Any = None) -> dict[str, Any]:
    """Which files produce an LPIPS value: the backbone and the linear heads, with SHA-256.

    Resolving the backbone may download it (see :func:`iqa.weights.get_path`).

    Args:
        options: the LPIPS options (default: alex, 0.1).
        weights: the user's backbone file (a path or ``{registry name: path}``), if any.

    Returns:
        ``{"net", "version", "backbone": {"name", "file", "sha256", "source"},
        "linear_heads": {"file", "sha256", "package"}}``; ``source`` is ``"registry"`` or
        ``"user"``.
    """
    from importlib import metadata

    from iqa import weights as registry

    options = options or LPIPSOptions()
    user = _weights_for(options, weights).get(options.weights_name)
    path = registry.get_path(options.weights_name, path=user)
    heads = heads_path(options.net, options.version)
    try:
        lpips_version = metadata.version("lpips")
    except metadata.PackageNotFoundError:  # pragma: no cover - the heads would be missing too
        lpips_version = "unknown"
    return {
        "net": options.net,
        "version": options.version,
        "backbone": {
            "name": options.weights_name,
            "file": str(path) if user is not None else path.name,
            "sha256": registry.file_sha256(path),
            "source": "user" if user is not None else "registry",
        },
        "linear_heads": {
            "file": f"lpips/weights/v{options.version}/{options.net}.pth",
            "sha256": registry.file_sha256(heads),
            "package": f"lpips {lpips_version}",
        },
    }


def __getattr__(name: str) -> Any:
    # The torch module loads on first use, so that reading the options imports no torch.
    if name == "LPIPS":
        from iqa.metrics.lpips_net import LPIPS

        return LPIPS
    raise AttributeError(f"module 'iqa.metrics.lpips' has no attribute {name!r}")

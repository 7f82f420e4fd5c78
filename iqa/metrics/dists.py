"""DISTS, deep image structure and texture similarity (Ding, Ma, Wang & Simoncelli 2020).

Its options, public function, kernel entry point and provenance. The network itself (torch)
is in :mod:`iqa.metrics.dists_net`, imported when a value is computed, so that the command
line and the registry can read the options without importing torch.

The definition (``DISTS_pytorch`` 0.1, ``DISTS_pt.py``): the image in [0, 1] and the
outputs of VGG16's five stages (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3; max pooling
replaced by L2 pooling, ImageNet normalisation on the way in) give, per channel ``i`` of
each of the six representations, the global means ``μx, μy``, variances ``σx², σy²`` and
covariance ``σxy`` over the whole feature map; with ``c1 = c2 = 1e-6``::

    S1 = (2 μx μy + c1) / (μx² + μy² + c1)          structure (the means)
    S2 = (2 σxy + c2) / (σx² + σy² + c2)            texture (the correlation)
    DISTS = 1 − Σᵢ (αᵢ S1ᵢ + βᵢ S2ᵢ) / Σᵢ (αᵢ + βᵢ)

with the 2 × 1475 learned weights α, β shipped in the package's ``weights.pt``.

No heat-map:
    Every term is a statistic of a whole feature map (its mean, its variance, its
    covariance with the other image's map), so no pixel has a value of its own: moving a
    texture's content around leaves the number unchanged, which is what DISTS is built for.
    A per-pixel split of the texture term can be written down, but it is an attribution of
    our own (the structure term, a ratio of means, has none) and not part of DISTS; a
    sliding-window DISTS would be another metric (A-DISTS, Ding et al. 2021).

Value range:
    0 for identical images (exactly: iqa computes ``1 − S`` in a form that cannot round
    below zero). Since the features are non-negative (the image in [0, 1], ReLU outputs),
    ``1 − S1`` lies in [0, 1) and ``1 − S2`` in [0, 2) (anti-correlated maps), so DISTS lies
    in [0, 1 + Σβ / Σ(α + β)) = [0, 1.12395...) with the shipped weights: it can exceed 1
    (a map anti-correlated with the reference's in every channel), though natural
    distortions stay far below.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from iqa.errors import WeightsError
from iqa.io import Pair
from iqa.options import ImageOptions, Options

__all__ = [
    "ALPHA_BETA_SHA256",
    "C1",
    "C2",
    "DISTS",
    "DISTSOptions",
    "WEIGHTS_NAME",
    "compute_dists",
    "dists",
    "dists_provenance",
]

#: The registry name of the VGG16 backbone (torchvision's ImageNet file, shared with LPIPS-vgg).
WEIGHTS_NAME = "vgg16"

#: The stabilising constants of the structure and texture terms (on the feature scale; the
#: input representation is the image in [0, 1], whatever the data range).
C1 = 1e-6
C2 = 1e-6

#: SHA-256 of ``DISTS_pytorch/weights.pt`` in DISTS_pytorch 0.1 (the α/β parameters). The
#: same bytes ship as ``torchmetrics/functional/image/dists_models/weights.pt`` (torchmetrics
#: 1.9) and as ``IQA_pytorch/weights/DISTS.pt`` in the authors' IQA-optimization repository.
ALPHA_BETA_SHA256 = "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218"

_PACKAGE = "DISTS_pytorch"
_FILE = "weights.pt"


@dataclass(frozen=True)
class DISTSOptions(Options):
    """DISTS has no parameters: the backbone, the pooling, the constants and the α/β
    weights are fixed by its definition (the backbone's file is a runtime setting,
    ``weights``, recorded by SHA-256 in the provenance)."""

    metric = "dists"

    def constants(self) -> dict[str, Any]:
        return {"c1": C1, "c2": C2}

    def weights_names(self) -> tuple[str, ...]:
        return (WEIGHTS_NAME,)


def dists(
    reference: Any,
    distorted: Any,
    *,
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    check_range: bool = True,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 32,
) -> Any:
    """Deep image structure and texture similarity: 0 for identical images, larger is worse.

    The images are mapped from [0, data_range] to [0, 1]; the image itself and the outputs
    of VGG16's five stages (ImageNet-normalised input, L2 pooling instead of max pooling)
    are compared channel by channel through their global means (structure) and their
    variances and covariance (texture), weighted by the learned α/β of ``DISTS_pytorch``.
    The value is a statistic of whole feature maps: there is no per-pixel map (see the
    module notes). Any size of at least 1×1 is accepted (each L2 pooling keeps
    ``ceil(n/2)`` pixels), as by the reference; the images are not resized (piq resizes
    images whose smaller side exceeds 256 px: another number, see docs/conventions.md).

    Args:
        reference: the pristine image: a path, a NumPy array (``H×W``, ``H×W×C``,
            ``N×H×W×C``) or a torch tensor (``C×H×W``, ``N×C×H×W``).
        distorted: the image being scored, in the same form and size.
        data_range: the peak value; implied by integer dtypes (uint8 → 255, uint16 →
            65535), required for float input. Pixels are divided by it: DISTS sees [0, 1],
            so 8-bit and 16-bit copies of an image (``x * 257``) give the same value.
        bit_depth: for 10- or 12-bit data stored as uint16.
        alpha: ``"error"`` (default), ``"drop"``; ``"keep"`` is refused (DISTS takes RGB).
            Gray images are replicated to three channels.
        check_range: warn (:class:`~iqa.errors.RangeWarning`) when float pixels fall outside
            [0, data range] by more than 1 %; ``False`` skips the check (training loops).
        weights: a torchvision-format state dict of VGG16 (a file saved from
            ``torchvision.models.vgg16().state_dict()``; the classifier may be left out,
            and ``model.features.state_dict()`` is accepted too) instead of the registry's
            ImageNet weights, for offline or fine-tuned use; or ``{"vgg16": path}``.
        device: ``"auto"`` (a tensor's own device; else CUDA when available), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"``.
        batch_size: images per network call (a pair counts as two).

    Returns:
        A float (paths, one NumPy image), a float64 array (NumPy batch) or a tensor
        (differentiable, usable as a loss), one value per image. Paths and NumPy arrays are
        scored with the network in float32, like the reference; tensors in their own dtype.

    Raises:
        ShapeError: mismatched sizes, two or four channels left after the alpha policy.
        RangeError, ImageLoadError: from the image layer.
        WeightsError: the VGG16 weights are missing (offline) or do not fit; the
            ``DISTS_pytorch`` package (which ships α/β) is missing or its file differs.

    Example:
        >>> dists("ref.png", "dist.png")  # doctest: +SKIP
        0.1638...

    References: Ding, Ma, Wang & Simoncelli, "Image quality assessment: unifying structure
    and texture similarity", IEEE TPAMI 44(5), 2020 (arXiv:2004.07728).
    Matches: ``DISTS_pytorch.DISTS()(x / L, y / L)`` of the ``DISTS_pytorch`` package 0.1
    (and torchmetrics 1.9's DISTS, which ships the same α/β), with the same VGG16 weights,
    to float32 rounding (1e-5 relative). Not piq's ``DISTS`` on images whose smaller side
    exceeds 256 px (piq resizes them first).
    """
    from iqa.pairwise import evaluate
    from iqa.runtime import Runtime, weights_mapping

    options = DISTSOptions()
    runtime = Runtime(device=device, batch_size=batch_size,
                      weights=weights_mapping(weights, needed=options.weights_names()))
    image = ImageOptions(data_range=data_range, bit_depth=bit_depth, alpha=alpha, check_range=check_range)
    return evaluate("dists", reference, distorted, image=image, options=options, runtime=runtime)


def compute_dists(pair: Pair, options: DISTSOptions, runtime: Any = None, want_map: bool = False) -> tuple[Any, None]:
    """The DISTS kernel: ``(values, None)`` for a prepared pair, one value per image (DISTS
    has no map: see the module notes).

    The network is cached per (weights file, device, dtype), so calling this for many pairs
    builds it once.
    """
    from iqa.metrics.dists_net import run
    from iqa.runtime import Runtime

    return run(pair, runtime or Runtime()), None


@contextmanager
def alpha_beta_file() -> Iterator[Path]:
    """The verified path of ``DISTS_pytorch``'s ``weights.pt`` (the α/β parameters), read
    through :mod:`importlib.resources`, as a context manager (importing the package imports
    torch and torchvision).

    Raises:
        WeightsError: the package is not installed, has no such file, or the file's
            SHA-256 is not :data:`ALPHA_BETA_SHA256`.
    """
    from iqa import weights as registry

    if importlib.util.find_spec(_PACKAGE) is None:
        raise WeightsError(
            "the DISTS alpha/beta parameters ship with the DISTS_pytorch package, which is "
            "not installed: pip install DISTS_pytorch==0.1"
        )
    resource = importlib.resources.files(_PACKAGE) / _FILE
    if not resource.is_file():
        raise WeightsError(
            f"the DISTS_pytorch package has no {_FILE}; reinstall it: "
            "pip install --force-reinstall DISTS_pytorch==0.1"
        )
    with importlib.resources.as_file(resource) as path:
        digest = registry.file_sha256(path)
        if digest != ALPHA_BETA_SHA256:
            raise WeightsError(
                f"{path}: SHA-256 {digest} is not that of DISTS_pytorch 0.1's alpha/beta file "
                f"({ALPHA_BETA_SHA256}); reinstall it: pip install --force-reinstall DISTS_pytorch==0.1"
            )
        yield path


def dists_provenance(options: DISTSOptions | None = None, weights: Any = None) -> dict[str, Any]:
    """Which files produce a DISTS value: the VGG16 backbone and the α/β file, with SHA-256.

    Resolving the backbone may download it (see :func:`iqa.weights.get_path`).

    Args:
        options: the DISTS options (it has none; accepted for the registry's hook).
        weights: the user's VGG16 file (a path or ``{"vgg16": path}``), if any; a mapping
            may also name other metrics' files (the batch scorer passes all of them).

    Returns:
        ``{"backbone": {"name", "file", "sha256", "source"}, "alpha_beta": {"file",
        "sha256", "package"}}``; ``source`` is ``"registry"`` or ``"user"``.
    """
    from importlib import metadata

    from iqa import weights as registry
    from iqa.runtime import weights_mapping

    options = options or DISTSOptions()
    mapping = isinstance(weights, Mapping)
    user = weights_mapping(weights, needed=None if mapping else options.weights_names()).get(WEIGHTS_NAME)
    path = registry.get_path(WEIGHTS_NAME, path=user)
    with alpha_beta_file():
        pass  # verified: its digest is ALPHA_BETA_SHA256
    try:
        version = metadata.version(_PACKAGE)
    except metadata.PackageNotFoundError:  # pragma: no cover - alpha_beta_file raised already
        version = "unknown"
    return {
        "backbone": {
            "name": WEIGHTS_NAME,
            "file": str(path) if user is not None else path.name,
            "sha256": registry.file_sha256(path),
            "source": "user" if user is not None else "registry",
        },
        "alpha_beta": {
            "file": f"{_PACKAGE}/{_FILE}",
            "sha256": ALPHA_BETA_SHA256,
            "package": f"{_PACKAGE} {version}",
        },
    }


def __getattr__(name: str) -> Any:
    # The torch module loads on first use, so that reading the options imports no torch.
    if name == "DISTS":
        from iqa.metrics.dists_net import DISTS

        return DISTS
    raise AttributeError(f"module 'iqa.metrics.dists' has no attribute {name!r}")

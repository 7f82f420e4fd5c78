"""Preprocessing modes: how decoded images become the Inception network's input.

``"pytorch-fid"`` (default): 8-bit → [0, 1] → ``F.interpolate(bilinear, align_corners=False)``
to 299 → 2x − 1, as pytorch-fid. ``"clean"``: clean-fid's protocol: PIL bicubic resize of each
channel in float32, clipped to [0, 255] and not requantised, then (x − 128)/128. ``"tf"``:
torch-fidelity's protocol (torchmetrics' with ``antialias=False``): uint8 input, TensorFlow
1.x bilinear resize, (x − 128)/128.

DINOv2's modes (224×224 input, ImageNet mean/std), each a peer's exact steps:
``"dgm-eval"`` (default): PIL ``convert('RGB')``, PIL bicubic resize of the 8-bit image to
224×224 (PIL's resampling widens the filter when shrinking: antialiased; no crop), ÷255,
``(x − mean)/std`` in float32 (torchvision's ``Resize``, ``ToTensor``, ``Normalize`` as
dgm-eval composes them). ``"tf"``: torch-fidelity 0.4's DINOv2 path: uint8 → float32, TF1
bilinear resize to 224, ``(x − 255·mean)/(255·std)``. ``"edm2"``: EDM2's detector: float32
images in [0, 255] resized by ``F.interpolate(bicubic, antialias=True)`` with no rounding to
8 bits, then ÷255, ``− mean``, ``÷ std``.

CLIP's mode (:mod:`iqa.features.clip`), the CMMD authors' steps (google-research ``cmmd/io_util.py``
and ``embedding.py``): ``"cmmd"``: centre crop of the 8-bit image to a square of its shorter
side (offsets ``(w − l)//2``, ``(h − l)//2``: floor), PIL bicubic resize to the network's
resolution (336 for ViT-L/14@336px; antialiased when shrinking), ÷255 and ``(x − mean)/std``
with CLIP's mean and std, in float32. (OpenAI's ``clip.load`` preprocessing resizes the
shorter side first and crops after, with torchvision's rounded offsets: that is mode
``"openai"``, the preprocessing ``clip.load`` returns: torchvision ``Resize(size, BICUBIC)`` of
the shorter side on the PIL image, ``CenterCrop(size)`` at ``round((h − size)/2)``, ``ToTensor``,
``Normalize``; see docs/conventions.md.)

Before any mode, a file is decoded to 8-bit RGB by the image layer: gray replicated, the
alpha policy applied, 16-bit reduced by round(x/257).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from iqa.errors import ShapeError
from iqa.features import MODES
from iqa.io import prepare_image, read_image, to_rgb, to_uint8
from iqa.options import check_choice

__all__ = [
    "CLIP_MEAN",
    "CLIP_MODES",
    "CLIP_STD",
    "clip_geometry",
    "crop_resize_pil",
    "resize_crop_pil",
    "preprocess_clip",
    "DINOV2_MODES",
    "DINOV2_SIZE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SIZE",
    "file_to_uint8",
    "preprocess",
    "preprocess_dinov2",
    "resize_pil_bicubic",
    "resize_pil_uint8",
    "resize_tf1_bilinear",
]

#: Input size of the Inception network.
SIZE = 299

#: Input size of the DINOv2 networks in every mode (their position embedding is interpolated
#: from 37×37 to 16×16 patches).
DINOV2_SIZE = 224

#: DINOv2's preprocessing modes; the first is the default.
DINOV2_MODES = ("dgm-eval", "tf", "edm2")

#: ImageNet's channel mean and standard deviation (torchvision's, DINOv2's).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: CLIP's preprocessing modes; the first is the default.
CLIP_MODES = ("cmmd", "openai")

#: CLIP's channel mean and standard deviation (openai/CLIP ``_transform``; scenic's
#: ``IMAGE_MEAN``/``IMAGE_STD``, which the CMMD authors use).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)



def resize_tf1_bilinear(x: Any, size: int) -> Any:
    """TensorFlow 1.x ``resize_bilinear(align_corners=False)`` of an ``N×C×H×W`` float32 tensor.

    Source coordinate ``dst·(in/out)`` (no half-pixel offset), lower neighbour ``floor``,
    upper neighbour clamped to the edge, interpolated along x first, then along y, each step
    as ``a + (b − a)·t`` in float32: the arithmetic of TF1's kernel, which is also that of
    torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``.
    """
    import torch

    h, w = x.shape[-2:]

    def axis(n_in: int) -> tuple[Any, Any, Any]:
        pos = torch.arange(size, dtype=torch.float32) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = pos.long()
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, pos - lo.float()

    ylo, yhi, dy = axis(h)
    xlo, xhi, dx = axis(w)
    top, bottom = x[:, :, ylo, :], x[:, :, yhi, :]
    t0 = top[:, :, :, xlo]
    t1 = top[:, :, :, xhi]
    b0 = bottom[:, :, :, xlo]
    b1 = bottom[:, :, :, xhi]
    dx = dx.view(1, 1, 1, size)
    row0 = t0 + (t1 - t0) * dx
    row1 = b0 + (b1 - b0) * dx
    return row0 + (row1 - row0) * dy.view(1, 1, size, 1)


def resize_pil_bicubic(x: np.ndarray) -> np.ndarray:
    """clean-fid's resize of one ``H×W×3`` float32 image in [0, 255]: PIL bicubic on each
    channel as a 32-bit float image, clipped to [0, 255], not requantised."""
    from PIL import Image

    out = np.empty((SIZE, SIZE, 3), np.float32)
    for c in range(3):
        img = Image.fromarray(np.ascontiguousarray(x[:, :, c], dtype=np.float32), mode="F")
        out[:, :, c] = np.asarray(img.resize((SIZE, SIZE), resample=Image.BICUBIC))
    return np.clip(out, 0, 255)


def preprocess(pixels: Any, mode: str, data_range: float = 255.0) -> Any:
    """Resize and scale RGB images for the Inception network, as ``mode`` prescribes.

    Args:
        pixels: a uint8 NumPy ``H×W×3`` image, or a torch ``N×3×H×W`` tensor (uint8, or float
            with peak value ``data_range``).
        mode: ``"pytorch-fid"``, ``"clean"`` or ``"tf"`` (see the module docstring).
        data_range: the peak value of float tensors (uint8 data is 255).

    Returns:
        A float32 tensor ``N×3×299×299`` in the network's input range (``3×299×299`` for a
        NumPy image).

    Float tensors keep their precision in ``"pytorch-fid"`` (x / data_range, as pytorch-fid
    takes [0, 1] floats) and ``"clean"`` (x·255 / data_range); ``"tf"`` is defined on uint8
    and rounds them to 8 bits first.
    """
    import torch
    import torch.nn.functional as F

    check_choice(None, "mode", mode, MODES)
    single = isinstance(pixels, np.ndarray)
    if single:
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ShapeError(f"expected a uint8 H×W×3 image, got {pixels.dtype} {pixels.shape}")
        if not pixels.flags.writeable or not pixels.flags.c_contiguous:  # decoded images are read-only
            pixels = np.array(pixels)
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    else:
        x = pixels
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(f"expected an N×3×H×W tensor, got shape {tuple(x.shape)}")
    peak = 255.0 if x.dtype == torch.uint8 else float(data_range)
    if mode == "pytorch-fid":
        x = x.to(torch.float32) / peak if peak != 255.0 else x.to(torch.float32).div(255)
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        out = 2 * x - 1
    elif mode == "clean":
        x = x.to(torch.float32)
        if peak != 255.0:
            x = x * (255.0 / peak)
        arr = x.permute(0, 2, 3, 1).cpu().numpy()
        resized = np.stack([resize_pil_bicubic(a) for a in arr])
        out = (torch.from_numpy(resized).permute(0, 3, 1, 2) - 128) / 128
    else:
        if x.dtype != torch.uint8:
            x = torch.round(x.to(torch.float64) * (255.0 / peak)).clamp_(0, 255).to(torch.uint8)
        x = resize_tf1_bilinear(x.to(torch.float32), SIZE)
        out = (x - 128) / 128
    return out[0] if single else out


def file_to_uint8(path: Path, alpha: str, data_range: float | None, bit_depth: int | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decode a file into 8-bit RGB through the image layer (alpha policy, gray → RGB, 16 → 8 bits)."""
    arr = read_image(path)
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3 and bit_depth is None and data_range is None:
        return arr, ()
    prepared = prepare_image(arr, data_range=data_range, bit_depth=bit_depth, alpha=alpha, name=os.fspath(path))
    notes = list(prepared.notes)
    if prepared.source_dtype != "uint8":
        notes.append(f"{prepared.source_dtype} reduced to 8 bits: round(x·255/{prepared.data_range:g})")
    rgb = to_rgb(prepared.pixels[0], "numpy")
    return to_uint8(rgb, prepared.data_range), tuple(notes)


def resize_pil_uint8(u8: np.ndarray, size: int = DINOV2_SIZE) -> np.ndarray:
    """dgm-eval's resize: an 8-bit ``H×W×3`` image through PIL's bicubic ``resize`` to
    ``size×size`` (what torchvision's ``Resize`` does to a PIL image), still 8-bit."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(u8), mode="RGB").resize((size, size), Image.BICUBIC))


def _to_uint8_tensor(x: Any, peak: float) -> Any:
    import torch

    if x.dtype == torch.uint8:
        return x
    return torch.round(x.to(torch.float64) * (255.0 / peak)).clamp_(0, 255).to(torch.uint8)


def preprocess_dinov2(pixels: Any, mode: str, data_range: float = 255.0, *, resized: bool = False) -> Any:
    """Resize and normalise RGB images for DINOv2 as ``mode`` prescribes (module docstring).

    Args:
        pixels: a uint8 NumPy ``H×W×3`` image, or a torch ``N×3×H×W`` tensor (uint8, or float
            with peak value ``data_range``).
        mode: ``"dgm-eval"``, ``"tf"`` or ``"edm2"``.
        data_range: the peak value of float tensors.
        resized: ``pixels`` (a NumPy image, ``"dgm-eval"``) was already resized by
            :func:`resize_pil_uint8` (on a decoding thread).

    Returns:
        A float32 tensor ``N×3×224×224`` (``3×224×224`` for a NumPy image).

    ``"dgm-eval"`` and ``"tf"`` are defined on 8-bit images: float tensors are rounded to 8
    bits first; ``"edm2"`` keeps float tensors' precision (x·255/data_range).
    """
    import torch
    import torch.nn.functional as F

    check_choice(None, "mode", mode, DINOV2_MODES)
    single = isinstance(pixels, np.ndarray)
    if single:
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ShapeError(f"expected a uint8 H×W×3 image, got {pixels.dtype} {pixels.shape}")
        if mode == "dgm-eval":
            u8 = pixels if resized else resize_pil_uint8(pixels)
            x = torch.from_numpy(np.array(u8)).permute(2, 0, 1)[None]
        else:
            x = torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None]
    else:
        x = pixels
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(f"expected an N×3×H×W tensor, got shape {tuple(x.shape)}")
        peak = 255.0 if x.dtype == torch.uint8 else float(data_range)
        if mode == "dgm-eval":
            u8 = _to_uint8_tensor(x, peak).permute(0, 2, 3, 1).cpu().numpy()
            x = torch.from_numpy(np.stack([resize_pil_uint8(a) for a in u8])).permute(0, 3, 1, 2)
        elif mode == "tf":
            x = _to_uint8_tensor(x, peak)
        else:
            x = x.to(torch.float32) if peak == 255.0 else x.to(torch.float32) * (255.0 / peak)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    if mode == "dgm-eval":  # ToTensor (÷255), then Normalize
        out = x.to(torch.float32).div(255).sub(mean).div(std)
    elif mode == "tf":  # torch-fidelity: normalize with the 255-scaled constants
        x = resize_tf1_bilinear(x.to(torch.float32), DINOV2_SIZE)
        m255 = torch.tensor([255 * v for v in IMAGENET_MEAN], dtype=torch.float32).view(1, 3, 1, 1)
        s255 = torch.tensor([255 * v for v in IMAGENET_STD], dtype=torch.float32).view(1, 3, 1, 1)
        out = x.sub(m255).div(s255)
    else:  # EDM2: torch bicubic with antialias on float images
        x = F.interpolate(x.to(torch.float32), size=(DINOV2_SIZE, DINOV2_SIZE), mode="bicubic", antialias=True)
        out = (x / 255 - mean) / std
    return out[0] if single else out


def crop_resize_pil(u8: np.ndarray, size: int) -> np.ndarray:
    """The CMMD authors' ``_center_crop_and_resize``: the centred square of side
    ``l = min(w, h)`` at offsets ``((w − l)//2, (h − l)//2)``, then PIL's bicubic resize of
    the 8-bit RGB image to ``size×size``; still 8-bit."""
    from PIL import Image

    h, w = u8.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(u8[top : top + side, left : left + side])
    return np.asarray(Image.fromarray(square, mode="RGB").resize((size, size), Image.BICUBIC))


def resize_crop_pil(u8: np.ndarray, size: int) -> np.ndarray:
    """OpenAI's ``clip.load`` preprocessing before ``ToTensor``: torchvision's ``Resize(size,
    BICUBIC)`` of a PIL image (shorter side to ``size``, longer to ``int(size·long/short)``,
    PIL bicubic) then ``CenterCrop(size)`` at ``int(round((h − size)/2))``; still 8-bit."""
    from PIL import Image

    h, w = u8.shape[:2]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    im = Image.fromarray(np.ascontiguousarray(u8), mode="RGB").resize((new_w, new_h), Image.BICUBIC)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return np.asarray(im.crop((left, top, left + size, top + size)))


#: Each CLIP mode's 8-bit crop and resize.
_CLIP_GEOMETRY = {"cmmd": crop_resize_pil, "openai": resize_crop_pil}


def clip_geometry(u8: np.ndarray, size: int, mode: str = "cmmd") -> np.ndarray:
    """The 8-bit crop and resize of CLIP's ``mode`` (:func:`crop_resize_pil` or :func:`resize_crop_pil`)."""
    check_choice(None, "mode", mode, CLIP_MODES)
    return _CLIP_GEOMETRY[mode](u8, size)


def preprocess_clip(pixels: Any, size: int, data_range: float = 255.0, *, mode: str = "cmmd",
                    resized: bool = False) -> Any:
    """Crop, resize and normalise RGB images for a CLIP image tower as ``mode`` prescribes.

    Args:
        pixels: a uint8 NumPy ``H×W×3`` image, or a torch ``N×3×H×W`` tensor (uint8, or float
            with peak value ``data_range``).
        size: the network's input resolution (336 for ViT-L/14@336px, 224 otherwise).
        data_range: the peak value of float tensors.
        mode: ``"cmmd"`` (crop, then resize: the CMMD authors') or ``"openai"`` (resize the
            shorter side, then crop: ``clip.load``'s).
        resized: ``pixels`` (a NumPy image) was already cropped and resized by
            :func:`clip_geometry` (on a decoding thread).

    Returns:
        A float32 tensor ``N×3×size×size`` (``3×size×size`` for a NumPy image).

    Both modes are defined on 8-bit PIL images: float tensors are rounded to 8 bits first.
    """
    import torch

    check_choice(None, "mode", mode, CLIP_MODES)
    single = isinstance(pixels, np.ndarray)
    if single:
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ShapeError(f"expected a uint8 H×W×3 image, got {pixels.dtype} {pixels.shape}")
        u8 = pixels if resized else clip_geometry(pixels, size, mode)
        x = torch.from_numpy(np.array(u8)).permute(2, 0, 1)[None]
    else:
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ShapeError(f"expected an N×3×H×W tensor, got shape {tuple(pixels.shape)}")
        peak = 255.0 if pixels.dtype == torch.uint8 else float(data_range)
        u8 = _to_uint8_tensor(pixels, peak).permute(0, 2, 3, 1).cpu().numpy()
        x = torch.from_numpy(np.stack([clip_geometry(a, size, mode) for a in u8])).permute(0, 3, 1, 2)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32).view(1, 3, 1, 1)
    out = (x.to(torch.float32) / 255 - mean) / std  # the authors: x / 255.0, then (x − mean) / std
    return out[0] if single else out

"""The image layer: validation, pairing and conversion for the metric kernels.

Every metric gets its pixels through this module (files through :mod:`iqa.decode`), so that
a file, a NumPy array and a torch tensor holding the same image give the same number.

Layouts:
    NumPy arrays are channels-last: ``H×W``, ``H×W×C`` or a batch ``N×H×W×C``.
    torch tensors are channels-first: ``C×H×W`` or a batch ``N×C×H×W``.
    ``C`` is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA).

Data range:
    uint8 implies 255 and uint16 implies 65535 (or ``2**bit_depth - 1`` with ``bit_depth``
    for 10- or 12-bit data stored in 16 bits). Float input needs an explicit ``data_range``;
    it is never inferred from the data's minimum and maximum.

Torch is imported only when a tensor is actually passed in.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from iqa.decode import IMAGE_EXTENSIONS, iter_image_files, read_image
from iqa.errors import OptionError, RangeError, ShapeError
from iqa.options import ALPHA_POLICIES, check_choice, check_data_range

__all__ = [
    "ALPHA_POLICIES",
    "IMAGE_EXTENSIONS",
    "Pair",
    "Prepared",
    "RANGE_NOTE",
    "is_tensor",
    "iter_image_files",
    "prepare_image",
    "prepare_pair",
    "read_image",
    "resolve_data_range",
    "to_rgb",
    "to_uint8",
]

ImageLike = Any  # str | os.PathLike | np.ndarray | torch.Tensor


# --------------------------------------------------------------------------------------
# Arrays and tensors
# --------------------------------------------------------------------------------------


def is_tensor(x: Any) -> bool:
    """True for a torch tensor, without importing torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_pathlike(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _name(x: Any, role: str) -> str:
    return os.fspath(x) if _is_pathlike(x) else f"{role} {'tensor' if is_tensor(x) else 'array'}"


def resolve_data_range(
    dtype: Any, data_range: float | None = None, bit_depth: int | None = None, name: str = "image"
) -> float:
    """The data range (peak value) implied by a dtype and the user's options.

    Args:
        dtype: a NumPy or torch dtype.
        data_range: an explicit peak-to-peak range; required for float data.
        bit_depth: for integer data stored in a wider type, e.g. 10 or 12 for uint16.

    Returns:
        The data range as a float.

    Raises:
        RangeError: float data without ``data_range``, both options given, or a value that
            does not fit the dtype.
    """
    kind, bits = _dtype_info(dtype, name)
    if data_range is not None and bit_depth is not None:
        raise RangeError(f"{name}: give {{dr}} or {{bd}}, not both", options={"dr": "data_range", "bd": "bit_depth"})
    if data_range is not None:
        try:
            return check_data_range(data_range)
        except OptionError as exc:
            raise RangeError(f"{name}: {exc.template}", options={**exc.options}) from None
    if kind == "f":
        raise RangeError(
            f"{name}: float input needs an explicit {{dr}} (e.g. {{dr1}} for images in [0, 1], "
            "255 for [0, 255]); it is never guessed from the data",
            options={"dr": "data_range", "dr1": ("data_range", 1.0)},
        )
    if bit_depth is not None:
        if not isinstance(bit_depth, (int, np.integer)) or not 1 <= bit_depth <= bits:
            raise RangeError(f"{name}: {{bd}} must be an integer from 1 to {bits} for {dtype}",
                             options={"bd": "bit_depth"})
        return float(2 ** int(bit_depth) - 1)
    return float(2**bits - 1)


@functools.lru_cache(maxsize=64)
def _dtype_name(dtype: Any) -> str:
    # Cached: str() of a NumPy dtype costs microseconds, several times per pair.
    s = str(dtype)
    if s.startswith("torch."):
        return s[len("torch.") :]
    try:
        return np.dtype(dtype).name
    except TypeError:
        return s


def _dtype_info(dtype: Any, name: str) -> tuple[str, int]:
    """('u', bits) for unsigned 8/16-bit, ('f', bits) for floats; anything else is refused."""
    try:
        s = _dtype_name(dtype)
    except TypeError:  # unhashable
        s = str(dtype)
    table = {
        "uint8": ("u", 8),
        "uint16": ("u", 16),
        "float16": ("f", 16),
        "bfloat16": ("f", 16),
        "float32": ("f", 32),
        "float64": ("f", 64),
    }
    if s not in table:
        raise RangeError(
            f"{name}: unsupported sample type {s}: use uint8, uint16 or a float type with data_range"
        )
    return table[s]


@dataclass(frozen=True)
class Prepared:
    """One validated image or batch, ready for a metric kernel.

    Attributes:
        pixels: float64 NumPy ``N×H×W×C`` or a float torch tensor ``N×C×H×W``.
        data_range: the peak-to-peak range of ``pixels``.
        batched: whether the input was a batch (outputs keep the batch dimension).
        backend: ``"numpy"`` or ``"torch"``.
        name: a file name, or "reference array" and the like, for messages.
        source_dtype: the dtype the data had before conversion, e.g. ``"uint8"``.
        notes: conventions applied on the way (e.g. an opaque alpha channel dropped).
    """

    pixels: Any
    data_range: float
    batched: bool
    backend: str
    name: str
    source_dtype: str
    notes: tuple[str, ...] = ()

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[-1] if self.backend == "numpy" else self.pixels.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        if self.backend == "numpy":
            return int(self.pixels.shape[1]), int(self.pixels.shape[2])
        return int(self.pixels.shape[2]), int(self.pixels.shape[3])


@dataclass(frozen=True)
class Pair:
    """A validated reference/distorted pair with one data range and one layout."""

    reference: Any
    distorted: Any
    data_range: float
    batched: bool
    backend: str
    names: tuple[str, str]
    source_dtype: str
    notes: tuple[str, ...] = ()
    #: ``(check_range, warn)`` when the float values are still to be checked by the kernel
    #: (``prepare_pair(defer_checks=True)``), ``None`` when they were checked.
    unchecked: tuple[bool, bool] | None = None

    @property
    def channels(self) -> int:
        x = self.reference
        return int(x.shape[-1] if self.backend == "numpy" else x.shape[1])

    @property
    def integer(self) -> bool:
        """Whether the pixels are integer NumPy arrays (kept by ``keep_integers``)."""
        return self.backend == "numpy" and self.reference.dtype.kind in "ui"

    def as_float(self) -> "Pair":
        """This pair with float64 pixels (itself when they are not integers)."""
        if not self.integer:
            return self
        return self.with_pixels(_convert(self.reference, "numpy"), _convert(self.distorted, "numpy"))

    def checked(self) -> "Pair":
        """This pair with the value checks that ``prepare_pair(defer_checks=True)`` left to
        a kernel run now (for any other kernel); itself when none are pending."""
        if self.unchecked is None:
            return self
        check_range, warn = self.unchecked
        items = [(self.reference, self.names[0]), (self.distorted, self.names[1])]
        notes = _check_values(items, self.backend, self.data_range, check_range, warn)
        return replace(self, unchecked=None, notes=self.notes + notes)

    def with_pixels(self, reference: Any, distorted: Any, **changes: Any) -> "Pair":
        return replace(self, reference=reference, distorted=distorted, **changes)

    def result(self, values: Any) -> Any:
        """Shape per-image ``values`` (length N) the way the input was given: a Python float
        for one NumPy/path image, a NumPy array for a NumPy batch, a 0-d tensor for one
        tensor image and a length-N tensor for a tensor batch."""
        if self.backend == "numpy":
            values = np.asarray(values, dtype=np.float64)
            return values if self.batched else float(values[0])
        return values if self.batched else values[0]


def _raw(x: ImageLike, role: str) -> tuple[Any, str, bool, str]:
    """Return (data, backend, batched, name) with NumPy data as N×H×W×C, torch as N×C×H×W."""
    data, backend, batched, name = _raw_layout(x, role)
    h, w = (data.shape[1], data.shape[2]) if backend == "numpy" else (data.shape[2], data.shape[3])
    if h == 0 or w == 0:
        raise ShapeError(f"{name}: has no pixels (width {w}, height {h})")
    if data.shape[0] == 0:
        raise ShapeError(f"{name}: an empty batch (0 images)")
    return data, backend, batched, name


def _raw_layout(x: ImageLike, role: str) -> tuple[Any, str, bool, str]:
    if type(x) is np.ndarray:  # the common case first: no path or tensor checks
        return _numpy_layout(x, f"{role} array")
    name = _name(x, role)
    if _is_pathlike(x):
        arr = read_image(x)
        return (arr[None, :, :, None] if arr.ndim == 2 else arr[None]), "numpy", False, name
    if is_tensor(x):
        if x.ndim == 3:
            data, batched = x.unsqueeze(0), False
        elif x.ndim == 4:
            data, batched = x, True
        else:
            raise ShapeError(
                f"{name}: expected a C×H×W or N×C×H×W tensor, got shape {tuple(x.shape)}"
                + ("; add a channel dimension with x[None]" if x.ndim == 2 else "")
            )
        if x.device.type == "meta":
            raise ShapeError(f"{name}: a tensor on the meta device holds no values; move it to cpu or cuda")
        c = data.shape[1]
        if not 1 <= c <= 4:
            raise ShapeError(
                f"{name}: expected 1 to 4 channels in dimension 1 (channels-first), got shape "
                f"{tuple(x.shape)}; torch tensors are C×H×W, e.g. x.permute(2, 0, 1)"
            )
        if x.is_complex():
            raise RangeError(f"{name}: complex tensors are not images")
        return data, "torch", batched, name
    if isinstance(x, np.ndarray):
        return _numpy_layout(x, name)
    raise TypeError(
        f"{role}: expected a path, a NumPy array or a torch tensor, got {type(x).__name__}"
    )


def _numpy_layout(x: np.ndarray, name: str) -> tuple[np.ndarray, str, bool, str]:
    if x.ndim == 2:
        data, batched = x[None, :, :, None], False
    elif x.ndim == 3:
        data, batched = x[None], False
    elif x.ndim == 4:
        data, batched = x, True
    else:
        raise ShapeError(f"{name}: expected H×W, H×W×C or N×H×W×C, got shape {x.shape}")
    if not 1 <= data.shape[-1] <= 4:
        raise ShapeError(
            f"{name}: expected 1 to 4 channels in the last dimension (channels-last), got "
            f"shape {x.shape}; for a batch of gray images pass N×H×W×1"
        )
    return data, "numpy", batched, name


def _as_reference(name: str) -> str:
    """``reference a.png``, or ``reference array`` (not ``reference reference array``)."""
    return name if name.startswith("reference") else f"reference {name}"


def _check_finite(data: Any, backend: str, name: str) -> None:
    # A sum is finite exactly when no element is NaN or infinite, unless it overflows; one
    # reduction is much cheaper than an element-wise mask, which runs only to confirm.
    if backend == "numpy":
        if data.dtype.kind == "f" and not np.isfinite(data.sum(dtype=np.float64)):
            if not np.isfinite(data).all():
                raise RangeError(f"{name}: contains NaN or infinite values")
    elif data.is_floating_point():
        import torch

        # In the tensor's own dtype: a float64 copy of a batch costs more than the metric.
        # An overflow to inf only sends it to the element-wise confirmation.
        if not bool(torch.isfinite(data.sum())):
            if not bool(torch.isfinite(data).all()):
                raise RangeError(f"{name}: contains NaN or infinite values")


#: The note on a pair (or image) whose float values fall outside [0, data range]; the same
#: text for every pair, so that a run's summary counts them.
RANGE_NOTE = "float values outside [0, data range] by more than 1% (check the data range)"

#: How far outside [0, data range] float values may go before the range is called wrong:
#: resampling and compression overshoot slightly; a wrong data range misses by far more.
RANGE_TOLERANCE = 0.01


def _is_float(data: Any, backend: str) -> bool:
    return data.dtype.kind == "f" if backend == "numpy" else data.is_floating_point()


#: Elements per block of :func:`_min_max`: 1 MiB of float32, 2 MiB of float64 (a core's L2).
_MINMAX_BLOCK = 1 << 18


def _min_max(d: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of a NumPy array reading it from memory once: block by block, the max
    of a block is taken while the block is still in cache (NaN propagates to both)."""
    flat = np.ravel(d, order="K")  # a view for an array contiguous in any order
    lo, hi = np.inf, -np.inf
    for k in range(0, flat.size, _MINMAX_BLOCK):
        block = flat[k : k + _MINMAX_BLOCK]
        b_lo = float(block.min())
        if b_lo != b_lo:  # NaN (NumPy's min propagates it; Python's min would drop it)
            return b_lo, b_lo
        lo, hi = min(lo, b_lo), max(hi, float(block.max()))
    return lo, hi


def _check_values(
    items: list[tuple[Any, str]], backend: str, data_range: float, check_range: bool, warn: bool
) -> tuple[str, ...]:
    """Refuse NaN and infinity; with ``check_range``, note (and with ``warn``, warn about)
    float data outside [0, data range] by more than :data:`RANGE_TOLERANCE` of the range.

    The range check costs one min/max reduction per input (tensors: one ``aminmax`` each,
    read back together in one synchronisation), which also finds NaN and infinity.

    Returns:
        ``(RANGE_NOTE,)`` when an input is out of range, else ``()``.
    """
    floats = [(d, n) for d, n in items if _is_float(d, backend)]
    if not check_range or not floats:
        for d, n in items:
            _check_finite(d, backend, n)
        return ()
    if backend == "numpy":
        bounds = [_min_max(d) for d, _ in floats]
    else:
        import torch

        bounds_t = [v for d, _ in floats for v in torch.aminmax(d.detach())]
        if len({v.dtype for v in bounds_t}) > 1:
            bounds_t = [v.double() for v in bounds_t]
        flat = torch.stack(bounds_t).tolist()  # one sync; float32 → Python float is exact
        bounds = list(zip(flat[0::2], flat[1::2]))
    return judge_bounds([n for _, n in floats], bounds, data_range, warn)


def judge_bounds(
    names: list[str], bounds: list[tuple[float, float]], data_range: float, warn: bool
) -> tuple[str, ...]:
    """The verdict of the range check on the ``(min, max)`` of each named float input:
    NaN or infinity is refused, values outside [0, data range] by more than
    :data:`RANGE_TOLERANCE` noted (and with ``warn``, warned about).

    Raises:
        RangeError: a bound is NaN or infinite.

    Returns:
        ``(RANGE_NOTE,)`` when an input is out of range, else ``()``.
    """
    out_of_range = False
    for name, (lo, hi) in zip(names, bounds):
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise RangeError(f"{name}: contains NaN or infinite values")
        tol = RANGE_TOLERANCE * data_range
        if lo >= -tol and hi <= data_range + tol:
            continue
        out_of_range = True
        if warn:
            _warn_range(name, lo, hi, data_range)
    return (RANGE_NOTE,) if out_of_range else ()


def _warn_range(name: str, lo: float, hi: float, data_range: float) -> None:
    import warnings

    from iqa.errors import RangeWarning

    tol = RANGE_TOLERANCE * data_range
    if lo < -tol and lo >= -data_range - tol and hi <= data_range + tol:
        hint = ("; [-1, 1] data? map it to [0, 1] with (x + 1) / 2 first (what the lpips "
                "package's normalize=True does)")
    elif lo >= -tol:
        hint = "; is the data range larger (255 for [0, 255] data, 65535 for 16-bit)?"
    else:
        hint = "; check the data range"
    warnings.warn(
        f"{name}: values from {lo:.4g} to {hi:.4g}, outside the data range [0, {data_range:g}]{hint}",
        RangeWarning,
        stacklevel=_caller_stacklevel(),
    )


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside iqa (the range
    check runs at different depths: in the image layer, or in a kernel that reads the
    pixels once for its value and the check)."""
    import sys

    frame, level = sys._getframe(2), 2  # the frame that calls warnings.warn is level 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "iqa":
        frame, level = frame.f_back, level + 1
    return level


def _check_fits(data: Any, backend: str, data_range: float, name: str) -> None:
    """Integer samples must not exceed a data range narrower than their type (``bit_depth``
    or an explicit ``data_range``): such a score would be silently wrong."""
    is_int = data.dtype.kind == "u" if backend == "numpy" else not data.is_floating_point()
    if not is_int or data_range >= 2 ** _dtype_info(data.dtype, name)[1] - 1:
        return
    peak = float(data.max())
    if peak > data_range:
        bits = _dtype_info(data.dtype, name)[1]
        hint = (" (16-bit files often store 10- or 12-bit data shifted to the top bits: then omit {bd})"
                if bits == 16 else "")
        raise RangeError(
            f"{name}: contains values up to {peak:g}, above the data range {data_range:g}; "
            f"check {{bd}} and {{dr}}{hint}",
            options={"bd": "bit_depth", "dr": "data_range"},
        )


def _split_alpha(data: Any, backend: str) -> tuple[Any, Any | None]:
    c = data.shape[-1] if backend == "numpy" else data.shape[1]
    if c not in (2, 4):
        return data, None
    if backend == "numpy":
        return data[..., : c - 1], data[..., c - 1 :]
    return data[:, : c - 1], data[:, c - 1 :]


def _is_opaque(alpha: Any, data_range: float) -> bool:
    return bool((alpha == data_range).all())


def _apply_alpha(
    items: list[tuple[Any, str]], backend: str, data_range: float, alpha: str
) -> tuple[list[Any], tuple[str, ...]]:
    """Apply the alpha policy to one image or a pair (the same decision for both)."""
    check_choice(None, "alpha", alpha, ALPHA_POLICIES)
    if all((d.shape[-1] if backend == "numpy" else d.shape[1]) not in (2, 4) for d, _ in items):
        return [d for d, _ in items], ()  # gray or RGB: no alpha channel
    split = [_split_alpha(d, backend) for d, _ in items]
    if all(a is None for _, a in split) or alpha == "keep":
        return [d for d, _ in items], ()
    if alpha == "drop":
        return [c for c, _ in split], ("alpha channel dropped (alpha policy 'drop')",)
    for (_, name), (_, a) in zip(items, split):
        if a is not None and not _is_opaque(a, data_range):
            raise ShapeError(
                f"{name}: has transparent pixels; pass {{drop}} to ignore the alpha "
                "channel or {keep} to score it as a channel",
                options={"drop": ("alpha", "drop"), "keep": ("alpha", "keep")},
            )
    return [c for c, _ in split], ("alpha channel fully opaque: dropped",)


def _convert(data: Any, backend: str, float_dtype: Any = None) -> Any:
    if backend == "numpy":
        return np.ascontiguousarray(data, dtype=np.float64)
    import torch

    if data.is_floating_point():
        return data if float_dtype is None else data.to(float_dtype)
    return data.to(float_dtype or torch.float32)


def _describe(data: Any, backend: str) -> str:
    if backend == "numpy":
        n, h, w, c = data.shape
    else:
        n, c, h, w = data.shape
    return f"{w}×{h}×{c}" if n == 1 else f"{n}×{w}×{h}×{c}"


def prepare_image(
    image: ImageLike,
    *,
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    check_range: bool = True,
    role: str = "image",
    warn: bool = True,
    name: str | None = None,
) -> Prepared:
    """Validate one image (or batch) and convert it for a metric kernel.

    NumPy and path inputs become float64 ``N×H×W×C``; tensors stay tensors (``N×C×H×W``,
    integer tensors become float32).

    Args:
        image: a path, a NumPy array or a torch tensor (see the module's layouts).
        data_range: peak-to-peak range; required for float data.
        bit_depth: for 10/12-bit data stored as uint16.
        alpha: ``"error"`` (default; an opaque alpha channel is dropped and noted),
            ``"drop"`` or ``"keep"``.
        check_range: note float data outside [0, data range] (by more than 1 %) and warn
            about it (:class:`~iqa.errors.RangeWarning`); ``False`` skips the check.
        role: how the image is named in messages when it has no file name.
        name: the name to use in messages instead (the file an array was decoded from).
        warn: issue the range warning (the scorer only notes it, and counts the notes).

    Raises:
        ImageLoadError, ShapeError, RangeError: see :func:`read_image` and the rules above.
    """
    data, backend, batched, own_name = _raw(image, role)
    name = own_name if name is None else name
    dr = resolve_data_range(data.dtype, data_range, bit_depth, name)
    range_notes = _check_values([(data, name)], backend, dr, check_range, warn)
    _check_fits(data, backend, dr, name)
    (data,), notes = _apply_alpha([(data, name)], backend, dr, alpha)
    notes = notes + range_notes
    return Prepared(
        pixels=_convert(data, backend),
        data_range=dr,
        batched=batched,
        backend=backend,
        name=name,
        source_dtype=str(image.dtype if not _is_pathlike(image) else data.dtype).replace("torch.", ""),
        notes=notes,
    )


def prepare_pair(
    reference: ImageLike,
    distorted: ImageLike,
    *,
    data_range: float | None = None,
    bit_depth: int | None = None,
    alpha: str = "error",
    check_range: bool = True,
    warn: bool = True,
    keep_integers: bool = False,
    defer_checks: bool = False,
) -> Pair:
    """Validate a reference/distorted pair and convert both to one layout and range.

    Both images must have the same size, channel count and sample type (a uint8 image
    against a uint16 one is refused rather than rescaled). Gray against RGB is an error,
    never a silent conversion. Paths may be mixed with NumPy arrays; tensors go with tensors.

    Args:
        reference: the pristine image.
        distorted: the image being scored.
        data_range, bit_depth, alpha, check_range, warn: see :func:`prepare_image`.
        keep_integers: leave integer NumPy pixels as they are (contiguous) instead of
            converting them to float64; :meth:`Pair.as_float` converts later, for the
            kernels that need it.
        defer_checks: leave the NaN, infinity and range checks of a float64 NumPy pair
            (same shape, contiguous, no alpha channel) to a kernel that reads the pixels
            anyway and checks them on the way (PSNR's); such a pair says so in
            :attr:`Pair.unchecked`. Other pairs are checked here as usual.

    Returns:
        A :class:`Pair`.

    Raises:
        ImageLoadError: a file cannot be read.
        ShapeError: sizes, channel counts or batch sizes differ; real transparency under
            ``alpha="error"``.
        RangeError: missing or inconsistent data range, NaN or inf.
    """
    ref, b_ref, batched_ref, n_ref = _raw(reference, "reference")
    dist, b_dist, batched_dist, n_dist = _raw(distorted, "distorted")
    if b_ref != b_dist:
        raise TypeError(
            f"{n_ref} and {n_dist}: cannot mix a torch tensor with a NumPy array or path; "
            "convert one of them"
        )
    backend = b_ref
    dt_ref = _dtype_name(ref.dtype)
    dt_dist = _dtype_name(dist.dtype)
    kinds = {_dtype_info(ref.dtype, n_ref)[0], _dtype_info(dist.dtype, n_dist)[0]}
    if dt_ref != dt_dist and (kinds != {"f"}):
        raise RangeError(
            f"{n_dist}: sample type {dt_dist} does not match {_as_reference(n_ref)} ({dt_ref}); "
            "both images must have the same bit depth"
        )
    dr = resolve_data_range(ref.dtype, data_range, bit_depth, n_ref)
    if backend == "torch" and ref.device != dist.device:
        raise ShapeError(f"{n_ref} is on {ref.device} but {n_dist} is on {dist.device}")
    unchecked = None
    if defer_checks and batched_ref == batched_dist and _fusable(ref, dist, backend):
        unchecked, range_notes = (check_range, warn), ()
    else:
        range_notes = _check_values([(ref, n_ref), (dist, n_dist)], backend, dr, check_range, warn)
    for d, n in ((ref, n_ref), (dist, n_dist)):
        _check_fits(d, backend, dr, n)
    (ref, dist), notes = _apply_alpha([(ref, n_ref), (dist, n_dist)], backend, dr, alpha)
    notes = notes + range_notes
    if ref.shape != dist.shape or batched_ref != batched_dist:
        c_ref = ref.shape[-1] if backend == "numpy" else ref.shape[1]
        c_dist = dist.shape[-1] if backend == "numpy" else dist.shape[1]
        if {c_ref, c_dist} == {1, 3}:
            raise ShapeError(
                f"{n_dist}: {c_dist} channel(s) but reference {n_ref} has {c_ref}: gray is "
                "not compared with RGB; convert one image explicitly"
            )
        raise ShapeError(
            f"{n_dist}: size {_describe(dist, backend)} does not match {_as_reference(n_ref)} "
            f"{_describe(ref, backend)} (W×H×C)"
        )
    float_dtype = None
    if backend == "torch":
        import torch

        float_dtype = torch.promote_types(
            ref.dtype if ref.is_floating_point() else torch.float32,
            dist.dtype if dist.is_floating_point() else torch.float32,
        )
    if keep_integers and backend == "numpy" and ref.dtype.kind in "ui":
        convert = np.ascontiguousarray
    else:
        convert = lambda x: _convert(x, backend, float_dtype)  # noqa: E731
    return Pair(
        reference=convert(ref),
        distorted=convert(dist),
        data_range=dr,
        batched=batched_ref,
        backend=backend,
        names=(n_ref, n_dist),
        source_dtype=dt_ref,
        notes=notes,
        unchecked=unchecked,
    )


def _fusable(ref: Any, dist: Any, backend: str) -> bool:
    """Whether a kernel can check a pair's values while it reads them: float64 NumPy
    images of one shape, C-contiguous (a flat view of each), with no alpha channel (whose
    policy is applied here, before the values are checked)."""
    return (
        backend == "numpy"
        and ref.dtype == np.float64 == dist.dtype
        and ref.shape == dist.shape
        and ref.shape[-1] in (1, 3)
        and ref.flags.c_contiguous
        and dist.flags.c_contiguous
    )


# --------------------------------------------------------------------------------------
# Helpers shared by the network metrics and the scoring engine
# --------------------------------------------------------------------------------------


def to_rgb(pixels: Any, backend: str) -> Any:
    """Replicate a one-channel image to three channels; RGB passes through.

    Raises:
        ShapeError: two or four channels (apply the alpha policy first).
    """
    c = pixels.shape[-1] if backend == "numpy" else pixels.shape[1]
    if c == 3:
        return pixels
    if c == 1:
        if backend == "numpy":
            return np.repeat(pixels, 3, axis=-1)
        return pixels.expand(-1, 3, -1, -1)
    raise ShapeError(f"expected a gray or RGB image, got {c} channels (an alpha channel kept?)")


def to_uint8(pixels: np.ndarray, data_range: float) -> np.ndarray:
    """Requantise to 8 bits: ``round(x * 255 / data_range)``.

    For uint16 data (data range 65535) this is ``round(x / 257)``, the exact inverse of the
    usual 8→16-bit expansion ``x * 257``. Rounding is half to even (NumPy's rule).
    """
    if data_range == 255.0 and pixels.dtype == np.uint8:
        return pixels
    scaled = np.asarray(pixels, dtype=np.float64) * (255.0 / data_range)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

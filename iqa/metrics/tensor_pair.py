"""Running a torch kernel on any prepared pair: one kernel serves NumPy, paths and tensors.

NumPy and path inputs become float64 CPU tensors (the reported numbers are computed in
float64); tensors are used as given (their own dtype and device, differentiable). Values
come back the way the pair came in: a float64 NumPy array, or a tensor.
"""

from __future__ import annotations

from typing import Any

from iqa.io import Pair

__all__ = ["from_torch", "to_torch"]


def to_torch(pair: Pair) -> tuple[Any, Any]:
    """The pair as ``N×C×H×W`` torch tensors: float64 for NumPy input, as given for tensors."""
    if pair.backend == "torch":
        return pair.reference, pair.distorted
    import torch

    ref = torch.from_numpy(pair.reference).permute(0, 3, 1, 2)
    dist = torch.from_numpy(pair.distorted).permute(0, 3, 1, 2)
    return ref.to(torch.float64), dist.to(torch.float64)


def from_torch(pair: Pair, values: Any, image: bool = False) -> Any:
    """Per-image ``values`` (a tensor of length N; with ``image``, ``N×C×H×W`` maps) in the
    pair's own kind: a float64 NumPy array (maps ``N×H×W×C``) for NumPy, else the tensor."""
    if pair.backend == "torch":
        return values
    v = values.detach().cpu().double()
    return (v.permute(0, 2, 3, 1) if image else v).numpy()

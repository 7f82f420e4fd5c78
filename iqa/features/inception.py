"""The FID Inception network: TensorFlow's 2015-12-05 Inception graph, as ported by pytorch-fid.

The FID of Heusel et al. (2017) is defined on the pool3 features of one specific network, the
TensorFlow Inception graph of 2015-12-05, not on torchvision's Inception-v3. pytorch-fid ported
that graph to PyTorch as torchvision's ``Inception3`` with four patched kinds of block; this
module writes the same network out in full:

* 1008 output classes (the TF graph's), no auxiliary classifier;
* TF average pooling inside the Inception-A, -C and first -E blocks: padded zeros are not
  counted (``count_include_pad=False``);
* the last block (``Mixed_7c``) pools its fourth branch with a 3×3 *max* pool (an oddity of
  the TF graph that pytorch-fid keeps);
* features after the first max pool (64-d), the second max pool (192-d), ``Mixed_6e``
  (768-d) and the final global average pool (2048-d, "pool3"); the first three are averaged
  over space as pytorch-fid does.

The parameter names are those of pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (the
layout of torchvision's ``Inception3``), so that file loads unchanged. The network takes
images already resized to 299×299 and scaled to [-1, 1]; the preprocessing modes live in
:mod:`iqa.features.preprocess`.

References: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
CVPR 2016; Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium", NeurIPS 2017.
Matches: ``pytorch_fid.inception.InceptionV3(use_fid_inception=True, resize_input=False,
normalize_input=False)`` with the same weights.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from iqa.features import LOGITS_DIMS

__all__ = ["BLOCK_DIMS", "FIDInceptionV3", "LOGITS_DIMS", "fold_batch_norm", "load_inception"]

#: Feature dimensions available, in network order (pytorch-fid's ``BLOCK_INDEX_BY_DIM``).
BLOCK_DIMS = (64, 192, 768, 2048)

# ``dims=LOGITS_DIMS`` selects the 1008 unbiased logits (pool3 × ``fc.weight``ᵀ), the Inception
# Score's input: torch-fidelity's ``logits_unbiased``, the original TF code's ``softmax/logits/MatMul``.

#: The weights registry entry of pytorch-fid's converted TF graph.
WEIGHTS_NAME = "inception-fid"


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (ε = 0.001, TF's) and ReLU.

    After :func:`fold_batch_norm` the batch norm is part of the convolution (weights scaled,
    a bias added) and ``bn`` is the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _max_pool3(x: torch.Tensor, stride: int, padding: int = 0) -> torch.Tensor:
    """``F.max_pool2d(x, 3, stride, padding)``, computed as a 3-row then a 3-column maximum.

    A maximum is exact whatever the order, so the result equals ``F.max_pool2d``'s bit for bit
    (NaN propagates in both); on the CPU this separable form is ~1.5-2× faster than the NCHW
    pooling kernel, which takes ~10% of the network's time at 2048-d.
    """
    if min(x.shape[-2:]) + 2 * padding < 3:  # too small for a window: torch's own error
        return F.max_pool2d(x, kernel_size=3, stride=stride, padding=padding)
    if padding:
        x = F.pad(x, (padding,) * 4, value=float("-inf"))
    height, width = x.shape[-2:]
    rows = (height - 3) // stride * stride + 1  # extent of one shifted view
    cols = (width - 3) // stride * stride + 1
    r = torch.maximum(x[..., 0:rows:stride, :], x[..., 1 : rows + 1 : stride, :])
    r = torch.maximum(r, x[..., 2 : rows + 2 : stride, :])
    out = torch.maximum(r[..., 0:cols:stride], r[..., 1 : cols + 1 : stride])
    return torch.maximum(out, r[..., 2 : cols + 2 : stride])


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's SAME average pool divides by the number of real pixels under the window.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35×35 block (``Mixed_5b`` to ``Mixed_5d``) with TF average pooling."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Grid reduction 35→17 (``Mixed_6a``)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = _max_pool3(x, stride=2)
        return torch.cat([b3, bd, bp], 1)


class InceptionC(nn.Module):
    """17×17 block with factorised 7×7 convolutions (``Mixed_6b`` to ``Mixed_6e``)."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = conv(bd)
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """Grid reduction 17→8 (``Mixed_7a``)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = _max_pool3(x, stride=2)
        return torch.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    """8×8 block with expanded filter banks (``Mixed_7b``, ``Mixed_7c``).

    ``pool="avg"`` (``Mixed_7b``) uses TF average pooling; ``pool="max"`` (``Mixed_7c``) a
    3×3 max pool, as in the TF graph.
    """

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "avg":
            pooled = _tf_avg_pool(x)
        else:
            pooled = _max_pool3(x, stride=1, padding=1)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)


class FIDInceptionV3(nn.Module):
    """The FID Inception network, returning spatially averaged features of one block.

    Input: ``N×3×299×299`` float, already scaled to [-1, 1] (see :mod:`iqa.features.preprocess` for the
    preprocessing modes). Other sizes run (the network is convolutional) but are not FID.

    Example:
        >>> net = FIDInceptionV3().eval()  # doctest: +SKIP
        >>> net(torch.zeros(1, 3, 299, 299), dims=2048).shape  # doctest: +SKIP
        torch.Size([1, 2048])
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        # The TF graph's 1008-way classifier: unused by FID; its weight (not its bias) makes
        # the Inception Score's logits.
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x: torch.Tensor, dims: int = 2048) -> torch.Tensor:
        """Features of the block with ``dims`` channels, averaged over space (``N×dims``), or
        with ``dims=LOGITS_DIMS`` the 1008 logits without the classifier's bias."""
        if dims not in BLOCK_DIMS and dims != LOGITS_DIMS:
            raise ValueError(f"dims must be one of {BLOCK_DIMS + (LOGITS_DIMS,)}, got {dims!r}")
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = _max_pool3(x, stride=2)
        if dims == 64:
            return _global_mean(x)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = _max_pool3(x, stride=2)
        if dims == 192:
            return _global_mean(x)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a,
                      self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e):
            x = block(x)
        if dims == 768:
            return _global_mean(x)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        pool3 = _global_mean(x)
        return self.unbiased_logits(pool3) if dims == LOGITS_DIMS else pool3

    def unbiased_logits(self, pool3: torch.Tensor) -> torch.Tensor:
        """The 1008 logits of pool3 features (``N×2048``) without the classifier's bias.

        Without the bias, as the TF original (which multiplies pool3 by the MatMul's weight)
        and torch-fidelity >= 0.3; the bias would shift every image's logits alike and change
        the score. Accumulated in float64 and rounded once, so that a row's logits do not
        depend on how many rows are multiplied together.
        """
        return pool3.double().mm(self.fc.weight.double().T).to(pool3.dtype)


def _global_mean(x: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(x, output_size=(1, 1)).flatten(1)


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """Fold every inference-mode batch norm into the convolution before it, in place.

    ``w' = w·γ/√(σ²+ε)`` and ``b' = β − μ·γ/√(σ²+ε)``, computed in float64 and stored in the
    model's dtype. The result differs from the unfolded network by float rounding only
    (relative ~1e-6 in float32), and saves one pass over every activation.
    """
    for module in model.modules():
        if isinstance(module, BasicConv2d) and isinstance(module.bn, nn.BatchNorm2d):
            conv, bn = module.conv, module.bn
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            folded = nn.Conv2d(
                conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                padding=conv.padding, bias=True,
            ).to(device=conv.weight.device, dtype=conv.weight.dtype)
            with torch.no_grad():
                folded.weight.copy_(conv.weight.double() * scale[:, None, None, None])
                folded.bias.copy_(bn.bias.double() - bn.running_mean.double() * scale)
            module.conv, module.bn = folded, nn.Identity()
    return model


def _complete_state_dict(state: dict, model: nn.Module) -> dict:
    """Add the batch-norm step counters when a file predates them (they do not change outputs)."""
    state = dict(state)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value, device="cpu")
    return state


def load_inception(
    weights: str | None = None,
    *,
    device: str | torch.device = "cpu",
    fold_bn: bool = False,
    channels_last: bool = False,
) -> tuple[FIDInceptionV3, str]:
    """Build the FID Inception network and load pytorch-fid's weights.

    Args:
        weights: a local ``.pth`` file in pytorch-fid's layout; by default the registry entry
            ``"inception-fid"`` (``pt_inception-2015-12-05-6726825d.pth``), downloaded and
            verified on first use.
        device: where the network runs.
        fold_bn: fold batch norm into the convolutions (faster; equal to the unfolded network
            to float32 round-off, ~1e-5 of the largest feature after ~95 layers).
        channels_last: store activations NHWC, the faster layout for CPU convolutions (other
            kernels, other round-off). With both off the network runs pytorch-fid's own
            operations and its features are bit-identical to pytorch-fid's.

    Returns:
        ``(model, sha256)``: the network in eval mode without gradients, and the SHA-256 of
        the weights file (recorded with every statistic made with it).

    Raises:
        WeightsError: the file is missing, cannot be downloaded, fails verification or does
            not have pytorch-fid's layout.
    """
    from iqa.errors import WeightsError
    from iqa.weights import file_sha256, get_path, load_state_dict, mismatch_error

    path = get_path(WEIGHTS_NAME, path=weights)
    state = load_state_dict(WEIGHTS_NAME, path=weights)
    # Built on the meta device: no memory and no random initialisation for parameters that
    # the file replaces at once (0.1 s of every run); strict loading with assign=True then
    # puts every tensor of the file in place, so nothing is left uninitialised.
    with torch.device("meta"):
        model = FIDInceptionV3()
    complete = _complete_state_dict(state, model)
    expected = model.state_dict()
    if {k: tuple(v.shape) for k, v in complete.items()} != {k: tuple(v.shape) for k, v in expected.items()}:
        raise mismatch_error(path, state, expected, WEIGHTS_NAME, "pytorch-fid's FID Inception network")
    # assign=True takes the file's tensors as they are: keep the network in float32 whatever
    # precision the file was saved in.
    complete = {k: v.to(expected[k].dtype) for k, v in complete.items()}
    try:
        model.load_state_dict(complete, strict=True, assign=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: does not load into pytorch-fid's FID Inception network "
                           f"({' '.join(str(exc).split())[:160]})") from None
    model.eval().requires_grad_(False)
    if fold_bn:
        fold_batch_norm(model)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, file_sha256(path)

"""Feature extraction on CUDA runs in full float32: TF32 off for the forward pass, restored after.

No GPU is needed: PyTorch's TF32 switches can be set on any build, and the extractor sets
them around every forward pass on a CUDA device (features would otherwise move by ~1e-3
relative on Ampere and later GPUs against the CPU's).
"""

from __future__ import annotations

import pytest
import torch

from iqa.features.pipeline import full_float32


@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda", 0)])
def test_tf32_is_off_inside_and_restored_after_on_cuda(device):
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "tf32"  # what a training script may have set
    try:
        with full_float32(device):
            assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
        assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
        with pytest.raises(KeyError), full_float32(device):
            raise KeyError("an error in the forward pass still restores the switches")
        assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
    finally:
        conv.fp32_precision, matmul.fp32_precision = before


def test_cpu_leaves_the_switches_alone():
    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    conv.fp32_precision = "tf32"
    try:
        with full_float32(torch.device("cpu")):
            assert conv.fp32_precision == "tf32"
    finally:
        conv.fp32_precision = before

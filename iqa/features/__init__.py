"""Networks that turn images into features, and the folder → features pipeline.

The extractor registry: each feature space iqa can compute, with its preprocessing modes,
feature dimensions and weights. Entries import no torch; the networks load on first use.

Modules:
    :mod:`iqa.features.inception`: the FID Inception network (pytorch-fid's port of the
    TF graph). :mod:`iqa.features.dinov2`: the DINOv2 ViTs (Meta's checkpoints).
    :mod:`iqa.features.clip`: OpenAI's CLIP image towers (CMMD's feature space).
    :mod:`iqa.features.preprocess`: the preprocessing modes (resize and scale).
    :mod:`iqa.features.pipeline`: sources (folders, file lists, ``.npz``, arrays, tensors,
    DataLoaders) → decoded in worker threads, sharded across ``torchrun`` ranks → features
    → statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXTRACTORS", "ExtractorSpec", "LOGITS_DIMS", "MODES"]


@dataclass(frozen=True)
class ExtractorSpec:
    """One feature space.

    Attributes:
        name: the ``--extractor`` name.
        modes: preprocessing modes, the first being the default.
        dims: the feature dimensions it offers; ``default_dims`` is the usual one.
        weights: the :mod:`iqa.weights` registry names of its files.
        summary: one line for help texts.
    """

    name: str
    modes: tuple[str, ...]
    dims: tuple[int, ...]
    default_dims: int
    weights: tuple[str, ...]
    summary: str


EXTRACTORS: dict[str, ExtractorSpec] = {
    "inception": ExtractorSpec(
        name="inception",
        modes=("pytorch-fid", "clean", "tf"),
        dims=(64, 192, 768, 2048),
        default_dims=2048,
        weights=("inception-fid",),
        summary="The FID Inception network (TF graph 2015-12-05 as ported by pytorch-fid); "
        "2048-d pool3 features, or 64/192/768-d earlier blocks.",
    ),
    **{
        f"dinov2-{arch}": ExtractorSpec(
            name=f"dinov2-{arch}",
            modes=("dgm-eval", "tf", "edm2"),
            dims=(width,),
            default_dims=width,
            weights=(f"dinov2-{arch}",),
            summary=f"Meta's DINOv2 {label} at 224 px: the {width}-d CLS token after the final norm"
            + (" (FD-DINOv2's)." if arch == "vitl14" else "."),
        )
        for arch, label, width in (
            ("vits14", "ViT-S/14", 384),
            ("vitb14", "ViT-B/14", 768),
            ("vitl14", "ViT-L/14", 1024),
            ("vitg14", "ViT-g/14", 1536),
        )
    },
    **{
        f"clip-{arch}": ExtractorSpec(
            name=f"clip-{arch}",
            modes=("cmmd", "openai"),
            dims=(output,),
            default_dims=output,
            weights=(f"clip-{arch}",),
            summary=f"OpenAI's CLIP {label} image tower at {size} px: the {output}-d projected CLS token, "
            "L2-normalised" + (" (CMMD's)." if arch == "vitl14-336" else "."),
        )
        for arch, label, size, output in (
            ("vitb32", "ViT-B/32", 224, 512),
            ("vitl14", "ViT-L/14", 224, 768),
            ("vitl14-336", "ViT-L/14@336px", 336, 768),
        )
    },
}

#: The ``dims`` of the inception extractor that selects its 1008 unbiased logits (pool3 ×
#: ``fc.weight``ᵀ), the Inception Score's input; not offered as a feature dimension of FD/KID/PRDC.
LOGITS_DIMS = 1008

#: The Inception extractor's preprocessing modes; the first is the default.
MODES = EXTRACTORS["inception"].modes

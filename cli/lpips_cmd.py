"""``iqa lpips``."""

from __future__ import annotations

import click

from .options import emit, pair_options


@click.command("lpips", short_help="Learned perceptual distance LPIPS (0 for identical images).")
@pair_options
@click.option(
    "--net",
    type=click.Choice(["alex", "vgg", "squeeze"]),
    default="alex",
    show_default=True,
    help="Backbone network.",
)
@click.option(
    "--lpips-version",
    type=click.Choice(["0.1", "0.0"]),
    default="0.1",
    show_default=True,
    help="Linear heads shipped with the lpips package (0.0: the first release, no scaling layer).",
)
@click.option(
    "--backbone-weights",
    type=click.Path(dir_okay=False),
    default=None,
    help="A torchvision-format state dict of the backbone, used instead of the registry's "
    "ImageNet weights (offline or fine-tuned use).",
)
@click.option(
    "--map",
    "map_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the per-pixel distance map as a heat-map PNG with a colour bar.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where the network runs (auto: CUDA when available).",
)
def lpips_cmd(reference, distorted, data_range, bit_depth, alpha, fmt, net, lpips_version, backbone_weights, map_path, device):
    """Learned perceptual distance LPIPS (Zhang et al. 2018): 0 for identical images.

    Pixels are mapped from [0, data range] to LPIPS' [-1, 1]; gray images are replicated to
    RGB. The backbone weights come from the registry (see 'iqa weights list'); with
    IQA_OFFLINE=1 and no cached file, pass --backbone-weights.
    """
    from iqa.io import prepare_pair
    from iqa.metrics.lpips import compute_lpips, compute_lpips_and_map, lpips_provenance

    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.BadParameter("CUDA is not available on this machine; use --device cpu", param_hint="--device")
    pair = prepare_pair(reference, distorted, data_range=data_range, bit_depth=bit_depth, alpha=alpha)
    kwargs = dict(net=net, version=lpips_version, backbone_weights=backbone_weights, device=device)
    if map_path:
        from iqa.maps import render_heatmap

        values, maps = compute_lpips_and_map(pair, **kwargs)
        h, w = maps.shape[1:3]
        render_heatmap(
            maps[0], map_path, vmin=0.0,
            title=f"LPIPS distance ({net}, v{lpips_version}), {w}x{h}: bright = different",
        )
    else:
        values = compute_lpips(pair, **kwargs)
    settings = {"net": net, "version": lpips_version, "alpha": alpha}
    if fmt != "text":
        prov = lpips_provenance(net, lpips_version, backbone_weights)
        settings.update(backbone=prov["backbone"], linear_heads=prov["linear_heads"])
    emit("lpips", float(values[0]), fmt=fmt, pair=pair, settings=settings)

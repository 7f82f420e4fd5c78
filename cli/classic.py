"""``iqa psnr``, ``iqa ssim`` and ``iqa ms-ssim``."""

from __future__ import annotations

import click

from .options import emit, pair_options, sr_options


def _window_check(check: str):
    """A Click callback running the library's own check of a window option, so that a bad
    value is a usage error (exit 2) with the library's message, checked before any decoding."""

    def callback(ctx: click.Context, param: click.Parameter, value):
        from iqa.metrics import ssim

        try:
            return getattr(ssim, check)(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return callback


def window_options(f):
    """``--win-size`` and ``--sigma`` of ``iqa ssim`` and ``iqa ms-ssim``."""
    f = click.option(
        "--sigma", type=float, default=1.5, show_default=True, callback=_window_check("_check_sigma"),
        help="Gaussian sigma: positive and finite.",
    )(f)
    f = click.option(
        "--win-size", type=int, default=11, show_default=True, callback=_window_check("_check_win_size"),
        help="Odd Gaussian window size.",
    )(f)
    return f


def _pair(reference, distorted, data_range, bit_depth, alpha):
    from iqa.io import prepare_pair

    return prepare_pair(reference, distorted, data_range=data_range, bit_depth=bit_depth, alpha=alpha)


@click.command("psnr")
@pair_options
@sr_options
def psnr_cmd(reference, distorted, data_range, bit_depth, alpha, fmt, color, crop_border):
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    from iqa.metrics.psnr import compute_psnr

    pair = _pair(reference, distorted, data_range, bit_depth, alpha)
    value = compute_psnr(pair, color=color, crop_border=crop_border)[0]
    emit("psnr", value, fmt=fmt, pair=pair, settings={"color": color, "crop_border": crop_border, "alpha": alpha})


@click.command("ssim")
@pair_options
@sr_options
@window_options
@click.option("--downsample", is_flag=True, help="MATLAB ssim.m's automatic downsampling by round(min(H, W)/256).")
@click.option(
    "--map",
    "map_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the SSIM map (valid region, channels averaged) as a heat-map PNG with a colour bar.",
)
def ssim_cmd(reference, distorted, data_range, bit_depth, alpha, fmt, color, crop_border, win_size, sigma, downsample, map_path):
    """Structural similarity with a Gaussian window (Wang, Bovik et al 2004)."""
    from iqa.metrics.ssim import compute_ssim

    pair = _pair(reference, distorted, data_range, bit_depth, alpha)
    out = compute_ssim(
        pair, color=color, crop_border=crop_border, win_size=win_size, sigma=sigma, downsample=downsample,
        full=bool(map_path),
    )
    if map_path:
        from iqa.maps import render_heatmap

        values, ssim_map = out
        plane = ssim_map[0].mean(axis=-1)  # N×H'×W'×C: the valid region, channels averaged
        h, w = plane.shape
        render_heatmap(
            plane, map_path, vmin=min(0.0, float(plane.min())), vmax=1.0, reverse=True,
            title=f"SSIM map, valid region {w}x{h}: bright = different",
        )
        out = values
    value = out[0]
    settings = {
        "color": color, "crop_border": crop_border, "alpha": alpha, "win_size": win_size,
        "sigma": sigma, "downsample": downsample, "k1": 0.01, "k2": 0.03,
    }
    emit("ssim", value, fmt=fmt, pair=pair, settings=settings)


@click.command("ms-ssim")
@pair_options
@sr_options
@window_options
@click.option("--scales", type=click.IntRange(1, 5), default=5, show_default=True, help="Number of scales (weights renormalised below 5).")
def ms_ssim_cmd(reference, distorted, data_range, bit_depth, alpha, fmt, color, crop_border, win_size, sigma, scales):
    """Multi-scale structural similarity (Wang, Simoncelli & Bovik 2003)."""
    from iqa.metrics.ssim import _scale_weights, compute_ms_ssim

    pair = _pair(reference, distorted, data_range, bit_depth, alpha)
    value = compute_ms_ssim(pair, color=color, crop_border=crop_border, win_size=win_size, sigma=sigma, scales=scales)[0]
    settings = {
        "color": color, "crop_border": crop_border, "alpha": alpha, "win_size": win_size,
        "sigma": sigma, "scales": scales, "weights": list(_scale_weights(scales, None)),
    }
    emit("ms_ssim", value, fmt=fmt, pair=pair, settings=settings)

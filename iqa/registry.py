"""The metric registry: every metric iqa computes, named once.

An entry says what kind of metric it is, which way is better, what values it takes, which
implementation it matches, and where its options class, public function and kernel live
(module and attribute names, imported on first use: this module imports neither torch nor
scipy, so ``iqa --help`` and ``iqa metrics`` stay instant).

Everything else is generated from here: each pair metric's command and options, its
``iqa score -m NAME`` column and prefixed options, :class:`iqa.Scorer`, the ``--format json``
settings, ``iqa metrics`` and the README's table.

Kinds:
    ``pair``: one value per reference/distorted image pair (PSNR, SSIM, LPIPS...).
    ``two-set``: one value per pair of image sets (FID, KID, FD, FD-DINOv2, CMMD, precision,
    recall, density, coverage; ``iqa evaluate`` computes several in one pass).
    ``one-set``: one value per image set (the Inception Score; ``iqa evaluate GENERATED -m is``).

Adding a metric: write its module (an options class deriving from :class:`iqa.options.Options`,
a public function, and for a pair metric a kernel ``kernel(pair, options, runtime, want_map)``
that returns one value per image), then add one :class:`MetricSpec` to :data:`METRICS`.
"""

from __future__ import annotations

import importlib
import math
import sys
from dataclasses import dataclass
from typing import Any

from iqa.errors import OptionError

__all__ = ["ALIASES", "KINDS", "METRICS", "MetricSpec", "get", "metric_names", "pair_metrics"]

KINDS = ("pair", "two-set", "one-set")

#: Other libraries' names accepted for a metric (torch-fidelity's ``isc``).
ALIASES = {"isc": "is"}


@dataclass(frozen=True)
class MetricSpec:
    """One metric.

    Attributes:
        name: the command-line name (``ms-ssim``); :attr:`key` is the Python name (``ms_ssim``).
        kind: ``"pair"``, ``"two-set"`` or ``"one-set"``.
        summary: one line for ``--help`` and ``iqa metrics``.
        higher_is_better: the direction used to say which method is better.
        value_range: the (low, high) values the metric can take (``math.inf`` for unbounded).
        unit: the unit of the value, if any.
        matches: the implementation and settings it agrees with.
        reference: the paper.
        module: where the options class, function and kernel live.
        options: the options class's name in ``module``.
        function: the public function's name in ``module``.
        kernel: the pair kernel's name in ``module`` (pair metrics).
        conventions: whether the colour space and border crop apply (PSNR, SSIM...).
        networks: whether it runs a network (takes ``--weights``, ``--device``, ``--batch-size``;
            the batch scorer runs it in batches on the main thread).
        map_view: the name in ``module`` of ``view(maps, index, options) -> (plane, style)``
            when the metric gives a per-pixel map (``--map FILE``, ``iqa score --maps``).
        integer_pixels: whether the kernel takes integer NumPy pixels as they were given
            (exactly, without the float64 copy the other kernels get).
        checks_values: whether the kernel checks the values of a pair prepared with
            ``defer_checks`` (:attr:`iqa.io.Pair.unchecked`) while it reads them, so that a
            single-metric call reads the pixels once.
        files: the name in ``module`` of ``files(options, weights) -> dict``, which names the
            files (and their SHA-256) behind a network metric's value, for the provenance.
    """

    name: str
    kind: str
    summary: str
    higher_is_better: bool
    value_range: tuple[float, float]
    matches: str
    reference: str
    module: str
    options: str
    function: str
    kernel: str | None = None
    unit: str = ""
    conventions: bool = False
    networks: bool = False
    map_view: str | None = None
    files: str | None = None
    integer_pixels: bool = False
    checks_values: bool = False

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    def _attr(self, name: str) -> Any:
        module = sys.modules.get(self.module) or importlib.import_module(self.module)
        return getattr(module, name)

    def options_class(self) -> Any:
        return self._attr(self.options)

    def load_function(self) -> Any:
        return self._attr(self.function)

    def load_kernel(self) -> Any:
        if self.kernel is None:
            raise TypeError(f"{self.name} is a {self.kind} metric: it has no pair kernel")
        return self._attr(self.kernel)

    def load_map_view(self) -> Any:
        return None if self.map_view is None else self._attr(self.map_view)

    def files_provenance(self, options: Any, weights: Any) -> dict[str, Any]:
        return {} if self.files is None else self._attr(self.files)(options, weights)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (``iqa metrics --format json``)."""
        cls = self.options_class()
        return {
            "name": self.name,
            "python": self.key,
            "kind": self.kind,
            "summary": self.summary,
            "direction": self.direction,
            "range": [_num(v) for v in self.value_range],
            "unit": self.unit,
            "conventions": self.conventions,
            "networks": self.networks,
            "map": self.map_view is not None,
            "options": {
                f.name: {"default": _num(f.default), "help": f.metadata["help"], "choices": f.metadata["choices"]}
                for f in cls.fields()
            },
            "constants": cls().constants(),
            "matches": self.matches,
            "reference": self.reference,
        }


def _num(v: Any) -> Any:
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, tuple):
        return list(v)
    return v


METRICS: dict[str, MetricSpec] = {
    spec.key: spec
    for spec in (
        MetricSpec(
            name="psnr",
            kind="pair",
            summary="Peak signal-to-noise ratio in dB (inf for identical images).",
            higher_is_better=True,
            value_range=(0.0, math.inf),
            unit="dB",
            matches="skimage.metrics.peak_signal_noise_ratio(ref, dist, data_range=R)",
            reference="Huynh-Thu & Ghanbari, Electronics Letters 2008",
            module="iqa.metrics.psnr",
            options="PSNROptions",
            function="psnr",
            kernel="compute_psnr",
            conventions=True,
            integer_pixels=True,
            checks_values=True,
        ),
        MetricSpec(
            name="ssim",
            kind="pair",
            summary="Structural similarity with a Gaussian window (1 for identical images).",
            higher_is_better=True,
            value_range=(-1.0, 1.0),
            matches="skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, "
            "use_sample_covariance=False); with downsample, Wang's ssim.m",
            reference="Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004",
            module="iqa.metrics.ssim",
            options="SSIMOptions",
            function="ssim",
            kernel="compute_ssim",
            conventions=True,
            map_view="ssim_map_view",
        ),
        MetricSpec(
            name="ms-ssim",
            kind="pair",
            summary="Multi-scale structural similarity (1 for identical images).",
            higher_is_better=True,
            value_range=(0.0, 1.0),
            matches="pytorch_msssim.ms_ssim on sizes divisible by 16; Wang's msssim.m on all sizes",
            reference="Wang, Simoncelli & Bovik, Asilomar 2003",
            module="iqa.metrics.ms_ssim",
            options="MSSSIMOptions",
            function="ms_ssim",
            kernel="compute_ms_ssim",
            conventions=True,
        ),
        MetricSpec(
            name="lpips",
            kind="pair",
            summary="Learned perceptual distance LPIPS (0 for identical images).",
            higher_is_better=False,
            value_range=(0.0, math.inf),
            matches="lpips.LPIPS(net, version) of the lpips package 0.1.4, same backbone weights",
            reference="Zhang, Isola, Efros, Shechtman & Wang, CVPR 2018",
            module="iqa.metrics.lpips",
            options="LPIPSOptions",
            function="lpips",
            kernel="compute_lpips",
            networks=True,
            map_view="lpips_map_view",
            files="lpips_provenance",
        ),
        MetricSpec(
            name="dists",
            kind="pair",
            summary="Deep image structure and texture similarity DISTS (0 for identical images).",
            higher_is_better=False,
            value_range=(0.0, 1.124),  # 1 + sum(beta)/sum(alpha + beta) with the shipped weights
            matches="DISTS_pytorch 0.1 DISTS() (its alpha/beta file, the same VGG16 weights); "
            "torchmetrics 1.9 DISTS; piq's DISTS on images up to 256 px (piq resizes larger ones)",
            reference="Ding, Ma, Wang & Simoncelli, IEEE TPAMI 2020",
            module="iqa.metrics.dists",
            options="DISTSOptions",
            function="dists",
            kernel="compute_dists",
            networks=True,
            files="dists_provenance",
        ),
        MetricSpec(
            name="vifp",
            kind="pair",
            summary="Pixel-domain visual information fidelity, 4 scales (1 for identical images).",
            higher_is_better=True,
            value_range=(0.0, math.inf),
            matches="piq.vif_p(distorted, reference) (LIVE's vifp_mscale.m); not pyiqa's wavelet vif",
            reference="Sheikh & Bovik, IEEE TIP 2006",
            module="iqa.metrics.vifp",
            options="VIFpOptions",
            function="vifp",
            kernel="compute_vifp",
            conventions=True,
        ),
        MetricSpec(
            name="gmsd",
            kind="pair",
            summary="Gradient magnitude similarity deviation (0 for identical images).",
            higher_is_better=False,
            value_range=(0.0, 0.5),  # the population std of a map in (0, 1]
            matches="piq.gmsd (YIQ luma, 2x2 average downsampling)",
            reference="Xue, Zhang, Mou & Bovik, IEEE TIP 2014",
            module="iqa.metrics.gmsd",
            options="GMSDOptions",
            function="gmsd",
            kernel="compute_gmsd",
            conventions=True,
            map_view="gmsd_map_view",
        ),
        MetricSpec(
            name="ms-gmsd",
            kind="pair",
            summary="Multi-scale gradient magnitude similarity deviation (0 for identical images).",
            higher_is_better=False,
            value_range=(0.0, math.inf),  # about 1.6 at most; above 1 with chromatic=True
            matches="piq.multi_scale_gmsd",
            reference="Zhang, Sander & Bermak, IEEE ICASSP 2017",
            module="iqa.metrics.ms_gmsd",
            options="MSGMSDOptions",
            function="ms_gmsd",
            kernel="compute_ms_gmsd",
            conventions=True,
        ),
        MetricSpec(
            name="fsim",
            kind="pair",
            summary="Feature similarity from phase congruency and gradients (1 for identical images).",
            higher_is_better=True,
            value_range=(0.0, 1.0),
            matches="piq.fsim(chromatic=False) (automatic downsampling)",
            reference="Zhang, Zhang, Mou & Zhang, IEEE TIP 2011",
            module="iqa.metrics.fsim",
            options="FSIMOptions",
            function="fsim",
            kernel="compute_fsim",
            conventions=True,
        ),
        MetricSpec(
            name="fsimc",
            kind="pair",
            summary="FSIM with the chrominance term, FSIMc (1 for identical images).",
            higher_is_better=True,
            value_range=(0.0, 1.0),
            matches="piq.fsim(chromatic=True)",
            reference="Zhang, Zhang, Mou & Zhang, IEEE TIP 2011",
            module="iqa.metrics.fsim",
            options="FSIMcOptions",
            function="fsimc",
            kernel="compute_fsim",
            conventions=True,
        ),
        MetricSpec(
            name="haarpsi",
            kind="pair",
            summary="Haar wavelet-based perceptual similarity index (1 for identical images).",
            higher_is_better=True,
            value_range=(0.0, 1.0),
            matches="piq.haarpsi (scales=3, subsample, c=30, alpha=4.2); HaarPSI.m on gray images "
            "(RGB: 3e-5 apart, its rounded YIQ coefficients)",
            reference="Reisenhofer, Bosse, Kutyniok & Wiegand, Signal Processing: Image Communication 2018",
            module="iqa.metrics.haarpsi",
            options="HaarPSIOptions",
            function="haarpsi",
            kernel="compute_haarpsi",
            conventions=True,
        ),
        MetricSpec(
            name="fid",
            kind="two-set",
            summary="Fréchet Inception Distance between two image sets (0 for identical sets).",
            higher_is_better=False,
            value_range=(0.0, math.inf),
            matches="python -m pytorch_fid A B (mode pytorch-fid); clean-fid (mode clean); "
            "torch-fidelity (mode tf)",
            reference="Heusel et al., NeurIPS 2017",
            module="iqa.set_metrics",
            options="FIDOptions",
            function="fid",
            networks=True,
        ),
        MetricSpec(
            name="kid",
            kind="two-set",
            summary="Kernel Inception Distance: mean and std of the unbiased MMD² over subsets.",
            higher_is_better=False,
            value_range=(-math.inf, math.inf),
            matches="torch-fidelity's KID (same seed, same subsets); torchmetrics' "
            "KernelInceptionDistance",
            reference="Bińkowski et al., ICLR 2018",
            module="iqa.set_metrics",
            options="KIDOptions",
            function="kid",
            networks=True,
        ),
        MetricSpec(
            name="fd",
            kind="two-set",
            summary="Fréchet distance in any feature space (--extractor; default DINOv2 ViT-L/14).",
            higher_is_better=False,
            value_range=(0.0, math.inf),
            matches="pytorch-fid's Fréchet function and dgm-eval's fd.py on the same features",
            reference="Heusel et al., NeurIPS 2017; Stein et al., NeurIPS 2023",
            module="iqa.set_metrics",
            options="FDOptions",
            function="fd",
            networks=True,
        ),
        MetricSpec(
            name="fd-dinov2",
            kind="two-set",
            summary="FD-DINOv2: Fréchet distance on DINOv2 ViT-L/14 CLS features, dgm-eval mode.",
            higher_is_better=False,
            value_range=(0.0, math.inf),
            matches="dgm-eval --model dinov2 (vitl14) FD; EDM2's FD-DINOv2 (resize_mode pil)",
            reference="Stein et al., NeurIPS 2023",
            module="iqa.set_metrics",
            options="FDDINOv2Options",
            function="fd_dinov2",
            networks=True,
        ),
        MetricSpec(
            name="cmmd",
            kind="two-set",
            summary="CMMD: 1000 x squared MMD (Gaussian kernel, sigma 10) of CLIP ViT-L/14@336px embeddings.",
            higher_is_better=False,
            value_range=(0.0, math.inf),  # the biased MMD² is a squared norm (up to round-off near 0)
            matches="google-research cmmd (distance.mmd on its CLIP embeddings), in float64; "
            "1000 x MMD^2 from scikit-learn's rbf_kernel(gamma=1/200)",
            reference="Jayasumana et al., CVPR 2024",
            module="iqa.set_metrics",
            options="CMMDOptions",
            function="cmmd",
            networks=True,
        ),
        *(
            MetricSpec(
                name=name,
                kind="two-set",
                summary=summary,
                higher_is_better=True,
                value_range=(0.0, math.inf if name == "density" else 1.0),
                matches="prdc 0.2 compute_prdc (dgm-eval's copy); with nearest_k 3 and <=, "
                "torch-fidelity's precision/recall",
                reference=reference,
                module="iqa.set_metrics",
                options="PRDCOptions",
                function="prdc",
                networks=True,
            )
            for name, summary, reference in (
                ("precision", "Fraction of generated images inside the real set's k-NN balls (fidelity).",
                 "Kynkäänniemi et al., NeurIPS 2019"),
                ("recall", "Fraction of real images inside the generated set's k-NN balls (diversity).",
                 "Kynkäänniemi et al., NeurIPS 2019"),
                ("density", "Mean count of real k-NN balls holding each generated image, over k (~1 for "
                 "matching sets).", "Naeem et al., ICML 2020"),
                ("coverage", "Fraction of real images whose k-NN ball holds a generated image.",
                 "Naeem et al., ICML 2020"),
            )
        ),
        MetricSpec(
            name="is",
            kind="one-set",
            summary="Inception Score of one image set: exp(E KL(p(y|x) || p(y))), mean over 10 splits "
            "(also named isc).",
            higher_is_better=True,
            value_range=(1.0, 1008.0),  # at most the number of classes
            matches="torch-fidelity 0.4 --isc (logits_unbiased, shuffled with seed 2020, 10 splits at i*N//10)",
            reference="Salimans et al., NeurIPS 2016",
            module="iqa.set_metrics",
            options="ISOptions",
            function="inception_score",
            networks=True,
        ),
    )
}


def _key(name: Any) -> str:
    key = str(name).strip().lower().replace("-", "_")
    return ALIASES.get(key, key)


def get(name: str) -> MetricSpec:
    """The entry of a metric by its CLI or Python name (``ms-ssim`` or ``ms_ssim``).

    Raises:
        OptionError: an unknown name (the message lists the known ones).
    """
    spec = (isinstance(name, str) and METRICS.get(name)) or METRICS.get(_key(name))  # a Python name as given: no normalising
    if spec is None:
        raise OptionError(f"unknown metric {name!r}: choose from {', '.join(s.name for s in METRICS.values())}")
    return spec


def pair_metrics() -> list[MetricSpec]:
    """The pair metrics, in registry order (the order of ``iqa score``'s columns)."""
    return [s for s in METRICS.values() if s.kind == "pair"]


def metric_names(names: Any, kind: str | tuple[str, ...] = "pair") -> tuple[str, ...]:
    """Normalise metric names (``ms-ssim`` → ``ms_ssim``, ``isc`` → ``is``, commas split),
    deduplicated and in registry order; ``kind`` may name several kinds.

    Raises:
        OptionError: an unknown name, a metric of another kind, or no name at all.
    """
    if isinstance(names, str):
        names = [names]
    wanted = set()
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    choices = ", ".join(s.name for s in METRICS.values() if s.kind in kinds)
    for item in names:
        for name in str(item).split(","):
            if not name.strip():
                continue
            spec = METRICS.get(_key(name))
            if spec is None:
                raise OptionError(f"unknown metric {name.strip()!r}: choose from {choices}")
            if spec.kind not in kinds:
                raise OptionError(f"{spec.name} is a {spec.kind} metric; here choose from {choices}")
            wanted.add(spec.key)
    if not wanted:
        raise OptionError("no metric requested")
    return tuple(k for k, s in METRICS.items() if k in wanted)

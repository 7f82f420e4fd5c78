"""The registry and the options objects: one declaration, every interface generated from it."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

import iqa
from iqa import registry
from iqa.errors import OptionError
from iqa.options import Conventions, ImageOptions

ROOT = Path(__file__).resolve().parents[1]

#: Keywords a pair function takes beyond its options: the output request, the runtime of
#: network metrics (``weights`` names network files only), and former names kept as warning
#: aliases (MS-SSIM's former ``weights`` is one of them).
_EXTRA = {"return_map", "full", "device", "weights", "batch_size", "backbone_weights", "spatial"}


@pytest.mark.parametrize("spec", registry.pair_metrics(), ids=lambda s: s.name)
def test_public_function_keywords_are_the_declared_options(spec):
    params = inspect.signature(spec.load_function()).parameters
    keywords = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    declared = {f.name for f in ImageOptions.fields()} | {f.name for f in spec.options_class().fields()}
    if spec.conventions:
        declared |= {f.name for f in Conventions.fields()}
    assert declared <= keywords
    assert keywords - declared <= _EXTRA
    cls = spec.options_class()
    for f in cls.fields():  # one default, written once
        assert params[f.name].default == f.default, f.name


@pytest.mark.parametrize("spec", [s for s in registry.METRICS.values() if s.kind != "pair"], ids=lambda s: s.name)
def test_set_function_keywords_carry_every_option_with_its_default(spec):
    params = inspect.signature(spec.load_function()).parameters
    for f in spec.options_class().fields():
        assert f.name in params, f.name
        assert params[f.name].default == f.default, f.name


def test_weights_means_network_files_only():
    # MS-SSIM's scale exponents are scale_weights (piq's name); weights= is its former name.
    assert "scale_weights" in {f.name for f in iqa.MSSSIMOptions.fields()}
    for spec in registry.METRICS.values():
        assert "weights" not in {f.name for f in spec.options_class().fields()}, spec.name


@pytest.mark.parametrize("spec", list(registry.METRICS.values()), ids=lambda s: s.name)
def test_every_entry_resolves_and_describes_itself(spec):
    d = spec.describe()
    assert d["kind"] in registry.KINDS
    assert d["direction"] in ("higher is better", "lower is better")
    assert callable(spec.load_function())
    if spec.kind == "pair":
        assert callable(spec.load_kernel())
    opts = spec.options_class()()
    assert dataclasses.is_dataclass(opts)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(opts, "x", 1)


def test_readme_metric_table_is_generated_from_the_registry():
    from iqa.cli.metrics_cmd import markdown_table

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- metrics table: iqa metrics --format markdown -->\n(.*?)\n<!-- end -->", text, re.S)
    assert m, "README.md has no generated metrics table"
    assert m.group(1).strip() == markdown_table().strip()


def test_option_errors_name_keywords_in_python():
    with pytest.raises(OptionError, match=r"^scales must be an integer from 1 to 5"):
        iqa.MSSSIMOptions(scales=9)
    with pytest.raises(ValueError, match=r"win_size must be odd"):
        iqa.ssim("a.png", "b.png", win_size=4)


def test_option_error_renders_in_the_command_line_language():
    from iqa.cli.options import cli_namer

    with pytest.raises(OptionError) as info:
        iqa.MSSSIMOptions(scales=0)
    assert info.value.render(cli_namer()).startswith("--scales must be")
    assert info.value.render(cli_namer(["ms_ssim"])).startswith("--ms-ssim-scales must be")


def test_metric_names_follow_the_registry_order_and_refuse_other_kinds():
    assert registry.metric_names(["ms-ssim", "psnr,ssim"]) == ("psnr", "ssim", "ms_ssim")
    with pytest.raises(OptionError, match="two-set"):
        registry.metric_names(["fid"])
    with pytest.raises(OptionError, match="unknown metric"):
        registry.metric_names(["nope"])


def test_scorer_takes_prefixed_metric_options_and_refuses_unknown_ones():
    from iqa.scoring import ScoreSettings

    s = ScoreSettings.build(["ssim", "ms-ssim"], ssim_win_size=7, ms_ssim_scales=3)
    assert s.options["ssim"].win_size == 7 and s.options["ms_ssim"].scales == 3
    assert s.options["ms_ssim"].win_size == 11  # the prefix keeps the two metrics apart
    with pytest.raises(OptionError, match="ms_ssim_scales"):
        ScoreSettings.build(["psnr"], ms_ssim_scales=3)
    with pytest.raises(OptionError, match="unknown setting"):
        ScoreSettings.build(["psnr"], win_size=3)

"""The CLIP extractors: OpenAI's files (TorchScript archives in float16) are read without
running their code and give open_clip's embeddings; the real ViT-L/14@336px layout loads;
the ``cmmd`` preprocessing is the CMMD authors' (centre crop, PIL bicubic, CLIP mean/std) and
``openai`` is ``clip.load``'s (torchvision's resize of the shorter side, then centre crop).

Weights are generated in OpenAI's layout (``clip_weights``): a small tower with
ViT-L/14@336px's interface, loaded through the same code as the real files. Tolerance for
embeddings: 1e-5 of the largest value (float32 round-off through two layers is ~1e-7 here).
Each deliberately wrong detail (no crop, OpenAI's resize-then-crop order, a bilinear resize,
no L2 normalisation) moves the embeddings by more than 1e-3: two orders above the tolerance.
"""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import clip_weights as cw  # tests/ is on sys.path
import dinov2_weights as dw
import fid_weights as fw
from iqa.errors import WeightsError
from iqa.features.clip import ARCHS, ClipVisual, arch_of, build_from_state_dict, load_clip, visual_state
from iqa.features.pipeline import make_features
from iqa.features.preprocess import CLIP_MEAN, CLIP_STD, crop_resize_pil, preprocess_clip
from iqa.weights import read_torchscript_tensors

TOL = 1e-5
SIZE = cw.SMALL.resolution


def _rel(a, b) -> float:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return float((a - b).abs().max() / b.abs().max())


def _images(n: int = 3, h: int = 50, w: int = 70, seed: int = 5) -> list[np.ndarray]:
    """Non-square uint8 images whose sides differ by an even and an odd amount (the crop offset
    rounds), with content everywhere so that a crop or resize detail matters."""
    sq = fw.synthetic_images(n, max(h, w), seed, "stripes")
    out = [sq[i, :h, :w] for i in range(n - 1)]
    out.append(sq[-1, : w - 1, : h])  # portrait, odd difference
    return out


@pytest.fixture(scope="module")
def reference():
    """open_clip's CLIP built from the tensors the archive holds."""
    pytest.importorskip("open_clip")
    return cw.open_clip_model(cw.make_state_dict())


def _authors_preprocess(u8: np.ndarray, size: int) -> torch.Tensor:
    """google-research cmmd's io_util._center_crop_and_resize and the normalisation of
    embedding._clip_preprocess (scenic's normalize_image), step by step on a PIL image."""
    im = Image.fromarray(u8)
    w, h = im.size
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((size, size), resample=Image.BICUBIC)
    x = np.asarray(im).astype(np.float32) / 255.0
    x = (x - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return torch.from_numpy(x).permute(2, 0, 1)


def test_archive_tensors_are_torch_jit_loads_without_running_it(clip_archive):
    """The tensors read from the TorchScript archive are exactly those torch.jit.load gives
    (which runs the archive's code: acceptable here, on a file this test made)."""
    ours = read_torchscript_tensors(clip_archive)
    with pytest.warns(FutureWarning):  # torch.jit is deprecated
        theirs = torch.jit.load(str(clip_archive), map_location="cpu").state_dict()
    assert set(ours) == set(theirs)
    for k, v in theirs.items():
        assert ours[k].dtype == torch.float16 == v.dtype and torch.equal(ours[k], v), k


def test_archive_naming_other_code_is_refused_and_not_run(tmp_path, capsys):
    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"x": Boom()}, protocol=2))
        z.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
        z.writestr("evil/code/__torch__.py", "")
    with pytest.raises(WeightsError, match=r"names __builtin__\.print, which iqa does not load"):
        load_clip("vitl14-336", path)
    assert "never run" not in capsys.readouterr().out


def _crafted(path, size, stride, offset=0, *, storage=b"\0" * 8, compress=False, tensors=1, cycle=False):
    """A TorchScript-like archive whose module ``m`` holds ``tensors`` float16 tensors viewing
    storage data/0 (``size``, ``stride``, ``offset``), written opcode by opcode."""
    def op(obj):  # one object's pickle opcodes (no PROTO, no STOP)
        return pickle.dumps(obj, protocol=2)[2:-1]

    tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n((" + op("storage") + b"ctorch\nHalfStorage\n" + op("0") + op("cpu") + op(len(storage) // 2) + b"tQ"
              + op(offset) + op(tuple(size)) + op(tuple(stride)) + b"\x89ccollections\nOrderedDict\n)RtR")
    attrs = b"".join(op(f"w{i}") + tensor for i in range(tensors)) + (b"X\x01\x00\x00\x00cj\xff\x00\x00\x00" if cycle else b"")
    pkl = b"\x80\x02c__torch__.m\nM\n)\x81r\xff\x00\x00\x00}(" + attrs + b"ub."
    kind = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/data.pkl", pkl, compress_type=kind)
        z.writestr("m/constants.pkl", pickle.dumps((), protocol=2))
        z.writestr("m/code/__torch__/m.py", "", compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("m/data/0", storage, compress_type=kind)
    return path


def test_crafted_archives_cannot_allocate_more_than_they_hold(tmp_path, monkeypatch):
    """A tensor must lie inside its storage without repeating elements (a 1-element storage
    viewed with zero strides as 10⁸ elements would be copied into 200 MB); entries must be
    stored as torch.jit.save stores them; each storage is read once; a module tree that
    contains itself is refused."""
    ok = read_torchscript_tensors(_crafted(tmp_path / "ok.pt", (2, 2), (1, 2)))  # a transposed 2×2: fine
    assert torch.equal(ok["w0"], torch.zeros(2, 2, dtype=torch.float16))
    for name, size, stride, offset in (("zero", (10000, 10000), (0, 0), 0), ("outside", (3, 3), (3, 1), 0),
                                       ("offset", (4,), (1,), 1), ("overlap", (2, 3), (1, 1), 0),
                                       ("negative", (2,), (-1,), 1)):
        with pytest.raises(WeightsError, match=r"does not fit its storage of 4 elements|malformed size"):
            read_torchscript_tensors(_crafted(tmp_path / f"{name}.pt", size, stride, offset))
    with pytest.raises(WeightsError, match=r"data\.pkl is compressed or larger than the archive"):
        read_torchscript_tensors(_crafted(tmp_path / "deflated.pt", (2, 2), (2, 1), compress=True))
    big = _crafted(tmp_path / "big.pt", (2, 2), (2, 1))
    real = zipfile.ZipFile.getinfo

    def claims_more(self, name):  # a central directory that announces a huge entry
        info = real(self, name)
        if name.endswith("data/0"):
            info.file_size = 1 << 40
        return info

    with monkeypatch.context() as m:
        m.setattr(zipfile.ZipFile, "getinfo", claims_more)
        with pytest.raises(WeightsError, match=r"data/0 is compressed or larger than the archive \(1099511627776"):
            read_torchscript_tensors(big)
    reads = []
    original = zipfile.ZipFile.read
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda self, name, *a: reads.append(name) or original(self, name, *a))
    shared = read_torchscript_tensors(_crafted(tmp_path / "shared.pt", (4,), (1,), tensors=5))
    assert len(shared) == 5 and reads.count("m/data/0") == 1
    with pytest.raises(WeightsError, match="a module appears twice"):
        read_torchscript_tensors(_crafted(tmp_path / "cycle.pt", (4,), (1,), cycle=True))


def test_a_torchscript_archive_without_its_code_gets_a_clip_hint(tmp_path):
    path = _crafted(tmp_path / "nocode.pt", (4,), (1,))
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "cut.pt", "w") as dst:
        for info in src.infolist():
            if "/code/" not in info.filename:
                dst.writestr(info, src.read(info))
    with pytest.raises(WeightsError, match=r"cut\.pt: a TorchScript archive without its code/ folder.*OpenAI's \.pt"):
        load_clip("vitl14-336", tmp_path / "cut.pt")


@pytest.mark.parametrize("source", ["torchscript", "state_dict"])
def test_embeddings_match_open_clip(source, clip_archive, tmp_path, reference):
    """Our tower from OpenAI's file formats against open_clip's ``encode_image`` on the
    same normalised input, 1e-5 relative."""
    path = clip_archive if source == "torchscript" else cw.state_dict_file(tmp_path)
    model, sha = load_clip("vitl14-336", path)
    assert len(sha) == 64 and all(p.dtype == torch.float32 for p in model.parameters())
    x = torch.stack([preprocess_clip(u8, SIZE) for u8 in _images()])
    with torch.inference_mode():
        got, want = model(x), reference.encode_image(x)
    assert _rel(got, want) < TOL
    spread = float((want[0] - want[1]).abs().max() / want.abs().max())
    assert spread > 1e-2  # embeddings differ between images far above the tolerance


def test_extractor_features_are_open_clips_normalised_embeddings(clip_archive, reference):
    ext = make_features("clip-vitl14-336", weights=clip_archive, workers=0)
    images = _images()
    x = torch.stack([_authors_preprocess(u8, SIZE) for u8 in images])
    with torch.inference_mode():
        want = reference.encode_image(x, normalize=True).numpy()
    batch = torch.from_numpy(np.stack([crop_resize_pil(u8, SIZE) for u8 in images])).permute(0, 3, 1, 2)
    got = ext.features(ext._prepare(batch, 255.0))
    assert got.shape == (3, 768) and _rel(got, want) < TOL
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)
    # Wrong detail: the projected CLS token without the L2 normalisation.
    with torch.inference_mode():
        raw = reference.encode_image(x).numpy()
    assert _rel(raw, want) > 1e-1


def test_preprocessing_is_the_cmmd_authors(reference):
    """preprocess_clip on uint8 images (NumPy and torch) equals the authors' steps exactly."""
    images = _images()
    want = torch.stack([_authors_preprocess(u8, SIZE) for u8 in images])
    got_np = torch.stack([preprocess_clip(u8, SIZE) for u8 in images])
    assert torch.equal(got_np, want)
    # A float tensor in [0, 1] is rounded to 8 bits first: the same input.
    t = torch.from_numpy(images[0]).permute(2, 0, 1)[None].double() / 255
    assert torch.equal(preprocess_clip(t, SIZE, 1.0), want[:1])


def _openai_transform(size: int):
    """openai/CLIP's ``_transform(n_px)`` (clip/clip.py), the preprocessing ``clip.load`` returns."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    return Compose([Resize(size, interpolation=InterpolationMode.BICUBIC), CenterCrop(size),
                    lambda im: im.convert("RGB"), ToTensor(), Normalize(CLIP_MEAN, CLIP_STD)])


def test_openai_mode_is_clip_loads_transform():
    """Mode ``openai`` against torchvision running OpenAI's transform on the PIL image, exactly."""
    images = _images()
    want = torch.stack([_openai_transform(SIZE)(Image.fromarray(u8)) for u8 in images])
    got = torch.stack([preprocess_clip(u8, SIZE, mode="openai") for u8 in images])
    assert torch.equal(got, want)
    t = torch.from_numpy(np.stack([np.ascontiguousarray(u8[:50, :50]) for u8 in images])).permute(0, 3, 1, 2)
    assert torch.equal(preprocess_clip(t, SIZE, mode="openai"), preprocess_clip(t, SIZE, mode="cmmd"))  # squares


@pytest.mark.parametrize("wrong", ["no crop", "resize then crop (OpenAI's order)", "bilinear"])
def test_each_preprocessing_detail_matters(wrong, reference):
    images = _images()
    good = torch.stack([_authors_preprocess(u8, SIZE) for u8 in images])

    def bad(u8):
        im = Image.fromarray(u8)
        w, h = im.size
        if wrong == "no crop":
            im = im.resize((SIZE, SIZE), Image.BICUBIC)
        elif wrong == "bilinear":
            side = min(w, h)
            top, left = (h - side) // 2, (w - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), Image.BILINEAR)
        else:
            return _openai_transform(SIZE)(im)
        x = np.asarray(im).astype(np.float32) / 255.0
        x = (x - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
        return torch.from_numpy(x).permute(2, 0, 1)

    x_bad = torch.stack([bad(u8) for u8 in images])
    with torch.inference_mode():
        want = reference.encode_image(good, normalize=True)
        moved = reference.encode_image(x_bad, normalize=True)
    assert _rel(moved, want) > 100 * TOL, wrong


@pytest.mark.parametrize("name", list(ARCHS))
def test_real_layouts_match_open_clip_on_the_meta_device(name):
    """OpenAI's ViT-B/32, ViT-L/14 and ViT-L/14@336px image towers as open_clip builds them
    (no weights, no forward): the same tensor names and shapes as ours, and the architecture
    read back from them is the registry's."""
    open_clip = pytest.importorskip("open_clip")
    model_name = {"vitb32": "ViT-B-32", "vitl14": "ViT-L-14", "vitl14-336": "ViT-L-14-336"}[name]
    with torch.device("meta"):
        theirs = open_clip.create_model(model_name, pretrained=None, device="meta").visual.state_dict()
        ours = ClipVisual(ARCHS[name]).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    assert arch_of(theirs) == ARCHS[name]
    if name == "vitl14-336":
        assert tuple(theirs["proj"].shape) == (1024, 768) and tuple(theirs["positional_embedding"].shape) == (577, 1024)


def test_a_file_of_another_interface_or_network_is_refused(clip_archive, tmp_path):
    with pytest.raises(WeightsError, match=r"patch 14, 336 px input and 768-d output; clip-vitb32 has patch 32"):
        load_clip("vitb32", clip_archive)
    with pytest.raises(WeightsError, match="not a CLIP ViT checkpoint"):
        load_clip("vitl14-336", dw.weights_file(tmp_path, dw.SMALL))


def test_text_tower_tensors_are_ignored_and_visual_prefix_optional():
    state = cw.make_state_dict()
    full = build_from_state_dict(state)
    tower = build_from_state_dict(visual_state(state))
    x = torch.stack([preprocess_clip(u8, SIZE) for u8 in _images(2)])
    with torch.inference_mode():
        assert torch.equal(full(x), tower(x))
    assert arch_of(visual_state(state)) == cw.SMALL

"""The weights registry: digests, cache locations, downloads, offline mode, refusal of bad files.

Downloads are tested against an HTTP server on 127.0.0.1 that serves generated files,
including one that cuts the transfer off mid-stream; the registry entries under test point
at it (the real URLs cannot be reached from the test machine, and tests must not use the
network anyway).
"""

from __future__ import annotations

import hashlib
import os
import http.server
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from iqa import weights
from iqa.cli.app import main
from iqa.cli.options import cli_namer
from iqa.errors import WeightsError


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("IQA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("IQA_OFFLINE", raising=False)


# --------------------------------------------------------------------------------------
# A local HTTP server
# --------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[bytes, str]] = {}

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body, mode = self.routes.get(self.path, (b"", "404"))
        if mode == "404":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "cut":
            # Half the promised bytes, then the connection drops.
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server():
    routes: dict[str, tuple[bytes, str]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    finally:
        httpd.shutdown()
        httpd.server_close()


def payload(tmp_path: Path) -> bytes:
    """A real state dict file, so that a downloaded file can also be loaded."""
    path = tmp_path / "payload.pth"
    torch.save({"features.0.weight": torch.arange(4096, dtype=torch.float32)}, path)
    return path.read_bytes()


def register(monkeypatch, url: str, data: bytes, *, prefix: bool = False, name: str = "testnet") -> weights.WeightsFile:
    digest = hashlib.sha256(data).hexdigest()
    entry = weights.WeightsFile(
        name=name, filename=f"{name}-{digest[:8]}.pth", url=url,
        sha256=digest[:8] if prefix else digest, size_mib=len(data) / 2**20, description="test file",
    )
    monkeypatch.setitem(weights.REGISTRY, name, entry)
    return entry


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------


def test_registry_entries():
    reg = weights.REGISTRY
    assert set(reg) >= {"alexnet", "vgg16", "squeezenet1_1", "inception-fid"}
    alex = reg["alexnet"]
    assert alex.filename == "alexnet-owt-7be5be79.pth"
    assert alex.sha256 == "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02"
    assert not alex.hash_is_prefix
    assert reg["vgg16"].url == "https://download.pytorch.org/models/vgg16-397923af.pth"
    assert reg["squeezenet1_1"].url == "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth"
    assert reg["inception-fid"].url == (
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
    )
    for entry in reg.values():
        assert entry.url.startswith("https://") and entry.url.endswith("/" + entry.filename)
        assert entry.licence, entry.name
        if not entry.pinned:  # no published digest (Meta's DINOv2): recorded at first download
            assert entry.name.startswith("dinov2-") and not entry.hash_is_prefix
            continue
        if entry.name.startswith("clip-"):
            # OpenAI's URLs hold the full digest as a folder name, which clip._download checks.
            assert entry.url.split("/")[-2] == entry.sha256 and not entry.hash_is_prefix
            continue
        # The digest (or prefix) agrees with the one in the file name, which torch.hub checks.
        in_name = re.search(r"-([a-f0-9]+)\.", entry.filename).group(1)
        assert entry.sha256.startswith(in_name)
        assert entry.hash_is_prefix == (len(entry.sha256) < 64)
    assert reg["vgg16"].hash_is_prefix and reg["inception-fid"].sha256 == "6726825d"


def test_torchvision_agrees_with_the_registry():
    """The URLs are the ones torchvision itself would download."""
    from torchvision.models import AlexNet_Weights, SqueezeNet1_1_Weights, VGG16_Weights

    assert AlexNet_Weights.IMAGENET1K_V1.url == weights.REGISTRY["alexnet"].url
    assert VGG16_Weights.IMAGENET1K_V1.url == weights.REGISTRY["vgg16"].url
    assert SqueezeNet1_1_Weights.IMAGENET1K_V1.url == weights.REGISTRY["squeezenet1_1"].url


def test_prefix_matching_follows_torch_hub():
    entry = weights.WeightsFile("x", "x-abcd1234.pth", "https://e/x-abcd1234.pth", "abcd1234", None, "")
    assert entry.matches("abcd1234" + "0" * 56)
    assert not entry.matches("abcd1235" + "0" * 56)
    full = weights.WeightsFile("y", "y.pth", "https://e/y.pth", "ab" * 32, None, "")
    assert full.matches("ab" * 32) and not full.matches("ab" * 31 + "ac")


def test_file_sha256(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"iqa" * 1000)
    assert weights.file_sha256(p) == hashlib.sha256(b"iqa" * 1000).hexdigest()
    time.sleep(0.01)
    p.write_bytes(b"changed")  # a new mtime and size: hashed again, not taken from memory
    assert weights.file_sha256(p) == hashlib.sha256(b"changed").hexdigest()



def _digest_in_new_process(path: Path, cache: Path) -> str:
    code = "import sys; from iqa.weights import file_sha256; print(file_sha256(sys.argv[1]))"
    env = {**os.environ, "IQA_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def settled(tmp_path_factory):
    """Files last changed more than two seconds ago (younger ones are hashed every time)."""
    folder = tmp_path_factory.mktemp("settled")
    contents = {"record": b"weights" * 1000, "rewrite": b"A" * 4096, "readonly": b"x" * 100}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    time.sleep(2.1)
    return folder


def test_settled_file_is_not_hashed_again_by_a_new_process(settled, tmp_path):
    import json

    p, cache = settled / "record", tmp_path / "cache"
    true = hashlib.sha256(b"weights" * 1000).hexdigest()
    assert _digest_in_new_process(p, cache) == true
    record_file = cache / "weights" / "digests.json"
    records = json.loads(record_file.read_text())
    assert records[os.path.realpath(p)][-1] == true
    # Proof that the record is used instead of reading the file: a forged record for the same
    # (device, inode, size, mtime, ctime) is believed by the next process.
    records[os.path.realpath(p)][-1] = "0" * 64
    record_file.write_text(json.dumps(records))
    assert _digest_in_new_process(p, cache) == "0" * 64


def test_rewritten_file_with_mtime_restored_is_hashed_again(settled, tmp_path):
    p, cache = settled / "rewrite", tmp_path / "cache"
    assert _digest_in_new_process(p, cache) == hashlib.sha256(b"A" * 4096).hexdigest()
    st = p.stat()
    with open(p, "r+b") as fh:  # same size, same inode, mtime put back: only ctime tells
        fh.write(b"B")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _digest_in_new_process(p, cache) == hashlib.sha256(b"B" + b"A" * 4095).hexdigest()


def test_unwritable_cache_only_costs_a_rehash(settled, tmp_path):
    p, cache = settled / "readonly", tmp_path / "cache"
    cache.write_text("not a folder")  # the record cannot be written: still the right digest
    assert _digest_in_new_process(p, cache) == hashlib.sha256(b"x" * 100).hexdigest()


# --------------------------------------------------------------------------------------
# Cache locations
# --------------------------------------------------------------------------------------


def test_cache_dir_rules(tmp_path, monkeypatch):
    assert weights.cache_dir() == tmp_path / "cache"
    assert weights.weights_dir() == tmp_path / "cache" / "weights"
    assert weights.target_path("alexnet") == tmp_path / "cache" / "weights" / "alexnet-owt-7be5be79.pth"
    monkeypatch.delenv("IQA_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_dir() == tmp_path / "xdg" / "iqa"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid by the XDG specification
    assert weights.cache_dir() == tmp_path / "home" / ".cache" / "iqa"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert weights.cache_dir() == tmp_path / "home" / ".cache" / "iqa"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert weights.cache_dir() == tmp_path / "home" / "Library" / "Caches" / "iqa"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert weights.cache_dir() == tmp_path / "local" / "iqa" / "Cache"


def test_torch_hub_file_is_reused(tmp_path, monkeypatch):
    data = payload(tmp_path)
    entry = register(monkeypatch, "http://127.0.0.1:9/unused", data)
    hub = Path(torch.hub.get_dir()) / "checkpoints" / entry.filename
    assert weights.hub_path("testnet") == hub
    hub.parent.mkdir(parents=True)
    hub.write_bytes(data)
    monkeypatch.setenv("IQA_OFFLINE", "1")
    assert weights.get_path("testnet") == hub
    assert weights.status("testnet", verify=True).source == "torch-hub"
    hub.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # a different file of the same name is not used
    with pytest.raises(WeightsError, match="IQA_OFFLINE=1"):
        weights.get_path("testnet")
    # Listing and verifying speak of the same file: present, and corrupt once hashed.
    assert (weights.status("testnet").state, weights.status("testnet").source) == ("present", "torch-hub")
    st = weights.status("testnet", verify=True)
    assert (st.state, st.source, st.path) == ("corrupt", "torch-hub", hub)


def test_user_path_is_used_as_is(tmp_path):
    p = tmp_path / "mine.pth"
    p.write_bytes(b"anything")
    assert weights.get_path("alexnet", path=p) == p  # not hashed: may be fine-tuned
    with pytest.raises(WeightsError, match="no such file"):
        weights.get_path("alexnet", path=tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="unknown weights 'nope'"):
        weights.get_path("nope")


# --------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------


def test_download_verifies_and_renames(server, tmp_path, monkeypatch):
    base, routes = server
    data = payload(tmp_path)
    routes["/ok.pth"] = (data, "ok")
    register(monkeypatch, base + "/ok.pth", data, prefix=True)
    seen = []
    path = weights.download("testnet", progress=lambda done, total: seen.append((done, total)))
    assert path == weights.target_path("testnet") and path.read_bytes() == data
    assert seen[-1] == (len(data), len(data))
    assert leftovers(path.parent) == [path.name]  # no temporary file left
    state = weights.load_state_dict("testnet")
    assert torch.equal(state["features.0.weight"], torch.arange(4096, dtype=torch.float32))
    # get_path downloads on demand too, into the same place.
    path.unlink()
    assert weights.get_path("testnet") == path and path.read_bytes() == data


def test_download_cut_off_mid_stream_leaves_nothing(server, tmp_path, monkeypatch):
    base, routes = server
    data = payload(tmp_path)
    routes["/cut.pth"] = (data, "cut")
    register(monkeypatch, base + "/cut.pth", data)
    target = weights.target_path("testnet")
    with pytest.raises(WeightsError) as err:
        weights.get_path("testnet")
    msg = str(err.value)
    assert "\n" not in msg and base + "/cut.pth" in msg and str(target) in msg
    assert "stopped after" in msg or "IncompleteRead" in msg  # the transfer, not the digest, failed
    assert not target.exists()
    assert leftovers(target.parent) == []  # neither the target nor a temporary file


def test_download_with_wrong_digest_is_discarded(server, tmp_path, monkeypatch):
    base, routes = server
    data = payload(tmp_path)
    routes["/evil.pth"] = (data + b"tampered", "ok")
    register(monkeypatch, base + "/evil.pth", data)
    with pytest.raises(WeightsError, match="discarded"):
        weights.download("testnet")
    assert leftovers(weights.weights_dir()) == []


def test_connection_failure_is_quick_and_names_the_path(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    register(monkeypatch, f"http://127.0.0.1:{port}/x.pth", b"x")
    start = time.monotonic()
    with pytest.raises(WeightsError) as err:
        weights.get_path("testnet")
    assert time.monotonic() - start < weights.CONNECT_TIMEOUT
    msg = str(err.value)
    assert "cannot download" in msg and str(weights.target_path("testnet")) in msg and "\n" not in msg
    assert leftovers(weights.weights_dir()) == []


def test_offline_never_connects(tmp_path, monkeypatch):
    import urllib.request

    monkeypatch.setenv("IQA_OFFLINE", "1")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    with pytest.raises(WeightsError) as err:
        weights.get_path("alexnet")
    msg = str(err.value)
    assert msg == (
        "alexnet: weights file not found and downloads are off (IQA_OFFLINE=1): download "
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth and save it as "
        f"{tmp_path / 'cache' / 'weights' / 'alexnet-owt-7be5be79.pth'}, or pass a "
        "torchvision-format state dict with weights='PATH'"
    )
    # The command line names the same option as it spells it.
    assert err.value.render(cli_namer()).endswith("state dict with --weights PATH")
    with pytest.raises(WeightsError, match="IQA_OFFLINE=1"):
        weights.download("inception-fid")
    monkeypatch.delenv("IQA_OFFLINE")
    with pytest.raises(WeightsError, match="not allowed"):
        weights.get_path("vgg16", download=False)


def test_import_does_not_touch_the_network():
    """In a fresh interpreter whose sockets refuse to connect, importing works."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network used at import time')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse\n"
        "import iqa.weights, iqa.metrics.lpips, iqa.metrics.lpips_net, iqa.maps, iqa.set_metrics\n"
        "import iqa.features.pipeline, iqa.features.inception, iqa.cli.app, iqa.cli.pair_cmd\n"
        "import iqa.cli.weights_cmd, iqa.cli.sets_cmd, iqa.cli.score_cmd\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout == "ok\n", res.stderr


# --------------------------------------------------------------------------------------
# Refusing bad files
# --------------------------------------------------------------------------------------


def test_corrupt_cached_file_is_refused_never_loaded(tmp_path, monkeypatch):
    data = payload(tmp_path)
    register(monkeypatch, "http://127.0.0.1:9/unused", data)
    target = weights.target_path("testnet")
    target.parent.mkdir(parents=True)
    target.write_bytes(data[:-10] + b"\1" * 10)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a corrupt file was loaded"))
    with pytest.raises(WeightsError) as err:
        weights.load_state_dict("testnet")
    msg = str(err.value)
    assert str(target) in msg and "does not match" in msg and "iqa weights download testnet" in msg
    assert weights.status("testnet", verify=True).state == "corrupt"


def test_prefix_mismatch_is_refused(tmp_path, monkeypatch):
    data = payload(tmp_path)
    entry = register(monkeypatch, "http://127.0.0.1:9/unused", data, prefix=True)
    monkeypatch.setitem(weights.REGISTRY, "testnet", weights.WeightsFile(
        entry.name, entry.filename, entry.url, "00000000", None, ""))
    target = weights.target_path("testnet")
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    with pytest.raises(WeightsError, match="SHA-256 prefix .* does not match 00000000"):
        weights.get_path("testnet")


def test_loading_is_weights_only(tmp_path):
    from fractions import Fraction  # an arbitrary class: weights_only=True refuses to build it

    p = tmp_path / "pickle.pth"
    torch.save({"features.0.weight": torch.zeros(1), "extra": Fraction(1, 3)}, p)
    with pytest.raises(WeightsError, match="holds Python objects besides tensors, which iqa never unpickles") as err:
        weights.load_state_dict("alexnet", path=p)
    assert "weights_only=False" not in str(err.value)  # torch's own text suggests it
    q = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], q)
    with pytest.raises(WeightsError, match="expected a state dict"):
        weights.load_state_dict("alexnet", path=q)


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def test_cli_list_verify_download(server, tmp_path, monkeypatch):
    base, routes = server
    data = payload(tmp_path)
    routes["/ok.pth"] = (data, "ok")
    register(monkeypatch, base + "/ok.pth", data)
    runner = CliRunner()
    res = runner.invoke(main, ["weights", "list"])
    assert res.exit_code == 0
    lines = dict(line.split("\t", 1) for line in res.stdout.splitlines())
    assert lines["alexnet"] == f"missing\t{weights.target_path('alexnet')}\tpinned\tBSD-3-Clause (torchvision)"
    assert lines["dinov2-vitl14"].endswith("\tunpinned\tApache-2.0 (facebookresearch/dinov2: code and model weights)")
    assert set(lines) == set(weights.REGISTRY)

    res = runner.invoke(main, ["weights", "download", "testnet"])
    assert res.exit_code == 0, res.output
    assert res.stdout == f"testnet\t{weights.target_path('testnet')}\n"
    res = runner.invoke(main, ["weights", "verify", "testnet", "alexnet"])
    assert res.exit_code == 0
    assert res.stdout.splitlines() == [
        f"testnet\tok\t{weights.target_path('testnet')}",
        f"alexnet\tmissing\t{weights.target_path('alexnet')}",
    ]
    weights.target_path("testnet").write_bytes(b"broken")
    res = runner.invoke(main, ["weights", "verify", "testnet"])
    assert res.exit_code == 1 and "corrupt" in res.stdout
    # download replaces a file that does not verify.
    res = runner.invoke(main, ["weights", "download", "testnet"])
    assert res.exit_code == 0 and weights.target_path("testnet").read_bytes() == data

    monkeypatch.setenv("IQA_OFFLINE", "1")
    res = runner.invoke(main, ["weights", "download", "alexnet"])
    assert res.exit_code == 1 and "IQA_OFFLINE=1" in res.stderr
    res = runner.invoke(main, ["weights", "download", "nope"])
    assert res.exit_code == 2


def test_unwritable_cache_folder_is_a_weights_error(tmp_path, monkeypatch):
    register(monkeypatch, "http://127.0.0.1:9/never.pth", b"x")
    folder = weights.target_path("testnet").parent
    folder.mkdir(parents=True)
    if os.geteuid() == 0:  # root writes through permission bits: make the refusal explicit
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied", str(folder))

        monkeypatch.setattr(weights.tempfile, "mkstemp", refuse)
    else:
        folder.chmod(0o555)
    try:
        with pytest.raises(WeightsError) as err:
            weights.download("testnet")
    finally:
        folder.chmod(0o755)
    msg = str(err.value)
    assert msg.startswith(f"{folder}: cannot write to the cache folder (Permission denied)")
    assert "IQA_CACHE_DIR" in msg and "\n" not in msg


# --------------------------------------------------------------------------------------
# Unpinned files (no published digest: Meta's DINOv2)
# --------------------------------------------------------------------------------------


def test_unpinned_file_records_its_digest_at_first_download_and_verifies_later(server, tmp_path, monkeypatch):
    base, routes = server
    data = payload(tmp_path)
    routes["/dinov2_test.pth"] = (data, "ok")
    entry = weights.WeightsFile(name="dinov2-test", filename="dinov2_test.pth", url=base + "/dinov2_test.pth",
                                sha256="", size_mib=None, description="test file", licence="Apache-2.0")
    monkeypatch.setitem(weights.REGISTRY, "dinov2-test", entry)
    assert not entry.pinned and not entry.hash_is_prefix
    assert weights.recorded_sha256("dinov2-test") is None
    path = weights.get_path("dinov2-test")
    digest = hashlib.sha256(data).hexdigest()
    assert weights.recorded_sha256("dinov2-test") == digest
    res = CliRunner().invoke(main, ["weights", "list"])
    line = dict(x.split("\t", 1) for x in res.stdout.splitlines())["dinov2-test"]
    assert line == f"ok\t{path}\tunpinned (recorded {digest})\tApache-2.0".replace("ok", "present", 1)
    assert weights.load_state_dict("dinov2-test")["features.0.weight"].numel() == 4096
    path.write_bytes(data[:-1] + b"x")  # the file changes after its digest was recorded
    with pytest.raises(WeightsError, match=r"differs from .* recorded when dinov2-test was first downloaded"):
        weights.get_path("dinov2-test")
    path.unlink()  # a different file at the URL now: refused against the record
    routes["/dinov2_test.pth"] = (data + b"\0", "ok")
    with pytest.raises(WeightsError, match="recorded at the first download"):
        weights.download("dinov2-test")
    assert not path.exists()


def test_record_in_a_folder_others_can_write_is_not_trusted(settled, tmp_path):
    """A digest record in a shared, writable cache could vouch for a replaced file: there the
    file is hashed (a forged record is ignored)."""
    import json

    p, cache = settled / "record", tmp_path / "cache"
    true = hashlib.sha256(b"weights" * 1000).hexdigest()
    _digest_in_new_process(p, cache)
    record_file = cache / "weights" / "digests.json"
    records = json.loads(record_file.read_text())
    records[os.path.realpath(p)][-1] = "0" * 64
    record_file.write_text(json.dumps(records))
    os.chmod(record_file.parent, 0o777)
    assert _digest_in_new_process(p, cache) == true
    os.chmod(record_file.parent, 0o755)
    os.chmod(record_file, 0o666)
    assert _digest_in_new_process(p, cache) == true

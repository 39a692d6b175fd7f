"""Published weights by name (`temporal_shift.hub.weights`): the registry, the shipped class
names, the cached download (file:// and a loopback HTTP server: no test reaches the
network) and ``--weights NAME`` in the commands."""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import http.server
import os
import re
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import random_state
from temporal_shift.checkpoint.format import CheckpointError, CheckpointNotFoundError, save_checkpoint
from temporal_shift.checkpoint.loading import load_checkpoint
from temporal_shift.data import transforms
from temporal_shift.engine.evaluate import EvalProtocol
from temporal_shift.hub.build import build_model, load_model
from temporal_shift.hub.download import DownloadError, sha256_file
from temporal_shift.hub.published import DATASETS, PROTOCOL_CLIPS, PublishedWeights, class_names
from temporal_shift.hub.weights import cached_path, download_weights, get_weights, registry
from temporal_shift.models.backbones import BACKBONES
from temporal_shift.models.config import ModelConfig

pytestmark = pytest.mark.usefixtures("one_thread")

# reference-release key layout (fixtures/reference_release) of each kind of published model
LAYOUT_OF = {
    ("resnet50", True, False): "resnet50_blockres",
    ("resnet50", True, True): "resnet50_blockres_nl",
    ("resnet101", True, False): "resnet101_blockres",
    ("mobilenet_v2", True, False): "mobilenetv2",
}


def release_shapes(layouts: dict, entry: PublishedWeights, *, num_classes: int | None = None) -> dict[str, list[int]]:
    """{key: shape} of the reference release's checkpoint of ``entry`` (head resized)."""
    shapes = dict(layouts[LAYOUT_OF[(entry.arch, True, entry.model.non_local)]])
    if not entry.shift:  # the release's TSN has no shift wrappers
        shapes = {k.replace(".net.", "."): v for k, v in shapes.items()}
    k = num_classes or entry.num_classes
    shapes["new_fc.weight"] = [k, shapes["new_fc.weight"][1]]
    shapes["new_fc.bias"] = [k]
    return shapes


def write_release_file(
    path: Path, layouts: dict, entry: PublishedWeights, *, num_classes: int | None = None, empty: bool = False
) -> Path:
    """A checkpoint of ``entry`` as the release saves it (online demo: bare features/classifier keys)."""
    shapes = release_shapes(layouts, entry, num_classes=num_classes)
    state = {k: torch.zeros(s) for k, s in shapes.items()} if empty else random_state(shapes)
    if entry.layout == "online-demo":
        bare = {}
        for key, value in state.items():
            key = key.removeprefix("base_model.").replace(".net.", ".")
            bare[key.replace("new_fc.", "classifier.")] = value
        data = bare
    else:
        data = {
            "epoch": 50,
            "arch": entry.arch.replace("_", ""),
            "best_prec1": 70.0,
            "state_dict": {f"module.{k}": v for k, v in state.items()},
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return path


def small_entry(url: str, **changes) -> PublishedWeights:
    """A registry entry of our own for the download tests: TSM-MobileNetV2 on Jester (27 classes)."""
    model = dict(arch="mobilenet_v2", num_classes=27, n_segment=8)
    model.update({k: changes.pop(k) for k in list(changes) if k in ModelConfig.field_names()})
    fields = dict(
        name="test_tsm_mobilenetv2_jester_8f",
        url=url,
        model=ModelConfig(**model),
        dataset="jester",
        accuracies=(),
        gmacs=2.4,
        sources=(("url", "this test"),),
    )
    fields.update(changes)
    return PublishedWeights(**fields)


@pytest.fixture(scope="module")
def jester_file(tmp_path_factory, release_layouts) -> Path:
    path = tmp_path_factory.mktemp("published") / "tsm_mobilenetv2_jester.pth"
    return write_release_file(path, release_layouts, small_entry("file:///x/tsm_mobilenetv2_jester.pth"))


# --- the registry and the class names ---------------------------------------------------


def test_every_registry_entry_is_complete_and_consistent():
    entries = registry()
    assert len(entries) >= 12
    for name, w in entries.items():
        assert name == w.name and re.fullmatch(r"[a-z0-9_]+", name), name
        assert w.url.startswith("https://") and w.file_name.endswith((".pth", ".pth.tar")), name
        assert all(m.startswith("https://") and m.endswith(w.file_name) for m in w.mirrors), name
        assert w.arch in BACKBONES and w.dataset in DATASETS, name
        assert len(w.class_names()) == w.num_classes == DATASETS[w.dataset].num_classes, name
        assert w.fold_div == 8 and w.model.place == "blockres" and not w.model.temporal_pool, name
        assert w.mode == ("causal" if name.startswith("online_") else "bidirectional"), name
        # the name says what the file holds
        if not name.startswith("online_"):
            assert f"_{w.n_segment}f" in name, name
            assert name.startswith("tsm_" if w.shift else "tsn_"), name
            assert {"resnet50": "_r50_", "resnet101": "_r101_", "mobilenet_v2": "_mobilenetv2_"}[w.arch] in name
            assert w.dataset.replace("_", "") in name.replace("kinetics400", "kinetics400")
            # and so does the file name the release gave it (its training flags)
            stem = w.file_name
            assert f"segment{w.trained_n_segment or w.n_segment}_" in stem, name
            assert ("shift8_blockres" in stem) == w.shift, name
            assert w.arch.replace("_", "") in stem and stem.endswith("_nl.pth") == w.model.non_local, name
            assert ("_dense" in stem) == (w.sampling == "dense"), name
            assert w.accuracies and 0 < w.top1 < 100, name
        assert ("_nl" in name) == w.model.non_local, name
        for acc in w.accuracies:
            assert acc.clips in PROTOCOL_CLIPS and acc.crops in (1, 3, 5, 10) and acc.protocol, name
            EvalProtocol.of(acc)  # a valid evaluate.EvalProtocol
        # input: what our transforms do (ImageNet statistics, a 224 crop of a 256 short side)
        assert (w.mean, w.std) == (transforms.IMAGENET_MEAN, transforms.IMAGENET_STD), name
        assert (w.input_size, w.scale_size) == (224, 256), name
        facts = dict(w.sources)
        assert any("url" in fact for fact in facts) and all(facts.values()), name
        assert w.accuracies == () or any("accuracy" in fact for fact in facts), name
        assert w.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", w.sha256), name
    assert set(entries) >= {
        "tsm_r50_kinetics400_8f",
        "tsm_r50_somethingv2_8f",
        "tsm_mobilenetv2_kinetics400_8f",
        "tsm_r50_kinetics400_8f_nl",
        "tsn_r50_kinetics400_8f",
        "online_tsm_mobilenetv2_jester",
    }


def test_every_registry_entry_imports_from_the_release_layout(release_layouts):
    """Each entry's settings are what our importer infers from a checkpoint of the release's
    layout for that model (built with empty tensors: only the keys and shapes matter)."""
    from temporal_shift.checkpoint.importers import model_from_data

    kinds = {}
    for w in registry().values():  # one of each kind of file (the 8f and 16f files are alike)
        kinds.setdefault((w.layout, w.arch, w.shift, w.model.non_local, w.num_classes, w.mode), []).append(w)
    for first, *others in kinds.values():
        for w in others:
            assert w.model_options() | {"n_segment": 0} == first.model_options() | {"n_segment": 0}
    for w in (group[0] for group in kinds.values()):
        path_like = f"{w.name} layout"
        shapes = release_shapes(release_layouts, w)
        if w.layout == "online-demo":
            data = {
                k.removeprefix("base_model.").replace(".net.", ".").replace("new_fc.", "classifier."): torch.empty(s)
                for k, s in shapes.items()
            }
        else:
            data = {"state_dict": {k: torch.empty(s) for k, s in shapes.items()}}
        model, kind = model_from_data(data, source=path_like, n_segment=w.n_segment, fold_div=w.fold_div)
        assert kind == w.layout, w.name
        w.check_model(model, source=path_like)
        assert model.config.n_segment == w.n_segment


def test_registry_gmacs_are_measured():
    from temporal_shift.apps.bench.overhead import count_flops

    w = get_weights("tsm_mobilenetv2_kinetics400_8f")
    model = build_model(**w.model_options()).eval()
    flops = count_flops(model, torch.zeros(1, w.n_segment, 3, w.input_size, w.input_size))
    assert flops / 2e9 == pytest.approx(w.gmacs, abs=0.05)


@pytest.mark.slow
def test_every_registry_gmacs_figure_is_measured():
    from temporal_shift.apps.bench.overhead import count_flops

    for w in registry().values():
        model = build_model(**w.model_options()).eval()
        flops = count_flops(model, torch.zeros(1, w.n_segment, 3, w.input_size, w.input_size))
        assert flops / 2e9 == pytest.approx(w.gmacs, abs=0.05), w.name


def test_class_names_ship_in_the_reference_label_order():
    for name, info in DATASETS.items():
        names = class_names(name)
        assert len(names) == len(set(names)) == info.num_classes, name
    kinetics = class_names("kinetics400")
    assert kinetics == sorted(kinetics) and kinetics[:2] == ["abseiling", "air drumming"]
    assert kinetics[-1] == "zumba"
    # V1: the release sorts the labels file; V2: the labels JSON order, which is the same
    assert class_names("something_v1") == sorted(class_names("something_v1")) == class_names("something_v2")
    jester = class_names("jester")
    assert jester == sorted(jester) and jester[0] == "Doing other things" and jester[2] == "No gesture"
    ucf = class_names("ucf101")
    assert ucf[0] == "ApplyEyeMakeup" and ucf[-1] == "YoYo" and ucf == sorted(ucf, key=str.lower)
    hmdb = class_names("hmdb51")
    assert hmdb[0] == "brush_hair" and hmdb.index("kick_ball") == hmdb.index("kick") - 1
    with pytest.raises(ValueError, match="no class names for dataset 'imagenet'"):
        class_names("imagenet")


def test_unknown_name_suggests_close_ones():
    with pytest.raises(
        ValueError, match=r"unknown published weights 'tsm_r50_kinetics_8f'; did you mean tsm_r50_kinetics400_8f"
    ):
        get_weights("tsm_r50_kinetics_8f")


# --- download, cache, verification ------------------------------------------------------


def test_download_from_file_url_into_the_cache_with_progress_and_checksum(tmp_path, jester_file, capsys):
    entry = small_entry(jester_file.as_uri())
    cache = tmp_path / "cache"
    path = download_weights(entry, cache_dir=cache, backoff=0)
    assert path == cache / "tsm_mobilenetv2_jester.pth" == cached_path(entry, cache_dir=cache)
    assert path.read_bytes() == jester_file.read_bytes()
    err = capsys.readouterr().err
    assert "tsm_mobilenetv2_jester.pth" in err and "100%" in err  # the progress bar
    record = path.with_name(path.name + ".sha256")
    assert record.read_text().strip() == hashlib.sha256(jester_file.read_bytes()).hexdigest()
    assert sorted(p.name for p in cache.iterdir()) == [path.name, record.name]  # no .part left
    # reused: the same file, without any transfer (the URL is gone)
    gone = dataclasses.replace(entry, url=(tmp_path / "gone" / entry.file_name).as_uri())
    assert download_weights(gone, cache_dir=cache, progress=False) == path
    assert capsys.readouterr().err == ""
    # a cached file that changed is refused, naming the file and the fix
    with path.open("r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(CheckpointError, match=r"cached file changed since it was first verified .*tsm weights get"):
        download_weights(entry, cache_dir=cache)


def test_a_recorded_checksum_is_checked(tmp_path, jester_file):
    good = hashlib.sha256(jester_file.read_bytes()).hexdigest()
    entry = small_entry(jester_file.as_uri(), sha256=good)
    assert download_weights(entry, cache_dir=tmp_path / "a", progress=False).is_file()
    bad = dataclasses.replace(entry, sha256="0" * 64)
    with pytest.raises(CheckpointError, match=f"sha256 {good} does not match the published 0000"):
        download_weights(bad, cache_dir=tmp_path / "b", progress=False)
    assert list((tmp_path / "b").iterdir()) == []


def test_wrong_layouts_are_refused_and_not_cached(tmp_path, release_layouts):
    cache = tmp_path / "cache"
    # a web page saved under the checkpoint's name (a moved link)
    page = tmp_path / "page" / "tsm_mobilenetv2_jester.pth"
    page.parent.mkdir()
    page.write_text("<html><body>This page has moved</body></html>")
    with pytest.raises(CheckpointError, match=r"page/tsm_mobilenetv2_jester.pth: not a checkpoint: a text file"):
        download_weights(small_entry(page.as_uri()), cache_dir=cache, progress=False)
    # a checkpoint of another model: 10 classes where Jester has 27
    other = write_release_file(
        tmp_path / "ten" / "tsm_mobilenetv2_jester.pth",
        release_layouts,
        small_entry("file:///unused"),
        num_classes=10,
        empty=True,
    )
    with pytest.raises(
        CheckpointError,
        match=r"holds a model with num_classes=10, but test_tsm_mobilenetv2_jester_8f "
        r"is published with num_classes=27",
    ):
        download_weights(small_entry(other.as_uri()), cache_dir=cache, progress=False)
    # our own format where the release's is expected
    ours = save_checkpoint(
        build_model("mobilenet_v2", num_classes=27), tmp_path / "ours" / "tsm_mobilenetv2_jester.pth"
    )
    with pytest.raises(CheckpointError, match=r"a temporal-shift checkpoint, but .* is published as reference"):
        download_weights(small_entry(ours.as_uri()), cache_dir=cache, progress=False)
    assert list(cache.iterdir()) == []


def test_a_file_put_in_the_cache_by_hand_is_verified_then_recorded(tmp_path, jester_file, release_layouts):
    cache = tmp_path / "cache"
    entry = small_entry((tmp_path / "offline" / "tsm_mobilenetv2_jester.pth").as_uri())  # never fetched
    placed = cache / entry.file_name
    placed.parent.mkdir()
    placed.write_bytes(jester_file.read_bytes())
    assert download_weights(entry, cache_dir=cache) == placed
    assert (cache / f"{entry.file_name}.sha256").read_text().strip() == sha256_file(placed)
    wrong = cache / "other" / entry.file_name
    write_release_file(wrong, release_layouts, entry, num_classes=5, empty=True)
    with pytest.raises(CheckpointError, match=r"other/tsm_mobilenetv2_jester.pth: holds a model with num_classes=5"):
        download_weights(entry, cache_dir=cache / "other")


class _Server:
    """A loopback HTTP server for one file: honours Range (and If-Range, unless told not to),
    names the file's version (``validator``: "etag", "last-modified" or None), can cut the
    first responses short, change the file after the first response (``then``: the upstream
    file changed), send it slowly (``chunk_delay`` per 64 KiB) or stream ``endless`` bytes
    without announcing a length."""

    def __init__(
        self,
        payload: bytes,
        *,
        cut: int = 0,
        cut_at: float = 0.5,
        missing: tuple[str, ...] = (),
        validator: str | None = None,
        if_range: bool = True,
        then: bytes | None = None,
        chunk_delay: float = 0.0,
        endless: int = 0,
        length: int | None = None,
    ):
        self.payload, self.cut, self.cut_at, self.missing = payload, cut, cut_at, missing
        self.validator, self.if_range, self.then = validator, if_range, then
        self.chunk_delay, self.endless, self.length = chunk_delay, endless, length
        self.version = 0
        self.requests: list[tuple[str, str | None]] = []
        self.if_ranges: list[str | None] = []
        self.sent = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                server.if_ranges.append(self.headers.get("If-Range"))
                try:
                    self._answer()
                finally:
                    if server.then is not None:  # the upstream file changes after the first answer
                        server.payload, server.then = server.then, None
                        server.version += 1

            def _answer(self):
                if self.path in server.missing:
                    self.send_error(404)
                    return
                if server.endless:
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for _ in range(server.endless // 65536):
                        self.wfile.write(bytes(65536))
                        server.sent += 65536
                    self.close_connection = True
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                asked = self.headers.get("If-Range")
                if match and asked is not None and server.if_range and asked != server.current_validator():
                    match = None  # another version than the client's part: the whole file (RFC 9110)
                if match:
                    start = int(match.group(1))
                body = server.payload[start:]
                self.send_response(206 if match else 200)
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                if server.validator == "etag":
                    self.send_header("ETag", server.current_validator())
                elif server.validator == "last-modified":
                    self.send_header("Last-Modified", server.current_validator())
                self.send_header("Content-Length", str(server.length if server.length is not None else len(body)))
                self.end_headers()
                if server.cut > 0:  # announce everything, send part, hang up
                    server.cut -= 1
                    self.wfile.write(body[: int(len(body) * server.cut_at)])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                for i in range(0, len(body), 65536):
                    self.wfile.write(body[i : i + 65536])
                    if server.chunk_delay:
                        self.wfile.flush()
                        time.sleep(server.chunk_delay)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def current_validator(self) -> str:
        if self.validator == "etag":
            return '"' + hashlib.sha256(self.payload).hexdigest()[:16] + '"'
        return email.utils.formatdate(1_700_000_000 + 3600 * self.version, usegmt=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_broken_transfer_resumes_with_a_range_request(tmp_path, jester_file, capsys):
    payload = jester_file.read_bytes()
    with _Server(payload, cut=1, validator="etag") as server:
        entry = small_entry(server.url("/models/tsm_mobilenetv2_jester.pth"))
        path = download_weights(entry, cache_dir=tmp_path, backoff=0)
    assert path.read_bytes() == payload
    (first, no_range), (second, resumed) = server.requests
    assert first == second == "/models/tsm_mobilenetv2_jester.pth" and no_range is None
    assert resumed == f"bytes={len(payload) // 2}-"  # only the rest was asked for
    assert server.if_ranges == [None, server.current_validator()]  # ... of the same version
    assert "tsm_mobilenetv2_jester.pth" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, f"{path.name}.sha256"]


def test_a_broken_transfer_without_a_version_starts_over(tmp_path, jester_file):
    """A server that names no version (no ETag, no Last-Modified): the rest of a partial file
    may belong to another file, so the retry fetches it whole."""
    payload = jester_file.read_bytes()
    with _Server(payload, cut=1) as server:
        path = download_weights(
            small_entry(server.url("/tsm_mobilenetv2_jester.pth")), cache_dir=tmp_path, backoff=0, progress=False
        )
    assert path.read_bytes() == payload
    assert [r for _, r in server.requests] == [None, None]


@pytest.fixture(scope="module")
def jester_file_v2(tmp_path_factory, release_layouts, jester_file) -> Path:
    """Another version of the published file: the same layout and length, other weights."""
    path = tmp_path_factory.mktemp("published_v2") / "tsm_mobilenetv2_jester.pth"
    entry = small_entry("file:///x/tsm_mobilenetv2_jester.pth")
    torch.manual_seed(1)
    write_release_file(path, release_layouts, entry, empty=True)
    assert path.stat().st_size == jester_file.stat().st_size and path.read_bytes() != jester_file.read_bytes()
    return path


@pytest.mark.parametrize("validator,if_range", [("etag", True), ("last-modified", True), ("etag", False)])
def test_a_file_changed_upstream_is_never_stitched_from_two_versions(
    tmp_path, jester_file, jester_file_v2, validator, if_range
):
    """The first transfer breaks half-way through version 1; the upstream file is then
    replaced by version 2 (same length). The download must be version 2 whole, with its
    checksum recorded: If-Range makes an RFC server send it whole; a server that ignores
    If-Range but names the new version on its 206 answer is caught by the client."""
    v1, v2 = jester_file.read_bytes(), jester_file_v2.read_bytes()
    with _Server(v1, cut=1, validator=validator, if_range=if_range, then=v2) as server:
        path = download_weights(
            small_entry(server.url("/tsm_mobilenetv2_jester.pth")), cache_dir=tmp_path, backoff=0, progress=False
        )
    assert path.read_bytes() == v2
    assert path.with_name(path.name + ".sha256").read_text().strip() == hashlib.sha256(v2).hexdigest()


def test_a_mirror_never_resumes_the_primary_urls_part(tmp_path, jester_file, jester_file_v2):
    """The URL breaks half-way; the mirror holds another file of the same length: it is
    fetched whole from the mirror, not appended to the URL's half."""
    v1, v2 = jester_file.read_bytes(), jester_file_v2.read_bytes()
    with _Server(v1, cut=1, validator="etag") as primary, _Server(v2, validator="etag") as mirror:
        entry = small_entry(
            primary.url("/tsm_mobilenetv2_jester.pth"), mirrors=(mirror.url("/tsm_mobilenetv2_jester.pth"),)
        )
        path = download_weights(entry, cache_dir=tmp_path, retries=0, backoff=0, progress=False)
    assert path.read_bytes() == v2
    assert mirror.requests == [("/tsm_mobilenetv2_jester.pth", None)]


def test_concurrent_downloads_of_the_same_file_both_succeed_and_one_transfers(tmp_path, jester_file, capsys):
    """Two downloads of one entry into one cache at once (two processes in real life; two
    threads here, which the lock keeps apart the same way): one transfers, the other waits
    for it and then uses the verified file."""
    payload = jester_file.read_bytes()
    with _Server(payload, validator="etag", chunk_delay=0.01) as server:  # ~1.4 s for the file
        entry = small_entry(server.url("/tsm_mobilenetv2_jester.pth"))
        results: list[Path | BaseException] = []

        def get():
            try:
                results.append(download_weights(entry, cache_dir=tmp_path, backoff=0))
            except BaseException as exc:  # reported below
                results.append(exc)

        threads = [threading.Thread(target=get) for _ in range(2)]
        threads[0].start()
        time.sleep(0.3)  # the first is transferring
        threads[1].start()
        for t in threads:
            t.join(60)
    assert results == [tmp_path / entry.file_name] * 2, results
    assert len(server.requests) == 1
    assert (tmp_path / entry.file_name).read_bytes() == payload
    assert "waiting for another download" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [entry.file_name, f"{entry.file_name}.sha256"]  # no lock left


def test_file_names_stay_inside_the_cache(tmp_path, jester_file):
    from temporal_shift.hub.download import safe_file_name

    assert safe_file_name("https://x/models/a.pth", fallback="f") == "a.pth"
    assert safe_file_name("https://x/models/", fallback="name.pth") == "name.pth"
    assert safe_file_name("https://x", fallback="name.pth") == "name.pth"
    for url in ("https://x/..", "https://x/%2e%2e", "https://x/a/%2E", "https://x/..%2f..%2fetc%2fpasswd"):
        name = safe_file_name(url, fallback="name.pth")
        assert "/" not in name and not name.startswith("."), (url, name)
    assert safe_file_name("https://x/a%20b%3F.pth?x=1", fallback="f") == "a_b_.pth"
    cache = tmp_path / "cache"
    with _Server(jester_file.read_bytes()) as server:
        entry = small_entry(server.url("/"))  # a URL ending in /: no file name
        assert entry.file_name == "test_tsm_mobilenetv2_jester_8f.pth"
        path = download_weights(entry, cache_dir=cache, backoff=0, progress=False)
    assert path.parent == cache and path.read_bytes() == jester_file.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing beside the cache


def test_published_entries_bound_their_file_size():
    entry = get_weights("online_tsm_mobilenetv2_jester")
    weights = 2.2e6 * 4  # MobileNetV2's parameters
    assert 3 * weights < entry.max_bytes < 3 * weights + (24 << 20)
    assert dataclasses.replace(entry, max_file_bytes=123).max_bytes == 123


def test_a_download_past_the_size_cap_is_stopped(tmp_path, jester_file):
    """A file bigger than the entry's bound: refused at once when the length is announced,
    stopped at the bound when it is not (an endless stream), and, for a file: URL that reads
    more than its announced size (a pipe, /dev/zero), stopped at that size."""
    cap = 1 << 20
    with _Server(jester_file.read_bytes()) as announced:
        entry = small_entry(announced.url("/tsm_mobilenetv2_jester.pth"), max_file_bytes=cap)
        with pytest.raises(DownloadError) as info:
            download_weights(entry, cache_dir=tmp_path / "a", backoff=0, progress=False)
    assert len(announced.requests) == 1  # no retry of a refusal
    message = str(info.value)
    assert "\n" not in message and f"more than the {cap} bytes test_tsm_mobilenetv2_jester_8f can have" in message
    with _Server(b"", endless=8 << 20) as endless:
        entry = small_entry(endless.url("/tsm_mobilenetv2_jester.pth"), max_file_bytes=cap)
        with pytest.raises(DownloadError, match=f"more than the {cap} bytes"):
            download_weights(entry, cache_dir=tmp_path / "b", backoff=0, progress=False)
    assert list((tmp_path / "b").iterdir()) == []
    # a file: URL whose reads do not end where its size says (what file:///dev/zero does)
    pipe = tmp_path / "fifo" / "tsm_mobilenetv2_jester.pth"
    pipe.parent.mkdir()
    os.mkfifo(pipe)

    def feed():
        try:
            with open(pipe, "wb") as f:
                for _ in range(64):
                    f.write(bytes(1 << 20))
        except BrokenPipeError:
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    with pytest.raises(DownloadError, match="more than the 0 bytes announced"):
        download_weights(small_entry(pipe.as_uri()), cache_dir=tmp_path / "c", retries=0, progress=False)
    feeder.join(10)
    assert list((tmp_path / "c").iterdir()) == []


def test_a_truncated_download_is_refused_after_the_retries(tmp_path, jester_file):
    with _Server(jester_file.read_bytes(), cut=100, cut_at=0.3) as server:
        entry = small_entry(server.url("/tsm_mobilenetv2_jester.pth"))
        with pytest.raises(DownloadError) as info:
            download_weights(entry, cache_dir=tmp_path, retries=2, backoff=0, progress=False)
    assert len(server.requests) == 3
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot download test_tsm_mobilenetv2_jester_8f from {entry.url} (")
    assert "--checkpoint PATH --segments 8" in message and "tsm import PATH" in message
    assert list(tmp_path.iterdir()) == []  # nothing half-written is kept


def test_a_mirror_is_used_when_the_url_is_gone(tmp_path, jester_file):
    with _Server(jester_file.read_bytes(), missing=("/moved/tsm_mobilenetv2_jester.pth",)) as server:
        entry = small_entry(
            server.url("/moved/tsm_mobilenetv2_jester.pth"), mirrors=(server.url("/mirror/tsm_mobilenetv2_jester.pth"),)
        )
        path = download_weights(entry, cache_dir=tmp_path, backoff=0, progress=False)
    assert path.read_bytes() == jester_file.read_bytes()
    # a 404 is not retried: one request to the URL, one to the mirror
    assert [p for p, _ in server.requests] == [
        "/moved/tsm_mobilenetv2_jester.pth",
        "/mirror/tsm_mobilenetv2_jester.pth",
    ]


def test_offline_is_one_line_naming_the_url_and_the_other_ways(tmp_path):
    with _Server(b"") as server:
        url = server.url("/tsm_mobilenetv2_jester.pth")
    # the server is gone: connection refused, as with no network
    entry = small_entry(url)
    with pytest.raises(DownloadError) as info:
        download_weights(entry, cache_dir=tmp_path, retries=1, backoff=0, progress=False)
    message = str(info.value)
    assert "\n" not in message and url in message and "refused" in message.lower()
    assert "--checkpoint PATH" in message and "tsm import PATH" in message
    assert str(tmp_path / "tsm_mobilenetv2_jester.pth") in message


# --- loading published weights -----------------------------------------------------------


def test_load_checkpoint_of_an_entry_carries_classes_and_input(tmp_path, jester_file):
    entry = small_entry(jester_file.as_uri())
    loaded = load_checkpoint(entry, cache_dir=tmp_path, progress=False)
    assert loaded.published is entry and loaded.format == "reference"
    assert loaded.class_names == class_names("jester") and loaded.num_classes == 27
    assert loaded.n_segment == 8 and loaded.config.shift and loaded.config.arch == "mobilenet_v2"
    assert (loaded.input_size, loaded.scale_size, loaded.normalize) == (224, 256, True)
    assert loaded.path == tmp_path / "tsm_mobilenetv2_jester.pth"
    assert not loaded.model.training
    # another T for the same weights; fold_div is the entry's
    assert load_checkpoint(entry, n_segment=16, cache_dir=tmp_path).n_segment == 16
    with pytest.raises(ValueError, match="fold_div=4 was given but the weights were trained with fold_div=8"):
        load_checkpoint(entry, fold_div=4, cache_dir=tmp_path)


def test_plain_paths_never_download(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointNotFoundError, match="checkpoint not found: tsm_r50_kinetics400_8f"):
        load_checkpoint("tsm_r50_kinetics400_8f")
    with pytest.raises(CheckpointNotFoundError, match="checkpoint not found: no_such_weights"):
        load_model("no_such_weights")


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache for the test ($TORCH_HOME, read by torch.hub.get_dir())."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home / "hub" / "checkpoints"


def test_load_model_by_published_name(torch_home, release_layouts, tmp_path, monkeypatch):
    entry = get_weights("online_tsm_mobilenetv2_jester")
    write_release_file(torch_home / entry.file_name, release_layouts, entry)  # obtained by other means
    monkeypatch.chdir(tmp_path)
    model = load_model("online_tsm_mobilenetv2_jester")
    assert model.config.mode == "causal" and model.config.num_classes == 27 and not model.training
    # an existing file of that name wins over the registry
    save_checkpoint(build_model("resnet18", num_classes=3, n_segment=4), tmp_path / "online_tsm_mobilenetv2_jester")
    assert load_model("online_tsm_mobilenetv2_jester").config.arch == "resnet18"


# --- the command line ---------------------------------------------------------------------


def test_cli_weights_list_and_get(run_cli, torch_home, release_layouts):
    listed = run_cli(["weights", "list"])
    assert listed.code == 0
    header, *rows = listed.out.splitlines()
    assert header.split()[:5] == ["name", "dataset", "frames", "GMACs", "top-1"]
    assert {row.split()[0] for row in rows} == set(registry())
    assert re.search(r"^tsm_r50_kinetics400_8f\s+Kinetics-400\s+8\s+32\.7\s+71\.2", listed.out, re.M)
    entry = get_weights("online_tsm_mobilenetv2_jester")
    placed = write_release_file(torch_home / entry.file_name, release_layouts, entry)
    got = run_cli(["weights", "get", "online_tsm_mobilenetv2_jester"])
    assert (
        got.code == 0 and got.out.strip() == f"online_tsm_mobilenetv2_jester: {placed} (sha256 {sha256_file(placed)})"
    )
    bad = run_cli(["weights", "get", "tsm_r50_kinetics"])
    assert bad.code == 2 and bad.err.count("\n") == 1
    assert bad.err.startswith("tsm weights: error: unknown published weights 'tsm_r50_kinetics'; did you mean")


# --- --weights NAME wherever a checkpoint is taken --------------------------------------------


def fetch_into_cache(name: str, cache: Path, layouts: dict, tmp_path: Path) -> PublishedWeights:
    """Put a file of the registry entry ``name`` into the hub cache the way `tsm weights get`
    would, but from a file:// copy of it (the test's stand-in for the real URL)."""
    entry = get_weights(name)
    served = write_release_file(tmp_path / "served" / entry.file_name, layouts, entry)
    download_weights(dataclasses.replace(entry, url=served.as_uri(), mirrors=()), cache_dir=cache, progress=False)
    return entry


def test_build_model_with_published_weights(torch_home, release_layouts, tmp_path):
    entry = fetch_into_cache("tsm_mobilenetv2_kinetics400_8f", torch_home, release_layouts, tmp_path)
    reference = load_checkpoint(entry).model.state_dict()
    model = build_model(
        "mobilenet_v2", num_classes=400, weights="tsm_mobilenetv2_kinetics400_8f", n_segment=16, dropout=0.8
    )
    assert model.config.n_segment == 16 and model.config.dropout == 0.8 and model.config.shift
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
    with pytest.raises(
        ValueError,
        match="build_model: arch='resnet50', but tsm_mobilenetv2_kinetics400_8f holds a model with arch='mobilenet_v2'",
    ):
        build_model("resnet50", num_classes=400, weights=entry)
    with pytest.raises(ValueError, match=r"build_model: num_classes=10, but .* num_classes=400"):
        build_model("mobilenet_v2", num_classes=10, weights=entry)
    with pytest.raises(ValueError, match="build_model: shift=False"):
        build_model("mobilenet_v2", num_classes=400, weights=entry, shift=False)


def test_cli_predict_with_published_weights(run_cli, torch_home, release_layouts, tmp_path, make_video):
    fetch_into_cache("tsm_mobilenetv2_kinetics400_8f", torch_home, release_layouts, tmp_path)
    clip = make_video(tmp_path / "clip.mp4", 24)
    result = run_cli(["predict", clip, "--weights", "tsm_mobilenetv2_kinetics400_8f", "--topk", "3"])
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    kinetics = set(class_names("kinetics400"))
    assert len(lines) == 3 and all(line.rsplit(None, 1)[0].strip() in kinetics for line in lines)
    as_json = run_cli(["predict", clip, "--weights", "tsm_mobilenetv2_kinetics400_8f", "--json"])
    assert '"checkpoint": "tsm_mobilenetv2_kinetics400_8f"' in as_json.out
    with pytest.raises(SystemExit) as both:  # argparse: one of the two
        run_cli(["predict", clip, "--weights", "tsm_mobilenetv2_kinetics400_8f", "--checkpoint", clip])
    assert both.value.code == 2


def test_cli_test_export_and_stream_with_published_weights(
    run_cli, torch_home, release_layouts, tmp_path, make_frames, make_video
):
    fetch_into_cache("tsm_mobilenetv2_kinetics400_8f", torch_home, release_layouts, tmp_path)
    data = tmp_path / "data"
    for i in range(2):
        make_frames(data, f"v{i}", 12)
    (data / "list.txt").write_text("v0 12 3\nv1 12 399\n")
    tested = run_cli(
        [
            "test",
            "--weights",
            "tsm_mobilenetv2_kinetics400_8f",
            "--data",
            data,
            "--list",
            "list.txt",
            "--workers",
            "0",
            "--no-progress",
            "--size",
            "112",
            "--scale-size",
            "128",
        ]
    )
    assert tested.code == 0, tested.err
    assert "videos: 2" in tested.out and "top-1" in tested.out and "TSM_kinetics_RGB_mobilenetv2" in tested.out
    exported = run_cli(
        ["export", "--weights", "tsm_mobilenetv2_kinetics400_8f", "--out", tmp_path / "m.onnx", "--size", "64"]
    )
    assert exported.code == 0, exported.err
    assert (tmp_path / "m.onnx").is_file() and "max relative difference" in exported.out
    neither = run_cli(["export", "--out", tmp_path / "x.onnx"])
    assert neither.code == 2 and "give CHECKPOINT or --weights NAME" in neither.err
    # the online model streams frame by frame and names the Jester gestures
    fetch_into_cache("online_tsm_mobilenetv2_jester", torch_home, release_layouts, tmp_path)
    video = make_video(tmp_path / "gesture.mp4", 6)
    streamed = run_cli(["stream", video, "--weights", "online_tsm_mobilenetv2_jester", "--size", "96", "--topk", "2"])
    assert streamed.code == 0, streamed.err
    import json

    records = [json.loads(line) for line in streamed.out.splitlines()]
    jester = set(class_names("jester"))
    assert len(records) == 6 and all(t["label"] in jester for r in records for t in r["topk"])


def test_finetune_from_published_weights(torch_home, release_layouts, tmp_path):
    from temporal_shift.cli import build_parser
    from temporal_shift.engine.train import _finetune

    entry = fetch_into_cache("tsm_mobilenetv2_kinetics400_8f", torch_home, release_layouts, tmp_path)
    model = build_model("mobilenet_v2", num_classes=5, n_segment=4)
    assert _finetune(model, entry) is True  # 400 classes -> a fresh 5-class head
    published = load_checkpoint(entry).model.state_dict()
    assert all(torch.equal(v, published[k]) for k, v in model.state_dict().items() if not k.startswith("head."))
    args = build_parser().parse_args(["train", "--config", "c.yaml", "--weights", "tsm_mobilenetv2_kinetics400_8f"])
    assert args.published == "tsm_mobilenetv2_kinetics400_8f" and args.finetune_from is None


# --- docs/published.md runs, against a checkpoint served from file:// ---------------------


def published_page() -> str:
    """The published-weights page of the docs: its table, its one command and its Python block."""
    return (Path(__file__).resolve().parents[1] / "docs" / "published.md").read_text(encoding="utf-8")


def test_published_page_table_is_the_registry():
    rows = [line for line in published_page().splitlines() if line.startswith("| `")]
    assert len(rows) == len(registry())
    for row, w in zip(rows, registry().values(), strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        acc = w.accuracies[0] if w.accuracies else None
        assert cells == [
            f"`{w.name}`",
            DATASETS[w.dataset].title,
            str(w.n_segment),
            f"{w.gmacs:.1f}",
            f"{acc.top1:.1f}" if acc else "-",
            acc.protocol if acc else "not published",
        ], row


def test_published_page_command_and_python_block_run(
    run_cli, torch_home, release_layouts, tmp_path, monkeypatch, make_video
):
    import shlex

    section = published_page()
    command = re.search(r"```bash\n(tsm predict [^\n]*)\n```", section).group(1)
    code = re.search(r"```python published\n(.*?)```", section, re.S).group(1)
    fetch_into_cache("tsm_r50_kinetics400_8f", torch_home, release_layouts, tmp_path)
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "clip.mp4", 16)
    result = run_cli(shlex.split(command)[1:])
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    kinetics = set(class_names("kinetics400"))
    assert len(lines) == 5 and all(line.rsplit(None, 1)[0].strip() in kinetics for line in lines)
    namespace = {"__name__": "__readme__"}
    exec(compile(code, "docs/published.md", "exec"), namespace)
    assert namespace["model"].config.arch == "resnet50" and namespace["tsm16"].config.n_segment == 16
    assert len(namespace["top5"]) == 1 and namespace["top5"][0].topk[0][1] in kinetics

"""Decoding frame folders and videos; clip transforms."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from conftest import frame_ids
from temporal_shift.data.decode import (
    CorruptMediaError,
    JpegInfo,
    count_frame_files,
    decode_jpeg_file,
    jpeg_info,
    read_frame_folder,
    read_video,
    video_frame_count,
)
from temporal_shift.data.encode import write_video
from temporal_shift.data.transforms import (
    ClipHorizontalFlip,
    MultiScaleCrop,
    ToFloatNormalize,
    fixed_crop_offsets,
    flip_label_map,
    train_transform,
)
from temporal_shift.data.transforms import (
    test_transform as make_test_transform,
)

# --- frame folders -------------------------------------------------------------------


def test_frame_folder_reads_only_requested_frames(tmp_path, make_frames):
    folder = make_frames(tmp_path, "v", 20)
    assert count_frame_files(folder) == 20
    clip = read_frame_folder(folder, [3, 0, 3, 19])
    assert clip.shape == (4, 3, 48, 64) and clip.dtype == torch.uint8
    assert frame_ids(clip) == [3, 0, 3, 19]
    # frames never requested may be unreadable: they are not touched
    (folder / "img_00010.jpg").write_bytes(b"garbage")
    assert frame_ids(read_frame_folder(folder, [1, 2])) == [1, 2]


def test_frame_folder_errors_name_the_file(tmp_path, make_frames):
    folder = make_frames(tmp_path, "v", 5)
    with pytest.raises(FileNotFoundError, match=r"img_00009.jpg: frame file not found"):
        read_frame_folder(folder, [8])
    with pytest.raises(FileNotFoundError, match=r"missing: frame folder not found"):
        read_frame_folder(tmp_path / "missing", [0])
    data = (folder / "img_00002.jpg").read_bytes()
    (folder / "img_00002.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptMediaError, match=r"img_00002.jpg: corrupt JPEG \(.*truncated"):
        read_frame_folder(folder, [1])
    (folder / "img_00003.jpg").write_bytes(b"")
    with pytest.raises(CorruptMediaError, match=r"img_00003.jpg: empty JPEG file"):
        read_frame_folder(folder, [2])


def _pil_jpeg(array: np.ndarray, mode: str = "RGB", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="JPEG", quality=90, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kind", "mode", "options", "tolerance"),
    [
        ("4:2:0", "RGB", {"subsampling": 2}, 0),
        ("4:4:4", "RGB", {"subsampling": 0}, 0),
        ("progressive", "RGB", {"progressive": True}, 0),
        ("grayscale", "L", {}, 0),
        ("cmyk", "CMYK", {}, 1),  # Pillow and libjpeg-turbo round CMYK -> RGB differently
    ],
)
def test_jpeg_frames_decode_like_an_independent_decoder(tmp_path, kind, mode, options, tolerance):
    # JPEGs written by Pillow, decoded by Pillow's own libjpeg and by ours: same RGB pixels
    array = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    array[:, :28] //= 2  # some structure besides noise
    path = tmp_path / "img_00001.jpg"
    path.write_bytes(_pil_jpeg(array, mode, **options))
    ours = decode_jpeg_file(path)
    expected = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    assert ours.shape == (3, 40, 56) and ours.dtype == torch.uint8
    assert (ours.int() - expected.int()).abs().max().item() <= tolerance, kind


def test_jpeg_defects_libjpeg_recovers_from_are_tolerated_others_refused(tmp_path):
    array = np.random.default_rng(1).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    clean = _pil_jpeg(array)
    path = tmp_path / "img_00001.jpg"
    # extraneous bytes before the end-of-image marker: libjpeg warns and decodes all of it
    path.write_bytes(clean[:-2] + b"\x00\x17\x00" + clean[-2:])
    path_clean = tmp_path / "clean.jpg"
    path_clean.write_bytes(clean)
    assert torch.equal(decode_jpeg_file(path), decode_jpeg_file(path_clean))
    # cut inside the scan (header intact): truncated, not returned with grey rows
    path.write_bytes(clean[: len(clean) - 200])
    with pytest.raises(CorruptMediaError, match=r"img_00001.jpg: corrupt JPEG \(truncated"):
        decode_jpeg_file(path)
    # ... also when an end-of-image marker is appended to the cut file: its image data ends early
    path.write_bytes(clean[: len(clean) // 2] + b"\xff\xd9")
    with pytest.raises(CorruptMediaError, match=r"img_00001.jpg: corrupt JPEG \(truncated: its image data ends early"):
        decode_jpeg_file(path)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CorruptMediaError, match=r"img_00001.jpg: corrupt JPEG \(not a JPEG file: starts with 89 50"):
        decode_jpeg_file(path)


def test_jpeg_info_reads_the_frame_and_counts_scans_without_decoding():
    array = np.random.default_rng(2).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    baseline = _pil_jpeg(array)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", progressive=True, quality=90)
    progressive = buffer.getvalue()
    grey = io.BytesIO()
    Image.fromarray(array[..., 0]).save(grey, format="JPEG", progressive=True)
    assert jpeg_info(baseline) == JpegInfo(frame=0xC0, width=56, height=40, components=3, scans=1)
    assert jpeg_info(baseline).coding == "baseline"
    info = jpeg_info(progressive)
    assert (info.coding, info.width, info.height, info.scans) == ("progressive", 56, 40, 10)
    assert jpeg_info(grey.getvalue()).scans == 6 and jpeg_info(grey.getvalue()).components == 1
    assert jpeg_info(progressive, stop_after_scans=3).scans == 4  # stops at the first scan past the limit
    for cut, reason in (
        (progressive[:-2], "truncated: the file ends before"),
        (progressive[:30], "truncated: a segment of"),
        (b"\xff\xd8\xff\xd9", "no frame header"),
        (b"GIF89a", "not a JPEG file"),
    ):
        with pytest.raises(CorruptMediaError, match=reason):
            jpeg_info(cut, source="x.jpg")


def test_jpeg_info_is_linear_in_the_bytes():
    """One regular-expression pass: 0xFF runs and stuffed bytes cannot make it quadratic."""
    import time

    fill = b"\xff\xd8" + b"\xff" * 400_000
    stuffed = _pil_jpeg(np.zeros((8, 8, 3), np.uint8))[:-2] + b"\xff\x00" * 200_000 + b"\xff\xd9"
    started = time.perf_counter()
    with pytest.raises(CorruptMediaError, match="truncated"):
        jpeg_info(fill)
    assert jpeg_info(stuffed).scans == 1
    assert time.perf_counter() - started < 2.0


def test_frame_folder_writing_and_reading_warn_nothing(tmp_path, make_frames):
    # torchvision's JPEG coding is deprecated (one DeprecationWarning per call); ours is not
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = make_frames(tmp_path, "v", 4)
        assert frame_ids(read_frame_folder(folder, [0, 3])) == [0, 3]


# --- videos --------------------------------------------------------------------------


def test_mp4_count_and_sequential_decode(tmp_path, make_video):
    path = make_video(tmp_path / "v.mp4", 30)
    assert video_frame_count(path) == 30
    clip = read_video(path, list(range(30)))
    assert clip.shape == (30, 3, 48, 64)
    assert frame_ids(clip) == list(range(30))


def test_mp4_seeking_returns_the_same_frames_as_decoding_through(tmp_path, make_video):
    path = make_video(tmp_path / "v.mp4", 31)
    wanted = [29, 2, 15, 16, 30, 2]
    seek = read_video(path, wanted, seek_threshold=3)
    through = read_video(path, wanted, seek_threshold=10_000)
    assert torch.equal(seek, through)
    assert frame_ids(seek) == wanted


def test_mkv_frame_count_is_counted_by_decoding(tmp_path):
    from conftest import index_frames

    path = write_video(tmp_path / "v.mkv", index_frames(17), fps=25)
    assert video_frame_count(path) == 17
    assert frame_ids(read_video(path, [0, 16])) == [0, 16]


def test_video_errors_name_the_file(tmp_path, make_video):
    path = make_video(tmp_path / "v.mp4", 10)
    with pytest.raises(CorruptMediaError, match=r"v.mp4: could not decode frame 12"):
        read_video(path, [1, 12])
    with pytest.raises(FileNotFoundError, match=r"nope.mp4: video file not found"):
        read_video(tmp_path / "nope.mp4", [0])
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(CorruptMediaError, match=r"bad.mp4: cannot open video"):
        video_frame_count(bad)
    truncated = tmp_path / "trunc.mp4"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptMediaError, match=r"trunc.mp4: "):
        read_video(truncated, [0, 9])


# --- transforms ----------------------------------------------------------------------


def _ramp_clip(t: int = 6, h: int = 60, w: int = 80) -> tv_tensors.Video:
    """Every frame identical apart from a per-frame offset, so crops can be compared."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    base = torch.stack([x * 3 % 256, y * 4 % 256, (x + y) % 256]).to(torch.uint8)
    return tv_tensors.Video(torch.stack([base] * t))


def test_multiscale_crop_applies_one_draw_to_all_frames():
    clip = _ramp_clip()
    crop = MultiScaleCrop(size=32)
    seen = set()
    for seed in range(40):
        torch.manual_seed(seed)
        out, label = crop(clip, 7)
        assert label == 7 and out.shape == (6, 3, 32, 32)
        assert all(torch.equal(out[0], out[i]) for i in range(1, 6))
        seen.add(out[0].sum().item())
    assert len(seen) > 10  # different draws per call


def test_multiscale_crop_params_follow_the_paper():
    crop = MultiScaleCrop(size=224)
    image = torch.zeros(1, 3, 256, 340)
    sizes, offsets = set(), set()
    for seed in range(400):
        torch.manual_seed(seed)
        p = crop.make_params([tv_tensors.Video(image)])
        sizes.add((p["height"], p["width"]))
        offsets.add((p["top"], p["left"], p["height"], p["width"]))
    sides = [256, 224, 192, 168]  # 224 (from .875) snaps to the output size
    expected = {(sides[i], sides[j]) for i in range(4) for j in range(4) if abs(i - j) <= 1}
    assert sizes == expected
    for top, left, h, w in offsets:
        assert (top, left) in fixed_crop_offsets(image_h=256, image_w=340, crop_h=h, crop_w=w)
    assert len(fixed_crop_offsets(image_h=256, image_w=340, crop_h=224, crop_w=224)) == 13
    assert len(fixed_crop_offsets(image_h=256, image_w=340, crop_h=224, crop_w=224, more_fix_crop=False)) == 5


def test_flip_maps_labels_and_flips_every_frame():
    clip = _ramp_clip()
    flip = ClipHorizontalFlip(p=1.0, label_map={0: 1, 1: 0, 2: None})
    out, label = flip(clip, 0)
    assert label == 1 and torch.equal(out, clip.flip(-1))
    out, label = flip(clip, 2)  # direction-sensitive without a mirror class: untouched
    assert label == 2 and torch.equal(out, clip)
    out, label = flip(clip, 5)  # not direction-sensitive: flipped, same label
    assert label == 5 and torch.equal(out, clip.flip(-1))
    never = ClipHorizontalFlip(p=0.0, label_map={0: 1})
    out, label = never(clip, 0)
    assert label == 0 and torch.equal(out, clip)


def test_flip_label_map_from_class_names():
    names = [
        "Pushing something from left to right",
        "Pushing something from right to left",
        "Turning hand clockwise",
        "Turning hand counterclockwise",
        "moving_left",
        "moving_right",
        "Swiping Left",
        "Swiping Right",
        "Tilting something to the left",  # no mirror class
        "Drumming Fingers",
        "Upright something",  # 'right' inside a word does not count
    ]
    assert flip_label_map(names) == {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4, 6: 7, 7: 6, 8: None}


def test_train_transform_outputs_normalised_float_and_maps_labels():
    clip = tv_tensors.Video(torch.full((4, 3, 64, 80), 255, dtype=torch.uint8))
    transform = train_transform(size=32, flip_labels={0: 1, 1: 0})
    labels = set()
    for seed in range(20):
        torch.manual_seed(seed)
        out, label = transform(clip, 0)
        labels.add(label)
        assert out.shape == (4, 3, 32, 32) and out.dtype == torch.float32
        expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
        assert torch.allclose(out.mean(dim=(0, 2, 3)), expected, atol=1e-4)
    assert labels == {0, 1}


def test_test_transforms_views():
    clip = _ramp_clip(t=3, h=64, w=96)
    out, _ = make_test_transform(size=32, scale_size=40, views=1)(clip, 0)
    assert out.shape == (3, 3, 32, 32)
    three, _ = make_test_transform(size=32, scale_size=40, views=3)(clip, 0)
    assert three.shape == (3, 3, 3, 40, 40)
    assert not torch.equal(three[0], three[2])
    ten, _ = make_test_transform(size=32, scale_size=40, views=10)(clip, 0)
    assert ten.shape == (10, 3, 3, 32, 32)
    assert torch.allclose(ten[4], out)  # TenCrop's 5th view is the centre crop
    assert torch.allclose(ten[5], ten[1].flip(-1))  # views of the mirrored clip
    five, _ = make_test_transform(size=32, scale_size=40, views=5)(clip, 0)
    assert five.shape == (5, 3, 3, 32, 32)
    assert torch.allclose(five, ten[:5])  # corners (tl, tr, bl, br) + centre, unmirrored
    resized = ToFloatNormalize()(v2.Resize(40, antialias=True)(clip))  # 40x60, not cropped
    assert torch.allclose(five[0], resized[..., :32, :32]) and torch.allclose(five[3], resized[..., -32:, -32:])
    with pytest.raises(ValueError, match="views must be 1, 3, 5 or 10"):
        make_test_transform(views=4)

"""Dataset preparation from tiny annotation files in each official format."""

from __future__ import annotations

import json

import pytest

from conftest import index_frames
from temporal_shift.data.encode import write_frame_folder
from temporal_shift.data.lists import FrameRecord, VideoRecord, read_classes, read_list
from temporal_shift.data.prepare import (
    AnnotationError,
    index_root,
    parse_annotations,
    parse_hmdb51,
    parse_jester,
    parse_kinetics,
    parse_something_v1,
    parse_something_v2,
    parse_ucf101,
    prepare_dataset,
    something_v2_class,
    write_lists,
)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _frames(root, rel, n):
    write_frame_folder(root / rel, index_frames(n, height=16, width=16))


def _video(root, rel):
    _write(root / rel, "not decoded by prepare")


# --- Kinetics ------------------------------------------------------------------------

KINETICS_TRAIN = """label,youtube_id,time_start,time_end,split
abseiling,--07WQ2iBlw,1,11,train
"air drumming, loud",--33Lscn6sk,4,14,train
abseiling,-0eLpSpyFW4,22,32,train
"""
KINETICS_VAL = """label,youtube_id,time_start,time_end,split,is_cc
"air drumming, loud",0AbCdEfGhIj,100,110,validate,0
"""


def test_kinetics(tmp_path):
    train = _write(tmp_path / "ann" / "train.csv", KINETICS_TRAIN)
    val = _write(tmp_path / "ann" / "validate.csv", KINETICS_VAL)
    ann = parse_kinetics([train, val])
    assert ann.classes == ["abseiling", "air drumming, loud"]
    assert [(s.name, s.label) for s in ann.train] == [
        ("--07WQ2iBlw_000001_000011", 0),
        ("--33Lscn6sk_000004_000014", 1),
        ("-0eLpSpyFW4_000022_000032", 0),
    ]
    assert ann.val[0].name == "0AbCdEfGhIj_000100_000110" and ann.val[0].source == f"{val}:2"

    root = tmp_path / "data"
    _frames(root, "frames/abseiling/--07WQ2iBlw_000001_000011", 7)
    _video(root, "videos/train/air drumming, loud/--33Lscn6sk_000004_000014.mp4")
    _video(root, "videos/train/abseiling/-0eLpSpyFW4_000022_000032.mp4")
    _video(root, "videos/val/0AbCdEfGhIj_000100_000110.webm")
    result = prepare_dataset("kinetics", root=root, out_dir=tmp_path / "lists", train=train, val=val)
    assert read_classes(result.classes) == ann.classes
    records = read_list(result.lists["train"], num_classes=2)
    assert records[0] == FrameRecord("frames/abseiling/--07WQ2iBlw_000001_000011", 7, 0, records[0].source)
    assert isinstance(records[1], VideoRecord) and records[1].path.endswith("--33Lscn6sk_000004_000014.mp4")
    assert records[1].label == 1
    (val_record,) = read_list(result.lists["val"])
    assert val_record.path == "videos/val/0AbCdEfGhIj_000100_000110.webm"
    assert result.counts["train"] == {"frames": 1, "videos": 2, "missing": 0}
    assert "1 frame folders, 2 videos, 0 missing" in result.summary()


@pytest.mark.parametrize(
    "text, match",
    [
        ("label,youtube_id,time_start\nx,y,1\n", r"train.csv:1: .*lacks time_end, split"),
        ("label,youtube_id,time_start,time_end,split\nx,y,1,2\n", r"train.csv:2: expected 5"),
        ("label,youtube_id,time_start,time_end,split\nx,y,1,2,train\nx,y,a,2,train\n", r"train.csv:3: time_start"),
        ("label,youtube_id,time_start,time_end,split\n,y,1,2,train\n", r"train.csv:2: empty label"),
        ("label,youtube_id,time_start,time_end,split\nx,y,1,2,test\n", r"train.csv:2: split must be"),
        ("label,youtube_id,time_start,time_end,split\nx,y,1,2,validate\n", "no 'train' rows"),
        ("", "empty Kinetics CSV"),
    ],
)
def test_kinetics_malformed(tmp_path, text, match):
    with pytest.raises(AnnotationError, match=match):
        parse_kinetics([_write(tmp_path / "train.csv", text)])


def test_kinetics_val_label_not_in_train(tmp_path):
    train = _write(tmp_path / "train.csv", KINETICS_TRAIN)
    val = _write(tmp_path / "val.csv", "label,youtube_id,time_start,time_end,split\nyodeling,a,1,2,val\n")
    with pytest.raises(AnnotationError, match=r"val.csv:2: unknown class 'yodeling'"):
        parse_kinetics([train, val])


# --- Something-Something V1 / Jester ------------------------------------------------------


def test_something_v1_and_jester(tmp_path):
    labels = _write(tmp_path / "labels.csv", "Holding something\nPushing something from left to right\n")
    train = _write(tmp_path / "train.csv", "100218;Pushing something from left to right\n48032;Holding something\n")
    val = _write(tmp_path / "val.csv", "\n9;Holding something\n")
    for parse in (parse_something_v1, parse_jester):
        ann = parse(labels=labels, train=train, val=val)
        assert ann.classes == ["Holding something", "Pushing something from left to right"]
        assert [(s.name, s.label) for s in ann.train] == [("100218", 1), ("48032", 0)]
        assert ann.val[0].source == f"{val}:2"
    root = tmp_path / "frames"
    for name, n in (("100218", 30), ("48032", 12), ("9", 5)):
        write_frame_folder(root / name, index_frames(n, height=16, width=16), template="{:05d}.jpg")
    result = prepare_dataset(
        "something-v1",
        root=root,
        out_dir=tmp_path / "out",
        labels=labels,
        train=train,
        val=val,
        template="{:05d}.jpg",
    )
    assert result.lists["train"].read_text() == "100218 30 1\n48032 12 0\n"
    assert result.lists["val"].read_text() == "9 5 0\n"


@pytest.mark.parametrize(
    "train_text, match",
    [
        ("100218 Holding something\n", r"train.csv:1: malformed line"),
        ("1;Holding something\n;Holding something\n", r"train.csv:2: malformed line"),
        ("1;Juggling\n", r"train.csv:1: unknown class 'Juggling'"),
    ],
)
def test_something_v1_malformed(tmp_path, train_text, match):
    labels = _write(tmp_path / "labels.csv", "Holding something\n")
    train = _write(tmp_path / "train.csv", train_text)
    val = _write(tmp_path / "val.csv", "")
    with pytest.raises(AnnotationError, match=match):
        parse_something_v1(labels=labels, train=train, val=val)


def test_labels_file_errors(tmp_path):
    train = _write(tmp_path / "train.csv", "")
    dup = _write(tmp_path / "dup.csv", "A\nB\nA\n")
    with pytest.raises(AnnotationError, match=r"dup.csv:3: duplicate class 'A' \(also line 1\)"):
        parse_jester(labels=dup, train=train, val=train)
    with pytest.raises(AnnotationError, match="no class names"):
        parse_jester(labels=_write(tmp_path / "empty.csv", "\n"), train=train, val=train)
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        parse_jester(labels=tmp_path / "nope.csv", train=train, val=train)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(AnnotationError, match="not a UTF-8"):
        parse_jester(labels=tmp_path / "bin.csv", train=train, val=train)


# --- Something-Something V2 ----------------------------------------------------------------

SSV2_LABELS = {"Holding something next to something": "0", "Pushing something from left to right": "1"}
SSV2_TRAIN = [
    {
        "id": "78687",
        "label": "holding potato next to vicks vaporub bottle",
        "template": "Holding [something] next to [something]",
        "placeholders": ["potato", "vicks vaporub bottle"],
    },
    {
        "id": "42326",
        "label": "pushing a pen from left to right",
        "template": "Pushing [something] from left to right",
        "placeholders": ["a pen"],
    },
]


def test_something_v2(tmp_path):
    labels = _write(tmp_path / "labels.json", json.dumps(SSV2_LABELS, indent=1))
    train = _write(tmp_path / "train.json", json.dumps(SSV2_TRAIN, indent=1))
    val = _write(tmp_path / "validation.json", json.dumps(SSV2_TRAIN[1:], indent=1))
    ann = parse_something_v2(labels=labels, train=train, val=val)
    assert ann.classes == list(SSV2_LABELS)
    assert [(s.name, s.label) for s in ann.train] == [("78687", 0), ("42326", 1)]
    assert ann.train[1].source.startswith(f"{train}:") and ann.train[1].source != ann.train[0].source
    assert something_v2_class("Putting [something] on [something]") == "Putting something on something"
    root = tmp_path / "videos"
    _video(root, "78687.webm")
    _video(root, "42326.webm")
    result = prepare_dataset("something-v2", root=root, out_dir=tmp_path / "o", labels=labels, train=train, val=val)
    assert result.lists["train"].read_text() == "78687.webm 0\n42326.webm 1\n"


def test_something_v2_malformed(tmp_path):
    labels = _write(tmp_path / "labels.json", json.dumps(SSV2_LABELS))
    good = _write(tmp_path / "good.json", "[]")
    bad_item = [SSV2_TRAIN[0], {"id": "1", "label": "x"}]
    train = _write(tmp_path / "train.json", json.dumps(bad_item, indent=1))
    with pytest.raises(AnnotationError, match=r"train.json:\d+: item 1 lacks 'id' or 'template'"):
        parse_something_v2(labels=labels, train=train, val=good)
    unknown = [{"id": "1", "template": "Juggling [something]"}]
    train = _write(tmp_path / "train.json", json.dumps(unknown))
    with pytest.raises(AnnotationError, match="unknown class 'Juggling something'"):
        parse_something_v2(labels=labels, train=train, val=good)
    train = _write(tmp_path / "train.json", '[\n{"id": "1",\n')
    with pytest.raises(AnnotationError, match=r"train.json:2: invalid JSON"):
        parse_something_v2(labels=labels, train=train, val=good)
    with pytest.raises(AnnotationError, match="expected a JSON list"):
        parse_something_v2(labels=labels, train=_write(tmp_path / "t.json", "{}"), val=good)
    with pytest.raises(AnnotationError, match="empty id"):
        parse_something_v2(labels=labels, train=_write(tmp_path / "t.json", '[{"id": " ", "template": "x"}]'), val=good)
    for text, match in [
        ("[]", "expected a JSON object"),
        ('{"A": "x"}', "non-integer index"),
        ('{"A": "0", "B": "0"}', "index 0 used by"),
        ('{"A": "0", "B": "2"}', "without gaps"),
    ]:
        with pytest.raises(AnnotationError, match=match):
            parse_something_v2(labels=_write(tmp_path / "l.json", text), train=good, val=good)


# --- UCF101 ----------------------------------------------------------------------------------


def _ucf(
    tmp_path,
    trainlist="ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nYoYo/v_YoYo_g10_c02.avi 2\n",
    testlist="YoYo/v_YoYo_g01_c01.avi\n",
):
    d = tmp_path / "ucfTrainTestlist"
    _write(d / "classInd.txt", "1 ApplyEyeMakeup\n2 YoYo\n")
    _write(d / "trainlist02.txt", trainlist)
    _write(d / "testlist02.txt", testlist)
    return d


def test_ucf101(tmp_path):
    d = _ucf(tmp_path)
    ann = parse_ucf101(d, split=2)
    assert ann.classes == ["ApplyEyeMakeup", "YoYo"]
    assert [(s.name, s.label) for s in ann.train] == [("v_ApplyEyeMakeup_g08_c01", 0), ("v_YoYo_g10_c02", 1)]
    assert [(s.name, s.label) for s in ann.val] == [("v_YoYo_g01_c01", 1)]
    root = tmp_path / "UCF-101"
    _video(root, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi")
    _frames(root, "YoYo/v_YoYo_g10_c02", 9)
    _video(root, "YoYo/v_YoYo_g10_c02.avi")  # frames win over the video
    result = prepare_dataset("ucf101", root=root, out_dir=tmp_path / "o", splits_dir=d, split=2, missing="skip")
    assert result.lists["train"].name == "train_split2.txt"
    assert result.lists["train"].read_text() == (
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 0\nYoYo/v_YoYo_g10_c02 9 1\n"
    )
    assert result.lists["val"].read_text() == ""
    assert result.missing["val"] == [f"{d / 'testlist02.txt'}:1: v_YoYo_g01_c01"]
    assert (tmp_path / "o" / "missing_val_split2.txt").read_text().strip() == result.missing["val"][0]
    with pytest.raises(FileNotFoundError, match=r"testlist02.txt:1: no frame folder or video named 'v_YoYo_g01_c01'"):
        prepare_dataset("ucf101", root=root, out_dir=tmp_path / "o", splits_dir=d, split=2)


@pytest.mark.parametrize(
    "trainlist, testlist, match",
    [
        ("YoYo/v_YoYo_g10_c02.avi\n", "", r"trainlist02.txt:1: malformed line"),
        ("YoYo/v_YoYo_g10_c02.avi 3\n", "", r"trainlist02.txt:1: malformed line"),
        ("YoYo/v_YoYo_g10_c02.avi 1\n", "", r"trainlist02.txt:1: .*in folder 'YoYo' but labelled 1"),
        ("", "v_YoYo_g01_c01.avi\n", r"testlist02.txt:1: malformed line"),
        ("", "Juggling/v_Juggling_g01_c01.avi\n", r"testlist02.txt:1: unknown class 'Juggling'"),
    ],
)
def test_ucf101_malformed(tmp_path, trainlist, testlist, match):
    with pytest.raises(AnnotationError, match=match):
        parse_ucf101(_ucf(tmp_path, trainlist, testlist), split=2)


def test_ucf101_bad_class_index_and_split(tmp_path):
    d = _ucf(tmp_path)
    _write(d / "classInd.txt", "1 A\nB\n")
    with pytest.raises(AnnotationError, match=r"classInd.txt:2: malformed line"):
        parse_ucf101(d, split=2)
    _write(d / "classInd.txt", "1 A\n3 B\n")
    with pytest.raises(AnnotationError, match="without gaps"):
        parse_ucf101(d, split=2)
    with pytest.raises(ValueError, match="split must be 1, 2 or 3"):
        parse_ucf101(d, split=4)
    with pytest.raises(FileNotFoundError, match=r"trainlist01.txt: annotation file not found"):
        _write(d / "classInd.txt", "1 A\n")
        parse_ucf101(d, split=1)


# --- HMDB51 ----------------------------------------------------------------------------------


def test_hmdb51(tmp_path):
    d = tmp_path / "testTrainMulti_7030_splits"
    _write(
        d / "brush_hair_test_split1.txt",
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \nBlonde_hair_h_cm_np1_le_goo_0.avi 2 \n",
    )
    _write(d / "wave_test_split1.txt", "21_wave_u_cm_np1_fr_med_0.avi 0 \n22_wave_f_nm_np1_fr_goo_1.avi 1 \n")
    _write(d / "wave_test_split2.txt", "21_wave_u_cm_np1_fr_med_0.avi 1 \n")
    ann = parse_hmdb51(d, split=1)
    assert ann.classes == ["brush_hair", "wave"]
    assert [(s.name, s.label) for s in ann.train] == [
        ("April_09_brush_hair_u_nm_np1_ba_goo_0", 0),
        ("22_wave_f_nm_np1_fr_goo_1", 1),
    ]
    assert [(s.name, s.label) for s in ann.val] == [("Blonde_hair_h_cm_np1_le_goo_0", 0)]
    assert [s.name for s in parse_hmdb51(d, split=2).train] == ["21_wave_u_cm_np1_fr_med_0"]
    with pytest.raises(FileNotFoundError, match=r"no '<class>_test_split3.txt' files"):
        parse_hmdb51(d, split=3)
    with pytest.raises(FileNotFoundError, match="split folder not found"):
        parse_hmdb51(tmp_path / "nope")
    _write(d / "wave_test_split1.txt", "21_wave_u_cm_np1_fr_med_0.avi 3\n")
    with pytest.raises(AnnotationError, match=r"wave_test_split1.txt:1: malformed line"):
        parse_hmdb51(d, split=1)


# --- shared ----------------------------------------------------------------------------------


def test_index_root_finds_folders_and_videos_and_rejects_duplicates(tmp_path):
    _frames(tmp_path, "a/x", 3)
    _video(tmp_path, "b/y.mkv")
    (tmp_path / "c" / "not_frames").mkdir(parents=True)
    folders, videos = index_root(tmp_path)
    assert folders == {"x": "a/x"} and videos == {"y": "b/y.mkv"}
    _video(tmp_path, "c/y.mp4")
    with pytest.raises(ValueError, match="two entries named 'y'"):
        index_root(tmp_path)
    with pytest.raises(FileNotFoundError, match="data root not found"):
        index_root(tmp_path / "nope")


def test_dispatch_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'kinetics-900'"):
        parse_annotations("kinetics-900")
    with pytest.raises(ValueError, match="jester needs --labels, --val"):
        parse_annotations("jester", train=tmp_path / "t.csv")
    with pytest.raises(ValueError, match="ucf101 needs --splits-dir"):
        parse_annotations("ucf101")
    ann = parse_kinetics([_write(tmp_path / "train.csv", KINETICS_TRAIN)])
    with pytest.raises(ValueError, match="missing must be"):
        write_lists(ann, root=tmp_path, out_dir=tmp_path / "o", missing="ignore")


def test_class_numbering_matches_the_reference_release_and_shipped_names(tmp_path):
    """Published checkpoints number classes as the reference release does: Something-
    Something V1 and Jester sort the labels file; the shipped class names agree."""
    from importlib import resources

    def shipped(name):
        text = resources.files("temporal_shift.hub").joinpath(f"classes/{name}.txt").read_text()
        return [line for line in text.splitlines() if line]

    for name, parse in (("something_v1", parse_something_v1), ("jester", parse_jester)):
        names = shipped(name)
        shuffled = names[1::2] + names[::2]  # the official labels files are not sorted
        labels = _write(tmp_path / f"{name}.csv", "\n".join(shuffled) + "\n")
        train = _write(tmp_path / f"{name}_train.csv", f"1;{names[3]}\n")
        ann = parse(labels=labels, train=train, val=train)
        assert ann.classes == names
        assert ann.train[0].label == 3

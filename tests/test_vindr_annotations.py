"""VinDr CSV parsing: category literals, labels, clipping, and every bad-row message (no DICOMs needed)."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from camkit_vindr.annotations import (BREAST_COLUMNS, FINDING_COLUMNS, AnnotationError, load_records, parse_categories)
from camkit_vindr.splits import SplitError, check_split, select, val_studies

S1, S2, S3 = "a" * 32, "b" * 32, "c" * 32


def _row(study, image, cats, box=None, split="training", lat="L", h=100, w=80):
    coords = ["", "", "", ""] if box is None else [str(v) for v in box]
    return [study, "f" * 32, image, lat, "CC", h, w, "BI-RADS 1", "DENSITY B", repr(cats), ""] + coords + [split]


def _write(root, rows, columns=FINDING_COLUMNS):
    with open(root / "finding_annotations.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(rows)


@pytest.mark.parametrize("text, expected", [
    ("['Mass']", ["Mass"]),
    ("['Nipple Retraction', 'Mass']", ["Nipple Retraction", "Mass"]),
    ("['No Finding']", ["No Finding"]),
    ("", []),
    ("[Mass, Skin Thickening]", ["Mass", "Skin Thickening"]),   # not a literal: falls back to splitting
    ("['Mass', 'Focal Asymmetry'", ["Mass", "Focal Asymmetry"]),  # unbalanced bracket
    ("'Mass'", ["Mass"]),
])
def test_parse_categories(text, expected):
    assert parse_categories(text) == expected


def test_labels_boxes_and_clipping(tmp_path):
    _write(tmp_path, [
        _row(S1, "1" * 32, ["No Finding"]),
        _row(S1, "2" * 32, ["Nipple Retraction", "Mass"], (10, 20, 30, 40)),
        _row(S1, "2" * 32, ["Mass"], (70, 90, 84, 103)),          # overshoots the 80x100 image a little: clipped
        _row(S1, "2" * 32, ["Suspicious Calcification"], (1, 1, 5, 5)),  # not a mass box
        _row(S2, "3" * 32, ["Focal Asymmetry"], (1, 1, 5, 5), split="test"),
    ])
    recs = {r.image_id[0]: r for r in load_records(tmp_path)}
    assert recs["1"].label == 0 and recs["1"].boxes.shape == (0, 4)
    assert recs["2"].label == 1
    np.testing.assert_allclose(recs["2"].boxes, [[10, 20, 30, 40], [70, 90, 80, 100]])
    assert recs["3"].label is None
    assert recs["2"].rows == [3, 4, 5]


def test_missing_column_names_file_and_column(tmp_path):
    _write(tmp_path, [], columns=tuple(c for c in FINDING_COLUMNS if c != "xmax"))
    with pytest.raises(AnnotationError, match=r"finding_annotations.csv: missing column\(s\) xmax"):
        load_records(tmp_path)
    (tmp_path / "finding_annotations.csv").unlink()
    with pytest.raises(AnnotationError, match="not found"):
        load_records(tmp_path)


def test_breast_level_csv_columns_are_checked(tmp_path):
    _write(tmp_path, [_row(S1, "1" * 32, ["No Finding"])])
    with open(tmp_path / "breast-level_annotations.csv", "w") as f:
        f.write(",".join(c for c in BREAST_COLUMNS if c != "split") + "\n")
    with pytest.raises(AnnotationError, match=r"breast-level_annotations.csv: missing column\(s\) split"):
        load_records(tmp_path)


@pytest.mark.parametrize("bad, message", [
    (_row(S2, "9" * 32, ["Mass"], (200, 10, 260, 30)), "line 3: box .* lies outside the 100x80"),
    (_row(S2, "9" * 32, ["Mass"], (30, 10, 20, 30)), "line 3: box .* xmax <= xmin"),
    (_row(S2, "9" * 32, ["Mass"]), "line 3: a Mass row needs numeric"),
    (_row(S2, "9" * 32, ["No Finding"], split="validation"), "line 3: split 'validation' is not one of"),
    (_row(S2, "9" * 32, ["No Finding"], lat="X"), "line 3: laterality 'X'"),
    (_row(S2, "9" * 32, ["No Finding"], h="abc"), "line 3: height 'abc' is not a number"),
])
def test_bad_rows_name_the_line_or_are_skipped(tmp_path, bad, message):
    _write(tmp_path, [_row(S1, "1" * 32, ["No Finding"]), bad, _row(S2, "9" * 32, ["No Finding"])])
    with pytest.raises(AnnotationError, match=message) as err:
        load_records(tmp_path)
    assert "skip_bad=True" in str(err.value)
    skipped: list = []
    recs = load_records(tmp_path, skip_bad=True, skipped=skipped)
    assert [r.image_id for r in recs] == ["1" * 32]       # the whole bad image is left out, not just the row
    assert len(skipped) == 1 and skipped[0][0].endswith("finding_annotations.csv line 3")


def test_unknown_split_suggests_the_right_name():
    with pytest.raises(SplitError, match="Did you mean 'val'"):
        check_split("valid")
    with pytest.raises(SplitError, match="Did you mean 'train'"):
        check_split("training")
    assert check_split("test") == "test"


def test_val_carve_out_is_by_study_seeded_and_balanced(tmp_path):
    rows = []
    for s in range(20):
        study = f"{s:032x}"
        rows.append(_row(study, f"{s:031x}m", ["Mass"], (1, 1, 9, 9)))
        for k in range(3):
            rows.append(_row(study, f"{s:030x}n{k}", ["No Finding"]))
    _write(tmp_path, rows)
    recs = load_records(tmp_path)
    assert val_studies(recs, 0.2, seed=0) == val_studies(recs, 0.2, seed=0)
    assert len(val_studies(recs, 0.2, seed=0)) == 4
    assert val_studies(recs, 0.2, seed=0) != val_studies(recs, 0.2, seed=1)
    train = select(recs, "train", val_fraction=0.2, seed=0)
    val = select(recs, "val", val_fraction=0.2, seed=0)
    assert not {r.study_id for r in train} & {r.study_id for r in val}
    for part, studies in ((train, 16), (val, 4)):
        assert sum(r.label for r in part) == studies and len(part) == 2 * studies
    everything = select(recs, "train", balanced=False, val_fraction=0.2, seed=0)
    assert len(everything) == 16 * 4
    # a normal image rejected by `valid` is replaced by the next one of the draw: still balanced
    first_normal = next(r for r in train if r.label == 0)
    again = select(recs, "train", val_fraction=0.2, seed=0, valid=lambda r: r is not first_normal)
    assert first_normal not in again and len(again) == len(train) and sum(r.label for r in again) == 16

"""The folder dataset: a CSV of your own PNG/DICOM mammograms, boxes, splits, and clear errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from camkit_folder.dataset import FolderDataError, FolderDataset
from dicom_fixtures import phantom, write_dicom, write_png

import camkit
from camkit.data.sample import BoxTransform, collate

H, W = 240, 160
MASS = [20.0, 40.0, 35.0, 60.0]  # the phantom's bright square, x1 y1 x2 y2, left-facing layout
MASS_R = [W - 35.0, 40.0, W - 20.0, 60.0]  # the same square in a right (mirrored) view


@pytest.fixture
def folder(tmp_path):
    """A folder with 16-bit and 8-bit PNGs and MONOCHROME1/2 DICOMs of a phantom, plus a writer for CSVs."""
    img = phantom(H, W, left=True)
    (tmp_path / "png").mkdir()
    write_png(tmp_path / "png" / "left16.png", img * 4095, bits=16)
    write_png(tmp_path / "png" / "right8.png", img[:, ::-1] * 255, bits=8)
    write_png(tmp_path / "png" / "normal.png", phantom(H, W, marker=False) * 0.4 * 4095, bits=16)
    write_dicom(tmp_path / "m2.dcm", img * 4095, bits_stored=12)
    write_dicom(tmp_path / "m1.dicom", (1 - img[:, ::-1]) * 4095, photometric="MONOCHROME1", bits_stored=12)

    def csv(text: str, name: str = "labels.csv"):
        p = tmp_path / name
        p.write_text(text.strip() + "\n")
        return p

    return tmp_path, csv


GOOD = f"""
image,label,study_id,laterality,view,x1,y1,x2,y2,split
png/left16.png,1,s1,L,CC,{','.join(str(v) for v in MASS)},train
png/left16.png,1,s1,L,CC,100,150,120,170,train
png/right8.png,mass,s1,R,MLO,{','.join(str(v) for v in MASS_R)},train
png/normal.png,0,s2,L,CC,,,,,test
m2.dcm,1,s3,L,CC,{','.join(str(v) for v in MASS)},test
m1.dicom,1,s3,R,MLO,{','.join(str(v) for v in MASS_R)},test
"""


def _peak_in_box(sample, box_index=0) -> bool:
    x1, y1, x2, y2 = sample["boxes"][box_index].tolist()
    img = sample["image"][0]
    iy, ix = np.unravel_index(int(img.argmax()), img.shape)
    return x1 - 1 <= ix + 0.5 <= x2 + 1 and y1 - 1 <= iy + 0.5 <= y2 + 1


def test_reads_png_and_dicom_rows_with_boxes(folder):
    root, csv = folder
    ds = FolderDataset(csv(GOOD), size=(128, 80))
    assert len(ds) == 5 and ds.labels() == [1, 1, 0, 1, 1]
    s = ds[0]
    assert set(s) == {"image", "label", "boxes", "image_id", "study_id", "laterality", "view", "transform"}
    assert s["image"].shape == (1, 128, 80) and s["image"].dtype == torch.float32
    assert abs(float(s["image"].mean())) < 1e-4 and abs(float(s["image"].std()) - 1) < 1e-3
    assert s["boxes"].shape == (2, 4) and s["boxes"].dtype == torch.float32  # two rows, one image
    assert s["image_id"] == "png/left16" and s["study_id"] == "s1" and s["view"] == "CC"
    assert isinstance(s["transform"], BoxTransform)
    for i in (0, 1, 3, 4):  # every mass image, whatever its format or side, has its mass at the box
        si = ds[i]
        assert _peak_in_box(si), si["image_id"]
        assert si["transform"].flipped == (si["laterality"] == "R")
        stored = np.asarray([MASS_R if si["laterality"] == "R" else MASS])
        np.testing.assert_allclose(si["transform"].to_original(si["boxes"][:1]), stored, atol=1e-4)
    # Mirrored right views and MONOCHROME1 land on the same model image as their left/MONOCHROME2 twin.
    assert torch.allclose(ds[0]["image"], ds[1]["image"], atol=0.05)
    assert torch.allclose(ds[3]["image"], ds[4]["image"], atol=1e-4)
    assert ds[2]["boxes"].shape == (0, 4) and ds[2]["study_id"] == "s2"
    assert collate([ds[i] for i in range(3)])["image"].shape == (3, 1, 128, 80)


def test_split_filter_and_registry(folder):
    root, csv = folder
    path = csv(GOOD)
    ds = camkit.create_dataset("folder", csv=str(path), split="test", size=(64, 40), seed=3)
    assert [s for s in ds.labels()] == [0, 1, 1] and ds[0]["image"].shape == (1, 64, 40)
    assert len(FolderDataset(root, split="training")) == 2  # a folder with labels.csv; split aliases
    with pytest.raises(FolderDataError, match="csv=PATH"):
        camkit.create_dataset("folder")


def test_boxes_json_column_and_xmin_aliases_and_absolute_paths(folder):
    root, csv = folder
    p = csv(f"""
image,label,boxes,laterality
{root / 'png' / 'left16.png'},1,"[[20, 40, 35, 60], [100, 150, 120, 170]]",L
png/right8.png,1,"[{W - 35}, 40, {W - 20}, 60]",R
png/normal.png,normal,,
""")
    ds = FolderDataset(p, size=(128, 80))
    assert [len(ds[i]["boxes"]) for i in range(3)] == [2, 1, 0]
    assert ds[2]["laterality"] is None and not ds[2]["transform"].flipped  # faces right: auto keeps it
    q = csv(f"image,label,xmin,ymin,xmax,ymax\npng/left16.png,1,{','.join(str(v) for v in MASS)}\n", "v.csv")
    assert _peak_in_box(FolderDataset(q, size=(128, 80))[0])


def test_unknown_laterality_is_detected_from_pixels(folder):
    root, csv = folder
    p = csv(f"image,label,x1,y1,x2,y2\npng/right8.png,1,{','.join(str(v) for v in MASS_R)}\n")
    s = FolderDataset(p, size=(128, 80))[0]
    assert s["transform"].flipped and _peak_in_box(s)
    s2 = FolderDataset(p, size=(128, 80), flip="none")[0]
    assert not s2["transform"].flipped


def test_no_crop_keeps_the_whole_image(folder):
    root, csv = folder
    p = csv(f"image,label,x1,y1,x2,y2\npng/left16.png,1,{','.join(str(v) for v in MASS)}\n")
    s = FolderDataset(p, size=(H // 2, W // 2), crop=False, keep_aspect=False)[0]
    assert s["transform"].crop is None
    np.testing.assert_allclose(s["boxes"][0].numpy(), np.array(MASS) / 2, atol=1e-5)


def test_boxes_outside_the_image_are_clipped_with_one_warning(folder):
    root, csv = folder
    p = csv(f"image,label,x1,y1,x2,y2\npng/left16.png,1,-5,40,35,{H + 9}\npng/left16.png,1,10,10,20,20\n")
    with pytest.warns(UserWarning, match="1 box.*clipped"):
        ds = FolderDataset(p, size=(128, 80))
    assert ds.clipped[0][0].startswith("labels.csv row 2")
    np.testing.assert_allclose(ds.records[0].boxes[0], [0, 40, 35, H])
    p2 = csv(f"image,label,x1,y1,x2,y2\npng/left16.png,1,{W + 1},10,{W + 20},20\n", "out.csv")
    with pytest.raises(FolderDataError, match=r"out.csv row 2 .*lies outside the 160x240"):
        FolderDataset(p2)


BAD_ROWS = [
    ("image,label\npng/missing.png,1\n", r"row 2 .*missing.png.* does not exist"),
    ("image,label\npng/left16.png,maybe\n", r"row 2 \(png/left16.png\): label 'maybe' is not one of 1, 0, mass"),
    ("image,label,laterality\npng/left16.png,1,X\n", r"row 2 .*laterality 'X' is not L or R"),
    ("image,label,x1,y1,x2,y2\npng/left16.png,1,30,10,20,20\n", r"row 2 .*box .* inverted"),
    ("image,label,x1,y1,x2,y2\npng/left16.png,1,30,10,,\n", r"row 2 .*partly empty"),
    ("image,label,x1,y1,x2,y2\npng/left16.png,1,a,b,c,d\n", r"row 2 .*bad box"),
    ("image,label,boxes\npng/left16.png,1,\"[[1,2,3]]\"\n", r"row 2 .*must be a JSON list"),
    ("image,label,boxes\npng/left16.png,1,not json\n", r"row 2 .*is not JSON"),
    ("image,label,x1,y1,x2,y2\npng/normal.png,0,1,2,30,40\n", r"row 2 .*label is 0 \(normal\) but the row has a box"),
    ("image,label\npng/left16.png,1\npng/left16.png,0\n", r"row 3 .*label 0 disagrees with row 2"),
    ("image,label\n,1\n", r"row 2: the image cell is empty"),
    ("image,label\nbroken.png,1\n", r"row 2 .*broken.png.*cannot read"),
]


@pytest.mark.parametrize("text,message", BAD_ROWS, ids=[m.split()[-1] for _, m in BAD_ROWS])
def test_bad_rows_name_the_row_and_file(folder, text, message):
    root, csv = folder
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(FolderDataError, match=message):
        FolderDataset(csv(text))


def test_bad_csv_structure(folder):
    root, csv = folder
    with pytest.raises(FolderDataError, match="has no column 'label'.*required: image, label"):
        FolderDataset(csv("image,target\npng/left16.png,1\n"))
    with pytest.raises(FolderDataError, match="not all of x1, y1, x2, y2"):
        FolderDataset(csv("image,label,x1,y1\npng/left16.png,1,1,2\n"))
    with pytest.raises(FolderDataError, match="no split column"):
        FolderDataset(csv("image,label\npng/left16.png,1\n"), split="train")
    with pytest.raises(FolderDataError, match="does not exist"):
        FolderDataset(root / "nope.csv")
    (root / "empty").mkdir()
    with pytest.raises(FolderDataError, match="no labels.csv"):
        FolderDataset(root / "empty")
    with pytest.raises(FolderDataError, match="is empty"):
        FolderDataset(csv("", "blank.csv"))


def test_skip_bad_collects_problems_and_keeps_the_rest(folder):
    root, csv = folder
    text = "\n".join(["image,label,x1,y1,x2,y2", "png/left16.png,1,20,40,35,60", "png/missing.png,1,,,,",
                      "png/normal.png,oops,,,,", "m2.dcm,1,20,40,35,60", "m2.dcm,0,,,,",
                      f"png/right8.png,1,{W + 5},0,{W + 9},5"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = FolderDataset(csv(text), skip_bad=True, size=(64, 40))
    assert [r.image_id for r in ds.records] == ["png/left16"]
    where = [w for w, _ in ds.skipped]
    assert len(ds.skipped) == 4
    assert any("row 3" in w for w in where) and any("row 4" in w for w in where)
    assert any("row 6" in w for w in where) and any("row 7" in w for w in where)
    assert ds[0]["image"].shape == (1, 64, 40)


def test_pixels_that_fail_to_decode_raise_with_the_row(folder):
    root, csv = folder
    p = csv("image,label\nm2.dcm,1\n")
    ds = FolderDataset(p)
    (root / "m2.dcm").write_bytes((root / "m2.dcm").read_bytes()[:400])  # truncated after the check
    with pytest.raises(FolderDataError, match=r"labels.csv row 2: .*m2.dcm: the DICOM header lacks Rows"):
        ds[0]


def test_real_mammograms_through_folder(shared_dir, tmp_path):
    """The NYU GMIC sample PNGs (16-bit, 12-bit values) load, face right and fill the model frame."""
    src = shared_dir / "data" / "nyu-gmic-sample"
    if not (src / "0_L-CC.png").is_file():
        pytest.skip("nyu-gmic-sample is not in ../shared/data")
    rows = ["image,label,study_id,laterality,view"]
    for name in ("0_L-CC", "0_R-CC", "0_L-MLO", "0_R-MLO"):
        lat, view = name[2], name.split("-")[1]
        rows.append(f"{src / (name + '.png')},{int(lat == 'R')},nyu0,{lat},{view}")
    p = tmp_path / "nyu.csv"
    p.write_text("\n".join(rows) + "\n")
    ds = FolderDataset(p, size=(256, 160))
    assert len(ds) == 4 and {r.study_id for r in ds.records} == {"nyu0"}
    for i in range(4):
        s = ds[i]
        img = s["image"][0]
        assert img.shape == (256, 160) and torch.isfinite(img).all()
        assert s["transform"].flipped == (s["laterality"] == "R")
        # Facing right: the chest-wall side (left) is tissue, the far right is background.
        assert float(img[:, :16].mean()) > float(img[:, -16:].mean()) + 0.5
        h0, w0 = s["transform"].original_size
        assert (h0, w0) == ds.records[i].size and h0 > 2000

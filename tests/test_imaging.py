"""camkit.imaging: reading PNG/DICOM, orientation, breast crop, resize, z-score and the BoxTransform."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from dicom_fixtures import phantom, write_dicom, write_png

from camkit.data import imaging
from camkit.data.imaging import ImageReadError


# -- reading ---------------------------------------------------------------------------------------------
def test_png_16_and_8_bit_read_to_unit_range(tmp_path):
    arr = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    out = imaging.read_image(write_png(tmp_path / "a.png", arr, bits=16))
    assert out.dtype == np.float32 and out.shape == (2, 2)
    np.testing.assert_allclose(out, arr / 4000.0, atol=1e-6)
    out8 = imaging.read_image(write_png(tmp_path / "b.png", np.array([[10, 60], [110, 210]]), bits=8))
    np.testing.assert_allclose(out8, (np.array([[10, 60], [110, 210]]) - 10) / 200.0, atol=1e-6)


def test_rgb_picture_becomes_grey(tmp_path):
    from PIL import Image

    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[1:3, 1:4] = 200
    Image.fromarray(rgb).save(tmp_path / "c.png")
    out = imaging.read_image(tmp_path / "c.png")
    assert out.shape == (4, 5) and out[2, 2] == 1.0 and out[0, 0] == 0.0


def test_dicom_monochrome2_and_monochrome1_are_tissue_bright(tmp_path):
    arr = np.array([[0, 100], [200, 400]], dtype=np.uint16)
    m2 = imaging.read_image(write_dicom(tmp_path / "m2.dcm", arr, bits_stored=12))
    np.testing.assert_allclose(m2, arr / 400.0, atol=1e-6)
    m1 = imaging.read_image(write_dicom(tmp_path / "m1.dcm", arr, photometric="MONOCHROME1", bits_stored=12))
    np.testing.assert_allclose(m1, 1.0 - arr / 400.0, atol=1e-6)


def test_dicom_is_found_by_its_marker_without_extension(tmp_path):
    p = write_dicom(tmp_path / "noext", np.full((3, 3), 7, np.uint16))
    assert imaging.is_dicom(p)
    assert not imaging.is_dicom(write_png(tmp_path / "x.png", np.zeros((2, 2))))
    assert imaging.image_size(p) == (3, 3)


def test_dicom_windowing_applies_first_window_and_rescale(tmp_path):
    ramp = np.arange(0, 1000, 10, dtype=np.uint16).reshape(10, 10)
    # Window 500 +- 100 (first of two values, as VinDr writes them): below 400 -> black, above 600 -> white.
    p = write_dicom(tmp_path / "w.dcm", ramp, window=([500, 2000], [201, 4000]))
    out = imaging.read_image(p)
    assert (out[ramp <= 390] == 0).all() and (out[ramp >= 610] == 1).all()
    mid = (ramp > 420) & (ramp < 580)
    assert ((out[mid] > 0) & (out[mid] < 1)).all()
    raw = imaging.read_image(p, voi=False)
    np.testing.assert_allclose(raw, ramp / 990.0, atol=1e-6)
    # Rescale slope/intercept is applied before the window (window in rescaled units).
    p2 = write_dicom(tmp_path / "r.dcm", ramp, window=(1000, 401), rescale=(2.0, 0.0))
    out2 = imaging.read_image(p2)
    assert (out2[ramp <= 390] == 0).all() and (out2[ramp >= 610] == 1).all()


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="nope.png"):
        imaging.read_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match="bad.png"):
        imaging.read_image(bad)
    bad_dcm = tmp_path / "bad.dcm"
    bad_dcm.write_bytes(b"\0" * 128 + b"DICM" + b"\x01\x02")
    with pytest.raises(ImageReadError, match="bad.dcm"):
        imaging.read_image(bad_dcm)
    with pytest.raises(ImageReadError, match="bad.png"):
        imaging.image_size(bad)
    zero_width = write_dicom(tmp_path / "w0.dcm", np.ones((4, 4), np.uint16), window=(10, 0))
    with pytest.raises(ImageReadError, match="w0.dcm.*voi=False"):
        imaging.read_image(zero_width)
    assert imaging.read_image(zero_width, voi=False).shape == (4, 4)


def test_to_unit_range_constant_and_nan():
    assert (imaging.to_unit_range(np.full((2, 2), 5)) == 0).all()
    with pytest.raises(ImageReadError, match="NaN"):
        imaging.to_unit_range(np.array([0.0, np.nan]))


# -- orientation and crop ------------------------------------------------------------------------------
def test_flip_policies():
    left, right = phantom(left=True), phantom(left=False)
    assert not imaging.faces_left(left) and imaging.faces_left(right)
    assert imaging.needs_flip(left, "R", "laterality") and not imaging.needs_flip(left, "L", "laterality")
    assert imaging.needs_flip(right, None, "auto") and not imaging.needs_flip(left, None, "auto")
    assert not imaging.needs_flip(right, "L", "auto")  # a given laterality wins under "auto"
    assert imaging.needs_flip(right, "L", "detect")
    assert not imaging.needs_flip(right, "R", "none")
    with pytest.raises(ValueError, match="flip policy"):
        imaging.needs_flip(left, "L", "sideways")
    np.testing.assert_array_equal(imaging.mirror(right), left)


def test_breast_bbox_ignores_a_separate_marker_and_adds_margin():
    img = np.zeros((200, 120))
    img[50:150, 0:70] = 0.5
    img[5:9, 110:115] = 1.0  # a burnt-in label, not connected to the breast
    assert imaging.breast_bbox(img, margin=0.0) == (50, 0, 150, 70)
    y0, x0, y1, x1 = imaging.breast_bbox(img, margin=0.05)
    assert (y0, x0, y1, x1) == (40, 0, 160, 80)
    assert imaging.breast_bbox(np.zeros((10, 8))) == (0, 0, 10, 8)


def test_breast_bbox_on_a_large_image_uses_subsampling():
    img = np.zeros((2000, 1200), np.float32)
    img[300:1700, 0:800] = 0.6
    y0, x0, y1, x1 = imaging.breast_bbox(img, margin=0.0)
    assert abs(y0 - 300) <= 4 and x0 == 0 and abs(y1 - 1700) <= 4 and abs(x1 - 800) <= 4


def test_fit_aspect_grows_towards_the_nipple_and_keeps_the_box():
    y0, x0, y1, x1 = imaging.fit_aspect((10, 0, 110, 40), 1.6)  # tall: widen to the right only
    assert (y0, x0, y1) == (10, 0, 110) and x1 == 63
    y0, x0, y1, x1 = imaging.fit_aspect((10, 0, 50, 100), 1.6)  # wide: grow up and down
    assert (x0, x1) == (0, 100) and y1 - y0 == 160 and y0 <= 10 and y1 >= 50


def test_crop_pads_outside_with_fill():
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = imaging.crop(img, (-1, 2, 2, 6))
    assert out.shape == (3, 4)
    np.testing.assert_array_equal(out[1:, :2], img[0:2, 2:4])
    assert (out[0] == 0).all() and (out[:, 2:] == 0).all()


# -- resize and z-score ----------------------------------------------------------------------------------
def test_resize_antialiases_when_shrinking_and_keeps_coordinates():
    checker = (np.indices((64, 64)).sum(0) % 2).astype(np.float32)
    small = imaging.resize(checker, (16, 16))
    assert small.shape == (1, 16, 16) and small.dtype == torch.float32
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.02)  # no aliasing
    img = np.zeros((100, 60), np.float32)
    img[40:60, 30:42] = 1.0
    up = imaging.resize(img, (200, 120))[0]
    ys, xs = torch.nonzero(up > 0.5, as_tuple=True)
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (80, 120, 60, 84)
    with pytest.raises(ValueError, match="resize expects"):
        imaging.resize(np.zeros((2, 3, 4)), (2, 2))


def test_zscore_own_and_given_statistics():
    a = np.random.default_rng(0).normal(3, 2, size=(50, 40)).astype(np.float32)
    z = imaging.zscore(a)
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-5
    z2 = imaging.zscore(a, mean=1.0, std=4.0)
    np.testing.assert_allclose(z2, (a - 1) / 4, rtol=1e-6)
    t = imaging.zscore(torch.as_tensor(a))
    assert isinstance(t, torch.Tensor) and abs(float(t.mean())) < 1e-5


# -- the pipeline -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("left", [True, False])
@pytest.mark.parametrize("crop", [True, False])
def test_preprocess_maps_the_mass_box_into_the_model_frame_and_back(left, crop):
    img = phantom(300, 200, left=left, marker=False).astype(np.float32)
    box = np.array([[20.0, 40.0, 35.0, 60.0]]) if left else np.array([[200 - 35.0, 40.0, 200 - 20.0, 60.0]])
    out, tf = imaging.preprocess(img, (128, 80), laterality="L" if left else "R", crop_breast=crop)
    assert out.shape == (1, 128, 80) and out.dtype == torch.float32
    assert abs(float(out.mean())) < 1e-4 and abs(float(out.std()) - 1) < 1e-3
    assert tf.flipped == (not left) and tf.original_size == (300, 200) and tf.model_size == (128, 80)
    mb = tf.to_model(box)[0]
    assert 0 <= mb[0] < mb[2] <= 80 and 0 <= mb[1] < mb[3] <= 128
    inner = out[0, int(np.ceil(mb[1])) + 1:int(mb[3]) - 1, int(np.ceil(mb[0])) + 1:int(mb[2]) - 1]
    assert float(inner.min()) > float(out.max()) - 0.3  # the bright square sits where the box says
    np.testing.assert_allclose(tf.to_original(tf.to_model(box)), box, atol=1e-6)
    if crop:  # the chest wall stays at the left edge and the aspect ratio is the model's
        y0, x0, y1, x1 = tf.crop
        assert x0 == 0 and abs((y1 - y0) / (x1 - x0) - 128 / 80) < 0.02


def test_preprocess_rejects_non_2d():
    with pytest.raises(ValueError, match="expects an"):
        imaging.preprocess(np.zeros((2, 3, 4), np.float32), (8, 8))

"""The synthetic dataset: determinism, splits, balance, exact boxes, no label leak, the sample contract."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from camkit_synthetic.dataset import SyntheticDataset
from camkit_synthetic.generator import DIFFICULTIES, Difficulty, generate, resolve_difficulty

import camkit
from camkit.data.sample import BoxTransform, collate


@pytest.fixture(scope="module")
def test_images():
    """400 generated test images (200 studies: 100 normal, 100 mass), shared by the statistical tests."""
    return [generate(i, (256, 160), split="test") for i in range(400)]


def _breast(im):
    return im.mass_free > 0.08  # background stays below ~0.05; full-thickness tissue is well above 0.1


# -- determinism and splits ----------------------------------------------------------------------------------
def test_same_seed_same_image_other_seed_other_image():
    a, b = generate(7, seed=3), generate(7, seed=3)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert a.norm == b.norm
    assert not np.array_equal(generate(7, seed=4).pixels, a.pixels)
    ds1, ds2 = SyntheticDataset("val", n=8, seed=3, cache=False), SyntheticDataset("val", n=8, seed=3)
    for i in (0, 5):
        assert torch.equal(ds1[i]["image"], ds2[i]["image"])
        assert torch.equal(ds2[i]["image"], ds2[i]["image"])  # cache hit equals first generation


def test_index_to_image_does_not_depend_on_dataset_size_or_order():
    small, big = SyntheticDataset("train", n=8, seed=1), SyntheticDataset("train", n=100, seed=1)
    assert torch.equal(small[6]["image"], big[6]["image"])
    assert torch.equal(small[-1]["image"], small[7]["image"])
    with pytest.raises(IndexError):
        small[8]


def test_splits_are_disjoint():
    seen: dict[bytes, str] = {}
    for split in ("train", "val", "test"):
        ds = SyntheticDataset(split, n=12, cache=False)
        for i in range(len(ds)):
            s = ds[i]
            assert s["image_id"] == f"synth-{split}-{i:06d}"
            key = s["image"].numpy().tobytes()
            assert key not in seen, f"{split} image {i} repeats {seen.get(key)}"
            seen[key] = s["image_id"]


def test_studies_are_cc_mlo_pairs_with_one_label():
    ds = SyntheticDataset("train", n=40, cache=False)
    samples = [ds[i] for i in range(0, 40)]
    for a, b in zip(samples[0::2], samples[1::2]):
        assert a["study_id"] == b["study_id"] and (a["view"], b["view"]) == ("CC", "MLO")
        assert a["label"] == b["label"] and a["laterality"] == b["laterality"]
    labels = [s["label"] for s in samples]
    assert sum(labels) == 20 and ds.labels() == labels
    assert {s["laterality"] for s in samples} == {"L", "R"}


# -- boxes and masses ------------------------------------------------------------------------------------------
def test_boxes_hold_the_planted_mass_inside_the_breast(test_images):
    masses = [im for im in test_images if im.label == 1]
    normals = [im for im in test_images if im.label == 0]
    assert len(masses) == len(normals) == 200
    for im in normals:
        assert im.boxes.shape == (0, 4) and im.mass is None
        np.testing.assert_array_equal(im.pixels, im.mass_free)
    h, w = masses[0].pixels.shape
    for im in masses:
        assert im.boxes.shape == (1, 4)
        x1, y1, x2, y2 = im.boxes[0]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        diff = im.pixels - im.mass_free
        assert diff.min() >= 0
        iy, ix = np.unravel_index(diff.argmax(), diff.shape)
        assert x1 <= ix + 0.5 <= x2 and y1 <= iy + 0.5 <= y2  # the mass's peak is in its box
        box = (slice(int(y1), int(y2)), slice(int(x1), int(x2)))
        assert _breast(im)[box].all()  # the whole box lies in the breast
        # Tight: the core (>= 60% of the peak) is inside the box, and every box edge touches the mass.
        strong = diff >= 0.6 * diff.max()
        ys, xs = np.nonzero(strong)
        assert xs.min() >= x1 and xs.max() + 1 <= x2 and ys.min() >= y1 and ys.max() + 1 <= y2
        inner = diff[box] >= 0.15 * diff.max()
        assert inner[0].any() and inner[-1].any() and inner[:, 0].any() and inner[:, -1].any()


def test_mass_parameters_follow_the_difficulty(test_images):
    d = DIFFICULTIES["default"]
    masses = [im for im in test_images if im.label == 1]
    shapes, margins = {im.mass["shape"] for im in masses}, {im.mass["margin"] for im in masses}
    assert shapes == {"round", "oval", "lobulated", "irregular"}
    assert margins == {"circumscribed", "obscured", "spiculated"}
    for im in masses:
        assert d.contrast[0] <= im.mass["contrast"] <= d.contrast[1]
        assert im.mass["amplitude"] == pytest.approx(im.mass["contrast"] * im.info["texture_sd"])
        assert 0.8 * d.radius[0] * 256 <= im.mass["radius_px"] <= 1.1 * d.radius[1] * 256
    easy = [generate(i, split="test", difficulty="easy") for i in range(2, 40, 4)]
    hard = [generate(i, split="test", difficulty="hard") for i in range(2, 40, 4)]
    assert min(e.mass["contrast"] for e in easy) >= DIFFICULTIES["easy"].contrast[0]
    assert max(h.mass["contrast"] for h in hard) <= DIFFICULTIES["hard"].contrast[1]
    assert np.mean([e.mass["radius_px"] for e in easy]) > np.mean([h.mass["radius_px"] for h in hard])


def test_difficulty_names_and_overrides():
    d = resolve_difficulty("hard", contrast=(1.5, 2.5), distractors=0)
    assert d.contrast == (1.5, 2.5) and d.distractors == 0 and d.radius == DIFFICULTIES["hard"].radius
    assert resolve_difficulty(Difficulty(contrast=(3, 4))).contrast == (3, 4)
    with pytest.raises(ValueError, match="unknown synthetic difficulty 'medium'"):
        resolve_difficulty("medium")
    with pytest.raises(ValueError, match="contrst"):
        resolve_difficulty("easy", contrst=(1, 2))
    with pytest.raises(ValueError, match="blob_contrast"):
        resolve_difficulty("easy", blob_contrast=(0.5, 1.2))
    with pytest.raises(ValueError, match="radius"):
        resolve_difficulty("easy", radius=(0.1, 0.05))
    im = generate(2, split="val", contrast=(5.0, 5.0))
    assert im.mass["contrast"] == 5.0


# -- no label leak (docs/datasets.md) ----------------------------------------------------------------------------
def _auc(y, x):
    """ROC AUC by the Mann-Whitney rank sum (ties share their average rank)."""
    y, x = np.asarray(y).astype(bool), np.asarray(x, dtype=np.float64)
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(1, len(x) + 1)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inv, weights=ranks) / counts)[inv]
    n1, n0 = y.sum(), (~y).sum()
    return (ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def test_no_label_leak_outside_the_mass(test_images):
    """Away from the mass, normal and mass images are indistinguishable (the net can't learn the skin line).

    Normalisation statistics come from the mass-free image, so background, skin and breast-edge values of
    the normalised image do not move when the mass is added. A positive control shows the check can see a
    real difference: the brightest breast pixels (the mass itself) do separate the classes.
    """
    from scipy import ndimage

    y = np.array([im.label for im in test_images])
    feats = []
    for im in test_images:
        x, breast = im.normalised(), _breast(im)
        edge = breast & ~ndimage.minimum_filter(breast, size=13)  # skin line and thinning tissue
        inside = x[breast]
        top = np.partition(inside, len(inside) - 20)[-20:].mean()  # the breast's 20 brightest pixels
        feats.append([np.median(x[~breast]), x[~breast].std(), x[edge].mean(), x[edge].std(), breast.mean(),
                      im.norm[0], im.norm[1], top])
    feats = np.array(feats)
    names = ["background median", "background sd", "edge mean", "edge sd", "breast area", "norm mean",
             "norm sd"]
    for j, name in enumerate(names):
        auc = _auc(y, feats[:, j])
        assert 0.38 < auc < 0.62, f"{name} separates normal from mass images (AUC {auc:.2f}): label leak"
    assert _auc(y, feats[:, -1]) > 0.65  # positive control: the mass itself is visible


def test_adding_the_mass_changes_nothing_away_from_it(test_images):
    """The label-leak trap, checked exactly: z-scoring after adding the mass would shift every pixel."""
    for im in test_images[2:40:4]:
        x1, y1, x2, y2 = im.boxes[0]
        reach = 2.8 * max(x2 - x1, y2 - y1)  # spicules reach 2.7 radii from the centre
        yy, xx = np.mgrid[0:im.pixels.shape[0], 0:im.pixels.shape[1]] + 0.5
        far = (np.abs(xx - (x1 + x2) / 2) > reach) | (np.abs(yy - (y1 + y2) / 2) > reach)
        mass_free = ((im.mass_free - np.float32(im.norm[0])) / np.float32(im.norm[1])).astype(np.float32)
        np.testing.assert_array_equal(im.normalised()[far], mass_free[far])


def test_mass_free_images_do_not_depend_on_the_label(test_images):
    """Only the mass differs: the mass-free images of both classes have the same statistics."""
    y = np.array([im.label for im in test_images])
    for name, f in [("mean", lambda im: im.mass_free.mean()), ("sd", lambda im: im.mass_free.std()),
                    ("texture sd", lambda im: im.info["texture_sd"]), ("density", lambda im: im.info["density"]),
                    ("p99", lambda im: np.percentile(im.mass_free, 99))]:
        auc = _auc(y, np.array([f(im) for im in test_images]))
        assert 0.38 < auc < 0.62, f"mass-free {name} differs by class (AUC {auc:.2f})"


def test_normalised_statistics_vary_within_each_class(test_images):
    """Normals must not all sit at mean 0 / sd 1 exactly (else 'mean > 0' alone would flag a mass)."""
    means = np.array([im.normalised().mean() for im in test_images if im.label == 0])
    shift = np.array([((im.pixels - im.mass_free) / im.norm[1]).mean() for im in test_images if im.label])
    assert means.std() > 2 * shift.mean()  # the mass's share of the mean hides in the normals' spread


# -- the sample contract ------------------------------------------------------------------------------------------
def test_sample_contract_and_transform_round_trip():
    ds = camkit.create_dataset("synthetic", split="val", n=8, size=(128, 80))
    for i in range(8):
        s = ds[i]
        assert set(s) == {"image", "label", "boxes", "image_id", "study_id", "laterality", "view", "transform",
                          "masks", "density"}
        assert s["masks"].dtype == torch.bool and s["masks"].shape == (s["label"], 128, 80)
        assert s["density"] in {"DENSITY A", "DENSITY B", "DENSITY C", "DENSITY D"}
        assert s["image"].shape == (1, 128, 80) and s["image"].dtype == torch.float32
        assert torch.isfinite(s["image"]).all()
        assert isinstance(s["label"], int) and s["label"] in (0, 1)
        assert s["boxes"].dtype == torch.float32 and s["boxes"].shape == (s["label"], 4)
        assert isinstance(s["transform"], BoxTransform) and s["transform"].flipped == (s["laterality"] == "R")
        raw = ds.raw(i)
        np.testing.assert_allclose(s["transform"].to_original(s["boxes"]), raw.boxes, atol=1e-4)
        stored = torch.as_tensor(raw.normalised())
        model = stored.flip(-1) if s["transform"].flipped else stored
        assert torch.equal(s["image"][0], model)
        if s["label"]:  # the model frame faces right: the mass box is right of the chest wall margin
            assert float(s["boxes"][0, 0]) > 0.05 * 80
    batch = collate([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 1, 128, 80) and batch["label"].tolist() == [0, 0, 1, 1]
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[3]["image"], ds[3]["image"])


def _extent(mask) -> list[float]:
    ys, xs = np.nonzero(np.asarray(mask))
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def test_masks_are_the_planted_mass_and_their_box_is_the_box():
    # the raw mask in the stored frame: the box is tight around it, and the mass added intensity on it
    ds = SyntheticDataset("test", n=16, size=(128, 80), original_size=(256, 160))
    for i in range(16):
        raw, s = ds.raw(i), ds[i]
        assert raw.masks.shape == (raw.label, 256, 160)
        if not raw.label:
            continue
        assert _extent(raw.masks[0]) == raw.boxes[0].tolist()
        assert (raw.pixels - raw.mass_free)[raw.masks[0]].mean() > 0
        # the model frame (mirrored for right views, half size): within a pixel of the box, and back in the
        # original frame within 1 px (issue 13's rule for masks)
        model_box = s["boxes"][0].tolist()
        assert np.abs(np.array(_extent(s["masks"][0])) - model_box).max() <= 1.0
        back = s["transform"].to_original(np.array([_extent(s["masks"][0])]))[0]
        assert np.abs(back - raw.boxes[0]).max() <= 2.0  # 1 px of the half-size frame is 2 px here


def test_generating_at_a_larger_original_size():
    ds = SyntheticDataset("test", n=4, size=(128, 80), original_size=(256, 160))
    s = ds[2]
    assert s["image"].shape == (1, 128, 80) and s["transform"].original_size == (256, 160)
    raw = ds.raw(2)
    assert raw.pixels.shape == (256, 160)
    np.testing.assert_allclose(s["transform"].to_original(s["boxes"]), raw.boxes, atol=1e-4)
    assert ds.config["original_size"] == [256, 160]


@pytest.mark.parametrize("size", [(64, 40), (301, 190)])
def test_any_size_gives_a_mass_inside_the_breast(size):
    for i in (2, 3, 6):
        im = generate(i, size, split="val")
        assert im.pixels.shape == size and im.pixels.dtype == np.float32
        assert 0 <= im.pixels.min() and im.pixels.max() <= 1
        x1, y1, x2, y2 = im.boxes[0]
        assert 0 <= x1 < x2 <= size[1] and 0 <= y1 < y2 <= size[0]
        assert _breast(im)[int(y1):int(y2), int(x1):int(x2)].mean() > 0.95


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="split 'dev'"):
        SyntheticDataset("dev")
    with pytest.raises(ValueError, match="too small"):
        generate(0, (16, 16))
    with pytest.raises(ValueError, match="n must be"):
        SyntheticDataset("train", n=-1)

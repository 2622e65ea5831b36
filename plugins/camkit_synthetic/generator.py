"""Seeded synthetic mammograms with planted masses and exact boxes (numpy, vectorised per image).

One image is a pure function of ``(index, size, seed, split, difficulty)``: DataLoader workers, DDP ranks and
the VinDr-layout writer all get the same pixels for the same index. Images come in studies of two (CC and
MLO of one breast, ``index // 2``); a study holds a mass (label 1) when ``study % 2 == 1``, so any run of
four consecutive indices is balanced.

What is drawn, and from which random stream (the streams are why nothing but the mass depends on the label):

* study stream: laterality, breast size, fat level, glandular density, and the mass's size, shape, margin
  and contrast (drawn for every study, used only by mass studies);
* image stream: silhouette, texture, pectoral muscle (MLO), distractors, pixel noise, normalisation jitter;
* mass stream: where the mass sits in this view, its orientation and spicules (used only by mass images).

Geometry: breasts face right (chest wall on the left) while drawing; a right view is then mirrored, so
:attr:`SyntheticImage.pixels` is stored like a real right mammogram (facing left) and the dataset mirrors it
back, exactly as for real data. Lengths scale with the image height, so any size gives the same anatomy.

Contrast is the mass's peak added intensity in units of the *texture SD*: the standard deviation of the
anatomical background (fat, glandular tissue, strands, noise) inside the breast's interior, before
distractors. A prototype measured (docs/training.md): peak contrast 2.5-4 texture SDs was learnable in ~85 s on a 2-core CPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import Any

import numpy as np

from camkit.errors import OptionError, did_you_mean

SPLITS = ("train", "val", "test")
SHAPES = ("round", "oval", "lobulated", "irregular")
MARGINS = ("circumscribed", "obscured", "spiculated")
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
_STREAM_STUDY, _STREAM_IMAGE, _STREAM_MASS = 0, 1, 2


# -- difficulty ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Difficulty:
    """What makes masses easy or hard to find. Ranges are (low, high), drawn uniformly per study.

    contrast      mass peak intensity in texture SDs
    radius        mass radius as a fraction of the image height (0.05 at H=256 is 12.8 px)
    shapes        probabilities of round / oval / lobulated / irregular
    margins       probabilities of circumscribed / obscured / spiculated
    density       glandular density (0 fatty .. 1 extremely dense; more texture to hide masses in)
    distractors   multiplier on the expected number of vessels, calcification clusters and faint blobs
    blob_contrast faint-blob distractor contrast as a fraction of ``contrast[0]`` (must stay below 1)
    blob_radius   faint-blob radius as a fraction of ``radius[0]``
    """

    contrast: tuple[float, float] = (2.5, 4.0)
    radius: tuple[float, float] = (0.035, 0.07)
    shapes: tuple[float, float, float, float] = (0.25, 0.3, 0.25, 0.2)
    margins: tuple[float, float, float] = (0.5, 0.3, 0.2)
    density: tuple[float, float] = (0.0, 1.0)
    distractors: float = 1.0
    blob_contrast: tuple[float, float] = (0.3, 0.6)
    blob_radius: tuple[float, float] = (0.5, 0.9)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


DIFFICULTIES: dict[str, Difficulty] = {
    # Anchored on a prototype's measurements (a GMIC-like global net on a 2-core CPU, 256x160, TPR@1FPPI): peak
    # contrast 2.5-4 texture SDs reached 0.90-0.97 in ~85 s; 1.5-3 reached 0.88-0.92 in ~200 s.
    # easy: quick demos and smoke tests (bigger, brighter, mostly circumscribed masses, fewer distractors).
    "easy": Difficulty(contrast=(3.5, 5.0), radius=(0.045, 0.08), margins=(0.7, 0.2, 0.1), density=(0.0, 0.8),
                       distractors=0.7),
    # default: what `camkit bench` trains on, about a minute of CPU training per model.
    "default": Difficulty(),
    # hard: several minutes of training; smaller, subtler, more often obscured masses in denser breasts.
    "hard": Difficulty(contrast=(1.5, 3.0), radius=(0.025, 0.06), margins=(0.35, 0.4, 0.25), density=(0.2, 1.0),
                       distractors=1.3),
}


def resolve_difficulty(difficulty: str | Difficulty = "default", **overrides: Any) -> Difficulty:
    """A named level (``easy``/``default``/``hard``) or a :class:`Difficulty`, with fields overridden.

    ``resolve_difficulty("hard", contrast=(1.5, 2.5))`` keeps everything else of ``hard``.
    """
    if isinstance(difficulty, Difficulty):
        if not overrides:
            _check(difficulty)
            return difficulty
        base = difficulty
    elif difficulty in DIFFICULTIES:
        base = DIFFICULTIES[difficulty]
    else:
        raise OptionError(f"unknown synthetic difficulty {difficulty!r}; use one of "
                         f"{', '.join(DIFFICULTIES)} or a camkit_synthetic.generator.Difficulty")
    names = {f.name for f in fields(Difficulty)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        key = unknown[0]
        raise OptionError(f"dataset 'synthetic' has no option {key!r}.{did_you_mean(key, names)} Its options: "
                          f"split, size, n, seed, difficulty, original_size, cache, {', '.join(sorted(names))}")
    clean = {k: (tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else float(v))
             for k, v in overrides.items() if v is not None}
    d = replace(base, **clean)
    _check(d)
    return d


@lru_cache(maxsize=64)
def _check(d: Difficulty) -> None:
    """Validate a difficulty (cached: generate() calls this for every image)."""
    for name in ("contrast", "radius", "density", "blob_contrast", "blob_radius"):
        lo, hi = getattr(d, name)
        if not 0 <= lo <= hi:
            raise OptionError(f"synthetic {name}={getattr(d, name)} must be (low, high) with 0 <= low <= high")
    if d.contrast[0] <= 0 or d.radius[0] <= 0:
        raise OptionError("synthetic contrast and radius must be positive")
    if d.radius[1] > 0.2:
        raise OptionError(f"synthetic radius={d.radius} is a fraction of the image height; keep it below 0.2")
    if d.blob_contrast[1] >= 1:
        raise OptionError("blob_contrast must stay below 1 (a fraction of the weakest mass's contrast), or "
                         "distractors become indistinguishable from masses")
    for name, n in (("shapes", 4), ("margins", 3)):
        p = getattr(d, name)
        if len(p) != n or min(p) < 0 or sum(p) <= 0:
            raise OptionError(f"synthetic {name} must be {n} non-negative probabilities, got {p}")
    if d.distractors < 0:
        raise OptionError("synthetic distractors must be >= 0")


# -- the result ------------------------------------------------------------------------------------------
@dataclass
class SyntheticImage:
    """One generated mammogram, stored like a real one (right views face left).

    pixels      (H, W) float32 in [0, 1], raw intensity (tissue bright), mass included: write it as DICOM
    mass_free   (H, W) float32, the same image without the mass (equal to ``pixels`` for normals)
    label       1 mass, 0 normal
    boxes       (N, 4) float32 x1 y1 x2 y2 in ``pixels``' frame, tight around the mass's outline
    masks       (N, H, W) bool, each mass's pixels inside its nominal outline (what its box is tight around)
    norm        (mean, std) to z-score ``pixels`` with: the mass-free image's statistics, slightly jittered
    mass        the mass's parameters (shape, margin, contrast, radius_px, centre), None for normals
    """

    pixels: np.ndarray
    mass_free: np.ndarray
    label: int
    boxes: np.ndarray
    laterality: str
    view: str
    image_id: str
    study_id: str
    norm: tuple[float, float]
    mass: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    masks: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1), dtype=bool))

    def normalised(self) -> np.ndarray:
        """``pixels`` z-scored with :attr:`norm` (mass-free statistics), float32."""
        mean, std = self.norm
        return ((self.pixels - np.float32(mean)) / np.float32(std)).astype(np.float32)


def image_id(split: str, index: int) -> str:
    return f"synth-{split}-{index:06d}"


def study_id(split: str, index: int) -> str:
    return f"synth-{split}-s{index // 2:06d}"


def density_category(density: float) -> str:
    """The glandular density (0 .. 1) as the four BI-RADS categories VinDr-Mammo writes: quarters of the
    range, "DENSITY A" (fatty) .. "DENSITY D" (extremely dense)."""
    return f"DENSITY {'ABCD'[min(3, max(0, int(float(density) * 4)))]}"


def label_of(index: int) -> int:
    """Label of image ``index``: studies (pairs of images) alternate normal, mass."""
    return (index // 2) % 2


def generate(index: int, size: tuple[int, int] = (256, 160), *, seed: int = 0, split: str = "train",
             difficulty: str | Difficulty = "default", **overrides: Any) -> SyntheticImage:
    """Generate image ``index`` of ``split`` (a pure function of its arguments).

    ``size`` (H, W) of the stored image; ``difficulty`` a named level or :class:`Difficulty`, ``overrides``
    its fields (e.g. ``contrast=(3, 4)``). Returns a :class:`SyntheticImage`.
    """
    if split not in _SPLIT_CODE:
        raise ValueError(f"synthetic split {split!r} is not one of {', '.join(SPLITS)}")
    if index < 0:
        raise ValueError(f"synthetic index must be >= 0, got {index}")
    h, w = int(size[0]), int(size[1])
    if h < 32 or w < 32:
        raise ValueError(f"synthetic size {size} is too small; use at least 32 x 32 (e.g. 256 x 160)")
    diff = resolve_difficulty(difficulty, **overrides)
    study = index // 2
    view = "CC" if index % 2 == 0 else "MLO"
    label = label_of(index)
    code = _SPLIT_CODE[split]
    rs = _rng(seed, code, study, _STREAM_STUDY)
    ri = _rng(seed, code, index, _STREAM_IMAGE)
    rm = _rng(seed, code, index, _STREAM_MASS)

    sp = _study_params(rs, diff)
    anat = _anatomy(ri, h, w, view, sp)
    base = anat["image"]
    tex_sd = float(base[anat["interior"]].std()) if anat["interior"].any() else 0.05
    tex_sd = max(tex_sd, 1e-3)
    _add_distractors(ri, base, anat, diff, sp, tex_sd)
    base += (ri.random(base.shape, dtype=np.float32) - np.float32(0.5)) * np.float32(sp["noise"] * math.sqrt(12))
    np.clip(base, 0.0, 1.0, out=base)
    mean, std = float(base.mean()), float(base.std())
    # Jitter the statistics (both classes alike) so that normals do not all sit at mean 0 / SD 1 exactly: the
    # mass's own share of the normalised mean (0.02 SD on average at "default", 0.1 at most at "easy") is then
    # inside the spread of normals instead of a perfect global cue.
    jm, js = ri.normal(0.0, 0.1), math.exp(ri.normal(0.0, 0.05))
    norm = (mean + jm * std, std * js)

    pixels = base
    boxes = np.zeros((0, 4), np.float32)
    masks = np.zeros((0, h, w), dtype=bool)
    mass = None
    if label:
        pixels = base.copy()
        mass, box = _add_mass(rm, pixels, anat, sp, tex_sd)
        np.clip(pixels, 0.0, 1.0, out=pixels)
        boxes = np.asarray([box], np.float32)
        y0, x0, core = mass.pop("core")
        masks = np.zeros((1, h, w), dtype=bool)
        masks[0, y0:y0 + core.shape[0], x0:x0 + core.shape[1]] = core
    if sp["laterality"] == "R":
        pixels = np.ascontiguousarray(pixels[:, ::-1])
        base = pixels if not label else np.ascontiguousarray(base[:, ::-1])
        if len(boxes):
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
            masks = np.ascontiguousarray(masks[:, :, ::-1])
        if mass is not None:
            mass["center"] = (w - mass["center"][0], mass["center"][1])
    return SyntheticImage(pixels=pixels, mass_free=base, label=label, boxes=boxes, masks=masks,
                          laterality=sp["laterality"], view=view, image_id=image_id(split, index),
                          study_id=study_id(split, index), norm=norm, mass=mass,
                          info={"texture_sd": tex_sd, "density": sp["density"], "seed": seed,
                                "split": split, "index": index})


def _rng(seed: int, code: int, key: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=(code, key, stream)))


# -- study-level parameters ------------------------------------------------------------------------------
def _study_params(r: np.random.Generator, d: Difficulty) -> dict[str, Any]:
    p: dict[str, Any] = {
        "laterality": "L" if r.random() < 0.5 else "R",
        "size": r.uniform(0.85, 1.1),
        "fat": r.uniform(0.16, 0.24),
        "density": r.uniform(*d.density),
        "gland": r.uniform(0.22, 0.36),
        "noise": r.uniform(0.006, 0.012),
    }
    # Drawn for every study so the stream stays aligned; used only when the study holds a mass.
    p["mass_shape"] = SHAPES[r.choice(4, p=np.asarray(d.shapes) / sum(d.shapes))]
    p["mass_margin"] = MARGINS[r.choice(3, p=np.asarray(d.margins) / sum(d.margins))]
    p["mass_radius"] = r.uniform(*d.radius)
    p["mass_contrast"] = r.uniform(*d.contrast)
    p["mass_aspect"] = r.uniform(0.55, 0.8) if p["mass_shape"] == "oval" else r.uniform(0.88, 1.0)
    p["mass_harmonics"] = r.uniform(0, 2 * math.pi, size=8)
    p["mass_amplitudes"] = r.uniform(0.5, 1.0, size=8)
    p["radius_lo"], p["contrast_lo"] = d.radius[0], d.contrast[0]
    return p


# -- anatomy -----------------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _grids(h: int, w: int) -> dict[str, np.ndarray]:
    """Pixel-centre coordinates and the texture filters for one image size (cached: they never change)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + np.float32(0.5)
    ky = (np.fft.fftfreq(h) * h)[:, None]          # cycles per image height, so texture scales with size
    kx = (np.fft.rfftfreq(w) * h)[None, :]
    iso = (ky ** 2 + kx ** 2 + 4.0) ** -0.75        # power-law (beta = 3) anatomical noise
    iso[0, 0] = 0.0
    k2 = ky ** 2 + (4.0 * kx) ** 2                  # strands: 4x longer than wide, finer than the glands
    strands = (k2 + 16.0) ** -0.7 * (1.0 - np.exp(-k2 / 400.0))
    filt = np.stack([iso, strands]).astype(np.float32)
    return {"yy": yy, "xx": xx, "filters": filt}


def _ramp(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """0 below ``e0``, 1 above ``e1``, linear between (cheaper than a smoothstep; the look is the same)."""
    return np.clip((x - np.float32(e0)) * np.float32(1.0 / (e1 - e0)), 0.0, 1.0)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = _ramp(e0, e1, x)
    return t * t * (3.0 - 2.0 * t)


def _anatomy(r: np.random.Generator, h: int, w: int, view: str, sp: dict[str, Any]) -> dict[str, np.ndarray]:
    """Silhouette, fibroglandular texture, strands, skin and (MLO) pectoral muscle; no distractors.

    The anatomy is smooth, so it is drawn at half resolution (four times cheaper) and upsampled; pixel
    noise, distractors and the mass are added later at full resolution. Transcendental functions are
    avoided on whole images: the outline's harmonics come from multiple-angle formulas, ramps replace
    sigmoids.
    """
    f = 2 if min(h, w) >= 96 else 1
    hl, wl = -(-h // f), -(-w // f)
    g = _grids(hl, wl)
    yy, xx = g["yy"] * np.float32(f), g["xx"] * np.float32(f)  # low-res pixel centres in full-res pixels
    s = sp["size"]
    if view == "CC":
        cy, ax, by, tilt = r.uniform(0.45, 0.55) * h, r.uniform(0.6, 0.8) * w * s, r.uniform(0.34, 0.44) * h * s, 0.0
    else:
        cy, ax, by = r.uniform(0.42, 0.5) * h, r.uniform(0.55, 0.75) * w * s, r.uniform(0.46, 0.55) * h * s
        tilt = r.uniform(0.1, 0.3)
    ax, by = min(ax, 0.97 * w), min(by, 0.6 * h)
    c, si = math.cos(tilt), math.sin(tilt)
    dy = yy - np.float32(cy)
    u = (xx * np.float32(c / ax) + dy * np.float32(si / ax))
    v = (dy * np.float32(c / by) - xx * np.float32(si / by))
    rad = np.sqrt(u * u + v * v) + np.float32(1e-6)
    c1, s1 = u / rad, v / rad
    c2, s2 = c1 * c1 - s1 * s1, 2.0 * c1 * s1
    c3, s3 = c1 * c2 - s1 * s2, s1 * c2 + c1 * s2
    c4, s4 = c2 * c2 - s2 * s2, 2.0 * c2 * s2
    amp = r.uniform(0.0, 0.04, size=3)
    ph = r.uniform(0, 2 * math.pi, size=3)
    outline = np.float32(1.0)
    for (ck, sk), a_, p_ in zip(((c2, s2), (c3, s3), (c4, s4)), amp, ph):
        outline = outline + ck * np.float32(a_ * math.cos(p_)) - sk * np.float32(a_ * math.sin(p_))
    rho = rad / outline

    rho0 = r.uniform(0.72, 0.84)
    edge = _ramp(rho0, 1.0, rho)
    thick = np.sqrt(1.0 - edge * edge)  # compressed thickness falls off towards the skin

    # Texture: two fields (power-law glands, strands) from one batched inverse FFT of random coefficients.
    shape = (2, hl, wl // 2 + 1)
    spec = (r.random(shape, dtype=np.float32) - 0.5) + 1j * (r.random(shape, dtype=np.float32) - 0.5)
    fields_ = np.fft.irfft2(spec * g["filters"], s=(hl, wl)).astype(np.float32, copy=False)
    fields_ /= fields_.std(axis=(1, 2), keepdims=True) + np.float32(1e-8)
    iso, strands = fields_[0], fields_[1]
    tau = 1.2 - 1.9 * sp["density"]  # threshold on the field: denser breasts have more glandular tissue
    gland = np.clip((iso - np.float32(tau)) * np.float32(0.8) + np.float32(0.5), 0.0, 1.0)
    envelope = (1.0 - _smoothstep(0.45, 0.93, rho)) * _ramp(0.0, 0.14, xx * np.float32(1.0 / ax))
    tissue = (np.float32(sp["fat"]) + np.float32(sp["gland"]) * gland * envelope
              + np.float32(0.03) * strands * (1.0 - _ramp(0.75, 1.0, rho)))
    img = thick * tissue
    rim = np.clip(1.0 - np.abs(rho - np.float32(0.99)) * np.float32(1.0 / 0.025), 0.0, 1.0)
    img += np.float32(r.uniform(0.03, 0.07)) * rim  # skin line
    inside = rho < 1.0
    pect = np.zeros_like(img)
    if view == "MLO":
        pw, ph_ = r.uniform(0.22, 0.4) * w, r.uniform(0.35, 0.6) * h
        line = (xx * np.float32(1.0 / pw) + yy * np.float32(1.0 / ph_) - 1.0) * np.float32(min(pw, ph_))
        pect = (1.0 - _smoothstep(-1.5, 1.5, line)) * inside   # px to the muscle's edge, softened
        img += np.float32(r.uniform(0.12, 0.25)) * pect * (np.float32(0.9) + np.float32(0.1) * iso)
    img *= inside
    img += np.float32(r.uniform(0.0, 0.03))  # detector background level
    if f > 1:
        img, rho = _upsample2(np.stack([img, rho]))[:, :h, :w]
        pect = pect.repeat(f, 0).repeat(f, 1)[:h, :w]  # only thresholded: nearest is enough
    xx = _grids(h, w)["xx"]
    inside = rho < 1.0
    free = pect < 0.01
    interior = (rho < 0.8) & free & (xx > 0.1 * ax)
    # Masses and blobs go where the tissue is full thickness, away from the chest wall and the muscle.
    site = (rho < 0.68) & free & (xx > 0.15 * ax + 0.04 * h)
    return {"image": img, "rho": rho, "inside": inside, "interior": interior, "site_idx": np.flatnonzero(site)}


def _upsample2(a: np.ndarray) -> np.ndarray:
    """Bilinear 2x upsampling of a (C, h, w) float32 stack to (C, 2h, 2w), edges clamped.

    Identical to ``F.interpolate(..., scale_factor=2, mode="bilinear", align_corners=False)``, and
    several times faster on arrays this small.
    """
    def along(x: np.ndarray, axis: int) -> np.ndarray:
        x = np.moveaxis(x, axis, 0)
        out = np.empty((2 * x.shape[0],) + x.shape[1:], np.float32)
        quarter = (x[1:] - x[:-1]) * np.float32(0.25)
        np.subtract(x[1:], quarter, out=out[2::2])      # 0.75 * x[i] + 0.25 * x[i - 1]
        np.add(x[:-1], quarter, out=out[1:-1:2])        # 0.75 * x[i] + 0.25 * x[i + 1]
        out[0], out[-1] = x[0], x[-1]
        return np.moveaxis(out, 0, axis)

    return np.ascontiguousarray(along(along(a, 1), 2))


# -- distractors -------------------------------------------------------------------------------------------
def _splat(acc: list, shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, amps: np.ndarray,
           sigma: float) -> None:
    """Queue Gaussian stamps of width ``sigma`` px at sub-pixel points (ys, xs) with peaks ``amps``.

    Stamps are collected as (flat index, weight) pairs in ``acc`` and summed by one ``np.bincount``.
    """
    if len(ys) == 0:
        return
    h, w = shape
    rad = max(1, int(math.ceil(2.5 * sigma)))
    off = np.arange(-rad, rad + 1)
    iy = np.floor(ys).astype(np.int64)[:, None, None] + off[None, :, None]
    ix = np.floor(xs).astype(np.int64)[:, None, None] + off[None, None, :]
    wgt = np.exp(-(((iy + 0.5) - ys[:, None, None]) ** 2 + ((ix + 0.5) - xs[:, None, None]) ** 2)
                 / (2 * sigma * sigma)) * amps[:, None, None]
    iy, ix = np.broadcast_arrays(iy, ix)
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    acc.append(((iy * w + ix)[ok], wgt[ok]))


def _random_sites(r: np.random.Generator, idx: np.ndarray, w: int, n: int) -> np.ndarray:
    """``n`` random (y, x) sub-pixel points in the pixels ``idx`` (flat indices, image width ``w``)."""
    if len(idx) == 0 or n == 0:
        return np.zeros((0, 2))
    pick = idx[r.integers(0, len(idx), size=n)]
    return np.stack([pick // w + r.random(n), pick % w + r.random(n)], axis=1)


def _add_distractors(r: np.random.Generator, img: np.ndarray, anat: dict[str, np.ndarray], d: Difficulty,
                     sp: dict[str, Any], tex_sd: float) -> None:
    """Vessels (long, thin), calcification clusters (tiny, bright) and faint small blobs, on every image.

    All three are drawn identically for normal and mass images; each differs from a mass in a way a model
    can learn: vessels by shape, calcifications by size, blobs by contrast (below the weakest mass's).
    """
    h, w = img.shape
    px = h / 256.0  # distractor widths scale with the image
    acc: list = []
    vessel_zone = np.flatnonzero(anat["inside"] & (anat["rho"] < 0.85))
    sites = anat["site_idx"]
    for _ in range(r.poisson(1.5 * d.distractors)):  # vessels: gentle curves towards the nipple
        ends = _random_sites(r, vessel_zone, w, 2)
        if len(ends) == 0:
            break
        p0, p2 = ends[ends[:, 1].argsort()]
        chord = p2 - p0
        length = float(np.hypot(*chord))
        if length < 0.1 * h:
            continue
        normal = np.array([-chord[1], chord[0]]) / length
        p1 = (p0 + p2) / 2 + normal * r.uniform(-0.2, 0.2) * length
        t = np.linspace(0.0, 1.0, max(4, int(length / (0.7 * px))))[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
        sigma = r.uniform(0.5, 0.9) * px
        amp = r.uniform(0.5, 1.3) * tex_sd
        step = length / (len(t) - 1)
        taper = np.sin(np.pi * t[:, 0]) ** 0.3
        _splat(acc, (h, w), pts[:, 0], pts[:, 1], amp * taper * step / (math.sqrt(2 * math.pi) * sigma), sigma)
    for _ in range(r.poisson(0.7 * d.distractors)):  # calcification clusters: 3-10 tiny bright dots
        centre = _random_sites(r, sites, w, 1)
        if len(centre) == 0:
            break
        k = int(r.integers(3, 11))
        pts = centre + (r.random((k, 2)) - 0.5) * (0.06 * h)
        _splat(acc, (h, w), pts[:, 0], pts[:, 1], r.uniform(1.5, 3.5, size=k) * tex_sd, r.uniform(0.45, 0.7) * px)
    layer = None
    if acc:
        flat = np.concatenate([a for a, _ in acc])
        wgt = np.concatenate([b for _, b in acc])
        layer = np.bincount(flat, weights=wgt, minlength=h * w).reshape(h, w).astype(np.float32)
    for _ in range(r.poisson(0.8 * d.distractors)):  # faint blobs: smaller and weaker than any mass
        centre = _random_sites(r, sites, w, 1)
        if len(centre) == 0:
            break
        if layer is None:
            layer = np.zeros_like(img)
        rad = r.uniform(*d.blob_radius) * sp["radius_lo"] * h
        amp = r.uniform(*d.blob_contrast) * sp["contrast_lo"] * tex_sd
        _stamp_blob(layer, centre[0], rad, amp)
    if layer is not None:
        img += layer * anat["inside"]


def _stamp_blob(img: np.ndarray, centre: np.ndarray, rad: float, amp: float) -> None:
    """Add a soft round blob (Gaussian-edged disc) of radius ``rad`` px."""
    h, w = img.shape
    ext = int(math.ceil(2 * rad)) + 1
    cy, cx = float(centre[0]), float(centre[1])
    y0, y1 = max(0, int(cy) - ext), min(h, int(cy) + ext + 1)
    x0, x1 = max(0, int(cx) - ext), min(w, int(cx) + ext + 1)
    if y1 <= y0 or x1 <= x0:
        return
    py = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
    pxx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx
    dd = np.sqrt(py * py + pxx * pxx) / rad
    img[y0:y1, x0:x1] += amp * (1.0 - _smoothstep(0.4, 1.5, dd))


# -- the mass ------------------------------------------------------------------------------------------------
def _add_mass(r: np.random.Generator, img: np.ndarray, anat: dict[str, np.ndarray], sp: dict[str, Any],
              tex_sd: float) -> tuple[dict[str, Any], tuple[float, float, float, float]]:
    """Plant the study's mass at a random site of this view; returns its parameters and its exact box."""
    h, w = img.shape
    rad = sp["mass_radius"] * h * r.uniform(0.9, 1.1)
    amp = sp["mass_contrast"] * tex_sd
    shape, margin = sp["mass_shape"], sp["mass_margin"]
    rot = r.uniform(0, math.pi)
    spic_n = int(r.integers(8, 17))
    spic_ang = r.uniform(0, 2 * math.pi, size=spic_n)
    spic_len = r.uniform(1.5, 2.6, size=spic_n)
    # A site whose outline stays inside the full-thickness breast; shrink the mass if none fits.
    for attempt in range(30):
        centre = _random_sites(r, anat["site_idx"], w, 1)
        if len(centre) == 0:
            centre = np.array([[h / 2, w / 3]])
        cy, cx = centre[0]
        patch, (y0, x0), core = _mass_patch(h, w, cy, cx, rad, sp, rot, margin, spic_ang, spic_len)
        ys, xs = np.nonzero(core)
        if len(ys) and (anat["rho"][y0:y0 + core.shape[0], x0:x0 + core.shape[1]][core] < 0.92).all():
            break
        if attempt % 10 == 9:
            rad *= 0.85
    img[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] += np.float32(amp) * patch
    box = (float(x0 + xs.min()), float(y0 + ys.min()), float(x0 + xs.max() + 1), float(y0 + ys.max() + 1))
    params = {"shape": shape, "margin": margin, "contrast": sp["mass_contrast"], "radius_px": float(rad),
              "amplitude": float(amp), "center": (float(cx), float(cy)), "core": (y0, x0, core)}
    return params, box


def _mass_patch(h: int, w: int, cy: float, cx: float, rad: float, sp: dict[str, Any], rot: float, margin: str,
                spic_ang: np.ndarray, spic_len: np.ndarray) -> tuple[np.ndarray, tuple[int, int], np.ndarray]:
    """Intensity patch (peak 1), its top-left corner, and the core mask (inside the nominal outline)."""
    reach = 2.7 if margin == "spiculated" else 1.6
    ext = int(math.ceil(reach * rad)) + 1
    y0, y1 = max(0, int(cy) - ext), min(h, int(cy) + ext + 1)
    x0, x1 = max(0, int(cx) - ext), min(w, int(cx) + ext + 1)
    py = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - np.float32(cy)
    px = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - np.float32(cx)
    c, s = math.cos(rot), math.sin(rot)
    a = (px * c + py * s) / rad
    b = (-px * s + py * c) / (rad * sp["mass_aspect"])
    outline = np.float32(1.0)
    ph, am = sp["mass_harmonics"], sp["mass_amplitudes"]
    if sp["mass_shape"] in ("lobulated", "irregular"):
        phi = np.arctan2(b, a)
        ks = (3, 4, 5) if sp["mass_shape"] == "lobulated" else tuple(range(2, 10))
        for i, k in enumerate(ks):  # lobulated: a few big lobes; irregular: many small bumps
            scale = 0.09 if sp["mass_shape"] == "lobulated" else 0.13 / math.sqrt(k)
            outline = outline + np.float32(scale * am[i]) * np.cos(k * phi + np.float32(ph[i]))
    d = np.sqrt(a * a + b * b) / outline
    soft = {"circumscribed": 0.07, "obscured": 0.35, "spiculated": 0.15}[margin]
    patch = (1.0 - 0.3 * np.minimum(d, 1.0) ** 2) * (1.0 - _smoothstep(1.0 - soft, 1.0 + soft, d))
    if margin == "spiculated":  # thin straight lines radiating from the core, fading outwards
        spike = np.zeros_like(patch)
        for ang, length in zip(spic_ang, spic_len):
            along = (px * np.float32(math.cos(ang)) + py * np.float32(math.sin(ang))) * np.float32(1.0 / rad)
            across = px * np.float32(math.sin(ang)) - py * np.float32(math.cos(ang))
            line = np.clip(1.0 - across * across * np.float32(1.0 / 1.2), 0.0, 1.0)
            fade = np.clip(1.0 - along * np.float32(1.0 / length), 0.0, 1.0) * (along > 0.7)
            np.maximum(spike, line * fade, out=spike)
        patch = np.maximum(patch, np.float32(0.45) * spike)
    return patch, (y0, x0), d <= 1.0

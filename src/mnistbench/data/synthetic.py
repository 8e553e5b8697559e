"""A small, deterministic, MNIST-like digit set so tests and the smoke workflow run offline.

Each digit is a hand-designed stroke set (two or three variants per class). A data set of more
classes than ten (EMNIST's 26 or 47) draws class k as digit k mod 10 with the k // 10-th set of
marks around it (a bar above, below, left, right, or two of them): the same layout as the real
one, the same labels, learnable. The strokes are
turned into a distance field once; every image is then an inverse-mapped bilinear lookup into
that field under its own random affine + mild elastic warp, thresholded with a random stroke
width. Everything is vectorised numpy, so thousands of images take well under a second.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mnistbench.data.idx import IMAGE_SIDE, NUM_CLASSES, write_idx
from mnistbench.data.manifest import build_manifest
from mnistbench.data.registry import RAW_NAMES, classes_of
from mnistbench.errors import ConfigError

GENERATOR_VERSION = 1

# Canonical frame: x to the right, y downwards, a digit spans y in [-1, 1].
_PX_PER_UNIT = 9.0  # canonical unit -> pixels at scale 1 (digit about 18 px tall + stroke)
_GRID_LO, _GRID_HI, _GRID_STEP = -1.6, 1.6, 0.025
_GRID_N = int(round((_GRID_HI - _GRID_LO) / _GRID_STEP)) + 1

Polyline = list[tuple[float, float]]


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> Polyline:
    """Elliptic arc from angle a0 to a1 (degrees, counter-clockwise as seen on screen)."""
    n = max(4, int(abs(a1 - a0) / 10) + 1)
    t = np.deg2rad(np.linspace(a0, a1, n))
    return [(cx + rx * np.cos(a), cy - ry * np.sin(a)) for a in t]


def _digit_strokes() -> list[list[Polyline]]:
    """Per class, a list of variants; each variant is a list of polylines."""
    zero = [
        [_arc(0, 0, 0.58, 0.95, 0, 360)],
        [_arc(0.02, 0, 0.45, 0.95, 80, 440)],
    ]
    one = [
        [[(0.0, -1.0), (0.0, 1.0)]],
        [[(-0.3, -0.65), (0.05, -1.0), (0.0, 1.0)]],
        [[(-0.25, -0.7), (0.05, -1.0), (0.0, 1.0)], [(-0.3, 1.0), (0.3, 1.0)]],
    ]
    two = [
        [_arc(0, -0.45, 0.5, 0.5, 150, -40) + [(-0.55, 1.0), (0.6, 1.0)]],
        [
            _arc(0, -0.45, 0.5, 0.5, 160, -30)
            + _arc(-0.15, 1.0, 0.5, 0.6, 55, 180)[1:]
            + [(-0.55, 1.0), (0.65, 0.95)]
        ],
    ]
    three = [
        [_arc(0, -0.5, 0.48, 0.45, 150, -90), _arc(0, 0.47, 0.55, 0.53, 90, -150)],
        [[(-0.5, -1.0), (0.5, -1.0), (0.0, -0.1)], _arc(0, 0.45, 0.55, 0.55, 90, -150)],
    ]
    four = [
        [[(0.25, 1.0), (0.25, -1.0), (-0.6, 0.35), (0.6, 0.35)]],
        [[(-0.45, -1.0), (-0.55, 0.3), (0.6, 0.3)], [(0.3, -0.65), (0.3, 1.0)]],
    ]
    five = [
        [[(0.55, -1.0), (-0.4, -1.0), (-0.5, -0.1)] + _arc(0, 0.45, 0.55, 0.55, 125, -150)],
        [
            [(-0.4, -1.0), (-0.5, -0.1)] + _arc(0, 0.45, 0.55, 0.55, 125, -150),
            [(-0.4, -1.0), (0.5, -1.0)],
        ],
    ]
    six = [
        [_arc(0.45, 0.4, 0.95, 1.35, 90, 180), _arc(0, 0.5, 0.5, 0.48, 0, 360)],
        [[(0.3, -1.0), (-0.45, 0.35)], _arc(0, 0.5, 0.48, 0.48, 0, 360)],
    ]
    seven = [
        [[(-0.6, -1.0), (0.6, -1.0), (-0.15, 1.0)]],
        [[(-0.6, -1.0), (0.6, -1.0), (-0.15, 1.0)], [(-0.3, 0.0), (0.4, 0.0)]],
        [[(-0.6, -0.8), (-0.55, -1.0), (0.6, -1.0), (0.0, 1.0)]],
    ]
    eight = [
        [_arc(0, -0.5, 0.42, 0.45, 0, 360), _arc(0, 0.47, 0.52, 0.52, 0, 360)],
        [_arc(0.03, -0.52, 0.38, 0.43, 0, 360), _arc(-0.03, 0.45, 0.56, 0.55, 0, 360)],
    ]
    nine = [
        [_arc(0, -0.45, 0.5, 0.5, 0, 360), [(0.5, -0.45), (0.4, 1.0)]],
        [_arc(0, -0.45, 0.5, 0.5, 0, 360), _arc(-0.45, -0.45, 0.95, 1.45, 0, -90)],
    ]
    return [zero, one, two, three, four, five, six, seven, eight, nine]


def _distance_field(polylines: list[Polyline]) -> np.ndarray:
    """Distance (canonical units) from each grid point to the nearest stroke segment."""
    axis = (_GRID_LO + _GRID_STEP * np.arange(_GRID_N)).astype(np.float32)
    px, py = axis[None, :, None], axis[:, None, None]  # grid rows are y, columns x
    segs = np.concatenate(
        [np.stack([np.asarray(pl[:-1]), np.asarray(pl[1:])], axis=1) for pl in polylines]
    ).astype(np.float32)  # (S, 2 ends, xy)
    ax, ay = segs[:, 0, 0], segs[:, 0, 1]
    dx, dy = segs[:, 1, 0] - ax, segs[:, 1, 1] - ay
    denom = np.maximum(dx * dx + dy * dy, 1e-12)
    apx, apy = px - ax, py - ay  # (G, G, S)
    t = np.clip((apx * dx + apy * dy) / denom, 0.0, 1.0)
    ex, ey = apx - t * dx, apy - t * dy
    return np.sqrt((ex * ex + ey * ey).min(-1))


# The marks that tell classes k, k + 10, k + 20, ... apart: none, then bars around the digit.
_BARS: dict[str, Polyline] = {
    "above": [(-0.45, -1.25), (0.45, -1.25)],
    "below": [(-0.45, 1.25), (0.45, 1.25)],
    "left": [(-0.95, -0.5), (-0.95, 0.5)],
    "right": [(0.95, -0.5), (0.95, 0.5)],
}
_MARKS: list[list[str]] = [[], ["above"], ["below"], ["left"], ["right"], ["above", "below"]]
_MARKS += [["left", "right"], ["above", "left"], ["below", "right"], ["above", "right"]]

_FIELDS: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _class_strokes(num_classes: int) -> list[list[list[Polyline]]]:
    """Per class its variants: digit k mod 10, with the k // 10-th marks."""
    if not 1 <= num_classes <= NUM_CLASSES * len(_MARKS):
        raise ConfigError(
            f"generated data sets have 1 to {NUM_CLASSES * len(_MARKS)} classes, not {num_classes}"
        )
    digits = _digit_strokes()
    marks = [[_BARS[name] for name in m] for m in _MARKS]
    return [
        [v + marks[k // NUM_CLASSES] for v in digits[k % NUM_CLASSES]] for k in range(num_classes)
    ]


def _fields(num_classes: int = NUM_CLASSES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fields[V, G, G], first variant index per class, variant count per class), cached."""
    if num_classes not in _FIELDS:
        strokes = _class_strokes(num_classes)
        fields = [_distance_field(v) for cls in strokes for v in cls]
        counts = np.array([len(cls) for cls in strokes])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        _FIELDS[num_classes] = (np.stack(fields), starts, counts)
    return _FIELDS[num_classes]


def _upsample_matrix(n_coarse: int, n_fine: int) -> np.ndarray:
    """Linear-interpolation matrix (n_fine, n_coarse) for a smooth random displacement field."""
    pos = np.linspace(0, n_coarse - 1, n_fine)
    lo = np.minimum(np.floor(pos).astype(int), n_coarse - 2)
    frac = pos - lo
    m = np.zeros((n_fine, n_coarse))
    m[np.arange(n_fine), lo] = 1 - frac
    m[np.arange(n_fine), lo + 1] = frac
    return m


_CHUNK = 1024  # images rendered at a time: keeps temporaries small and cache-friendly


def _inverse_affines(
    theta: np.ndarray, scale: np.ndarray, aspect: np.ndarray, shear: np.ndarray
) -> np.ndarray:
    """The inverses of A = R(theta) @ Shear @ diag(sx, sy), one per image, in canonical units
    per pixel: one 2x2 product maps an output pixel to the digit's frame."""
    c, s = np.cos(theta), np.sin(theta)
    sx, sy = scale * aspect, scale / aspect
    # A = [[c, -s], [s, c]] @ [[1, shear], [0, 1]] @ [[sx, 0], [0, sy]]
    a = np.empty((theta.shape[0], 2, 2))
    a[:, 0, 0] = c * sx
    a[:, 0, 1] = (c * shear - s) * sy
    a[:, 1, 0] = s * sx
    a[:, 1, 1] = (s * shear + c) * sy
    return (np.linalg.inv(a) / _PX_PER_UNIT).astype(np.float32)


def make_digits(n: int, seed: int, num_classes: int = NUM_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Return ``n`` MNIST-like uint8 images (n, 28, 28) and balanced, shuffled uint8 labels of
    ``num_classes`` classes."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"number of synthetic images must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    fields, starts, counts = _fields(num_classes)

    labels = rng.permutation(np.arange(n) % num_classes).astype(np.uint8)
    variant = starts[labels] + (rng.random(n) * counts[labels]).astype(np.int64)

    # Random forward affine A = R(theta) @ Shear @ diag(sx, sy); we sample with its inverse.
    theta = np.deg2rad(rng.uniform(-15, 15, n))
    scale = rng.uniform(0.85, 1.15, n)
    aspect = rng.uniform(0.9, 1.1, n)
    shear = rng.uniform(-0.15, 0.15, n)
    shift = rng.uniform(-2, 2, (n, 2))
    half_width = rng.uniform(0.09, 0.2, n)  # canonical units; about 1.6-3.6 px strokes
    peak = rng.uniform(200, 255, n)
    noise_sd = rng.uniform(2, 12, n)
    coarse = rng.normal(0, 0.06, (n, 2, 4, 4))  # elastic displacement at 4x4 control points

    inv = _inverse_affines(theta, scale, aspect, shear)

    up = _upsample_matrix(4, IMAGE_SIDE).astype(np.float32)
    pix = np.arange(IMAGE_SIDE, dtype=np.float32) - (IMAGE_SIDE - 1) / 2
    images = np.empty((n, IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8)
    flat = fields.reshape(-1)
    for lo in range(0, n, _CHUNK):
        sl = slice(lo, min(n, lo + _CHUNK))
        m = sl.stop - sl.start
        # Output pixel -> canonical coordinates: undo the shift, then the scaled affine.
        ox = pix[None, None, :] - shift[sl, 0, None, None].astype(np.float32)
        oy = pix[None, :, None] - shift[sl, 1, None, None].astype(np.float32)
        inv_c = inv[sl]
        disp = up @ coarse[sl].astype(np.float32) @ up.T  # (m, 2, 28, 28)
        qx = inv_c[:, 0, 0, None, None] * ox + inv_c[:, 0, 1, None, None] * oy + disp[:, 0]
        qy = inv_c[:, 1, 0, None, None] * ox + inv_c[:, 1, 1, None, None] * oy + disp[:, 1]

        # Bilinear lookup into the distance fields.
        gx = np.clip((qx - _GRID_LO) / _GRID_STEP, 0, _GRID_N - 1.001)
        gy = np.clip((qy - _GRID_LO) / _GRID_STEP, 0, _GRID_N - 1.001)
        x0, y0 = gx.astype(np.int64), gy.astype(np.int64)
        fx, fy = gx - x0, gy - y0
        base = variant[sl, None, None] * (_GRID_N * _GRID_N) + y0 * _GRID_N + x0
        top = flat[base] * (1 - fx) + flat[base + 1] * fx
        bottom = flat[base + _GRID_N] * (1 - fx) + flat[base + _GRID_N + 1] * fx
        dist = top * (1 - fy) + bottom * fy

        # Anti-aliased stroke: a one-pixel ramp around the stroke edge, in output pixels.
        edge_px = (half_width[sl, None, None] - dist) * (_PX_PER_UNIT * scale[sl, None, None])
        ink = np.clip(edge_px + 0.5, 0.0, 1.0)
        noise = rng.standard_normal((m, IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)
        img = ink * peak[sl, None, None] + noise * noise_sd[sl, None, None]
        images[sl] = np.clip(np.rint(img), 0, 255)
    return images, labels


def derived_test_seed(seed: int) -> int:
    """A seed for the test split that cannot coincide with a plain training seed choice."""
    return int(np.random.SeedSequence([seed, 0x7E57]).generate_state(1)[0])


def write_synthetic(
    out_dir: str | os.PathLike[str], n_train: int, n_test: int, seed: int, dataset: str = ""
) -> dict[str, Any]:
    """Write the four MNIST-named IDX .gz files from the generator, then the manifest. The
    classes are those of the data set named ``dataset`` when it is registered (its number and
    names), else the ten digits."""
    for key, value in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"synthetic {key} must be a positive integer, got {value!r}")
    out = Path(out_dir)
    test_seed = derived_test_seed(seed)
    num_classes = len(classes_of(dataset))
    train_x, train_y = make_digits(n_train, seed, num_classes)
    test_x, test_y = make_digits(n_test, test_seed, num_classes)
    arrays = {
        "train_images": train_x,
        "train_labels": train_y,
        "test_images": test_x,
        "test_labels": test_y,
    }
    for key, name in RAW_NAMES.items():
        write_idx(out / name, arrays[key])
    origin = {
        "generator": "mnistbench.data.synthetic",
        "version": GENERATOR_VERSION,
        "n_train": n_train,
        "n_test": n_test,
        "seed": seed,
        "test_seed": test_seed,
    }
    return build_manifest(out, "synthetic", origin, dataset or None)

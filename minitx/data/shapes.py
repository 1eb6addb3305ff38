"""A procedural dataset of coloured shapes, with labels, captions and segmentation masks.

Every image is drawn from a seed and its index alone, so the dataset needs no file, no download
and no memory: sample ``i`` of ``ShapesDataset(n, seed)`` is the same on every machine. Each
32x32 RGB image holds one shape with four attributes, each a class label:

    shape     circle, square, triangle, diamond, cross
    color     red, green, blue, yellow, purple, white
    size      small, large
    position  a 3x3 grid: top left, top, top right, left, center, right, bottom left, ...

and comes with a caption ("a small red circle at the top left") for image-text models and a
per-pixel mask (0 = background, 1 + shape class on the shape) for segmentation. Positions,
sizes, rotations, colours and the background are jittered and Gaussian noise is added, so the
task is easy but not trivial. In the spirit of dSprites (Matthey et al., 2017,
https://github.com/deepmind/dsprites-dataset) and Sort-of-CLEVR (Santoro et al., 2017,
arXiv:1706.01427), which also render labelled shapes procedurally.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLORS = ("red", "green", "blue", "yellow", "purple", "white")
SIZES = ("small", "large")
POSITIONS = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
ATTRIBUTES = ("shape", "color", "size", "position")
NUM_CLASSES = (len(SHAPES), len(COLORS), len(SIZES), len(POSITIONS))  # per attribute

# RGB of each colour before jitter; distinct enough to tell apart under the noise below.
_RGB = np.array(
    [
        [0.90, 0.10, 0.10],  # red
        [0.10, 0.80, 0.20],  # green
        [0.15, 0.30, 0.95],  # blue
        [0.95, 0.90, 0.10],  # yellow
        [0.65, 0.20, 0.85],  # purple
        [0.95, 0.95, 0.95],  # white
    ],
    dtype=np.float64,
)
_RADIUS = {"small": (3.5, 4.5), "large": (6.5, 7.5)}  # half-size range in pixels at 32x32
_GRID = (0.2, 0.5, 0.8)  # row/column centres as fractions of the side
_POSITION_JITTER = 1.5  # pixels at 32x32, so neighbouring grid cells never overlap
_MAX_ROTATION = np.deg2rad(20.0)
_COLOR_JITTER = 0.08
_BACKGROUND_MAX = 0.25  # the background stays darker than every shape colour
_NOISE_STD = 0.04


def caption(shape: int, color: int, size: int, position: int) -> str:
    """Describe one sample in words, e.g. ``"a small red circle at the top left"``.

    Example:
        >>> caption(0, 0, 0, 0), caption(2, 3, 1, 4)
        ('a small red circle at the top left', 'a large yellow triangle in the center')
    """
    where = POSITIONS[position]
    if where == "center":
        phrase = "in the center"
    elif where in ("left", "right"):
        phrase = f"on the {where}"
    else:
        phrase = f"at the {where}"
    return f"a {SIZES[size]} {COLORS[color]} {SHAPES[shape]} {phrase}"


def _inside(shape: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Return the boolean mask of a shape of half-size ``r`` in its own coordinates (u right,
    v up, origin at the centre)."""
    if shape == "circle":
        return u**2 + v**2 <= r**2
    if shape == "square":
        # 0.85 r keeps its area close to the circle's, so size is not told by area alone.
        return np.maximum(np.abs(u), np.abs(v)) <= 0.85 * r
    if shape == "triangle":
        # Equilateral, apex at (0, r), base at v = -r/2: the sides are v = r - √3·|u|.
        return (v >= -0.5 * r) & (v <= r - np.sqrt(3.0) * np.abs(u))
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.1 * r
    if shape == "cross":
        arm = r / 3.0
        return ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))
    raise ValueError(f"unknown shape {shape!r}, expected one of {SHAPES}")


def render(
    rng: np.random.Generator, image_size: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one random sample.

    Args:
        rng: the generator all randomness of this sample comes from.
        image_size: side H = W in pixels; the geometry scales with it.

    Returns:
        ``(image, mask, labels)``: image (3, H, W) float32 in [0, 1], mask (H, W) int64 with
        0 for background and 1 + shape class on the shape, labels (4,) int64 holding the shape,
        color, size and position classes (the order of `ATTRIBUTES`).
    """
    labels = rng.integers(0, NUM_CLASSES).astype(np.int64)  # one class per attribute
    shape, color, size, position = labels.tolist()
    scale = image_size / 32.0

    row, col = divmod(position, 3)
    cy = _GRID[row] * image_size + rng.uniform(-1, 1) * _POSITION_JITTER * scale
    cx = _GRID[col] * image_size + rng.uniform(-1, 1) * _POSITION_JITTER * scale
    r = rng.uniform(*_RADIUS[SIZES[size]]) * scale
    angle = rng.uniform(-_MAX_ROTATION, _MAX_ROTATION)

    # Pixel centres, rotated into the shape's frame; v points up, image rows point down.
    y, x = np.mgrid[0:image_size, 0:image_size] + 0.5
    dx, dy = x - cx, cy - y
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    on_shape = _inside(SHAPES[shape], u, v, r)

    background = rng.uniform(0.0, _BACKGROUND_MAX, size=3)
    rgb = np.clip(_RGB[color] + rng.uniform(-_COLOR_JITTER, _COLOR_JITTER, size=3), 0.0, 1.0)
    image = np.where(on_shape[None], rgb[:, None, None], background[:, None, None])  # (3, H, W)
    image = image + rng.normal(0.0, _NOISE_STD, size=image.shape)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    mask = np.where(on_shape, shape + 1, 0).astype(np.int64)  # (H, W)
    return image, mask, labels


class ShapesDataset:
    """``n`` procedural shape images; sample ``i`` depends only on ``(seed, i)``.

    ``ds[i]`` returns ``(image, mask, labels)`` as described in `render`; ``ds.caption(i)``
    gives its text.

    Args:
        n: number of samples.
        seed: dataset seed; two datasets with different seeds share no sample stream.
        image_size: side of the square images in pixels.

    Example:
        >>> ds = ShapesDataset(4, seed=0)
        >>> image, mask, labels = ds[1]
        >>> image.shape, mask.shape, labels.shape
        ((3, 32, 32), (32, 32), (4,))
    """

    def __init__(self, n: int, seed: int = 0, image_size: int = 32):
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
        self.n, self.seed, self.image_size = int(n), int(seed), int(image_size)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for ShapesDataset of length {self.n}")
        index = int(index) % self.n
        # A generator per (seed, index): samples can be drawn in any order, or in parallel.
        rng = np.random.default_rng([self.seed, index])
        return render(rng, self.image_size)

    def caption(self, index: int) -> str:
        """Return the caption of sample ``index``."""
        return caption(*self[index][2].tolist())


def load_shapes(n: int, seed: int = 0, image_size: int = 32) -> dict[str, np.ndarray]:
    """Render a whole `ShapesDataset` into arrays.

    Args:
        n: number of samples.
        seed: dataset seed.
        image_size: side of the square images in pixels.

    Returns:
        A dict with ``"images"`` (N, 3, H, W) float32, ``"masks"`` (N, H, W) int64, one (N,)
        int64 label array per attribute (``"shape"``, ``"color"``, ``"size"``, ``"position"``)
        and ``"captions"``, an (N,) array of strings.

    Example:
        >>> data = load_shapes(3, seed=1)
        >>> data["images"].shape, str(data["captions"][0]).startswith("a ")
        ((3, 3, 32, 32), True)
    """
    ds = ShapesDataset(n, seed, image_size)
    images = np.empty((n, 3, image_size, image_size), dtype=np.float32)
    masks = np.empty((n, image_size, image_size), dtype=np.int64)
    labels = np.empty((n, len(ATTRIBUTES)), dtype=np.int64)
    for i in range(n):
        images[i], masks[i], labels[i] = ds[i]
    out = {"images": images, "masks": masks}
    for k, name in enumerate(ATTRIBUTES):
        out[name] = labels[:, k].copy()
    out["captions"] = np.array([caption(*row) for row in labels.tolist()], dtype=str)
    return out

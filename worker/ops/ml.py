"""Light ML in numpy: k-means colour quantisation and dominant colours.

k-means fits on a seeded sample of the visible pixels: greedy k-means++ starts, then
Lloyd's iterations, as scikit-learn's KMeans does, keeping the best of a few starts for
small palettes. All pixels are then assigned to the nearest palette colour through a
table indexed by colour, so each distinct colour is measured once; pixels are read by
bands of rows, so memory stays a small multiple of the image.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image

from worker.ops.pixels import bands, colour_bands
from worker.ops.registry import implements

#: Pixels k-means fits on; all pixels are then assigned.
SAMPLE = 50_000
#: Lloyd's iterations at most; past 30 or so the inertia improves by less than 0.2%.
MAX_ITERATIONS = 40
#: Up to FEW colours, k-means starts this many times and keeps the best: one bad start costs most there.
STARTS = 3
FEW = 32
#: Stop when the centres move less than this share of the data's variance (scikit-learn's default tol).
TOLERANCE = 1e-4
#: Distances computed at once (points x centres).
BLOCK = 1 << 20
#: Colour codes assigned at once.
CODES = 1 << 18


def nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Return the index of each point's nearest centre (the first of equals)."""
    labels = np.empty(len(points), dtype=np.intp)
    step = max(1, BLOCK // max(1, len(centres)))
    norms = (centres * centres).sum(axis=1)
    for start in range(0, len(points), step):
        # |x - c|^2 less |x|^2, which no choice depends on
        labels[start : start + step] = np.argmin(norms - 2 * points[start : start + step] @ centres.T, axis=1)
    return labels


def squared_distances(points: np.ndarray, centres: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return each point's squared distance to its centre."""
    return ((points - centres[labels]) ** 2).sum(axis=1)


def seed_centres(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Pick k starting centres by greedy k-means++: of a few D^2-sampled candidates, the one that helps most."""
    trials = 2 + int(np.log(k))
    norms = (points * points).sum(axis=1)
    centres = [points[rng.integers(len(points))]]
    closest = ((points - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:
            break  # fewer distinct points than k
        picks = np.minimum(np.searchsorted(np.cumsum(closest), rng.random(trials) * total), len(points) - 1)
        candidates = points[picks]
        distances = np.maximum(norms - 2 * candidates @ points.T + norms[picks, None], 0)
        trial = np.minimum(closest, distances)
        best = int(np.argmin(trial.sum(axis=1)))
        centres.append(candidates[best])
        closest = trial[best]
    return np.array(centres)


def lloyd(points: np.ndarray, centres: np.ndarray, tolerance: float) -> tuple[np.ndarray, float]:
    """Refine `centres` by Lloyd's iterations; return them and their inertia on `points`."""
    for _ in range(MAX_ITERATIONS):
        labels = nearest(points, centres)
        counts = np.bincount(labels, minlength=len(centres))
        moved = np.stack([np.bincount(labels, points[:, d], len(centres)) for d in range(points.shape[1])], axis=1)
        empty = counts == 0
        moved[~empty] /= counts[~empty, None]
        if empty.any():  # restart empty clusters on the points worst served, as scikit-learn does
            worst = np.argsort(squared_distances(points, centres, labels), kind="stable")[::-1]
            moved[empty] = points[worst[: int(empty.sum())]]
        shift = float(((moved - centres) ** 2).sum())
        centres = moved
        if shift <= tolerance:
            break
    return centres, float(squared_distances(points, centres, nearest(points, centres)).sum())


def kmeans(points: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Return up to k centres of `points` (n x d floats): the best of a few k-means++ starts, refined by Lloyd."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    rng = np.random.default_rng(seed)
    tolerance = TOLERANCE * float(points.var(axis=0).mean())
    fits = [lloyd(points, seed_centres(points, k, rng), tolerance) for _ in range(STARTS if k <= FEW else 1)]
    return min(fits, key=lambda fit: fit[1])[0]


def split(pixels: np.ndarray, alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Return the colour values of a band (H x W for grey, H x W x 3) and its alpha values, if any."""
    if not alpha:
        return pixels, None
    colour = pixels[..., 0] if pixels.shape[-1] == 2 else pixels[..., :3]
    return colour, pixels[..., -1]


def pack(colour: np.ndarray) -> np.ndarray:
    """Return one integer per pixel that names its colour (the value itself for grey)."""
    if colour.ndim == 2:
        return colour.astype(np.int32)
    return (colour[..., 0].astype(np.int32) << 16) | (colour[..., 1].astype(np.int32) << 8) | colour[..., 2]


def unpack(codes: np.ndarray, channels: int) -> np.ndarray:
    """Return the colours (n x channels) that `pack` named by `codes`."""
    if channels == 1:
        return codes[:, None]
    return np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], axis=1)


def survey(image: Image.Image, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return a seeded sample of the visible pixels (n x channels floats) and which colour codes occur."""
    channels, alpha = colour_bands(image), "A" in image.getbands()
    seen = np.zeros(256**channels, dtype=bool)
    total = image.width * image.height
    wanted = np.sort(rng.choice(total, size=min(size, total), replace=False))
    sample, shown = [], []
    for top, pixels in bands(image):
        colour, opacity = split(pixels, alpha)
        codes = pack(colour).ravel()
        seen[codes] = True
        first = top * image.width
        lo, hi = np.searchsorted(wanted, [first, first + codes.size])
        picked = wanted[lo:hi] - first
        sample.append(colour.reshape(-1, channels)[picked])
        shown.append(np.ones(picked.size, bool) if opacity is None else opacity.ravel()[picked] > 0)
    points, visible = np.concatenate(sample).astype(np.float64), np.concatenate(shown)
    return (points[visible] if visible.any() else points), seen


def fit(image: Image.Image, colors: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return a palette of up to `colors` colours (uint8) and, for every colour code, its palette index."""
    points, seen = survey(image, SAMPLE, np.random.default_rng(seed))
    distinct = np.unique(points, axis=0)
    centres = distinct if len(distinct) <= colors else kmeans(points, colors, seed)
    palette = np.clip(np.rint(centres), 0, 255).astype(np.uint8)
    # whole numbers below 2**24 multiply exactly in float32, so every machine breaks ties the same way
    exact = palette.astype(np.float32)
    table = np.zeros(seen.size, dtype=np.uint8)
    for start in range(0, seen.size, CODES):
        codes = np.flatnonzero(seen[start : start + CODES]) + start
        table[codes] = nearest(unpack(codes, palette.shape[1]).astype(np.float32), exact)
    return palette, table


def labelled(image: Image.Image, table: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield (top row, palette index of each pixel, alpha values or None) by bands."""
    alpha = "A" in image.getbands()
    for top, pixels in bands(image):
        colour, opacity = split(pixels, alpha)
        yield top, table[pack(colour)], opacity


@implements("quantize")
def quantize(image: Image.Image, *, colors: int = 8, seed: int = 0) -> Image.Image:
    """Reduce the image to at most `colors` colours chosen by k-means, keeping transparency."""
    if not 1 <= colors <= 256:
        raise ValueError(f"colors must be from 1 to 256, got {colors}")
    palette, table = fit(image, colors, seed)
    indices = np.empty((image.height, image.width), dtype=np.uint8)
    for top, labels, _ in labelled(image, table):
        indices[top : top + len(labels)] = labels
    del table  # 16 MB for RGB: gone before the output is made
    mapped = Image.fromarray(indices, "P")
    mapped.putpalette(np.repeat(palette, 3 // palette.shape[1], axis=1).ravel().tolist())
    out = mapped.convert("L" if palette.shape[1] == 1 else "RGB")
    if "A" in image.getbands():
        out.putalpha(image.getchannel("A"))
    return out


def hex_colour(colour: np.ndarray) -> str:
    """Return '#rrggbb' for an RGB or grey colour."""
    r, g, b = (int(v) for v in np.resize(colour, 3))
    return f"#{r:02x}{g:02x}{b:02x}"


@implements("palette")
def palette(image: Image.Image, *, colors: int = 5, seed: int = 0) -> dict[str, Any]:
    """Find the `colors` dominant colours by k-means and each one's share of the visible pixels."""
    if not 1 <= colors <= 256:
        raise ValueError(f"colors must be from 1 to 256, got {colors}")
    centres, table = fit(image, colors, seed)
    counts = np.zeros(len(centres), dtype=np.int64)
    for _, labels, opacity in labelled(image, table):
        counts += np.bincount((labels if opacity is None else labels[opacity > 0]).ravel(), minlength=len(centres))
    total = int(counts.sum())
    found = [
        {"color": hex_colour(centres[i]), "share": round(int(counts[i]) / total, 4), "pixels": int(counts[i])}
        for i in np.argsort(-counts, kind="stable") if counts[i]
    ]
    return {"colors": found, "pixels": total}

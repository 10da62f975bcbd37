"""A digits data set the project generates: no download, no extra dependency.

MNIST cannot be downloaded at run time, and no installed package ships a digits set, so
we draw one: each image is a digit 0-9 rendered in one of the fonts that matplotlib
ships (DejaVu Sans/Serif/Mono in several weights, STIX, Computer Modern), then rotated,
scaled, sheared, shifted, sometimes thickened, reduced to ``size x size`` grey levels and
given pixel noise. The same seed gives the same images. It is easier than handwriting
(the shapes come from 14 fonts) but not trivial: the distortions make the classes
overlap at 16x16.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import numpy as np

__all__ = ["FONTS", "make_digits"]

FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
)
_CANVAS = 64


@lru_cache(maxsize=None)
def _glyphs() -> np.ndarray:
    """(fonts, 10, 64, 64) float32 in [0, 1]: each digit centred, about 44 px tall."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    out = np.zeros((len(FONTS), 10, _CANVAS, _CANVAS), np.float32)
    for f, name in enumerate(FONTS):
        font = ImageFont.truetype(os.path.join(folder, name), 46)
        for d in range(10):
            img = Image.new("L", (_CANVAS, _CANVAS), 0)
            draw = ImageDraw.Draw(img)
            left, top, right, bottom = draw.textbbox((0, 0), str(d), font=font)
            draw.text(
                ((_CANVAS - (right - left)) / 2 - left, (_CANVAS - (bottom - top)) / 2 - top),
                str(d),
                fill=255,
                font=font,
            )
            out[f, d] = np.asarray(img, np.float32) / 255
    return out


def make_digits(
    n: int, *, size: int = 16, seed: int = 0, noise: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images ``(n, size, size) float32`` in [0, 1] and their labels ``(n,) int64``.

    Labels are balanced (``n // 10`` or one more per class) and shuffled; fonts and
    distortions are drawn from ``numpy.random.default_rng(seed)``.
    """
    from PIL import Image, ImageFilter

    if n < 1 or size < 8:
        raise ValueError(f"make_digits needs n >= 1 and size >= 8, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    glyphs = _glyphs()
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)
    fonts = rng.integers(0, len(FONTS), n)
    angle = np.radians(rng.uniform(-15, 15, n))
    scale = rng.uniform(0.75, 1.05, n)
    shear = rng.uniform(-0.3, 0.3, n)
    shift = rng.uniform(-3, 3, (n, 2))
    thick = rng.random(n) < 0.3
    images = np.empty((n, size, size), np.float32)
    c = _CANVAS / 2
    for i in range(n):
        # inverse map (output pixel -> input pixel) of: scale, shear, rotate about the centre, shift
        cos, sin = math.cos(angle[i]), math.sin(angle[i])
        fwd = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1, shear[i]], [0, 1]]) * scale[i]
        inv = np.linalg.inv(fwd)
        offset = np.array([c, c]) - inv @ (np.array([c, c]) + shift[i])
        img = Image.fromarray((glyphs[fonts[i], labels[i]] * 255).astype(np.uint8))
        img = img.transform(
            (_CANVAS, _CANVAS),
            Image.Transform.AFFINE,
            (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1]),
            resample=Image.Resampling.BILINEAR,
        )
        if thick[i]:
            img = img.filter(ImageFilter.MaxFilter(5))
        images[i] = np.asarray(img.resize((size, size), Image.Resampling.BOX), np.float32) / 255
    images += rng.normal(0, noise, images.shape).astype(np.float32)
    np.clip(images, 0, 1, out=images)
    return images, labels

"""Images for the DIP pipeline: those that ship with scikit-image, as float arrays in [0, 1]."""

from __future__ import annotations

import numpy as np

NAMES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry", "cat", "brick", "grass")


def load(name: str) -> np.ndarray:
    """A scikit-image sample image by name (H×W or H×W×3, float in [0, 1])."""
    from skimage import data, img_as_float

    if name not in NAMES or not hasattr(data, name):
        raise ValueError(f"unknown image {name!r}; scikit-image names: {', '.join(NAMES)}")
    img = img_as_float(getattr(data, name)())
    return img[..., :3] if img.ndim == 3 else img


def crop(name: str, size: int, grey: bool = False) -> np.ndarray:
    """A centred size × size crop (downsampled first when the image is more than twice that size)."""
    from skimage import color, transform

    img = load(name)
    if grey and img.ndim == 3:
        img = color.rgb2gray(img)
    h, w = img.shape[:2]
    scale = min(h, w) // (2 * size)
    if scale >= 2:
        img = transform.rescale(img, 1 / scale, anti_aliasing=True, channel_axis=-1 if img.ndim == 3 else None)
        h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.clip(img[top:top + size, left:left + size], 0, 1)

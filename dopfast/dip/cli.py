"""``python -m dopfast dip``: restore an image from salt-and-pepper noise (DOP, DIP, DIP-ℓ1).

Everything that could make the run's output unwritable (``--out``'s folder, extension and existence,
``--checkpoint``'s folder) is checked before the first iteration, so a long run is never lost at its end.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import _validate

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _read_image(spec: str, crop: int | None):
    """A file path, or the name of an image that ships with scikit-image; H×W or H×W×3 floats in [0, 1]."""
    import numpy as np

    from . import data

    if os.path.exists(spec):
        from skimage import img_as_float, io

        try:
            img = io.imread(spec)
        except Exception as exc:  # noqa: BLE001 - any reader failure means "not an image"
            what = f"{type(exc).__name__}: {exc}"
            raise SystemExit(f"error: INPUT {spec!r} cannot be read as an image ({what})") from None
        if img.ndim == 3 and img.shape[2] in (2, 4):  # grey + alpha, RGB + alpha: drop the alpha channel
            img = img[..., :-1]
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3) or img.dtype == object:
            raise SystemExit(f"error: INPUT {spec!r} is not a grey or colour image (array of shape {img.shape})")
        img = img_as_float(img)
    elif spec in data.NAMES:
        img = data.load(spec)
    else:
        raise SystemExit(f"error: INPUT {spec!r} is neither an existing file nor a scikit-image sample "
                         f"({', '.join(data.NAMES)})")
    if crop:
        h, w = img.shape[:2]
        if crop > min(h, w):
            raise SystemExit(f"error: --crop {crop} is larger than the image ({h}×{w})")
        top, left = (h - crop) // 2, (w - crop) // 2
        img = img[top:top + crop, left:left + crop]
    return np.ascontiguousarray(img)


def check_output(path: str, overwrite: bool) -> None:
    """Refuse an output that exists (without overwrite), whose folder is missing or unwritable, or whose
    extension no image writer knows."""
    out = Path(path)
    if out.is_dir():
        raise SystemExit(f"error: --out {path} is a directory; give an image file name")
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise SystemExit(f"error: --out {path}: unknown image extension {out.suffix!r}; use one of "
                         f"{', '.join(IMAGE_SUFFIXES)}")
    if out.exists() and not overwrite:
        raise SystemExit(f"error: --out {path} exists; pass --overwrite to replace it")
    folder = out.parent
    if not folder.is_dir():
        raise SystemExit(f"error: --out {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise SystemExit(f"error: --out {path}: the folder {folder} is not writable")


def run(args) -> int:
    from skimage import img_as_ubyte, io

    from .restore import psnr, restore, salt_and_pepper

    if args.resume and not args.checkpoint:
        raise SystemExit("error: --resume needs --checkpoint FILE (the run to continue)")
    if args.out:
        check_output(args.out, args.overwrite)
        if args.checkpoint and Path(args.out).resolve() == Path(args.checkpoint).resolve():
            raise SystemExit("error: --out and --checkpoint name the same file; the image would replace the "
                             "checkpoint")
    if args.checkpoint and not Path(args.checkpoint).parent.is_dir():
        raise SystemExit(f"error: --checkpoint {args.checkpoint}: the folder {Path(args.checkpoint).parent} "
                         f"does not exist")
    image = _read_image(args.input, args.crop)
    clean = None
    if args.noise > 0:
        clean, image = image, salt_and_pepper(image, args.noise, seed=args.seed)
        print(f"corrupted {args.input} with {args.noise:.0%} salt-and-pepper noise: PSNR {psnr(clean, image):.2f} dB")
    try:
        restored, hist = restore(image, args.method, iters=args.iters, width=args.width, alpha=args.alpha,
                                 lr=args.lr, device=args.device, seed=args.seed, clean=clean,
                                 checkpoint=args.checkpoint, resume=args.resume, verbose=not args.quiet)
    except (FileExistsError, FileNotFoundError, PermissionError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    if clean is not None:
        print(f"{args.method}: restored PSNR {psnr(clean, restored):.2f} dB after {args.iters} iterations"
              + (f" (best {hist['best_psnr']:.2f} dB at iteration {hist['best_iteration']})"
                 if hist["best_psnr"] is not None else ""))
    if args.out:
        io.imsave(args.out, img_as_ubyte(restored.clip(0, 1)), check_contrast=False)
        print(f"wrote {args.out}")
    return 0


def add_parser(sub) -> None:
    from .restore import METHODS

    positive_int, positive = _validate.arg_type(_validate.integer), _validate.arg_type(_validate.real)
    dip = sub.add_parser("dip", help="restore an image from salt-and-pepper noise (DOP, DIP, DIP-l1)")
    dip.add_argument("input", help="image file, or a scikit-image sample name such as astronaut")
    dip.add_argument("--noise", type=_validate.arg_type(_validate.real, inclusive=True, maximum=1.0), default=0.0,
                     help="corrupt INPUT (taken as clean) with this salt-and-pepper ratio first; 0: INPUT is the "
                          "corrupted image")
    dip.add_argument("--method", choices=METHODS, default="dop")
    dip.add_argument("--iters", type=positive_int, default=5000)
    dip.add_argument("--width", type=positive_int, default=128)
    dip.add_argument("--alpha", type=positive, default=None,
                     help="g/h to network learning-rate ratio (default: 500·sqrt(entries / 256²·3))")
    dip.add_argument("--lr", type=positive, default=1.0)
    dip.add_argument("--crop", type=positive_int, default=None, help="use a centred crop of this size")
    dip.add_argument("--out", default=None, help="where to write the restored image (.png, .jpg, .tif, .bmp)")
    dip.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing file")
    dip.add_argument("--checkpoint", default=None, help="checkpoint file (written every 1000 iterations and on Ctrl-C)")
    dip.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    dip.add_argument("--seed", type=_validate.arg_type(_validate.integer, minimum=0), default=0)
    dip.add_argument("--device", type=_validate.arg_type(_validate.device), default=None)
    dip.add_argument("--quiet", action="store_true")
    dip.set_defaults(run=run)

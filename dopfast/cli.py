"""Command line: ``python -m dopfast demo | sop | dip`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import math
import sys
import time


def _demo(args) -> int:
    import torch

    from . import ops
    from .data import relative_error, rpca_problem
    from .rpca import RobustPCA

    n, rank, p = args.n, args.rank, args.corruption
    x_true, _, y = rpca_problem(n, rank, p, seed=args.seed)
    print(f"robust PCA: X* = U U^T (n={n}, rank {rank}) plus {p:.0%} gross corruption N(0, 10^2)")
    gen = torch.Generator().manual_seed(args.seed + 1)
    u0 = 1e-4 * torch.randn(n, n, generator=gen, dtype=torch.float64)
    g0 = 1e-4 * torch.randn(n, n, generator=gen, dtype=torch.float64)
    t0 = time.perf_counter()
    out = ops.rpca_dop_solve(y, u0, g0, g0.clone(), 1e-4, math.sqrt(n), args.iters)
    seconds = time.perf_counter() - t0
    err = relative_error(out.u @ out.u.T, x_true)
    print(f"  DOP, the paper's settings (tau=1e-4, alpha=sqrt(n), {int(out.n_iter)} steps, one fused op): "
          f"relative error {err:.2e} in {seconds:.2f} s")
    t0 = time.perf_counter()
    est = RobustPCA(model="psd", random_state=args.seed).fit(y)
    seconds = time.perf_counter() - t0
    print(f"  dopfast.RobustPCA (scale-free step, {est.n_iter_} steps, certified refinement, rank {est.rank_} found): "
          f"relative error {relative_error(est.low_rank_, x_true):.2e} in {seconds:.2f} s")
    print(f"relative recovery error ||X - X*||_F / ||X*||_F = {relative_error(est.low_rank_, x_true):.3e}")
    return 0


def _checked(cast, ok, what: str):
    """An argparse type: ``cast(text)`` that must satisfy ``ok``, else an error saying what was expected."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_positive_float = _checked(float, lambda v: math.isfinite(v) and v > 0, "a positive finite number")
_unit_interval = _checked(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def _noise_spec(text: str) -> str:
    from .data import parse_noise

    try:
        parse_noise(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _sop(args) -> int:
    from .sop_train import train

    sop_kw = {k: v for k, v in (("lr_u", args.lr_u), ("lr_v", args.lr_v), ("variant", args.variant)) if v is not None}
    res = train(args.dataset, args.noise, args.loss, epochs=args.epochs, lr=args.lr, seed=args.seed,
                device=args.device, verbose=not args.quiet, sop_kw=sop_kw)
    print(f"{args.dataset}, noise {args.noise}, loss {args.loss}: clean test accuracy {res.test_accuracy:.4f} "
          f"after {args.epochs} epochs ({res.seconds:.1f} s)")
    if res.noisy is not None:
        print(f"({int(res.noisy.sum())} of {len(res.noisy)} training labels were corrupted)")
    return 0


def _read_image(spec: str, crop: int | None):
    """A file path, or the name of an image that ships with scikit-image."""
    import os

    import numpy as np

    from . import dip_data

    if os.path.exists(spec):
        from skimage import img_as_float, io

        img = img_as_float(io.imread(spec))
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
    elif spec in dip_data.NAMES:
        img = dip_data.load(spec)
    else:
        raise SystemExit(f"error: INPUT {spec!r} is neither an existing file nor a scikit-image sample "
                         f"({', '.join(dip_data.NAMES)})")
    if crop:
        h, w = img.shape[:2]
        if crop > min(h, w):
            raise SystemExit(f"error: --crop {crop} is larger than the image ({h}×{w})")
        top, left = (h - crop) // 2, (w - crop) // 2
        img = img[top:top + crop, left:left + crop]
    return np.ascontiguousarray(img)


def _dip(args) -> int:
    import os

    from skimage import img_as_ubyte, io

    from .dip import psnr, restore, salt_and_pepper

    if args.out and os.path.exists(args.out) and not args.overwrite:
        raise SystemExit(f"error: --out {args.out} exists; pass --overwrite to replace it")
    image = _read_image(args.input, args.crop)
    clean = None
    if args.noise > 0:
        clean, image = image, salt_and_pepper(image, args.noise, seed=args.seed)
        print(f"corrupted {args.input} with {args.noise:.0%} salt-and-pepper noise: PSNR {psnr(clean, image):.2f} dB")
    restored, hist = restore(image, args.method, iters=args.iters, width=args.width, alpha=args.alpha, lr=args.lr,
                             device=args.device, seed=args.seed, clean=clean, checkpoint=args.checkpoint,
                             resume=args.resume, verbose=not args.quiet)
    if clean is not None:
        print(f"{args.method}: restored PSNR {psnr(clean, restored):.2f} dB after {args.iters} iterations"
              + (f" (best {hist['best_psnr']:.2f} dB at iteration {hist['best_iteration']})"
                 if hist["best_psnr"] is not None else ""))
    if args.out:
        io.imsave(args.out, img_as_ubyte(restored.clip(0, 1)), check_contrast=False)
        print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dopfast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="robust PCA on the DOP paper's synthetic setting")
    demo.add_argument("--n", type=int, default=50)
    demo.add_argument("--rank", type=int, default=5)
    demo.add_argument("--corruption", type=float, default=0.1)
    demo.add_argument("--iters", type=int, default=20_000)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)

    from .sop_train import LOSSES

    sop = sub.add_parser("sop", help="train a classifier on noisy labels (SOP or a baseline loss)")
    sop.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    sop.add_argument("--noise", type=_noise_spec, default="sym:0.4", help="none, sym:RATE or asym:RATE")
    sop.add_argument("--loss", choices=LOSSES, default="sop")
    sop.add_argument("--epochs", type=_positive_int, default=100)
    sop.add_argument("--lr", type=_positive_float, default=0.1, help="network learning rate")
    sop.add_argument("--lr-u", type=_positive_float, default=None, help="SOP: learning rate of u")
    sop.add_argument("--lr-v", type=_positive_float, default=None, help="SOP: learning rate of v")
    sop.add_argument("--variant", choices=["official", "paper"], default=None, help="SOP variant")
    sop.add_argument("--seed", type=int, default=0)
    sop.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    sop.add_argument("--quiet", action="store_true", help="no progress bar")
    sop.set_defaults(run=_sop)

    dip = sub.add_parser("dip", help="restore an image from salt-and-pepper noise (DOP, DIP, DIP-l1)")
    dip.add_argument("input", help="image file, or a scikit-image sample name such as astronaut")
    dip.add_argument("--noise", type=_unit_interval, default=0.0,
                     help="corrupt INPUT (taken as clean) with this salt-and-pepper ratio first; 0: INPUT is the "
                          "corrupted image")
    dip.add_argument("--method", choices=["dop", "dip", "dip-l1"], default="dop")
    dip.add_argument("--iters", type=_positive_int, default=5000)
    dip.add_argument("--width", type=_positive_int, default=128)
    dip.add_argument("--alpha", type=_positive_float, default=None,
                     help="g/h to network learning-rate ratio (default: 500·sqrt(entries / 256²·3))")
    dip.add_argument("--lr", type=_positive_float, default=1.0)
    dip.add_argument("--crop", type=_positive_int, default=None, help="use a centred crop of this size")
    dip.add_argument("--out", default=None, help="where to write the restored image (PNG)")
    dip.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing file")
    dip.add_argument("--checkpoint", default=None, help="checkpoint file (written every 1000 iterations and on Ctrl-C)")
    dip.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    dip.add_argument("--seed", type=int, default=0)
    dip.add_argument("--device", default=None)
    dip.add_argument("--quiet", action="store_true")
    dip.set_defaults(run=_dip)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

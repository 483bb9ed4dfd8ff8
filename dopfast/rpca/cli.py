"""``python -m dopfast demo`` (robust PCA on the DOP paper's synthetic setting, what ``make demo`` runs) and
``python -m dopfast rpca INPUT`` (robust PCA of a user's matrix or image frames)."""

from __future__ import annotations

import math
import time
from pathlib import Path

from .. import _validate


def run_demo(args) -> int:
    from .data import relative_error, rpca_problem
    from .dop import paper_dop
    from .estimator import RobustPCA

    n, rank, p = args.n, args.rank, args.corruption
    if rank > n:
        raise SystemExit(f"error: --rank {rank} is larger than --n {n}")
    x_true, _, y = rpca_problem(n, rank, p, seed=args.seed)
    print(f"robust PCA: X* = U U^T (n={n}, rank {rank}) plus {p:.0%} gross corruption N(0, 10^2)")
    t0 = time.perf_counter()
    out = paper_dop(y, math.sqrt(n), seed=args.seed + 1, steps=args.iters)
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


def read_matrix(spec: str):
    """``(Y, frame_shape)`` from a .npy, a .npz (its only array, or ``Y``), a .csv of numbers, or a folder of
    image frames (each frame a column; frame_shape is then (height, width))."""
    import numpy as np

    path = Path(spec)
    if path.is_dir():
        from skimage import io

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff",
                                                                          ".bmp"))
        if not files:
            raise SystemExit(f"error: INPUT {spec}: the folder has no image frames (.png, .jpg, .tif, .bmp)")
        try:
            frames = [io.imread(f, as_gray=True).astype(np.float64) for f in files]
        except Exception as exc:  # noqa: BLE001 - any reader failure means "not an image"
            raise SystemExit(f"error: INPUT {spec}: a frame cannot be read ({type(exc).__name__}: {exc})") from None
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise SystemExit(f"error: INPUT {spec}: the frames differ in size ({sorted(shapes)})")
        return np.stack([f.ravel() for f in frames], axis=1), frames[0].shape
    if not path.is_file():
        raise SystemExit(f"error: INPUT {spec}: no such file or folder")
    try:
        if path.suffix.lower() == ".npy":
            y = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as f:
                if "Y" not in f and len(f.files) != 1:
                    raise SystemExit(f"error: INPUT {spec}: name the matrix Y (the archive has {sorted(f.files)})")
                y = f["Y"] if "Y" in f else f[f.files[0]]
        elif path.suffix.lower() == ".csv":
            y = np.loadtxt(path, delimiter=",", ndmin=2)
        else:
            raise SystemExit(f"error: INPUT {spec}: expected .npy, .npz, .csv or a folder of frames")
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: INPUT {spec} cannot be read: {exc}") from None
    return y, None


def read_mask(spec: str, shape: tuple):
    """The observation mask (true = observed) from a .npy/.npz/.csv of bool or 0/1 values, or a folder of frames
    (observed where the frame is brighter than half), of INPUT's shape."""
    import numpy as np

    m, frame_shape = read_matrix(spec)
    if m.shape != shape:
        raise SystemExit(f"error: --mask {spec} has shape {m.shape}, INPUT has {shape}")
    if frame_shape is not None:
        return m > 0.5
    if m.dtype == bool:
        return m
    if not np.issubdtype(m.dtype, np.number) or not np.isin(m, (0, 1)).all():
        raise SystemExit(f"error: --mask {spec} must hold only 0/1 (or true/false), 1 = observed")
    return m != 0


def run_rpca(args) -> int:
    import numpy as np

    from .estimator import RobustPCA

    out = Path(args.out)
    targets = [out / "low_rank.npy", out / "sparse.npy"]
    y, frame_shape = read_matrix(args.input)
    if frame_shape is not None:
        targets += [out / "background.png", out / "foreground.png"]
    if out.exists() and not out.is_dir():
        raise SystemExit(f"error: --out {out} is a file; give a folder")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise SystemExit(f"error: {', '.join(existing)} exist; pass --overwrite to replace them")
    if y.ndim != 2 or y.size == 0 or y.dtype == object:
        raise SystemExit(f"error: INPUT must be a non-empty matrix, got an array of shape {y.shape}")
    mask = read_mask(args.mask, y.shape) if args.mask else None
    if mask is None and np.isnan(y).any():
        mask = ~np.isnan(y)
        print(f"INPUT has {int((~mask).sum())} NaN entries: taken as missing (filled in low_rank.npy, 0 in "
              "sparse.npy)")
    out.mkdir(parents=True, exist_ok=True)
    try:
        est = RobustPCA(method=args.method, device=args.device, random_state=args.seed,
                        verbose=not args.quiet).fit(y, mask=mask)
    except (ValueError, TypeError, FloatingPointError) as exc:
        raise SystemExit(f"error: {exc}") from None
    low, sparse = np.asarray(est.low_rank_), np.asarray(est.sparse_)
    np.save(targets[0], low)
    np.save(targets[1], sparse)
    extra = f", rank {est.rank_}, certified refit {est.refined_}" if hasattr(est, "rank_") else ""
    print(f"{y.shape[0]}×{y.shape[1]}: {args.method}, {est.n_iter_} iterations{extra}; wrote {targets[0]}, "
          f"{targets[1]}")
    if frame_shape is not None:
        from skimage import img_as_ubyte, io

        show = np.linspace(0, y.shape[1] - 1, min(5, y.shape[1])).astype(int)
        strip = lambda m: np.concatenate([m[:, t].reshape(frame_shape) for t in show], axis=1)  # noqa: E731
        io.imsave(targets[2], img_as_ubyte(np.clip(strip(low), 0, 1)), check_contrast=False)
        io.imsave(targets[3], img_as_ubyte(np.clip(np.abs(strip(sparse)), 0, 1)), check_contrast=False)
        print(f"wrote {targets[2]}, {targets[3]} (frames {show.tolist()})")
    return 0


def add_parser(sub) -> None:
    demo = sub.add_parser("demo", help="robust PCA on the DOP paper's synthetic setting")
    demo.add_argument("--n", type=_validate.arg_type(_validate.integer), default=50)
    demo.add_argument("--rank", type=_validate.arg_type(_validate.integer), default=5)
    demo.add_argument("--corruption", type=_validate.arg_type(_validate.real, inclusive=True, maximum=1.0),
                      default=0.1)
    demo.add_argument("--iters", type=_validate.arg_type(_validate.integer, minimum=0), default=20_000)
    demo.add_argument("--seed", type=_validate.arg_type(_validate.integer, minimum=0), default=0)
    demo.set_defaults(run=run_demo)

    from .estimator import METHODS

    rpca = sub.add_parser("rpca", help="separate a matrix (or image frames) into low-rank and sparse parts")
    rpca.add_argument("input", help=".npy, .npz, .csv, or a folder of image frames (each frame a column)")
    rpca.add_argument("--out", default="rpca_out", help="output folder (low_rank.npy, sparse.npy; PNG strips)")
    rpca.add_argument("--mask", help="observation mask like INPUT (.npy, .npz, .csv of 0/1, or a folder of frames); "
                                     "without one, NaN entries of INPUT are taken as missing")
    rpca.add_argument("--method", choices=METHODS, default="dop")
    rpca.add_argument("--device", type=_validate.arg_type(_validate.device), default=None)
    rpca.add_argument("--seed", type=_validate.arg_type(_validate.integer, minimum=0), default=0)
    rpca.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    rpca.add_argument("--quiet", action="store_true", help="no progress bar")
    rpca.set_defaults(run=run_rpca)

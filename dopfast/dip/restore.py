"""Robust image restoration by DOP on a deep image prior (DOP paper §4.2, appendix C), with DIP baselines.

``restore(image, method="dop")`` fits ``φ(θ) + g∘g − h∘h`` to the corrupted image with two plain SGD
optimizers (network lr ``lr``, g/h lr ``alpha·lr``) on the mean squared residual, which the fused
``dop_residual`` op computes (forward and backward); the output is the last iterate of ``φ(θ)``.
``method="dip"`` / ``"dip-l1"`` fit ``φ(θ)`` alone with the ℓ2 / ℓ1 loss and report their best-PSNR iterate
(the paper's oracle early stopping; it needs ``clean``).

Long runs checkpoint every ``checkpoint_every`` iterations (network, g, h, optimizer states, RNG, history),
and on Ctrl-C, to ``checkpoint`` (:mod:`dopfast.dip.checkpoint`); ``resume=True`` continues from it and gives
the same result as an uninterrupted run. An existing checkpoint is never overwritten unless ``resume=True``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import _validate
from .checkpoint import Checkpoint, deferred_interrupt, image_digest
from .net import SkipNet, noise_input
from .step import CAPTURES, Stepper

METHODS = ("dop", "dip", "dip-l1")
ALPHA_PAPER = 500.0
PAPER_NUMEL = 256 * 256 * 3  # the entries of the paper's images, where alpha = 500 was tuned
REG_NOISE_STD = 1.0 / 30.0  # per-step perturbation of the network input (the authors' value)


def default_alpha(numel: int, lr: float = 1.0) -> float:
    """The default learning-rate ratio: the paper's 500 at 256² colour, scaled by √(numel / 196,608).

    With the mean squared loss the per-entry g/h step is 4·alpha·lr/numel. Keeping it constant (alpha ∝ numel)
    starves the sparse part on small images (7.8 dB at 64²), while the paper's constant 500 is 48× the 256²
    colour step at 64² grey, close to the stability limit alpha·lr < numel/4 (curvature 8|s|/numel, |s| <= 1),
    and gave 15.8 dB against 20.6 dB at alpha = 50 (experiments/dip_alpha.py). The square-root rule sits
    between the two (64² grey: 72; 128² colour: 250; 256² colour: 500), and is capped at numel/(8·lr).
    """
    return min(ALPHA_PAPER * (numel / PAPER_NUMEL) ** 0.5, numel / (8.0 * lr))


def salt_and_pepper(image: np.ndarray, amount: float, seed: int = 0) -> np.ndarray:
    """Salt-and-pepper corruption of a fraction ``amount`` of the entries (half 0, half 1), per channel entry,
    by scikit-image's ``random_noise``."""
    from skimage.util import random_noise

    if not 0 <= amount <= 1:
        raise ValueError(f"salt_and_pepper: amount must be in [0, 1], got {amount}")
    return random_noise(np.asarray(image, dtype=np.float64), mode="s&p", amount=amount, rng=seed)


def psnr(clean: np.ndarray, estimate: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(clean, np.clip(estimate, 0, 1), data_range=1.0))


def ssim(clean: np.ndarray, estimate: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    channel = clean.ndim == 3
    return float(structural_similarity(clean, np.clip(estimate, 0, 1), data_range=1.0,
                                       channel_axis=-1 if channel else None))


def _as_chw(image, name: str) -> tuple[torch.Tensor, tuple]:
    arr = np.asarray(image)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"restore: {name} must be a float array in [0, 1] (e.g. skimage.img_as_float), "
                        f"got dtype {arr.dtype}")
    if arr.ndim not in (2, 3) or arr.size == 0 or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ValueError(f"restore: {name} must be H×W or H×W×C (C in 1, 3, 4), got shape {arr.shape}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"restore: {name} must be finite and within [0, 1]")
    chw = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(chw, dtype=np.float32))[None], arr.shape


def _chw_to_image(t: torch.Tensor, shape: tuple) -> np.ndarray:
    arr = t.detach().cpu().numpy().astype(np.float64)
    return arr[0] if len(shape) == 2 else arr.transpose(1, 2, 0)


def _to_image(t: torch.Tensor, shape: tuple) -> np.ndarray:
    return _chw_to_image(t.detach()[0], shape)


class _Run:
    """The state of one restoration: network, g, h, optimizers (in the stepper), RNG, history, kept images."""

    def __init__(self, y, shape, method, width, skip, levels, lr, alpha, seed, capture, device):
        torch.manual_seed(seed)
        _, c, h, w = y.shape
        self.shape, self.size = shape, (h, w)
        self.net = SkipNet(c, width=width, skip=skip, levels=levels).to(device)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.z0 = noise_input(self.net, h, w, torch.Generator().manual_seed(seed), device)
        self.g, self.h = (torch.nn.Parameter(1e-5 * torch.randn(y.shape, generator=torch.Generator().manual_seed(s))
                                             .to(device)) for s in (seed + 1, seed + 2))
        self.stepper = Stepper(self.net, self.z0, self.g, self.h, y, (h, w), method, lr, alpha, REG_NOISE_STD,
                               self.gen, capture)
        self.history = {"method": method, "alpha": alpha, "iteration": [], "loss": [], "psnr": [],
                        "psnr_iteration": [], "best_psnr": None, "best_iteration": None}
        self.best_image = None  # (C, H, W) tensor of the best-PSNR iterate
        self.last_image = None  # (C, H, W) tensor of the last iterate

    def state_dict(self, iteration: int) -> dict:
        return {"net": self.net.state_dict(), "g": self.g.detach(), "h": self.h.detach(),
                "optimizers": self.stepper.state_dict(), "z0": self.z0, "rng": self.gen.get_state(),
                "history": self.history, "best_image": self.best_image, "last_image": self.last_image,
                "iteration": iteration}

    def load_state_dict(self, state: dict) -> int:
        self.net.load_state_dict(state["net"])
        with torch.no_grad():
            self.g.copy_(state["g"])
            self.h.copy_(state["h"])
            self.z0.copy_(state["z0"])
        self.stepper.load_state_dict(state["optimizers"])
        self.gen.set_state(state["rng"].cpu())
        self.history, self.best_image, self.last_image = state["history"], state["best_image"], state["last_image"]
        return int(state["iteration"])

    def record(self, done: int, out, loss, clean, callback, lr, alpha) -> dict:
        """The evaluation after iteration ``done``: loss (finite, or FloatingPointError), PSNR, callback."""
        value = float(loss.detach())
        method = self.history["method"]
        if not math.isfinite(value):
            raise FloatingPointError(f"restore({method}): the loss became {value} at iteration {done}; "
                                     f"lower lr (now {lr}) or alpha (now {alpha})")
        self.history["iteration"].append(done)
        self.history["loss"].append(value)
        img = _to_image(out, self.shape)
        postfix = {"loss": f"{value:.4g}"}
        if clean is not None:
            p = psnr(clean, img)
            self.history["psnr"].append(p)
            self.history["psnr_iteration"].append(done)
            postfix["psnr"] = f"{p:.2f}"
            if self.history["best_psnr"] is None or p > self.history["best_psnr"]:
                self.history["best_psnr"], self.history["best_iteration"] = p, done
                self.best_image = out.detach()[0].cpu().clone()
        if callback is not None:
            callback(done, img, self.history)
        return postfix


def restore(image, method: str = "dop", iters: int = 5000, width: int = 128, alpha: float | None = None,
            lr: float = 1.0, device=None, seed: int = 0, clean=None, callback=None, checkpoint=None,
            checkpoint_every: int = 1000, resume: bool = False, eval_every: int = 50, verbose: bool = False,
            skip: int = 4, levels: int = 5, capture: str = "none"):
    """Restore ``image`` (H×W or H×W×C float array in [0, 1]); returns ``(restored, history)``.

    ``alpha=None`` uses :func:`default_alpha` (500 at 256² colour, as the paper; smaller for smaller images).

    ``restored`` has the input's shape. ``history`` is a dict with ``iteration``, ``loss`` and, when
    ``clean`` is given, ``psnr`` (every ``eval_every`` iterations), plus ``best_psnr``/``best_iteration``;
    for DIP and DIP-ℓ1 ``restored`` is the best-PSNR iterate when ``clean`` is given, the last one otherwise.
    ``callback(iteration, output_image, history)`` runs every ``eval_every`` iterations.
    ``capture``: "none" (eager), "compile" (torch.compile of the network) or "cuda-graph" (the whole iteration
    replayed as one CUDA graph); see :mod:`dopfast.dip.step`.
    """
    _validate.choice("restore", "method", method, METHODS)
    _validate.choice("restore", "capture", capture, CAPTURES)
    y, shape = _as_chw(image, "image")
    iters, width, checkpoint_every, eval_every = (_validate.integer("restore", name, value) for name, value in (
        ("iters", iters), ("width", width), ("checkpoint_every", checkpoint_every), ("eval_every", eval_every)))
    lr = _validate.real("restore", "lr", lr)
    seed = _validate.integer("restore", "seed", seed, minimum=0)
    levels = _validate.integer("restore", "levels", levels)
    if 2**levels > max(32, 4 * max(y.shape[-2:])):
        raise ValueError(f"restore: levels={levels} downsamples a {y.shape[-2]}×{y.shape[-1]} image to nothing "
                         f"(the network input would be {2 ** (levels + 1)} pixels wide); use levels <= "
                         f"{max(5, (4 * max(y.shape[-2:])).bit_length() - 1)}")
    alpha = default_alpha(y.numel(), lr) if alpha is None else _validate.real("restore", "alpha", alpha)
    clean_arr = None
    if clean is not None:
        _, clean_shape = _as_chw(clean, "clean")
        if clean_shape != shape:
            raise ValueError(f"restore: clean must have the image's shape {shape}, got {clean_shape}")
        clean_arr = np.asarray(clean, dtype=np.float64)
    device = _validate.device("restore", "device", device or "cpu")
    ckpt = None
    if checkpoint is not None:
        config = {"method": method, "width": width, "alpha": alpha, "lr": lr, "shape": list(shape), "seed": seed,
                  "skip": skip, "levels": levels, "image": image_digest(image)}
        ckpt = Checkpoint(checkpoint, config)
        ckpt.check_writable()
        if ckpt.exists() and not resume:
            raise FileExistsError(f"restore: checkpoint {ckpt.path} exists; pass resume=True to continue from it, "
                                  f"or choose another path")
    elif resume:
        raise ValueError("restore: resume=True needs checkpoint= (the file to continue from)")

    run = _Run(y.to(device), shape, method, width, skip, levels, lr, alpha, seed, capture, device)
    start = run.load_state_dict(ckpt.load(device)) if ckpt is not None and ckpt.exists() else 0
    if start > iters:
        raise ValueError(f"restore: checkpoint {ckpt.path} is at iteration {start}, beyond iters={iters}; "
                         f"pass iters >= {start}")
    bar = None
    if verbose:
        from tqdm.auto import tqdm
        bar = tqdm(total=iters, initial=start, desc=f"restore({method})", unit="it")
    completed, out = start, None  # iterations whose update has been applied; the last output

    def save(iteration: int) -> None:
        if ckpt is not None and out is not None:
            run.last_image = out.detach()[0].cpu().clone()
            ckpt.save(run.state_dict(iteration))

    try:
        with deferred_interrupt() as interrupted:
            for it in range(start, iters):
                out, loss = run.stepper.step()
                completed = it + 1
                if completed % eval_every == 0 or completed == iters:
                    postfix = run.record(completed, out, loss, clean_arr, callback, lr, alpha)
                    if bar is not None:
                        bar.set_postfix(**postfix)
                if bar is not None:
                    bar.update(1)
                if interrupted[0]:
                    raise KeyboardInterrupt
                if completed % checkpoint_every == 0 and completed < iters:
                    save(completed)
    except KeyboardInterrupt:
        save(completed)
        raise
    finally:
        if bar is not None:
            bar.close()
    if out is not None:
        run.last_image = out.detach()[0].cpu().clone()
    save(iters)
    if method != "dop" and run.best_image is not None:
        return _chw_to_image(run.best_image, shape), run.history
    return _chw_to_image(run.last_image, shape), run.history

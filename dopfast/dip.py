"""Robust image restoration by DOP on a deep image prior (DOP paper §4.2, appendix C), with DIP baselines.

``restore(image, method="dop")`` fits ``φ(θ) + g∘g − h∘h`` to the corrupted image with two plain SGD
optimizers (network lr ``lr``, g/h lr ``alpha·lr``) on the mean squared residual, which the fused
``dop_residual`` op computes (forward and backward); the output is the last iterate of ``φ(θ)``.
``method="dip"`` / ``"dip-l1"`` fit ``φ(θ)`` alone with the ℓ2 / ℓ1 loss and report their best-PSNR iterate
(the paper's oracle early stopping; it needs ``clean``).

Long runs checkpoint every ``checkpoint_every`` iterations (network, g, h, optimizer states, RNG, history),
and on Ctrl-C, to ``checkpoint``; ``resume=True`` continues from it and gives the same result as an
uninterrupted run. An existing checkpoint is never overwritten unless ``resume=True``.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from pathlib import Path

import numpy as np
import torch

from .dip_net import SkipNet, noise_input
from .dip_step import Stepper

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


def _to_image(t: torch.Tensor, shape: tuple) -> np.ndarray:
    arr = t.detach()[0].cpu().numpy().astype(np.float64)
    return arr[0] if len(shape) == 2 else arr.transpose(1, 2, 0)


def _check_scalars(iters, width, alpha, lr, checkpoint_every):
    for name, value in (("iters", iters), ("width", width), ("checkpoint_every", checkpoint_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"restore: {name} must be a positive int, got {value!r}")
    for name, value in (("alpha", alpha), ("lr", lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"restore: {name} must be a positive finite number, got {value!r}")


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
    replayed as one CUDA graph); see :mod:`dopfast.dip_step`.
    """
    if method not in METHODS:
        raise ValueError(f"restore: method must be one of {METHODS}, got {method!r}")
    y, shape = _as_chw(image, "image")
    if alpha is None and isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0:
        alpha = default_alpha(y.numel(), lr)
    _check_scalars(iters, width, alpha, lr, checkpoint_every)
    clean_arr = None
    if clean is not None:
        _, clean_shape = _as_chw(clean, "clean")
        if clean_shape != shape:
            raise ValueError(f"restore: clean must have the image's shape {shape}, got {clean_shape}")
        clean_arr = np.asarray(clean, dtype=np.float64)
    device = torch.device(device or "cpu")
    ckpt_path = None if checkpoint is None else Path(checkpoint)
    if ckpt_path is not None and ckpt_path.exists() and not resume:
        raise FileExistsError(f"restore: checkpoint {ckpt_path} exists; pass resume=True to continue from it, "
                              f"or choose another path")

    torch.manual_seed(seed)
    _, c, h, w = y.shape
    y = y.to(device)
    net = SkipNet(c, width=width, skip=skip, levels=levels).to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    z0 = noise_input(net, h, w, torch.Generator().manual_seed(seed), device)
    g = torch.nn.Parameter(1e-5 * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 1)).to(device))
    hh = torch.nn.Parameter(1e-5 * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 2)).to(device))
    stepper = Stepper(net, z0, g, hh, y, (h, w), method, lr, alpha, REG_NOISE_STD, gen, capture)
    history = {"method": method, "alpha": alpha, "iteration": [], "loss": [], "psnr": [], "psnr_iteration": [],
               "best_psnr": None, "best_iteration": None}
    best_image = None
    start = 0
    if ckpt_path is not None and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state["config"] != {"method": method, "width": width, "alpha": alpha, "lr": lr, "shape": shape}:
            raise ValueError(f"restore: checkpoint {ckpt_path} was written with {state['config']}, not these "
                             f"arguments")
        net.load_state_dict(state["net"])
        with torch.no_grad():
            g.copy_(state["g"])
            hh.copy_(state["h"])
        stepper.load_state_dict(state["optimizers"])
        z0.copy_(state["z0"].to(device))
        gen.set_state(state["rng"])
        history = state["history"]
        best_image = state["best_image"]
        start = state["iteration"]

    def save(iteration: int) -> None:
        if ckpt_path is None:
            return
        state = {"config": {"method": method, "width": width, "alpha": alpha, "lr": lr, "shape": shape},
                 "net": net.state_dict(), "g": g.detach(), "h": hh.detach(), "optimizers": stepper.state_dict(),
                 "z0": z0, "rng": gen.get_state(), "history": history,
                 "best_image": best_image, "iteration": iteration}
        tmp = ckpt_path.with_name(ckpt_path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, ckpt_path)  # atomic: an interrupted save never leaves a broken checkpoint

    bar = None
    if verbose:
        from tqdm.auto import tqdm
        bar = tqdm(total=iters, initial=start, desc=f"restore({method})", unit="it")
    completed, out = start, None  # iterations whose update has been applied
    # Ctrl-C is deferred to the end of the iteration in progress (a second one stops at once), so that the
    # checkpoint never holds a half-applied update.
    interrupted = []
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        def on_sigint(signum, frame):
            interrupted.append(True)
            signal.signal(signal.SIGINT, previous_handler)
        previous_handler = signal.signal(signal.SIGINT, on_sigint)
    try:
        for it in range(start, iters):
            out, loss = stepper.step()
            done = completed = it + 1
            if done % eval_every == 0 or done == iters:
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(f"restore({method}): the loss became {value} at iteration {done}; "
                                             f"lower lr (now {lr}) or alpha (now {alpha})")
                history["iteration"].append(done)
                history["loss"].append(value)
                img = _to_image(out, shape)
                if clean_arr is not None:
                    p = psnr(clean_arr, img)
                    history["psnr"].append(p)
                    history["psnr_iteration"].append(done)
                    if history["best_psnr"] is None or p > history["best_psnr"]:
                        history["best_psnr"], history["best_iteration"] = p, done
                        best_image = img
                if callback is not None:
                    callback(done, img, history)
                if bar is not None:
                    bar.set_postfix(loss=f"{value:.4g}", **({"psnr": f"{history['psnr'][-1]:.2f}"}
                                                           if clean_arr is not None else {}))
            if bar is not None:
                bar.update(1)
            if done % checkpoint_every == 0:
                save(done)
            if interrupted:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        save(completed)
        raise
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        if bar is not None:
            bar.close()
    save(iters)
    if out is None:  # resumed from a finished run
        with torch.no_grad():
            out = net(z0, (h, w))
    final = _to_image(out, shape)
    if method != "dop" and best_image is not None:
        return best_image, history
    return final, history

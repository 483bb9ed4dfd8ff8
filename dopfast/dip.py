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
from pathlib import Path

import numpy as np
import torch

from . import ops
from .dip_net import SkipNet, noise_input

METHODS = ("dop", "dip", "dip-l1")
REG_NOISE_STD = 1.0 / 30.0  # per-step perturbation of the network input (the authors' value)


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


def restore(image, method: str = "dop", iters: int = 5000, width: int = 128, alpha: float = 500.0,
            lr: float = 1.0, device=None, seed: int = 0, clean=None, callback=None, checkpoint=None,
            checkpoint_every: int = 1000, resume: bool = False, eval_every: int = 50, verbose: bool = False,
            skip: int = 4, levels: int = 5):
    """Restore ``image`` (H×W or H×W×C float array in [0, 1]); returns ``(restored, history)``.

    ``restored`` has the input's shape. ``history`` is a dict with ``iteration``, ``loss`` and, when
    ``clean`` is given, ``psnr`` (every ``eval_every`` iterations), plus ``best_psnr``/``best_iteration``;
    for DIP and DIP-ℓ1 ``restored`` is the best-PSNR iterate when ``clean`` is given, the last one otherwise.
    ``callback(iteration, output_image, history)`` runs every ``eval_every`` iterations.
    """
    if method not in METHODS:
        raise ValueError(f"restore: method must be one of {METHODS}, got {method!r}")
    _check_scalars(iters, width, alpha, lr, checkpoint_every)
    y, shape = _as_chw(image, "image")
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
    opt_net = torch.optim.SGD(net.parameters(), lr=lr)
    opt_gh = torch.optim.SGD([g, hh], lr=alpha * lr)
    history = {"method": method, "iteration": [], "loss": [], "psnr": [], "psnr_iteration": [],
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
        opt_net.load_state_dict(state["opt_net"])
        opt_gh.load_state_dict(state["opt_gh"])
        z0 = state["z0"].to(device)
        gen.set_state(state["rng"])
        history = state["history"]
        best_image = state["best_image"]
        start = state["iteration"]

    def save(iteration: int) -> None:
        if ckpt_path is None:
            return
        state = {"config": {"method": method, "width": width, "alpha": alpha, "lr": lr, "shape": shape},
                 "net": net.state_dict(), "g": g.detach(), "h": hh.detach(), "opt_net": opt_net.state_dict(),
                 "opt_gh": opt_gh.state_dict(), "z0": z0, "rng": gen.get_state(), "history": history,
                 "best_image": best_image, "iteration": iteration}
        tmp = ckpt_path.with_name(ckpt_path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, ckpt_path)  # atomic: an interrupted save never leaves a broken checkpoint

    bar = None
    if verbose:
        from tqdm.auto import tqdm
        bar = tqdm(total=iters, initial=start, desc=f"restore({method})", unit="it")
    it, out = start, None
    try:
        for it in range(start, iters):
            z = z0 + REG_NOISE_STD * torch.randn(z0.shape, generator=gen, device=device)
            out = net(z, (h, w))
            if method == "dop":
                r = ops.dop_residual(out, g, hh, y)
                loss = (r * r).mean()
            elif method == "dip":
                loss = ((out - y) ** 2).mean()
            else:
                loss = (out - y).abs().mean()
            opt_net.zero_grad(set_to_none=True)
            opt_gh.zero_grad(set_to_none=True)
            loss.backward()
            opt_net.step()
            if method == "dop":
                opt_gh.step()
            done = it + 1
            if done % eval_every == 0 or done == iters:
                value = float(loss)
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
        it = iters
    except KeyboardInterrupt:
        save(it)  # the iteration in progress was not completed: resume repeats it
        raise
    finally:
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

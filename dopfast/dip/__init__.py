"""Image restoration from salt-and-pepper noise by DOP on a deep image prior (DOP paper §4.2), with the DIP and
DIP-ℓ1 baselines: the skip network, the training step (eager, compiled or one CUDA graph), checkpoints, and
images that ship with scikit-image."""

from .net import SkipNet, noise_input
from .restore import METHODS, default_alpha, psnr, restore, salt_and_pepper, ssim

__all__ = ["restore", "SkipNet", "noise_input", "default_alpha", "salt_and_pepper", "psnr", "ssim", "METHODS"]

"""The deep-image-prior "skip" network (Ulyanov, Vedaldi & Lempitsky), written with plain PyTorch modules.

An encoder-decoder with ``levels`` scales: each level downsamples by a stride-2 convolution (conv → BN →
LeakyReLU, twice), recurses, upsamples bilinearly ×2, and concatenates a 1×1 skip branch of its input before
conv 3×3 and conv 1×1 (each conv → BN → LeakyReLU). Reflection padding; a 1×1 convolution and a sigmoid
give the output image. Convolutions are Kaiming-initialised. Inputs of any size work: the fixed noise input
is padded up to a multiple of 2^levels and the output cropped back (see :func:`SkipNet.forward`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import _validate


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    pad = (kernel - 1) // 2
    layers: list[nn.Module] = [nn.ReflectionPad2d(pad)] if pad else []
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, bias=True)
    nn.init.kaiming_normal_(conv.weight, a=0.2, nonlinearity="leaky_relu")
    nn.init.zeros_(conv.bias)
    layers.append(conv)
    return nn.Sequential(*layers)


def _block(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, kernel, stride), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


def _center_crop(t: Tensor, h: int, w: int) -> Tensor:
    dh, dw = (t.shape[-2] - h) // 2, (t.shape[-1] - w) // 2
    return t[..., dh:dh + h, dw:dw + w]


class _Level(nn.Module):
    def __init__(self, cin: int, width: int, skip: int, inner: _Level | None):
        super().__init__()
        self.skip = _block(cin, skip, 1) if skip else None
        self.down = nn.Sequential(_block(cin, width, 3, stride=2), _block(width, width, 3))
        self.inner = inner
        merged = skip + width
        self.merge_bn = nn.BatchNorm2d(merged)
        self.up = nn.Sequential(_block(merged, width, 3), _block(width, width, 1))

    def forward(self, x: Tensor) -> Tensor:
        deeper = self.down(x)
        if self.inner is not None:
            deeper = self.inner(deeper)
        deeper = F.interpolate(deeper, scale_factor=2, mode="bilinear", align_corners=False)
        parts = [deeper] if self.skip is None else [self.skip(x), deeper]
        h = min(p.shape[-2] for p in parts)
        w = min(p.shape[-1] for p in parts)
        merged = torch.cat([_center_crop(p, h, w) for p in parts], dim=1)
        return self.up(self.merge_bn(merged))


class SkipNet(nn.Module):
    """``SkipNet(out_channels, width=128, skip=4, levels=5, in_channels=32)``; ``forward(z)`` → image in (0, 1).

    ``width`` channels at every level (the paper: 128), ``skip`` channels in each skip branch (4).
    """

    def __init__(self, out_channels: int = 3, width: int = 128, skip: int = 4, levels: int = 5,
                 in_channels: int = 32):
        super().__init__()
        out_channels, width, levels, in_channels = (_validate.integer("SkipNet", name, value) for name, value in (
            ("out_channels", out_channels), ("width", width), ("levels", levels), ("in_channels", in_channels)))
        skip = _validate.integer("SkipNet", "skip", skip, minimum=0)
        self.levels, self.in_channels = levels, in_channels
        level = None
        for i in reversed(range(levels)):
            level = _Level(in_channels if i == 0 else width, width, skip, level)
        self.body = level
        self.head = _conv(width, out_channels, 1)

    def input_shape(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Shape of the noise input for an output of height × width: padded to a multiple of 2^levels, and to
        at least 2^(levels+1) so that the deepest level is 2×2 (batch norm needs more than one value)."""
        m = 2 ** self.levels
        pad = lambda n: max(-(-n // m) * m, 2 * m)  # noqa: E731
        return (1, self.in_channels, pad(height), pad(width))

    def forward(self, z: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        out = torch.sigmoid(self.head(self.body(z)))
        return out if size is None else _center_crop(out, *size)


def noise_input(net: SkipNet, height: int, width: int, generator: torch.Generator | None = None,
                device=None) -> Tensor:
    """The fixed DIP input: uniform noise × 0.1, of the padded size for height × width."""
    return 0.1 * torch.rand(net.input_shape(height, width), generator=generator).to(device)

"""The two StyleGAN2 feature generators and the conditional discriminator (paper Sec. 3.2, 3.4)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .ops import EqualConv2d, EqualLinear, ResDownBlock, StyledConv, haar_dwt


class FeatureGenerator(nn.Module):
    """StyleGAN2 synthesis network that makes one static feature map per identity code.

    A learnt constant of side ``start`` is upsampled with styled convolutions to ``size``.
    The face generator works in UV space (its map is sampled through the UV render: neural texture);
    the background generator covers the canvas. w: (B, style_dim) -> (B, out_channels, size, size).
    """

    def __init__(self, size: int, out_channels: int, channels: Callable[[int], int], style_dim: int,
                 start: int = 4) -> None:
        super().__init__()
        # a start side (4, 3 or 2) that reaches `size` by doublings, e.g. 3 for a 48 canvas
        ok = [s for s in (start, 3, 2) if size % s == 0 and (size // s) & (size // s - 1) == 0]
        if not ok:
            raise ValueError(f"feature map side {size} is not 4, 3 or 2 times a power of two")
        start = ok[0]
        self.const = nn.Parameter(torch.randn(1, channels(start), start, start))
        self.first = StyledConv(channels(start), channels(start), style_dim)
        sides = []
        side = start
        while side < size:
            side *= 2
            sides.append(side)
        self.ups = nn.ModuleList(StyledConv(channels(s // 2), channels(s), style_dim, upsample=True) for s in sides)
        self.convs = nn.ModuleList(StyledConv(channels(s), channels(s), style_dim) for s in sides)
        self.out = EqualConv2d(channels(size), out_channels, 1)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        h = self.first(self.const.expand(w.shape[0], -1, -1, -1), w)
        for up, conv in zip(self.ups, self.convs):
            h = conv(up(h, w), w)
        return self.out(h)


class MinibatchStd(nn.Module):
    """Append the mean std over groups of samples as one extra channel (StyleGAN2)."""

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = min(self.group, b)
        while b % g:
            g -= 1
        # (g, B/g, C, H, W): std over the g members of each group, averaged over C, H, W.
        y = x.reshape(g, b // g, c, h, w)
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/g,)
        std = std.repeat(g)[:, None, None, None].expand(b, 1, h, w)
        return torch.cat([x, std], dim=1)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator on [image | texture render] in the wavelet domain.

    image, render: (B, 3, size, size) in [-1, 1] -> (B,) real/fake logits.
    """

    def __init__(self, size: int, channels: Callable[[int], int]) -> None:
        super().__init__()
        side = size // 2  # after the Haar transform
        self.from_input = EqualConv2d(24, channels(side), 1, activate=True)
        blocks = []
        while side > 4:
            blocks.append(ResDownBlock(channels(side), channels(side // 2)))
            side //= 2
        self.blocks = nn.Sequential(*blocks)
        self.stddev = MinibatchStd()
        c4 = channels(4)
        self.final_conv = EqualConv2d(c4 + 1, c4, 3, activate=True)
        self.fc = nn.Sequential(EqualLinear(c4 * 16, c4, activate=True), EqualLinear(c4, 1))

    def forward(self, image: torch.Tensor, render: torch.Tensor) -> torch.Tensor:
        x = haar_dwt(torch.cat([image, render], dim=1))
        h = self.final_conv(self.stddev(self.blocks(self.from_input(x))))
        return self.fc(h.flatten(1)).squeeze(1)

"""StyleUNet (paper Sec. 3.2-3.3): a U-Net whose encoder is a StyleGAN2 discriminator trunk and whose
decoder is a StyleGAN2 synthesis network (modulated convolutions, noise, latent input).

Two uses in the per-frame network:
- the render StyleUNet (``out_channels`` set): render (wavelet) -> feature map at the encoder's input side;
- the image StyleUNet (``rgb=True``): combined feature window -> 12-channel wavelet image at a larger side.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .ops import EqualConv2d, ResDownBlock, StyledConv, ToWavelet, haar_dwt


class StyleUNet(nn.Module):
    """Encoder-decoder with additive skips and a styled decoder.

    Args:
        in_channels: channels of the input (before the optional Haar transform).
        in_size: side of the input (before the optional Haar transform).
        out_size: side of the output; >= the encoder's first side (extra levels upsample further).
        depth: encoder down-sampling steps; skips are taken at every encoder side.
        channels: channel count for a side, ``channels(res)``.
        style_dim: latent dimension.
        wavelet_input: apply the Haar transform first (input side halves, channels x4).
        out_channels: feature-map output with this many channels (None: 12-channel wavelet image).
    """

    def __init__(self, in_channels: int, in_size: int, out_size: int, depth: int,
                 channels: Callable[[int], int], style_dim: int, wavelet_input: bool = False,
                 out_channels: int | None = None) -> None:
        super().__init__()
        self.wavelet_input = wavelet_input
        top = in_size // 2 if wavelet_input else in_size
        cin = in_channels * 4 if wavelet_input else in_channels
        self.sides = [top // 2 ** i for i in range(depth + 1)]  # encoder sides, top .. bottleneck
        self.from_input = EqualConv2d(cin, channels(top), 1, activate=True)
        self.encoder = nn.ModuleList(ResDownBlock(channels(a), channels(b)) for a, b in zip(self.sides, self.sides[1:]))
        bottom = self.sides[-1]
        self.bottleneck = StyledConv(channels(bottom), channels(bottom), style_dim)
        # Decoder sides: bottleneck*2 .. out_size, two styled convs per side (the first upsamples).
        self.dec_sides = []
        side = bottom
        while side < out_size:
            side *= 2
            self.dec_sides.append(side)
        self.up_convs = nn.ModuleList(StyledConv(channels(s // 2), channels(s), style_dim, upsample=True)
                                      for s in self.dec_sides)
        self.convs = nn.ModuleList(StyledConv(channels(s), channels(s), style_dim) for s in self.dec_sides)
        self.rgb = out_channels is None
        if self.rgb:
            self.to_rgb = nn.ModuleList([ToWavelet(channels(bottom), style_dim, upsample=False)]
                                        + [ToWavelet(channels(s), style_dim) for s in self.dec_sides])
        else:
            self.to_features = EqualConv2d(channels(out_size), out_channels, 1)

    def forward(self, x: torch.Tensor, w: torch.Tensor,
                noise: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """x: (B, in_channels, in_size, in_size); w: (B, style_dim); noise: side -> (B, 1, side, side).

        Returns (B, out_channels, out_size, out_size) features or (B, 12, out_size, out_size) wavelets.
        """
        noise = noise or {}
        if self.wavelet_input:
            x = haar_dwt(x)
        # Sides are the static ones from construction (traced graphs must not key on runtime shapes).
        h = self.from_input(x)
        skips = {self.sides[0]: h}
        for block, side in zip(self.encoder, self.sides[1:]):
            h = block(h)
            skips[side] = h
        h = self.bottleneck(h, w, noise.get(self.sides[-1]))
        rgb = self.to_rgb[0](h, w) if self.rgb else None
        for i, side in enumerate(self.dec_sides):
            h = self.up_convs[i](h, w, noise.get(side))
            if side in skips:
                h = h + skips[side]
            h = self.convs[i](h, w, noise.get(side))
            if self.rgb:
                rgb = self.to_rgb[i + 1](h, w, rgb)
        return rgb if self.rgb else self.to_features(h)

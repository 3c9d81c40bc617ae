"""VGG16 and AlexNet feature extractors and LPIPS, built from given weight dicts (no file IO here).

Weights come as ``features.{i}.weight/bias`` (conv layers in order, OIHW) and ``lin.{j}.weight``
(LPIPS heads), the layout :func:`styleavatar.io.weights.load_weights` returns.
Images are (B, 3, H, W) in [-1, 1]; both networks see them after the LPIPS input scaling.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_VGG_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_VGG_TAPS = {1, 3, 6, 9, 12}  # conv indices whose ReLU outputs are used: relu1_2, 2_2, 3_3, 4_3, 5_3


def _as_tensors(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in weights.items()}


class FeatureNet(nn.Module):
    """VGG16 or AlexNet trunk returning the five ReLU feature maps LPIPS uses. Frozen (eval, no grad)."""

    def __init__(self, kind: str, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        if kind not in ("vgg16", "alexnet"):
            raise ValueError(f"unknown network {kind!r}")
        self.kind = kind
        t = _as_tensors(weights)
        n_conv = 13 if kind == "vgg16" else 5
        self.convs = nn.ModuleList()
        for i in range(n_conv):
            w = t[f"features.{i}.weight"]
            conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=4 if (kind == "alexnet" and i == 0) else 1,
                             padding={11: 2, 5: 2, 3: 1}[w.shape[2]])
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(t[f"features.{i}.bias"])
            self.convs.append(conv)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, 3, H, W) in [-1, 1] -> five (B, C_k, H_k, W_k) ReLU feature maps."""
        x = (x - self.shift.to(x.dtype)) / self.scale.to(x.dtype)
        return self._vgg(x) if self.kind == "vgg16" else self._alexnet(x)

    def _vgg(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, conv_i = [], 0
        for item in _VGG_LAYOUT:
            if item == "M":
                x = F.max_pool2d(x, 2, 2)
                continue
            x = F.relu(self.convs[conv_i](x))
            if conv_i in _VGG_TAPS:
                out.append(x)
            conv_i += 1
        return out

    def _alexnet(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            out.append(x)
            if i < 2:
                x = F.max_pool2d(x, 3, 2)
        return out


def same_crops(a: torch.Tensor, b: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random side x side crop of each image of a and b (B, C, H, W), each image's at a place drawn from
    torch's global generator and the same in a and b. Returns two (B, C, side, side)."""
    n, h, w = a.shape[0], a.shape[-2], a.shape[-1]
    ys, xs = torch.randint(0, h - side + 1, (n,)).tolist(), torch.randint(0, w - side + 1, (n,)).tolist()

    def crop(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[i, :, y:y + side, x0:x0 + side] for i, (y, x0) in enumerate(zip(ys, xs))])

    return crop(a), crop(b)


class PerceptualLoss(nn.Module):
    """Mean L1 distance of the five VGG16 feature maps (each averaged), optionally at a reduced side (``size``)
    and on a random crop of it (``crop``), which keeps the detail of that side at a fraction of the cost."""

    def __init__(self, weights: dict[str, np.ndarray], size: int | None = None, crop: int | None = None) -> None:
        super().__init__()
        self.net = FeatureNet("vgg16", weights)
        self.size, self.crop = size, crop

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """fake, real: (B, 3, H, W) in [-1, 1] -> 0-d loss (gradient to ``fake`` only)."""
        if self.size and fake.shape[-1] > self.size:
            fake = F.interpolate(fake, size=(self.size, self.size), mode="area")
            real = F.interpolate(real, size=(self.size, self.size), mode="area")
        if self.crop and min(fake.shape[-2:]) > self.crop:
            fake, real = same_crops(fake, real, self.crop)
        with torch.no_grad():  # the targets need no graph: backward then runs over the fake half only
            target = self.net(real)
        return sum((f - t).abs().mean() for f, t in zip(self.net(fake), target))


class LPIPS(nn.Module):
    """Learned perceptual image patch similarity (Zhang et al. 2018) with the given trunk and linear heads.

    forward(a, b): (B, 3, H, W) each in [-1, 1] -> (B,) distances (0 for identical images).
    """

    def __init__(self, kind: str, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.net = FeatureNet(kind, weights)
        t = _as_tensors(weights)
        self.heads = nn.ParameterList(nn.Parameter(t[f"lin.{j}.weight"], requires_grad=False) for j in range(5))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(a.shape[0], device=a.device)
        for fa, fb, head in zip(self.net(a), self.net(b), self.heads):
            na = fa / (fa.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            nb = fb / (fb.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + F.conv2d((na - nb) ** 2, head).mean(dim=(1, 2, 3))
        return total

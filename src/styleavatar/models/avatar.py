"""The per-frame StyleAvatar network (paper Sec. 3.2-3.3, Fig. 2).

Geometry (all sides from :class:`~styleavatar.config.ModelConfig`): the dataset crop is the *canvas*;
the output image covers a *window* of it (side output_size; the canvas is canvas_scale times larger).
Feature maps are 8x coarser than output pixels, renders 4x coarser:

    render, uv   (B, 3, R, R)     R = 2 * canvas, covering the whole crop
    foreground   (B, C, canvas, canvas)  render StyleUNet on the render, masked to the window's box
                 (B, C, win, win)        with render_crop: the render StyleUNet on the box alone
    background   (1, C, canvas, canvas)  static StyleGAN2 map per identity
    face         (1, C, uv, uv)          static StyleGAN2 map in UV space, sampled through the UV render
    window       (B, C, win, win)        win = output_size / 8, at an offset from the centre (sliding window)
    image        (B, 3, out, out)        image StyleUNet -> 12 wavelet channels at out/2 -> inverse Haar

Offsets are in feature cells (8 output pixels); ``None`` means the centred window (inference).
After :meth:`AvatarNet.freeze_features` the two static maps are cached buffers, so the network that runs
per frame is only the two StyleUNets (what is exported).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .ops import EqualConv2d, MappingNetwork, box_mean, haar_idwt, positional_encoding
from .stylegan import FeatureGenerator
from .styleunet import StyleUNet

FRAME_CODE_DIVISOR = 5000.0
"""The frame code is the positional encoding of frame_index / 5000 (paper: z_tmp)."""
FRAME_CODE_OCTAVES = 32
"""Octaves of the frame code's positional encoding (its width is twice this)."""
IDENTITY_CODE_OCTAVES = 32
"""Octaves of the identity code's positional encoding (its width is twice this)."""
INFERENCE_FRAME = -1
"""A frame index that asks for the inference latent: the mean frame latent of the identity's training frames
(see :meth:`AvatarNet.set_inference_latents`), or the paper's code t = 0.5 before that is set."""
MAX_IDENTITIES = 64
"""Identity codes encode (video_index + 0.5) / 64, so up to 64 videos can be pre-trained together."""

Offsets = list[tuple[int, int]] | None


def frame_code_time(frame_index: torch.Tensor) -> torch.Tensor:
    """(B,) integer frame indices -> (B,) float64 times for the frame code."""
    return frame_index.to(torch.float64) / FRAME_CODE_DIVISOR


def frame_code(frame_index: torch.Tensor, octaves: int) -> torch.Tensor:
    """(B,) frame indices -> (B, 2 * FRAME_CODE_OCTAVES) positional code with the octaves from ``octaves``
    up set to 0 (the input width stays the same, so weights of any bandwidth load into any other)."""
    code = positional_encoding(frame_code_time(frame_index), FRAME_CODE_OCTAVES)
    keep = (torch.arange(FRAME_CODE_OCTAVES, device=code.device) < octaves).repeat(2)  # sin block, cos block
    return code * keep.to(code.dtype)


class AvatarNet(nn.Module):
    """Feature generators + render StyleUNet + blend + image StyleUNet. See the module docstring."""

    def __init__(self, cfg: ModelConfig, identities: int = 1) -> None:
        super().__init__()
        cfg.validate()
        if not 1 <= identities <= MAX_IDENTITIES:
            raise ValueError(f"identities must be in 1..{MAX_IDENTITIES}")
        self.cfg = cfg
        self.identities = identities
        ch, c, s = cfg.channels, cfg.feature_channels, cfg.style_dim
        self.map_frame = MappingNetwork(2 * (FRAME_CODE_OCTAVES + IDENTITY_CODE_OCTAVES), s, cfg.mapping_layers)
        self.map_identity = MappingNetwork(2 * IDENTITY_CODE_OCTAVES, s, cfg.mapping_layers)
        self.face_generator = FeatureGenerator(cfg.uv_size, c, ch, s)
        self.background_generator = FeatureGenerator(cfg.canvas, c, ch, s)
        # Input: texture render (3) + UV render mapped to [-1, 1] (3), Haar-transformed inside.
        self.render_unet = StyleUNet(6, cfg.render_size, cfg.canvas, cfg.render_depth, ch, s,
                                     wavelet_input=True, out_channels=c)
        self.mask_conv = EqualConv2d(2 * c, 1, 3)
        self.image_unet = StyleUNet(c, cfg.window, cfg.output_size // 2, cfg.image_depth, ch, s)
        self._register_noise(cfg)
        self.register_buffer("centre_box", torch.zeros(1, 1, cfg.render_size, cfg.render_size), persistent=False)
        self.centre_box.copy_(self.box_mask([(0, 0)], 1, self.centre_box.device))
        self.register_buffer("face_maps", torch.zeros(identities, c, cfg.uv_size, cfg.uv_size))
        self.register_buffer("background_maps", torch.zeros(identities, c, cfg.canvas, cfg.canvas))
        self.register_buffer("features_frozen", torch.zeros((), dtype=torch.bool))
        self.register_buffer("inference_latents", torch.zeros(identities, cfg.style_dim))
        self.register_buffer("inference_latents_set", torch.zeros((), dtype=torch.bool))
        self.refresh_flags()
        if cfg.known_base:
            # (identities, 3, crop, crop) in [-1, 1]; set before training starts (median training frame, face inpainted)
            self.background_images = nn.Parameter(torch.zeros(identities, 3, cfg.crop_size, cfg.crop_size))
            self.correction_gain = nn.Parameter(torch.zeros(()))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As nn.Module's; files written before the inference latents existed load with them unset."""
        state = dict(state_dict)
        for name in ("inference_latents", "inference_latents_set"):
            state.setdefault(name, getattr(self, name))
        result = super().load_state_dict(state, strict=strict, assign=assign)
        self.refresh_flags()
        return result

    def refresh_flags(self) -> None:
        """Copy the two flag buffers (saved with the weights) into plain attributes, which the forward reads:
        reading a buffer on a GPU would wait for the GPU on every forward. Call after writing the buffers."""
        self.maps_cached = bool(self.features_frozen)
        self.latents_set = bool(self.inference_latents_set)

    # ------------------------------------------------------------------------------------ codes
    def styles(self, frame_index: torch.Tensor, identity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents for (B,) frame indices and (B,) identity indices: (w_frame, w_identity), each (B, style).

        A frame index of :data:`INFERENCE_FRAME` gives the identity's inference latent."""
        id_code = positional_encoding((identity.to(torch.float64) + 0.5) / MAX_IDENTITIES, IDENTITY_CODE_OCTAVES)
        asked = frame_index == INFERENCE_FRAME
        frames = torch.where(asked, torch.full_like(frame_index, int(FRAME_CODE_DIVISOR // 2)), frame_index)
        w = self.map_frame(torch.cat([frame_code(frames, self.cfg.frame_code_octaves), id_code], dim=1))
        if self.latents_set:
            w = torch.where(asked[:, None], self.inference_latents[identity].to(w.dtype), w)
        return w, self.map_identity(id_code)

    def inference_styles(self, identity: int = 0, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed latents used at inference (one identity): see :data:`INFERENCE_FRAME`."""
        dev = self.face_maps.device
        idx = torch.full((batch,), identity, dtype=torch.long, device=dev)
        return self.styles(torch.full((batch,), INFERENCE_FRAME, dtype=torch.long, device=dev), idx)

    @torch.no_grad()
    def set_inference_latents(self, frame_index: torch.Tensor, identity: torch.Tensor) -> None:
        """Each identity's inference latent := the mean frame latent over its (N,) training frames.

        The paper uses the code of t = 0.5, which a short video never trains on (the training 80% of a
        71-second clip at 25 fps spans t in [0, 0.29]). On that clip's held-out frames the mean latent scored
        0.8 dB higher and 0.02-0.07 lower in LPIPS (BENCHMARKS.md, "inference latent")."""
        for k in identity.unique().tolist():
            rows = frame_index[identity == k]
            w, _ = self.styles(rows, torch.full_like(rows, k))
            self.inference_latents[k] = w.float().mean(0)
        self.inference_latents_set.fill_(True)
        self.latents_set = True

    # ---------------------------------------------------------------------------- static maps
    def feature_maps(self, w_identity: torch.Tensor, identity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Face (B, C, uv, uv) and background (B, C, canvas, canvas) maps: generated, or cached once frozen.

        The maps depend on the identity alone (no noise), so each distinct identity in the batch is
        generated once and the result indexed per sample: the same values and gradients as one pass per
        sample, at 1/B of the cost when the batch holds one person.
        """
        if self.maps_cached:
            return self.face_maps[identity], self.background_maps[identity]
        if self.identities == 1:  # no torch.unique (its output size is data-dependent: a GPU sync)
            per_sample, w = torch.zeros_like(identity), w_identity[:1]
            return self.face_generator(w)[per_sample], self.background_generator(w)[per_sample]
        ids, per_sample = torch.unique(identity, return_inverse=True)
        first = torch.zeros_like(ids).scatter_reduce(0, per_sample, torch.arange(len(identity), device=ids.device),
                                                     "amin", include_self=False)  # one sample of each identity
        w = w_identity[first]
        return self.face_generator(w)[per_sample], self.background_generator(w)[per_sample]

    def cached_maps(self, identity: int) -> dict[str, torch.Tensor]:
        """One identity's static inputs of :meth:`synthesize` (cached maps, and the background image if
        ``known_base``), each (1, ...): ``net.synthesize(render, uv, w, **net.cached_maps(i))``."""
        k = slice(identity, identity + 1)
        maps = {"face_map": self.face_maps[k], "background_map": self.background_maps[k]}
        if self.cfg.known_base:
            maps["background_image"] = self.background_images[k]
        return maps

    @torch.no_grad()
    def freeze_features(self) -> None:
        """Cache every identity's face/background maps and stop training the two generators."""
        idx = torch.arange(self.identities, device=self.face_maps.device)
        _, w_id = self.styles(torch.zeros_like(idx), idx)
        self.face_maps.copy_(self.face_generator(w_id).float())
        self.background_maps.copy_(self.background_generator(w_id).float())
        self.features_frozen.fill_(True)
        self.maps_cached = True
        for p in [*self.face_generator.parameters(), *self.background_generator.parameters(),
                  *self.map_identity.parameters()]:
            p.requires_grad_(False)

    # ----------------------------------------------------------------------------------- noise
    def _register_noise(self, cfg: ModelConfig) -> None:
        """Fixed noise: one texture in UV space (moves with the face) and one per decoder side on the canvas."""
        gen = torch.Generator().manual_seed(1234)
        self.register_buffer("uv_noise", torch.randn(1, 1, 4 * cfg.uv_size, 4 * cfg.uv_size, generator=gen))
        self.noise_sides = [cfg.window * k for k in (1, 2, 4) if cfg.window * k <= cfg.output_size // 2]
        for side in self.noise_sides:
            n = side * cfg.canvas // cfg.window
            self.register_buffer(f"canvas_noise_{side}", torch.randn(1, 1, n, n, generator=gen))

    def _noise(self, uv_win: torch.Tensor, offsets: Offsets) -> dict[int, torch.Tensor]:
        """Noise per decoder side: the UV texture where the face is, the canvas noise elsewhere."""
        if not self.cfg.noise:
            return {}
        out = {}
        for side in self.noise_sides:
            uv = uv_win if uv_win.shape[-1] == side else F.interpolate(uv_win, size=(side, side), mode="bilinear",
                                                                      align_corners=False)
            grid = uv[:, :2].permute(0, 2, 3, 1) * 2 - 1  # (B, side, side, 2): u -> x, v -> y in [-1, 1]
            face = F.grid_sample(self.uv_noise.expand(uv.shape[0], -1, -1, -1).to(uv.dtype), grid,
                                 mode="bilinear", padding_mode="border", align_corners=False)
            canvas = self._window(getattr(self, f"canvas_noise_{side}").to(uv.dtype), offsets, side // self.cfg.window,
                                  batch=uv.shape[0])
            cov = uv[:, 2:3]
            out[side] = cov * face + (1 - cov) * canvas
        return out

    # ---------------------------------------------------------------------------------- window
    def _window(self, x: torch.Tensor, offsets: Offsets, scale: int, batch: int | None = None) -> torch.Tensor:
        """Crop the window from a canvas-aligned map x (B or 1, C, S, S) at `scale` pixels per feature cell."""
        side = self.cfg.window * scale
        start = (x.shape[-1] - side) // 2
        if offsets is None:
            out = x[..., start:start + side, start:start + side]
            return out.expand(batch, -1, -1, -1) if batch and out.shape[0] == 1 else out
        crops = []
        for i, (dx, dy) in enumerate(offsets):
            src = x[i if x.shape[0] > 1 else 0]
            y0, x0 = start + dy * scale, start + dx * scale
            crops.append(src[:, y0:y0 + side, x0:x0 + side])
        return torch.stack(crops)

    def box_mask(self, offsets: Offsets, batch: int, device: torch.device) -> torch.Tensor:
        """1 inside the window's box on the render canvas, 0 outside (paper: random sample boxes).

        (B, 1, R, R) for given offsets; (1, 1, R, R) for the centred window (broadcasts, exports as a constant).
        """
        if offsets is None:
            return self.centre_box
        r = self.cfg.render_size
        side, start = 2 * self.cfg.window, (r - 2 * self.cfg.window) // 2
        mask = torch.zeros(batch, 1, r, r, device=device)
        for i, (dx, dy) in enumerate(offsets):
            y0, x0 = start + 2 * dy, start + 2 * dx
            mask[i, :, y0:y0 + side, x0:x0 + side] = 1
        return mask

    def max_offset(self) -> int:
        """Largest window offset, in feature cells, that stays inside the canvas."""
        return (self.cfg.canvas - self.cfg.window) // 2

    # --------------------------------------------------------------------------------- forward
    @staticmethod
    def face_features(face_map: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """Neural texture: sample the UV-space map (B|1, C, uv, uv) through a UV render (B, 3, H, W).

        Returns (B, C, H, W), zero where the render's coverage is zero.
        """
        grid = uv[:, :2].permute(0, 2, 3, 1) * 2 - 1  # u -> x, v -> y in grid_sample's [-1, 1]
        face_map = face_map.expand(uv.shape[0], -1, -1, -1) if face_map.shape[0] == 1 else face_map
        return F.grid_sample(face_map.to(uv.dtype), grid, mode="bilinear", padding_mode="border",
                             align_corners=False) * uv[:, 2:3]

    def foreground(self, render: torch.Tensor, uv: torch.Tensor, w: torch.Tensor, offsets: Offsets) -> torch.Tensor:
        """The foreground feature window (B, C, win, win) from the renders (B, 3, R, R): the render StyleUNet
        on the canvas with zeros outside the window's box (paper), or on the box alone with ``render_crop``."""
        x = torch.cat([render, uv * 2 - 1], dim=1)  # (B, 6, R, R)
        if self.cfg.render_crop:
            # The StyleUNet is fully convolutional: a (2 win)^2 input gives a win^2 output with the same weights.
            return self.render_unet(self._window(x, offsets, 2), w)
        box = self.box_mask(offsets, render.shape[0], render.device).to(render.dtype)
        return self._window(self.render_unet(x * box, w), offsets, 1)

    def synthesize(self, render: torch.Tensor, uv: torch.Tensor, w: torch.Tensor, face_map: torch.Tensor,
                   background_map: torch.Tensor, offsets: Offsets = None,
                   background_image: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame from its renders.

        render: (B, 3, R, R) texture render in [-1, 1]; uv: (B, 3, R, R) = (u, v, coverage) in [0, 1];
        w: (B, style); face_map (B|1, C, uv, uv); background_map (B|1, C, canvas, canvas);
        background_image: (B|1, 3, crop, crop) in [-1, 1], required with ``known_base``.
        Returns image (B, 3, out, out) in about [-1, 1] and foreground mask (B, 1, out, out) in [0, 1].
        """
        b = render.shape[0]
        foreground = self.foreground(render, uv, w, offsets)
        background = self._window(background_map, offsets, 1, batch=b)
        uv_win = self._window(uv, offsets, 2)  # (B, 3, 2 win, 2 win)
        face = F.avg_pool2d(self.face_features(face_map, uv_win), 2)  # render resolution -> window (anti-aliased)
        mask = torch.sigmoid(self.mask_conv(torch.cat([foreground, background], dim=1)))
        features = mask * foreground + (1 - mask) * background + face
        image = haar_idwt(self.image_unet(features, w, self._noise(uv_win, offsets)))
        if self.cfg.known_base:
            image = self.known_base(render, uv, background_image, offsets) + self.correction_gain * image
        mask_up = F.interpolate(mask, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return image, mask_up

    @property
    def blend_band(self) -> int:
        """Width in output pixels of the band inside the mesh's edge over which :meth:`known_base` blends the
        texture render into the background image."""
        return max(1, self.cfg.output_size // 32)

    def known_base(self, render: torch.Tensor, uv: torch.Tensor, background_image: torch.Tensor,
                   offsets: Offsets) -> torch.Tensor:
        """(B, 3, out, out) in [-1, 1]: the texture render where the mesh covers the window, the background
        image elsewhere, blended over a band of out/32 pixels inside the mesh's edge (a hard edge left a
        visible seam). Renders are 4x coarser than the output: upsampled bilinearly."""
        out = self.cfg.output_size
        tex = self._window(render, offsets, 2)  # 2 render pixels per feature cell
        cov = self._window(uv[:, 2:3], offsets, 2)
        tex, cov = (F.interpolate(x, size=(out, out), mode="bilinear", align_corners=False) for x in (tex, cov))
        r = self.blend_band
        near = box_mean(cov, r)  # local coverage
        weight = (2 * near - 1).clamp(0, 1)  # 1 deeper than r inside the mesh, falling to 0 at its edge
        background = self._window(background_image.to(render.dtype), offsets, 8, batch=render.shape[0])
        # The background image learns only where it is the whole base (weight 0). Behind the blend band a pixel
        # counts for little in every training frame, yet Adam steps each element at the full rate: such pixels
        # drifted into a bright, speckled ring along the mesh's usual edge, which a head driven off its
        # training poses uncovered as a seam across the forehead and temples.
        background = torch.where(weight > 0, background.detach(), background)
        return weight * tex + (1 - weight) * background

    def forward(self, render: torch.Tensor, uv: torch.Tensor, frame_index: torch.Tensor,
                identity: torch.Tensor, offsets: Offsets = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training/evaluation entry: (B,) frame and identity indices select the latents. See :meth:`synthesize`."""
        w, w_id = self.styles(frame_index, identity)
        face_map, background_map = self.feature_maps(w_id, identity)
        image = self.background_images[identity] if self.cfg.known_base else None
        return self.synthesize(render, uv, w, face_map, background_map, offsets, background_image=image)

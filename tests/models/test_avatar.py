"""Shapes and ranges of every network at the tiny preset; neural texture and noise move with the face."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from styleavatar.config import MODEL_PRESETS
from styleavatar.models.avatar import FRAME_CODE_OCTAVES, AvatarNet, frame_code, frame_code_time
from styleavatar.models.ops import positional_encoding
from styleavatar.models.stylegan import Discriminator, FeatureGenerator
from styleavatar.models.styleunet import StyleUNet

CFG = MODEL_PRESETS["tiny"]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return AvatarNet(CFG, identities=2).eval()


def _inputs(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = CFG.render_size
    return torch.rand(b, 3, r, r, generator=g) * 2 - 1, torch.rand(b, 3, r, r, generator=g)


def test_styleunet_feature_and_image_modes():
    ch = CFG.channels
    feat = StyleUNet(6, 32, 16, 2, ch, 16, wavelet_input=True, out_channels=5)
    assert feat(torch.randn(2, 6, 32, 32), torch.randn(2, 16)).shape == (2, 5, 16, 16)
    img = StyleUNet(8, 8, 32, 2, ch, 16)
    noise = {s: torch.randn(2, 1, s, s) for s in (8, 16, 32)}
    assert img(torch.randn(2, 8, 8, 8), torch.randn(2, 16), noise).shape == (2, 12, 32, 32)


def test_feature_generator_and_discriminator():
    ch = CFG.channels
    for side in (12, 16, 48):
        assert FeatureGenerator(side, 8, ch, 16)(torch.randn(3, 16)).shape == (3, 8, side, side)
    gen = FeatureGenerator(16, 8, ch, 16)
    w = torch.randn(2, 16)
    maps = gen(w)
    assert not torch.allclose(maps[0], maps[1])  # the latent shapes the map
    d = Discriminator(64, ch)
    image = (torch.rand(3, 3, 64, 64) * 2 - 1).requires_grad_(True)
    condition = (torch.rand(3, 3, 64, 64) * 2 - 1).requires_grad_(True)
    logits = d(image, condition)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    assert not torch.allclose(logits, d(image, condition.flip(0)))  # it judges the image given its render
    logits.sum().backward()
    assert image.grad.abs().sum() > 0 and condition.grad.abs().sum() > 0


def test_avatar_shapes_ranges_and_offsets(net):
    render, uv = _inputs(3)
    m = net.max_offset()
    assert m == (CFG.canvas - CFG.window) // 2 > 0
    image, mask = net(render, uv, torch.arange(3), torch.tensor([0, 1, 1]), [(m, -m), (0, 0), (-m, 1)])
    assert image.shape == (3, 3, CFG.output_size, CFG.output_size)
    assert mask.shape == (3, 1, CFG.output_size, CFG.output_size)
    assert torch.isfinite(image).all() and image.abs().max() < 20
    assert 0 <= mask.min() and mask.max() <= 1


def test_cached_features_give_the_same_frame(net):
    render, uv = _inputs(1)
    idx, ident = torch.tensor([2500]), torch.tensor([1])
    with torch.no_grad():
        before, _ = net(render, uv, idx, ident)
        frozen = AvatarNet(CFG, identities=2).eval()
        frozen.load_state_dict(net.state_dict())
        frozen.freeze_features()
        after, _ = frozen(render, uv, idx, ident)
        w, _ = frozen.inference_styles(identity=1)
        direct, _ = frozen.synthesize(render, uv, w, **frozen.cached_maps(1))
    assert torch.allclose(before, after, atol=1e-5)
    assert torch.allclose(after, direct, atol=1e-5)
    assert not any(p.requires_grad for p in frozen.face_generator.parameters())


def test_feature_maps_once_per_identity_match_one_pass_per_sample():
    torch.manual_seed(1)
    net = AvatarNet(CFG, identities=3)
    identity = torch.tensor([2, 0, 2, 2, 0])
    _, w_id = net.styles(torch.arange(5), identity)
    face, background = net.feature_maps(w_id, identity)
    params = [p for name, p in net.face_generator.named_parameters() if "noise" not in name]  # noise: unused
    grads = torch.autograd.grad(face.square().sum() + background.sum(), params)
    ref_face = net.face_generator(w_id)  # every sample through the generator, as the paper's code does
    ref_background = net.background_generator(w_id)
    ref_grads = torch.autograd.grad(ref_face.square().sum() + ref_background.sum(), params)
    assert face.shape == ref_face.shape == (5, CFG.feature_channels, CFG.uv_size, CFG.uv_size)
    assert torch.allclose(face, ref_face, atol=1e-5) and torch.allclose(background, ref_background, atol=1e-5)
    assert not torch.allclose(face[0], face[1])  # the two identities really differ
    for g, ref in zip(grads, ref_grads):
        # the same sums in another order: fp32 rounding relative to the gradient's scale (elementwise rtol fails
        # on entries that cancel to near zero; measured up to 4e-6 of the scale on an AVX2-only AMD EPYC)
        assert (g - ref).abs().max() <= 2e-5 * ref.abs().max()


def _face_uv(shift_px: int) -> torch.Tensor:
    """A smooth 'face' UV patch on the render canvas, shifted right by shift_px render pixels."""
    r = CFG.render_size
    uv = torch.zeros(1, 3, r, r)
    y, x = torch.meshgrid(torch.arange(r), torch.arange(r), indexing="ij")
    inside = ((x - shift_px - r / 2).abs() < r / 4) & ((y - r / 2).abs() < r / 4)
    uv[0, 0] = torch.where(inside, (x - shift_px - r / 4) / (r / 2), 0)
    uv[0, 1] = torch.where(inside, (y - r / 4) / (r / 2), 0)
    uv[0, 2] = inside.float()
    return uv


def test_noise_and_neural_texture_move_with_the_uv_render(net):
    """Shift the face by one feature cell (2 render px): its noise and features shift by the same amount."""
    uv0, uv1 = _face_uv(0), _face_uv(2)
    win = net._window(uv0, None, 2), net._window(uv1, None, 2)
    n0, n1 = net._noise(win[0], None), net._noise(win[1], None)
    for side, k in ((CFG.window, 1), (2 * CFG.window, 2)):
        face = net._window(uv0, None, 2)[:, 2:3]
        cov = torch.nn.functional.interpolate(face, size=(side, side), mode="bilinear") > 0.999
        cov_core = cov[..., k:-k, k:-k] if k else cov
        a = n0[side][..., k:-k, k:-k]
        b = n1[side][..., k:-k, 2 * k:]  # the same face point is k pixels to the right
        sel = cov_core & (cov[..., k:-k, :-2 * k] if k else cov_core)
        assert sel.sum() > 10
        assert torch.allclose(a[sel], b[sel], atol=1e-4)
    # Neural texture: the face features sampled through the two UV renders are shifted copies
    fmap = torch.randn(1, CFG.feature_channels, CFG.uv_size, CFG.uv_size)
    feats = [net.face_features(fmap, w) for w in win]
    inner = feats[0][..., 4:-4, 4:-6]
    assert torch.allclose(inner, feats[1][..., 4:-4, 6:-4], atol=1e-5)


def test_perceptual_loss_matches_the_joint_pass_and_gives_gradient_to_the_fake_only():
    from styleavatar.io.weights import load_weights
    from styleavatar.models.perceptual import PerceptualLoss

    loss_fn = PerceptualLoss(load_weights("vgg16"), size=32)
    g = torch.Generator().manual_seed(0)
    real = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    fake = (real + 0.3 * torch.randn(2, 3, 64, 64, generator=g)).requires_grad_(True)
    loss = loss_fn(fake, real)
    small = [torch.nn.functional.interpolate(x, size=(32, 32), mode="area") for x in (fake, real)]
    joint = loss_fn.net(torch.cat(small))  # both halves in one pass: the plain definition
    expected = sum((f[:2] - f[2:]).abs().mean() for f in joint)
    assert torch.allclose(loss, expected, rtol=1e-4)
    (grad,) = torch.autograd.grad(loss, fake)
    assert grad.abs().sum() > 0
    assert float(loss_fn(real, real)) < 1e-6


def test_perceptual_crop_scores_one_window_per_image_the_same_in_fake_and_real():
    from styleavatar.io.weights import load_weights
    from styleavatar.models.perceptual import PerceptualLoss, same_crops

    g = torch.Generator().manual_seed(1)
    real = torch.rand(6, 3, 64, 64, generator=g) * 2 - 1
    torch.manual_seed(0)
    a, b = same_crops(real + 1, real, 40)
    assert a.shape == (6, 3, 40, 40) and torch.allclose(a, b + 1)  # the same place in both
    places = [next((y, x) for y in range(25) for x in range(25) if torch.equal(b[i], real[i, :, y:y + 40, x:x + 40]))
              for i in range(6)]
    assert len(set(places)) > 1  # each image its own place

    loss_fn = PerceptualLoss(load_weights("vgg16"), crop=40)
    fake = (real + 0.3 * torch.randn(6, 3, 64, 64, generator=g)).requires_grad_(True)
    torch.manual_seed(3)
    loss = loss_fn(fake, real)
    torch.manual_seed(3)
    cf, cr = same_crops(fake, real, 40)
    joint = loss_fn.net(torch.cat([cf, cr]))
    assert torch.allclose(loss, sum((f[:6] - f[6:]).abs().mean() for f in joint), rtol=1e-4)
    (grad,) = torch.autograd.grad(loss, fake)
    torch.manual_seed(3)
    inside = torch.zeros_like(fake, dtype=torch.bool)
    ys, xs = torch.randint(0, 25, (6,)).tolist(), torch.randint(0, 25, (6,)).tolist()
    for i, (y, x) in enumerate(zip(ys, xs)):
        inside[i, :, y:y + 40, x:x + 40] = True
    assert grad[~inside].abs().max() == 0 and (grad[inside] != 0).float().mean() > 0.9  # gradient in the crop only
    assert float(loss_fn(real, real)) < 1e-6


def test_known_base_starts_as_the_render_over_the_background_image():
    import dataclasses

    torch.manual_seed(0)
    cfg = dataclasses.replace(CFG, known_base=True)
    net = AvatarNet(cfg, identities=1).eval()
    with torch.no_grad():
        net.background_images.uniform_(-1, 1)
    render, uv = _inputs(2)
    uv[:, 2] = (uv[:, 2] > 0.5).float()
    image, _ = net(render, uv, torch.arange(2), torch.zeros(2, dtype=torch.long))
    # the composite, built here by hand: the centred window of the render (2 px per cell) upsampled 4x,
    # the background image's window (8 px per cell) where the mesh does not cover, blended near the edge
    out, win, r = cfg.output_size, cfg.window, cfg.render_size
    a, c = (r - 2 * win) // 2, (cfg.crop_size - out) // 2
    up = torch.nn.functional.interpolate(torch.cat([render, uv[:, 2:3]], 1)[..., a:a + 2 * win, a:a + 2 * win],
                                         size=(out, out), mode="bilinear", align_corners=False)
    tex, cov = up[:, :3], up[:, 3:]
    r = out // 32  # the blend band inside the mesh's edge
    weight = (2 * torch.nn.functional.avg_pool2d(cov, 2 * r + 1, 1, r, count_include_pad=False) - 1).clamp(0, 1)
    expected = weight * tex + (1 - weight) * net.background_images[:, :, c:c + out, c:c + out]
    assert torch.allclose(image, expected, atol=1e-6)  # the correction's gain starts at 0
    with torch.no_grad():
        net.correction_gain.fill_(1.0)
        moved, _ = net(render, uv, torch.arange(2), torch.zeros(2, dtype=torch.long))
    assert not torch.allclose(moved, expected, atol=1e-3)  # the decoder's correction is added once it has gain


def test_render_crop_runs_on_the_box_alone_and_moves_with_it():
    """With render_crop the render StyleUNet sees the window's box of the renders and nothing else: the same
    weights as the canvas pass, a window-sized output, and moving the renders together with the window moves
    nothing in the foreground. The canvas pass (the paper's) sees where on the canvas the box lies."""
    torch.manual_seed(0)
    canvas_net = AvatarNet(CFG).eval()
    crop_net = AvatarNet(dataclasses.replace(CFG, render_crop=True)).eval()
    crop_net.load_state_dict(canvas_net.state_dict())  # the same parameter names and shapes
    render, uv = _inputs(1)
    w = torch.randn(1, CFG.style_dim)

    def moved(x):  # the renders shifted by one feature cell (2 render pixels) down and right
        return torch.roll(x, shifts=(2, 2), dims=(2, 3))

    with torch.no_grad():
        here = crop_net.foreground(render, uv, w, [(0, 0)])
        assert here.shape == (1, CFG.feature_channels, CFG.window, CFG.window)
        assert torch.equal(here, crop_net.foreground(moved(render), moved(uv), w, [(1, 1)]))
        assert torch.equal(here, crop_net.foreground(render, uv, w, None))  # None is the centred window
        outside = render.clone()
        a = (CFG.render_size - 2 * CFG.window) // 2  # the box's first row on the render
        outside[..., :a, :] = 5.0
        assert torch.equal(here, crop_net.foreground(outside, uv, w, None))
        paper = canvas_net.foreground(render, uv, w, [(0, 0)])
        assert paper.shape == here.shape
        assert torch.equal(paper, canvas_net.foreground(outside, uv, w, [(0, 0)]))  # the box mask hides it too
        assert not torch.allclose(paper, canvas_net.foreground(moved(render), moved(uv), w, [(1, 1)]), atol=1e-4)
        image, _ = crop_net(render, uv, torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    assert image.shape == (1, 3, CFG.output_size, CFG.output_size) and torch.isfinite(image).all()
    with pytest.raises(ValueError, match="render_crop"):
        dataclasses.replace(CFG, canvas_scale=2.0, render_depth=4, render_crop=True).validate()  # window 8


def test_background_image_learns_only_where_it_is_the_whole_base():
    """Behind the mesh and its blend band the background image gets no gradient (it drifted there into a
    ring that driven heads uncovered); outside it, where it is the whole base, it does."""
    cfg = dataclasses.replace(CFG, known_base=True)
    net = AvatarNet(cfg, identities=1)
    out, r, c = cfg.output_size, cfg.render_size, (cfg.crop_size - cfg.output_size) // 2
    render, uv = _inputs(1)
    uv[:, 2] = 0.0
    uv[:, 2, r // 4:3 * r // 4, r // 4:3 * r // 4] = 1.0  # the mesh covers the middle half of the render
    one = torch.ones_like(net.background_images[0:1])
    with torch.no_grad():  # each output pixel's share of the background: 1 - the render's blend weight
        share = (net.known_base(render, uv, one, None) - net.known_base(render, uv, 0 * one, None))[0, 0]
    base = net.known_base(render, uv, net.background_images[0:1], None)
    (grad,) = torch.autograd.grad(base.sum(), net.background_images)
    grad = grad[0, 0, c:c + out, c:c + out]  # (out, out): the window's pixels
    band = (share > 0.01) & (share < 0.99)
    assert band.sum() > 4 * out  # the blend band runs around the mesh's edge
    assert torch.all(grad[share < 0.999] == 0)  # behind the face and in the band: nothing learnt
    assert torch.allclose(grad[share > 0.999], torch.ones(()))  # where the background is the whole base
    assert (share > 0.999).float().mean() > 0.3
    assert torch.equal(base, net.known_base(render, uv, net.background_images[0:1].detach(), None))


def test_inference_latent_is_the_mean_of_the_training_frames_and_old_files_load(net):
    frames, ident = torch.arange(0, 40, 3), torch.ones(14, dtype=torch.long)
    fresh = AvatarNet(CFG, identities=2).eval()
    fresh.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("inference_latents")})
    w_paper, _ = fresh.inference_styles(1)  # a file from before: the paper's code t = 0.5
    half, _ = fresh.styles(torch.tensor([2500]), torch.tensor([1]))
    assert torch.allclose(w_paper, half)
    fresh.set_inference_latents(frames, ident)
    w_mean, _ = fresh.inference_styles(1, batch=2)
    per_frame, _ = fresh.styles(frames, ident)
    assert torch.allclose(w_mean, per_frame.mean(0, keepdim=True).expand(2, -1), atol=1e-6)
    assert not torch.allclose(w_mean[:1], w_paper, atol=1e-3)


def test_frame_code_keeps_only_its_octaves_and_loads_across_bandwidths(net):
    frames = torch.tensor([0, 1, 2, 500])
    full = frame_code(frames, FRAME_CODE_OCTAVES)
    assert torch.equal(full, positional_encoding(frame_code_time(frames), FRAME_CODE_OCTAVES))
    slow = frame_code(frames, 4)  # octave 3 varies over ~1250 frames: neighbours share a code, far ones do not
    assert (slow[:, 4:FRAME_CODE_OCTAVES] == 0).all() and (slow[:, FRAME_CODE_OCTAVES + 4:] == 0).all()
    assert torch.equal(slow[:, :4], full[:, :4])
    assert (slow[1] - slow[0]).abs().max() < 0.01 < (slow[3] - slow[0]).abs().max()
    assert (full[1] - full[0]).abs().max() > 1.0  # every frame its own code
    narrow = AvatarNet(dataclasses.replace(CFG, frame_code_octaves=4), identities=2).eval()
    narrow.load_state_dict(net.state_dict())  # the same weights, a different input
    neighbours, ident = torch.tensor([100, 101]), torch.zeros(2, dtype=torch.long)
    w_narrow, w_full = (m.styles(neighbours, ident)[0] for m in (narrow, net))
    assert (w_narrow[1] - w_narrow[0]).abs().max() < 0.1 * (w_full[1] - w_full[0]).abs().max()


class _HostRead(AssertionError):
    pass


def test_a_training_forward_and_backward_never_read_a_tensor_on_the_host(monkeypatch):
    """Reading a tensor's value (bool, float, item, tolist, unique) waits for a GPU; none may happen per step."""
    from styleavatar.training.speed import synthetic_batch
    from styleavatar.training.step import reconstruction_losses

    torch.manual_seed(0)
    single = AvatarNet(CFG, identities=1)
    b = synthetic_batch(CFG, 2)

    def step():
        image, mask = single(b.render, b.uv, b.frame_index, b.identity, b.offsets)
        sum(reconstruction_losses(image, mask, b, None).values()).backward()

    def forbid(name):
        def read(*args, **kwargs):
            raise _HostRead(f"host read: {name}")
        return read

    with monkeypatch.context() as m:
        for name in ("__bool__", "__float__", "__int__", "item", "tolist"):
            m.setattr(torch.Tensor, name, forbid(name))
        m.setattr(torch, "unique", forbid("torch.unique"))
        step()  # generated maps, paper latent
        single.freeze_features()
        step()  # cached maps
    single.set_inference_latents(torch.arange(4), torch.zeros(4, dtype=torch.long))
    with monkeypatch.context() as m:
        for name in ("__bool__", "__float__", "__int__", "item", "tolist"):
            m.setattr(torch.Tensor, name, forbid(name))
        step()  # with the inference latents set
    # the guard works: the old per-forward read of the flag buffer is caught
    with monkeypatch.context() as m, pytest.raises(_HostRead):
        m.setattr(torch.Tensor, "__bool__", forbid("__bool__"))
        bool(single.features_frozen)


def test_flag_buffers_and_their_attributes_agree_after_load():
    torch.manual_seed(0)
    a = AvatarNet(CFG, identities=1)
    a.freeze_features()
    a.set_inference_latents(torch.arange(3), torch.zeros(3, dtype=torch.long))
    b = AvatarNet(CFG, identities=1)
    assert not b.maps_cached and not b.latents_set
    b.load_state_dict(a.state_dict())
    assert b.maps_cached and b.latents_set
    old = {k: v for k, v in a.state_dict().items() if not k.startswith("inference_latents")}
    c = AvatarNet(CFG, identities=1)
    c.load_state_dict(old)  # a file from before the inference latents
    assert c.maps_cached and not c.latents_set

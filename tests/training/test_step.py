"""The optimisation step's pieces: loss reading, the EMA, and the fp16 loss scale kept across a resume."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from styleavatar.config import TRAIN_PRESETS, TrainConfig, parse_ema_ramp, parse_fraction, parse_vgg_crop
from styleavatar.errors import UserError
from styleavatar.runtime import Runtime
from styleavatar.training.step import Optimiser, adamw, loss_values, update_ema


def test_losses_stay_tensors_until_read_once():
    losses = {"l1": torch.tensor(0.25), "vgg": torch.tensor(1.5, dtype=torch.bfloat16)}
    assert loss_values(losses) == {"l1": 0.25, "vgg": 1.5}
    assert loss_values({}) == {}


def test_ema_moves_every_parameter_by_the_warmed_up_decay():
    torch.manual_seed(0)
    net, ema = nn.Linear(4, 3), nn.Linear(4, 3)
    before = [p.detach().clone() for p in ema.parameters()]
    update_ema(ema, net, decay=0.999, iteration=5)
    d = min(0.999, 6 / 15)
    for pe, p, b in zip(ema.parameters(), net.parameters(), before):
        torch.testing.assert_close(pe, d * b + (1 - d) * p.detach())


@pytest.mark.parametrize("ramp", [10.0, 40.0])
def test_ema_ramp_sets_how_far_the_average_lags(ramp):
    """A weight that grows by 1 each iteration: during the warm-up the average lags i / ramp iterations."""
    net, ema = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    for i in range(900):
        with torch.no_grad():
            net.weight.fill_(float(i))
        update_ema(ema, net, decay=0.9978, iteration=i, ramp=ramp)
    assert 899 - ema.weight.item() == pytest.approx(900 / ramp, rel=0.01)


def test_ema_ramp_must_be_above_one():
    assert parse_ema_ramp("40") == 40.0
    for text in ("1", "0.5", "nan", "forty"):
        with pytest.raises(UserError, match="above 1"):
            parse_ema_ramp(text)


def test_vgg_crop_is_a_side_of_at_least_32_or_0_for_the_whole_image():
    assert parse_vgg_crop("96") == 96 and parse_vgg_crop("0") is None
    for text in ("31", "-96", "9.5", "ninety"):
        with pytest.raises(UserError, match="at least 32"):
            parse_vgg_crop(text)


def test_a_fraction_is_from_0_to_1():
    assert [parse_fraction(text) for text in ("0", "0.3", "1")] == [0.0, 0.3, 1.0]
    for text in ("1.5", "-0.1", "nan", "a third"):
        with pytest.raises(UserError, match="fraction from 0 to 1"):
            parse_fraction(text)


def test_fp16_loss_scale_survives_a_checkpoint():
    net = nn.Linear(2, 1)
    t = TRAIN_PRESETS["tiny"]
    fp16 = Runtime("cpu", "fp16", False, 1, "test")
    opt = Optimiser(net, adamw(net.parameters(), t), t.grad_clip)
    opt.use_runtime(fp16)
    opt.step(net(torch.ones(1, 2)).sum())
    opt.scaler.update(new_scale=1024.0)  # what a run learns after overflows
    state = json.loads(json.dumps(opt.scaler_state()))  # checkpoints keep it in their JSON header
    again = Optimiser(net, adamw(net.parameters(), t), t.grad_clip)
    again.use_runtime(fp16, state)
    assert again.scaler.get_scale() == 1024.0
    fp32 = Optimiser(net, adamw(net.parameters(), t), t.grad_clip)
    fp32.use_runtime(Runtime("cpu", "fp32", False, 1, "test"), state)  # resumed in another precision: no scaling
    assert not fp32.scaler.is_enabled() and fp32.scaler_state() == {}


def test_the_gan_phase_can_take_its_own_learning_rate():
    t = TrainConfig(lr=4e-3, gan_lr=2e-3, gan_start=100)
    assert [t.lr_at(i) for i in (0, 99, 100, 5000)] == [4e-3, 4e-3, 2e-3, 2e-3]
    assert TrainConfig(lr=3e-3, gan_start=100).lr_at(5000) == 3e-3  # no gan_lr: one rate throughout
    net = nn.Linear(2, 1)
    opt = Optimiser(net, adamw(net.parameters(), t, lr=t.lr_at(t.gan_start)), t.grad_clip)
    assert opt.opt.param_groups[0]["lr"] == 2e-3
    opt.set_lr(t.lr_at(0))
    assert opt.opt.param_groups[0]["lr"] == 4e-3


def test_the_learning_rate_falls_over_the_last_part_of_the_budget():
    t = TrainConfig(lr=8e-3, gan_lr=2e-3, gan_start=100, lr_tail=0.25, lr_tail_floor=0.1)
    assert [t.lr_at(0, s) for s in (0.0, 0.5, 0.75)] == [8e-3] * 3  # constant until the last quarter
    assert t.lr_at(0, 0.875) == pytest.approx(8e-3 * 0.55)  # half-way down the half cosine
    assert t.lr_at(0, 1.0) == pytest.approx(8e-4) and t.lr_at(0, 1.5) == pytest.approx(8e-4)
    assert t.lr_at(100, 1.0) == pytest.approx(2e-4)  # a fraction of the rate of the phase it is in
    falling = [t.lr_at(0, 0.75 + i / 100) for i in range(26)]
    assert all(a > b for a, b in zip(falling, falling[1:]))
    assert TrainConfig(lr=8e-3).lr_at(0, 1.0) == 8e-3  # lr_tail 0: no fall

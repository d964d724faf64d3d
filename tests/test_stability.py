"Unit and bad-input tests of kaiyuan_nb.stability: the FP16 emulation against real float16 arithmetic."
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kaiyuan_nb.core import ConfigError
from kaiyuan_nb.stability import (FP16_MAX, Fp16Counter, Fp16Emulation, MixedPrecision, fp16_cast,
                                  fp16_round, fp16_ulp)


def within_ulp(emulated: torch.Tensor, real: torch.Tensor) -> bool:
    "Equal infinities/nans, finite values within one float16 ulp."
    real = real.float()
    same_nonfinite = torch.equal(torch.isnan(emulated), torch.isnan(real)) and torch.equal(
        torch.isinf(emulated) & (emulated > 0), torch.isinf(real) & (real > 0))
    fin = torch.isfinite(real)
    return same_nonfinite and bool(((emulated[fin] - real[fin]).abs() <= fp16_ulp(real[fin])).all())


def test_round_matches_cast_on_all_magnitudes():
    x = torch.cat([torch.randn(10_000) * s for s in (1e-8, 1e-6, 1e-3, 1, 1e3, 3e4, 1e5)])
    assert torch.equal(fp16_round(x), x.half().float())
    assert torch.equal(fp16_round(x.double()), x.double().half().double())


def test_overflow_boundary():
    x = torch.tensor([65504.0, 65519.99, 65520.0, -65520.0, 1e6])
    y = fp16_round(x)
    assert y[:2].tolist() == [FP16_MAX, FP16_MAX]
    assert y[2:].tolist() == [math.inf, -math.inf, math.inf]
    # real float16 arithmetic overflows in the same place
    assert torch.equal(fp16_round(fp16_round(torch.tensor(40000.0)) * 2), (torch.tensor(40000.0).half() * 2).float())


def test_underflow_flush_and_subnormals():
    tiny = 2.0 ** -24
    x = torch.tensor([tiny, tiny / 2, tiny * 0.51, tiny * 1.5, 2.0 ** -15, 1e-30])
    assert torch.equal(fp16_round(x), x.half().float())
    assert fp16_round(x).tolist()[:3] == [tiny, 0.0, tiny]
    c = Fp16Counter()
    c.round(x, "residual", "fwd")
    assert c.counts()["residual"]["underflow_fwd"] == 2  # tiny/2 and 1e-30


@pytest.mark.parametrize("scale", [1.0, 100.0, 3000.0])
def test_linear_matches_real_fp16(scale):
    torch.manual_seed(1)
    lin = nn.Linear(48, 24)
    with torch.no_grad():
        lin.weight.mul_(scale / 100 + 1)  # the big case: outputs of ~1e5 overflow float16
    x = torch.randn(16, 48) * scale
    real = F.linear(x.half(), lin.weight.half(), lin.bias.half())
    with Fp16Emulation(lin) as emu:
        out = lin(x).detach()
    assert within_ulp(out, real)
    n_inf = int(torch.isinf(real).sum())
    assert emu.counter.counts()["linear_out"]["overflow_fwd"] == n_inf
    if scale == 3000.0:
        assert n_inf > 0  # the big case really overflows


def test_residual_add_matches_real_fp16():
    torch.manual_seed(2)
    a, b = torch.randn(1000) * 3e4, torch.randn(1000) * 3e4
    real = (a.half() + b.half()).float()
    emulated = fp16_round(fp16_round(a) + fp16_round(b))
    assert torch.equal(emulated, real)
    assert torch.isinf(real).any()


def test_softmax_of_large_logits_matches_real_fp16():
    logits = torch.tensor([[60000.0, 59990.0, 0.0, -60000.0],
                           [70000.0, 1.0, 2.0, 3.0],     # overflows: inf - inf = nan in both
                           [11.0, 10.5, 10.0, -3.0]])
    c = Fp16Counter()
    emulated = torch.softmax(fp16_cast(logits, c, "logits"), dim=-1)  # autocast runs softmax in float32
    real = torch.softmax(logits.half(), dim=-1)
    assert within_ulp(fp16_round(emulated), real)
    assert torch.isnan(emulated[1]).all() and torch.isnan(real[1].float()).all()
    assert c.counts()["logits"]["overflow_fwd"] == 1 and c.counts()["logits"]["amax_fwd"] == 70000.0


def test_gradients_are_rounded_and_loss_scaling_rescues_them():
    c = Fp16Counter()
    x = torch.ones(3, requires_grad=True)
    (fp16_cast(x, c, "residual") * torch.tensor([1e-9, 1e-4, 1e5])).sum().backward()
    assert x.grad.tolist()[0] == 0.0 and c.counts()["residual"]["underflow_bwd"] == 1
    # the same gradients through a Linear with emulation equal real half backward
    torch.manual_seed(3)
    lin = nn.Linear(8, 4, bias=False)
    inp = torch.randn(5, 8)
    g = torch.randn(5, 4) * 1e3
    w16 = lin.weight.detach().half().requires_grad_()
    F.linear(inp.half(), w16).backward(g.half())
    with Fp16Emulation(lin):
        lin(inp).backward(g)
    assert within_ulp(lin.weight.grad, w16.grad)


def test_grad_scaler_semantics():
    torch.manual_seed(0)
    model = nn.Linear(4, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mp = MixedPrecision(model, "fp16", growth_interval=3)
    assert mp.precision == "fp16-emulated"
    skipped, scales = [], []
    for mult in [0.1, 0.1, 1e3, 1e3, 0.1, 0.1, 0.1, 0.1]:
        info = mp.backward_step((model(torch.ones(2, 4)) * mult).sum(), opt)
        skipped.append(info.skipped)
        scales.append(info.scale)
        assert info.skipped == (info.overflow_bwd > 0)
    mp.close()
    assert skipped == [False, False, True, True, False, False, False, False]
    s = 2.0 ** 16
    assert scales == [s, s, s, s / 2, s / 4, s / 4, s / 4, s / 2]
    assert type(model).forward is model.forward.__func__  # emulation removed


def test_fp32_mode_never_skips():
    model = nn.Linear(4, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mp = MixedPrecision(model, "fp32")
    info = mp.backward_step((model(torch.ones(2, 4)) * 1e6).sum(), opt, max_grad_norm=None)
    assert not info.skipped and info.scale == 1.0 and math.isfinite(info.grad_norm)


def test_bad_input():
    with pytest.raises(ConfigError, match="floating-point"):
        fp16_round(torch.tensor([1, 2]))
    with pytest.raises(ConfigError, match="precision: expected one of"):
        MixedPrecision(nn.Linear(2, 2), "int8")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        MixedPrecision(nn.Linear(2, 2), "fp16-autocast", device="cpu")
    with pytest.raises(ConfigError, match="growth_interval"):
        MixedPrecision(nn.Linear(2, 2), "fp16", growth_interval=0)
    with pytest.raises(ConfigError, match="must be an nn.Module"):
        Fp16Emulation("not a model")
    with pytest.raises(ConfigError, match="kind must be one of"):
        fp16_cast(torch.ones(2), Fp16Counter(), "attention")

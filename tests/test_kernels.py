"""kaiyuan_nb.kernels: each fused C kernel against the model's own torch function (values and gradients, to
float32 rounding; the same inf/NaN pattern on edge values), the model with `fused_kernels` on against off
(masks, soft-caps, hooks, KV cache, training), the switch that turns them off, and bad input."""

import pytest
import torch

import kaiyuan_nb.kernels as kernels
from kaiyuan_nb.core import ConfigError
from kaiyuan_nb.kernels import (FusedQKNormRope, FusedRMSNormFunction, FusedSwiGLUFunction, bench_fused_step,
                                compiled_c_library, fused_kernels)
from kaiyuan_nb.model import (KaiyuanAttention, KaiyuanConfig, KaiyuanForCausalLM, RMSNormFunction, SwiGLUFunction,
                              rope_cos_sin)

needs_kernels = pytest.mark.skipif(fused_kernels() is None, reason="fused kernels unavailable (not x86-64 AVX2 or no C compiler)")


def grads(fn, inputs, seed=1):
    "(output, gradients of every input that requires one) for a random output gradient."
    out = fn(*inputs)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    leaves = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
    return out, torch.autograd.grad(out, leaves, g)


def assert_close(a, b, tol=2e-6):
    a, b = a.detach(), b.detach()
    scale = max(1.0, float(a.abs().max()))
    assert float((a - b).abs().max()) <= tol * scale, float((a - b).abs().max())


@needs_kernels
@pytest.mark.parametrize("shape", [(3, 5, 64), (16, 256, 256), (4096, 64)])  # small (one thread) and threaded
def test_rmsnorm_matches_the_model_function(shape):
    torch.manual_seed(0)
    x, w = (3 * torch.randn(shape)).requires_grad_(), torch.randn(shape[-1]).requires_grad_()
    out_a, g_a = grads(lambda x, w: RMSNormFunction.apply(x, w, 1e-6), (x, w))
    out_b, g_b = grads(lambda x, w: FusedRMSNormFunction.apply(x, w, 1e-6), (x, w))
    assert_close(out_a, out_b)
    for a, b in zip(g_a, g_b):
        assert_close(a, b, 1e-5)


@needs_kernels
def test_rmsnorm_takes_strided_input_and_a_frozen_weight():
    base = torch.randn(8, 6, 64)
    x = base.transpose(0, 1)[::2].detach().requires_grad_()  # strided, not contiguous
    assert not x.is_contiguous()
    w = torch.randn(64)  # no gradient wanted
    out_a, (gx_a,) = grads(lambda x: RMSNormFunction.apply(x, w, 1e-6), (x,))
    out_b, (gx_b,) = grads(lambda x: FusedRMSNormFunction.apply(x, w, 1e-6), (x,))
    assert_close(out_a, out_b)
    assert_close(gx_a, gx_b, 1e-5)


@needs_kernels
@pytest.mark.parametrize("rows", [4, 4096])
def test_swiglu_matches_the_model_function(rows):
    torch.manual_seed(0)
    gate_up = (4 * torch.randn(rows, 2 * 384)).requires_grad_()
    out_a, (g_a,) = grads(SwiGLUFunction.apply, (gate_up,))
    out_b, (g_b,) = grads(FusedSwiGLUFunction.apply, (gate_up,))
    assert_close(out_a, out_b)
    assert_close(g_a, g_b, 1e-5)


@needs_kernels
def test_swiglu_keeps_torch_inf_and_nan_pattern():
    edges = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 20.0, -20.0, 88.0, -88.0, 89.0, -89.0, 100.0, -100.0, 1e30, -1e30,
                          float("inf"), float("-inf"), float("nan"), 3.0, 0.5, -0.5, 7.0, -7.0, 1.0, -1.0])  # 24 values
    gate_up = torch.cat([edges, torch.full_like(edges, 2.0)])[None].repeat(2, 1)
    a, b = SwiGLUFunction.apply(gate_up), FusedSwiGLUFunction.apply(gate_up)
    assert torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(torch.isinf(a), torch.isinf(b))
    finite = torch.isfinite(a)
    assert_close(a[finite], b[finite])


@needs_kernels
def test_kernels_refuse_sizes_they_would_overrun():
    with pytest.raises(ValueError, match="divisible by 16"):
        FusedSwiGLUFunction.apply(torch.randn(2, 36))
    with pytest.raises(ValueError, match="divisible by 8"):
        FusedRMSNormFunction.apply(torch.randn(2, 12), torch.ones(12), 1e-6)
    with pytest.raises(ValueError, match="float32"):
        FusedRMSNormFunction.apply(torch.randn(2, 16, dtype=torch.float64), torch.ones(16, dtype=torch.float64), 1e-6)


def twin_configs(**kw):
    "(config with fused_kernels off, the same with it on)."
    cfg = KaiyuanConfig(**kw, fused_kernels=False)
    return cfg, KaiyuanConfig(**{**cfg.to_dict(), "fused_kernels": True})


def attention_pair(groups: int, batch_positions: bool):
    cfg, cfg_fused = twin_configs(vocab_size=64, hidden_size=128, intermediate_size=128, num_hidden_layers=1,
                                  num_attention_heads=4, num_key_value_heads=4 // groups)
    torch.manual_seed(0)
    plain, fused = KaiyuanAttention(cfg, 0), KaiyuanAttention(cfg_fused, 0)
    with torch.no_grad():
        plain.q_norm.weight.normal_()
        plain.k_norm.weight.normal_()
    fused.load_state_dict(plain.state_dict())
    b, t = 3, 40
    positions = torch.arange(t).expand(b, t) if batch_positions else torch.arange(t)[None]
    cos, sin = rope_cos_sin(positions, cfg.head_dim, cfg.rope_theta)
    return plain, fused, torch.randn(b, t, cfg.hidden_size, requires_grad=True), cos, sin


@needs_kernels
@pytest.mark.parametrize("groups,batch_positions", [(2, True), (1, False), (4, True)])
def test_qk_norm_rope_attention_matches_the_model(groups, batch_positions):
    plain, fused, x, cos, sin = attention_pair(groups, batch_positions)
    outs, all_grads = [], []
    for module in (plain, fused):
        out, g = grads(lambda x, *params: module(x, cos, sin, None, True), (x,) + tuple(module.parameters()))
        outs.append(out)
        all_grads.append(g)
    assert_close(*outs)
    for a, b in zip(*all_grads):
        assert_close(a, b, 1e-5)


@needs_kernels
def test_qk_norm_rope_backward_without_value_gradient():
    plain, _, x, cos, sin = attention_pair(2, True)
    qkv = plain.qkv_proj(x).view(3, 40, 8, 32)
    q, k, _ = FusedQKNormRope.apply(qkv, plain.q_norm.weight, plain.k_norm.weight, cos, sin, 4, 2, 1e-6)
    (q.sum() + k.square().sum()).backward()  # v unused: its gradient arrives as None
    assert x.grad is not None and torch.isfinite(x.grad).all()


@needs_kernels
def test_fused_attention_serves_masks_and_softcaps_and_steps_aside_for_hooks():
    plain, fused, x, cos, sin = attention_pair(2, True)
    mask = torch.ones(40, 40, dtype=torch.bool).tril()[None, None]
    with torch.no_grad():
        assert_close(plain(x, cos, sin, mask, False), fused(x, cos, sin, mask, False))  # padding-mask path
        plain.softcap = fused.softcap = 30.0
        assert_close(plain(x, cos, sin, None, True), fused(x, cos, sin, None, True))  # soft-capped logits
        seen = []
        fused.q_norm.register_forward_hook(lambda m, i, o: seen.append(o.shape))
        assert_close(plain(x, cos, sin, None, True), fused(x, cos, sin, None, True))
        assert seen == [(3, 40, 4, 32)]  # the hooked norm ran: the fused pass stepped aside
        half = [m.half() for m in (plain, fused)]
        assert torch.equal(half[0](x.half(), cos.half(), sin.half(), None, True),
                           half[1](x.half(), cos.half(), sin.half(), None, True))  # not float32: nothing fused


def model_pair(**kw):
    cfg, cfg_fused = twin_configs(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, **kw)
    torch.manual_seed(0)
    plain, fused = KaiyuanForCausalLM(cfg), KaiyuanForCausalLM(cfg_fused)
    fused.load_state_dict(plain.state_dict())
    return plain, fused


@needs_kernels
def test_fused_model_trains_like_the_plain_one():
    plain, fused = model_pair(sandwich_norm=True)
    ids = torch.randint(0, 256, (4, 65), generator=torch.Generator().manual_seed(0))
    for a, b in zip(plain(input_ids=ids, labels=ids).loss.backward() or plain.parameters(),
                    fused(input_ids=ids, labels=ids).loss.backward() or fused.parameters()):
        assert_close(a.grad, b.grad, 1e-5)  # every gradient of the first step
    losses = []
    for model in (plain, fused):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            opt.step()
            opt.zero_grad()
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
        losses.append(loss.item())
    assert abs(losses[0] - losses[1]) < 1e-5, losses


@needs_kernels
def test_fused_model_generates_like_the_plain_one_with_a_kv_cache():
    plain, fused = model_pair()
    prompt = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(1))
    outs = [m.eval().generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=0) for m in (plain, fused)]
    assert torch.equal(*outs)


def test_switch_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv("KAIYUAN_FUSED_KERNELS", "0")
    fused_kernels.cache_clear()
    try:
        assert fused_kernels() is None
        plain, fused = model_pair()
        ids = torch.randint(0, 256, (2, 16))
        assert torch.equal(plain(input_ids=ids).logits, fused(input_ids=ids).logits)  # the model's own path
        with pytest.raises(ConfigError, match="unavailable"):
            bench_fused_step(fused.config, batch_size=1, seq_len=8, rounds=2, progress=False)
    finally:
        monkeypatch.delenv("KAIYUAN_FUSED_KERNELS")
        fused_kernels.cache_clear()


def test_compile_failure_warns_and_returns_none(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if compiled_c_library("probe", "int f(void) { return 1; }", ("-shared", "-fPIC")) is None:
        pytest.skip("no C compiler")
    assert list(tmp_path.glob("kaiyuan_nb/probe-*.so"))  # cached where asked
    with pytest.warns(UserWarning, match="broken is unavailable"):
        assert compiled_c_library("broken", "not C at all", ("-shared", "-fPIC")) is None
    assert not list(tmp_path.glob("kaiyuan_nb/broken-*"))  # nothing half-written left behind


@needs_kernels
def test_bench_rejects_too_few_rounds():
    cfg = KaiyuanConfig(vocab_size=64, hidden_size=64, intermediate_size=64, num_hidden_layers=1,
                        num_attention_heads=4, num_key_value_heads=2)
    with pytest.raises(ConfigError, match="rounds must be >= 2"):
        bench_fused_step(cfg, rounds=1)
    assert kernels.fusable(torch.zeros(2, 8, dtype=torch.float16), 8) is False

"Unit and bad-input tests of kaiyuan_nb.fp16 and kaiyuan_nb.stability: the FP16 emulation against real float16 arithmetic."
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kaiyuan_nb.core import ConfigError
from kaiyuan_nb.fp16 import (FP16_MAX, Fp16Counter, Fp16Emulation, MixedPrecision, fp16_cast, fp16_round,
                             fp16_ulp)


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


# ---- the emulation on the Kaiyuan model, the probe, the monitor and the run cache -------------------------
from kaiyuan_nb.model import KaiyuanForCausalLM, config_for_scale
from kaiyuan_nb.fp16 import ActivationProbe, Fp16Sites, kaiyuan_fp16_sites
from kaiyuan_nb.stability import (RunSpec, StabilityData, pick_high_lr, run_stability, summary_table, torch_threads,
                                  variant_overrides)


def tiny_model(**kw):
    torch.manual_seed(0)
    return KaiyuanForCausalLM(config_for_scale("smoke", vocab_size=256, hidden_size=32, num_hidden_layers=2,
                                               num_attention_heads=2, num_key_value_heads=1,
                                               intermediate_size=64, **kw))


def test_emulation_rounds_the_residual_stream_and_is_removable():
    model = tiny_model(sandwich_norm=True)
    ids = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        before = model(ids, use_cache=False).logits
    seen = []
    with Fp16Emulation(model, kaiyuan_fp16_sites(model)) as emu:
        hooks = [l.register_forward_hook(lambda m, a, out: seen.append(out)) for l in model.model.layers]
        with torch.no_grad():
            emulated = model(ids, use_cache=False).logits
        for h in hooks:
            h.remove()
    assert all(torch.equal(x, fp16_round(x)) for x in seen)  # the residual stream holds float16 values
    counts = emu.counter.counts()
    assert {"embed", "residual", "linear_in", "linear_out", "sublayer_out", "logits", "weight"} <= set(counts)
    assert not torch.equal(emulated, before) and torch.allclose(emulated, before, atol=0.05)
    with torch.no_grad():
        assert torch.equal(model(ids, use_cache=False).logits, before)  # fully removed


def test_observe_mode_leaves_values_unchanged():
    model = tiny_model()
    ids = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        ref = model(ids, use_cache=False).logits
        with Fp16Emulation(model, kaiyuan_fp16_sites(model), mode="observe") as emu:
            out = model(ids, use_cache=False).logits
    assert torch.equal(ref, out)
    assert emu.counter.counts()["residual"]["values_fwd"] > 0


def test_forward_overflow_is_counted():
    model = tiny_model()
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(5e6)  # embeddings of ~1e5 do not fit float16
    mp = MixedPrecision(model, "fp16", sites=kaiyuan_fp16_sites(model))
    with torch.no_grad():
        model(torch.randint(0, 256, (2, 8)), use_cache=False)
    assert mp.counter.counts()["embed"]["overflow_fwd"] > 0
    assert mp.counter.counts()["embed"]["amax_fwd"] > FP16_MAX
    mp.close()


def test_probe_records_per_layer_and_restores_attention_path():
    model = tiny_model(final_logit_softcap=2.0)
    probe = ActivationProbe(model)
    probe.start()
    with torch.no_grad():
        model(torch.randint(0, 256, (2, 12)), use_cache=False)
    stats = probe.stop()
    probe.remove()
    assert len(stats["residual_rms"]) == 3 and all(v is not None for v in stats["attn_logit_amax"])
    assert stats["logits_amax"] <= 2.0 and stats["logits_amax"] == pytest.approx(2.0 * math.tanh(stats["logits_raw_amax"] / 2.0))
    assert not any(l.self_attn.record_logits for l in model.model.layers)
    with pytest.raises(ConfigError, match="not a Kaiyuan"):
        ActivationProbe(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="lacks the Qwen3 layout"):
        kaiyuan_fp16_sites(nn.Linear(2, 2))


def synthetic_data() -> StabilityData:
    "Token streams for the mechanics tests only (the chapter trains on prepare_corpus text)."
    rng = np.random.default_rng(0)
    return StabilityData({"a": rng.integers(0, 256, 5000), "b": rng.integers(0, 256, 5000)},
                         {"a": rng.integers(0, 256, 1000), "b": rng.integers(0, 256, 1000)}, 256)


def spec(**kw) -> RunSpec:
    base = dict(variant="baseline", precision="fp16", lr=3e-3, seed=0, steps=4, warmup_steps=1, hidden_size=32,
                num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seq_len=16, batch_size=2,
                stats_every=2, eval_batches=1)
    return RunSpec(**{**base, **kw})


def test_run_is_deterministic_cached_and_json_safe(tmp_path, monkeypatch):
    data = synthetic_data()
    a = run_stability(spec(), data, tmp_path / "a")
    b = run_stability(spec(), data, tmp_path / "b")
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert a["steps_run"] == 4 and len(a["probes"]) == 3  # steps 0, 2 and the last
    # underflows are counted on the statistics steps only; overflows and max |x| on every step
    assert [h["underflow_bwd"] is not None for h in a["history"]] == [True, False, True, True]
    assert all(h["amax"] and h["overflow_fwd"] == 0 for h in a["history"])
    assert (tmp_path / "a" / f"{spec().key}.json").exists()
    import kaiyuan_nb.stability as st
    monkeypatch.setattr(st, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    assert run_stability(spec(), data, tmp_path / "a") == a  # the cache answers, nothing is retrained
    monkeypatch.undo()
    c = run_stability(spec(precision="fp32"), data, tmp_path / "a")
    assert c["heldout_loss"] == pytest.approx(a["heldout_loss"], abs=0.05)


def test_monitor_stops_a_run_whose_scale_collapses(tmp_path, monkeypatch):
    import kaiyuan_nb.stability as st
    real = st.MixedPrecision
    monkeypatch.setattr(st, "MixedPrecision", lambda *a, **k: real(*a, **{**k, "init_scale": 1e30}))
    rec = run_stability(spec(steps=10, max_skip_run=3), synthetic_data(), tmp_path)
    assert rec["diverged"] and "3 skipped steps in a row" in rec["stopped"] and rec["steps_run"] == 3
    assert rec["skipped_steps"] == 3


def test_experiment_helpers_and_bad_input():
    assert variant_overrides("softcap", 30) == {"sandwich_norm": False, "final_logit_softcap": 30.0}
    with pytest.raises(ConfigError, match="softcap"):
        variant_overrides("softcap", 0)
    with pytest.raises(ConfigError, match="empty sweep"):
        pick_high_lr([], 0.5)
    with pytest.raises(ConfigError, match="RunSpec.precision"):
        run_stability(spec(precision="bf16"), synthetic_data(), "/tmp/never-written")
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="threads"):
        with torch_threads(-1):
            pass
    recs = [{"spec": {"precision": "fp16", "lr": 0.1, "num_layers": 2, "variant": "baseline"}, "heldout_loss": h,
             "diverged": h is None, "skipped_steps": 0, "overflow_fwd": 0 if h else 3, "max_abs_activation": m}
            for h, m in [(5.0, 100.0), (None, None)]]
    t = summary_table(recs, {"fp16/baseline": 1000.0})
    assert t.diverged.iloc[0] == 1 and t.fp16_headroom.iloc[0] == pytest.approx(655.04) and t.tokens_per_s.iloc[0] == 1000.0


def test_a_forward_overflow_ends_the_run_and_is_recorded(tmp_path):
    "At an absurd LR the fp16 forward overflows: the failed step's counts and its > 65504 value are kept."
    rec = run_stability(spec(lr=3.0, steps=30), synthetic_data(), tmp_path)
    assert rec["diverged"] and "non-finite loss" in rec["stopped"] and rec["steps_run"] < 30
    assert rec["failed_step"]["overflow_fwd"] > 0 and rec["activation_overflowed"]
    assert rec["max_abs_activation"] > FP16_MAX and rec["heldout_loss"] is None
    ref = run_stability(spec(lr=3.0, steps=30, precision="fp32"), synthetic_data(), tmp_path)
    assert ref["overflow_fwd"] > 0  # fp32 observes the same would-be overflows ...
    assert ref["steps_run"] > rec["steps_run"]  # ... and keeps going


def test_counter_in_place_rounding_equals_rounding():
    x = torch.tensor([1e-9, -3e-8, 1.0, 70000.0, -1e6, 0.0, 2.0 ** -25, 3e-5])
    a, b = Fp16Counter(), Fp16Counter()
    y = a.round(x, "logits")
    z = x.clone()
    assert b.round_(z, "logits").data_ptr() == z.data_ptr()
    assert torch.equal(y, z) and a.counts() == b.counts()
    assert a.counts()["logits"]["overflow_fwd"] == 2 and a.counts()["logits"]["underflow_fwd"] == 2  # 1e-9, 2^-25


@pytest.mark.parametrize("embed_scale", [1.0, 3e5])  # 3e5: embeddings overflow float16 on every step
def test_fast_counting_keeps_overflows_amax_and_values(embed_scale):
    "Steps with `count_underflow=False` give the same values, overflow counts and max |x| as full counting."
    def run(count_underflow: bool):
        torch.manual_seed(0)
        model = tiny_model()
        with torch.no_grad():
            model.model.embed_tokens.weight.mul_(embed_scale)
        mp = MixedPrecision(model, "fp16-emulated", sites=kaiyuan_fp16_sites(model))
        mp.counter.count_underflow = count_underflow
        opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
        g = torch.Generator().manual_seed(1)
        steps = []
        for _ in range(4):
            batch = torch.randint(0, 256, (2, 13), generator=g)
            logits = model(input_ids=batch[:, :-1], use_cache=False).logits
            fwd = {k: (v["overflow_fwd"], v["amax_fwd"]) for k, v in mp.counter.counts().items()}
            info = mp.backward_step(F.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1)), opt)
            steps.append((fwd, info.overflow_fwd, info.overflow_bwd, info.skipped, info.underflow_bwd))
        mp.close()
        return steps, [p.detach().clone() for p in model.parameters()]
    full, p_full = run(True)
    fast, p_fast = run(False)
    assert [s[:4] for s in full] == [s[:4] for s in fast]
    assert all(torch.equal(a, b) for a, b in zip(p_full, p_fast))
    assert all(s[4] == 0 for s in fast)
    if embed_scale > 1:
        assert all(s[1] > 0 for s in full)


# ---- the one-sweep rounding (fp16_round_into) against the previous whole-tensor path ----------------------
import kaiyuan_nb.fp16 as fp16_module
from kaiyuan_nb.fp16 import ROUND_CHUNK, fp16_round_into


class WholeTensorCounter(Fp16Counter):
    "The previous path: round the whole tensor with `fp16_round`, then count on x and on its rounded copy."
    def _measure(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int, int]:
        rest = x[~torch.isnan(x)]
        amax = float(rest.abs().max()) if rest.numel() else 0.0
        overflow = int(torch.isinf(y).sum() - torch.isinf(x).sum())
        underflow = int(torch.count_nonzero(x) - torch.count_nonzero(y)) if self.count_underflow else 0
        return amax, overflow, underflow

    def round(self, x, kind, direction="fwd"):
        x = x.detach()
        y = fp16_round(x)
        self.add(kind, direction, *self._measure(x, y), x.numel())
        return y

    def round_(self, x, kind):
        x = x.detach()
        before = x.clone()
        x.copy_(fp16_round(before))
        self.add(kind, "fwd", *self._measure(before, x), x.numel())
        return x


def awkward_values(n: int) -> torch.Tensor:
    "Normal, huge (overflowing), tiny (flushed, subnormal) values, zeros, infs and nans, spread over `n` values."
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, generator=g) * torch.tensor([1.0, 1e5, 1e-8, 3e-6])[torch.randint(0, 4, (n,), generator=g)]
    x[torch.randint(0, n, (50,), generator=g)] = 0.0
    x[torch.randint(0, n, (5,), generator=g)] = math.inf
    x[torch.randint(0, n, (5,), generator=g)] = math.nan
    return x


@pytest.mark.parametrize("chunk", [1, 7, 1000, ROUND_CHUNK])
@pytest.mark.parametrize("count_underflow", [True, False])
def test_round_into_equals_the_whole_tensor_path(chunk, count_underflow):
    x = awkward_values(ROUND_CHUNK + 5_000 if chunk == ROUND_CHUNK else 3_001)  # several chunks, a ragged last one
    ref = WholeTensorCounter()
    ref.count_underflow = count_underflow
    expected = ref.round(x, "residual")
    out = torch.empty_like(x)
    stats = fp16_round_into(x, out, count_underflow, chunk=chunk)
    assert torch.equal(out.nan_to_num(7.0), expected.nan_to_num(7.0))
    e = ref.counts()["residual"]
    assert stats == (e["amax_fwd"], e["overflow_fwd"], e["underflow_fwd"])
    assert stats[1] > 0 and (stats[2] > 0) == count_underflow  # the case is not trivial
    inplace = x.clone()
    assert fp16_round_into(inplace, inplace, count_underflow, chunk=chunk) == stats
    assert torch.equal(inplace.nan_to_num(7.0), expected.nan_to_num(7.0))
    with pytest.raises(ConfigError, match="chunk"):
        fp16_round_into(x, out, chunk=0)
    with pytest.raises(ConfigError, match="out has"):
        fp16_round_into(x, out[:-1])


@pytest.mark.parametrize("embed_scale", [1.0, 5e6])  # 5e6: embeddings overflow float16
@pytest.mark.parametrize("workspace_min", [fp16_module.WORKSPACE_MIN, 1])  # 1: every rounding reuses buffers
def test_emulated_training_counts_and_weights_equal_the_whole_tensor_path(embed_scale, workspace_min, monkeypatch):
    "Four steps on a tiny model: every count of every site, and every weight bit, as with the previous path."
    monkeypatch.setattr(fp16_module, "WORKSPACE_MIN", workspace_min)
    def run(counter: Fp16Counter):
        model = tiny_model()
        with torch.no_grad():
            model.model.embed_tokens.weight.mul_(embed_scale)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
        g = torch.Generator().manual_seed(1)
        steps = []
        with Fp16Emulation(model, kaiyuan_fp16_sites(model), counter=counter):
            for i in range(4):
                counter.reset()
                counter.count_underflow = i % 2 == 0
                batch = torch.randint(0, 256, (2, 13), generator=g)
                logits = model(input_ids=batch[:, :-1], use_cache=False).logits
                F.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1)).backward()
                opt.step()
                opt.zero_grad()
                steps.append(counter.counts())
        return steps, [p.detach().clone() for p in model.parameters()]
    ref_steps, ref_params = run(WholeTensorCounter())
    new_steps, new_params = run(Fp16Counter())
    assert new_steps == ref_steps
    assert all(torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0)) for a, b in zip(new_params, ref_params))
    if embed_scale > 1:  # the case is not trivial: overflows (then nans) in one, flushed gradients in the other
        assert new_steps[0]["embed"]["overflow_fwd"] > 0
    else:
        assert sum(v["underflow_bwd"] for s in new_steps for v in s.values()) > 0


# ---- the C kernel against the torch path, and the workspace ----------------------------------------------
def random_bit_patterns(n: int) -> torch.Tensor:
    "float32 values from uniformly random bit patterns: every exponent, subnormals, infs and nans."
    g = torch.Generator().manual_seed(5)
    return torch.randint(-2 ** 31, 2 ** 31 - 1, (n,), generator=g, dtype=torch.int64).to(torch.int32).view(torch.float32)


SCALAR_TAIL = torch.tensor([70000.0, 1e-9, 0.0, math.nan, -math.inf, 1.0, -3e-8])  # < 8 values: the kernel's scalar loop


@pytest.mark.parametrize("values", ["awkward", "bits", "ragged", "tail"])
@pytest.mark.parametrize("count_underflow", [True, False])
def test_kernel_gives_the_torch_paths_bits_and_counts(values, count_underflow):
    kernel = fp16_module.fp16_round_kernel()
    if kernel is None:
        pytest.skip("no C kernel here (not x86-64 with AVX2, or no C compiler)")
    x = {"awkward": awkward_values(20_000), "bits": random_bit_patterns(300_001), "ragged": awkward_values(20_005),
         "tail": SCALAR_TAIL}[values]
    by_torch, by_kernel = torch.empty_like(x), torch.empty_like(x)
    expected = fp16_module._torch_round_into(x, by_torch, count_underflow, ROUND_CHUNK)
    assert fp16_module._kernel_round_into(kernel, x, by_kernel, count_underflow) == expected
    assert torch.equal(torch.isnan(by_kernel), torch.isnan(by_torch))
    assert torch.equal(by_kernel.nan_to_num(0.0).view(torch.int32), by_torch.nan_to_num(0.0).view(torch.int32))
    assert expected[1] > 0 and (expected[2] > 0) == count_underflow  # overflows and flushes happened


def test_kernel_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("KAIYUAN_FP16_KERNEL", "0")
    fp16_module.fp16_round_kernel.cache_clear()
    try:
        assert fp16_module.fp16_round_kernel() is None
        x, out = awkward_values(1000), torch.empty(1000)
        assert fp16_round_into(x, out, True) == fp16_module._torch_round_into(x, torch.empty(1000), True, ROUND_CHUNK)
    finally:
        monkeypatch.delenv("KAIYUAN_FP16_KERNEL")
        fp16_module.fp16_round_kernel.cache_clear()


def test_workspace_is_reused_only_once_nothing_holds_it(monkeypatch):
    monkeypatch.setattr(fp16_module, "WORKSPACE_MIN", 1)
    c = Fp16Counter()
    x = torch.randn(64, 8)
    first = c.round(x, "logits", "bwd")
    second = c.round(x, "logits", "bwd")  # `first` is alive: a second buffer
    assert first.data_ptr() != second.data_ptr() and torch.equal(first, second)
    ptr = first.data_ptr()
    del first
    assert c.round(x * 2, "logits", "bwd").data_ptr() == ptr  # freed: reused
    held = [c.round(x, "logits", "bwd") for _ in range(fp16_module.WORKSPACE_BUFFERS + 2)]  # past the pool's size
    assert len({t.data_ptr() for t in held}) == len(held)


def test_strided_and_expanded_inputs_take_a_safe_path():
    "A 1-D strided view or an expanded gradient (stride 0) is not flat memory: rounded like its contiguous copy."
    base = awkward_values(4001)
    for x in (base[::2], torch.tensor([70000.0]).expand(3000)):
        out, ref = torch.empty(x.shape), torch.empty(x.shape)
        assert fp16_round_into(x, out) == fp16_round_into(x.contiguous(), ref)
        assert torch.equal(out.nan_to_num(7.0), ref.nan_to_num(7.0))

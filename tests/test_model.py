"Unit and bad-input tests of kaiyuan_nb.model: Qwen3 equivalence, cache, padding, save/load, errors."
import math
import subprocess
import sys

import pytest
import torch

from kaiyuan_nb.core import ConfigError
from kaiyuan_nb.model import (KaiyuanConfig, KaiyuanForCausalLM, config_for_scale, flops_per_token,
                              fused_lm_head_loss, kaiyuan_to_qwen3_state_dict, param_counts, qwen3_to_kaiyuan_state_dict,
                              record_attention_logits, reference_lm_loss, to_qwen3)


def tiny(**kw) -> KaiyuanConfig:
    base = dict(vocab_size=211, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2)
    return KaiyuanConfig(**{**base, **kw})


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_logits_match_transformers_qwen3(tied, kv_heads):
    torch.manual_seed(0)
    ours = KaiyuanForCausalLM(tiny(tie_word_embeddings=tied, num_key_value_heads=kv_heads)).eval()
    # perturb the norms so the test also checks they are mapped (they initialise to 1)
    with torch.no_grad():
        for n, p in ours.named_parameters():
            if "norm" in n:
                p.add_(0.1 * torch.randn_like(p))
    qwen = to_qwen3(ours).eval()
    ids = torch.randint(0, 211, (3, 40))
    with torch.no_grad():
        a, b = ours(ids, labels=ids), qwen(ids, labels=ids)
    assert (a.logits - b.logits).abs().max().item() < 1e-5
    assert abs(a.loss.item() - b.loss.item()) < 1e-5
    back = KaiyuanForCausalLM(ours.config)
    back.load_state_dict(qwen3_to_kaiyuan_state_dict(qwen.state_dict()), strict=not tied)
    assert torch.equal(back.eval()(ids).logits, ours(ids).logits)


def test_report_scale_matches_qwen3():
    torch.manual_seed(1)
    ours = KaiyuanForCausalLM(config_for_scale("report", vocab_size=1000)).eval()
    qwen = to_qwen3(ours).eval()
    ids = torch.randint(0, 1000, (1, 256))
    with torch.no_grad():
        assert (ours(ids).logits - qwen(ids).logits).abs().max().item() < 1e-5


def test_gradients_match_qwen3():
    torch.manual_seed(2)
    ours = KaiyuanForCausalLM(tiny())
    qwen = to_qwen3(ours)
    ids = torch.randint(0, 211, (2, 16))
    ours(ids, labels=ids).loss.backward()
    qwen(ids, labels=ids).loss.backward()
    ours_grads = {k: p.grad for k, p in ours.named_parameters()}
    qwen_grads = kaiyuan_to_qwen3_state_dict(ours_grads, ours.config)
    for k, p in qwen.named_parameters():
        assert torch.allclose(p.grad, qwen_grads[k], atol=1e-5), k


def test_switches_change_the_model_and_bound_logits():
    torch.manual_seed(0)
    base = KaiyuanForCausalLM(tiny()).eval()
    ids = torch.randint(0, 211, (2, 12))
    capped = KaiyuanForCausalLM(tiny(final_logit_softcap=0.3)).eval()
    capped.load_state_dict(base.state_dict())
    logits = capped(ids).logits
    assert logits.abs().max() <= 0.3 and logits.dtype == torch.float32
    sandwich = KaiyuanForCausalLM(tiny(sandwich_norm=True))
    names = {n for n, _ in sandwich.named_parameters()}
    assert "model.layers.0.attn_out_norm.weight" in names and "model.layers.1.mlp_out_norm.weight" in names
    assert param_counts(sandwich.config)["total"] == sum(p.numel() for p in sandwich.parameters())
    with pytest.raises(ConfigError):
        to_qwen3(sandwich)


def test_attention_softcap_path_and_probe():
    torch.manual_seed(0)
    base = KaiyuanForCausalLM(tiny()).eval()
    ids = torch.randint(0, 211, (2, 12))
    huge = KaiyuanForCausalLM(tiny(attn_logit_softcap=1e6)).eval()  # cap far above any logit: same as off
    huge.load_state_dict(base.state_dict())
    assert torch.allclose(huge(ids).logits, base(ids).logits, atol=1e-5)
    small = KaiyuanForCausalLM(tiny(attn_logit_softcap=0.01)).eval()
    small.load_state_dict(base.state_dict())
    assert not torch.allclose(small(ids).logits, base(ids).logits, atol=1e-3)
    maxima = []
    mods = record_attention_logits(base, True)
    hooks = [m.logits_probe.register_forward_hook(lambda mod, i, o: maxima.append(o.abs().max().item()))
             for m in mods]
    with torch.no_grad():
        recorded = base(ids).logits
    assert len(maxima) == 2 and all(math.isfinite(v) and v > 0 for v in maxima)
    record_attention_logits(base, False)
    assert torch.allclose(recorded, base(ids).logits, atol=1e-5)
    for h in hooks:
        h.remove()


@pytest.mark.parametrize("softcap", [None, 30.0])
def test_kv_cache_generate_equals_full_recompute(softcap):
    torch.manual_seed(0)
    m = KaiyuanForCausalLM(tiny(attn_logit_softcap=softcap, final_logit_softcap=softcap)).eval()
    prompt = torch.randint(0, 211, (2, 7))
    with torch.no_grad():
        full = m(torch.cat([prompt, prompt[:, :3]], 1)).logits
        first = m(prompt, use_cache=True)
        step = m(prompt[:, :3], past_key_values=first.past_key_values, use_cache=True)
        assert torch.allclose(step.logits, full[:, 7:], atol=1e-5)
        gen = m.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=0)
        seq = prompt
        for _ in range(5):
            seq = torch.cat([seq, m(seq).logits[:, -1:].argmax(-1)], 1)
    assert torch.equal(gen, seq)


def test_left_padding_matches_unpadded():
    torch.manual_seed(0)
    m = KaiyuanForCausalLM(tiny()).eval()
    ids = torch.randint(1, 211, (1, 6))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        a = m(ids).logits
        b = m(padded, attention_mask=mask).logits[:, 3:]
    assert torch.allclose(a, b, atol=1e-5)


def test_save_and_load_in_fresh_process(tmp_path):
    torch.manual_seed(0)
    m = KaiyuanForCausalLM(tiny(sandwich_norm=True, final_logit_softcap=15.0)).eval()
    m.save_pretrained(tmp_path)
    ids = torch.randint(0, 211, (1, 9))
    torch.save({"ids": ids, "logits": m(ids).logits.detach()}, tmp_path / "expected.pt")
    code = (
        "import sys, torch\n"
        f"torch.set_num_threads({torch.get_num_threads()})  # same kernels as the parent: bitwise-equal logits\n"
        "import kaiyuan_nb.model\n"
        "from transformers import AutoModelForCausalLM\n"
        f"d = {str(tmp_path)!r}\n"
        "m = AutoModelForCausalLM.from_pretrained(d).eval()\n"
        "e = torch.load(d + '/expected.pt')\n"
        "assert type(m).__name__ == 'KaiyuanForCausalLM', type(m)\n"
        "assert torch.equal(m(e['ids']).logits, e['logits'])\n"
        "out = m.generate(e['ids'], max_new_tokens=4, do_sample=False, pad_token_id=0)\n"
        "assert out.shape == (1, 13)\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_param_and_flop_counts():
    for name in ("smoke", "report"):
        for tied in (True, False):
            c = config_for_scale(name, vocab_size=300, tie_word_embeddings=tied)
            assert param_counts(c)["total"] == sum(p.numel() for p in KaiyuanForCausalLM(c).parameters())
    c = config_for_scale("report", vocab_size=8192)
    p = param_counts(c)
    assert p["matmul"] == p["total"] - 4 * 2 * 64 - 4 * 2 * 256 - 256  # tied: all but norm gains
    f = flops_per_token(c, 256)
    assert f["dense"] == 6 * p["matmul"] and f["attention"] == 12 * 4 * 256 * 256


@pytest.mark.parametrize("kwargs, needle", [
    (dict(hidden_size=250, num_attention_heads=4), "hidden_size=250 is not divisible by num_attention_heads=4"),
    (dict(num_attention_heads=4, num_key_value_heads=3), "not divisible by num_key_value_heads=3"),
    (dict(num_hidden_layers=0), "num_hidden_layers"),
    (dict(final_logit_softcap=0.0), "final_logit_softcap"),
    (dict(attn_logit_softcap=-5), "attn_logit_softcap"),
    (dict(hidden_size=96, num_attention_heads=4, head_dim=7), "even head size"),
])
def test_bad_config(kwargs, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        KaiyuanConfig(**kwargs)


def test_bad_config_for_scale():
    with pytest.raises(ConfigError, match="unknown scale"):
        config_for_scale("huge")
    with pytest.raises(ConfigError, match="hidden_sise"):
        config_for_scale("smoke", hidden_sise=3)


@pytest.mark.parametrize("cap", [None, 5.0])
def test_fused_training_loss_matches_autograd_and_respects_hooks(cap):
    torch.manual_seed(0)
    m = KaiyuanForCausalLM(tiny(final_logit_softcap=cap, sandwich_norm=True))
    ids = torch.randint(0, 211, (2, 17))
    x, y = ids[:, :-1], ids[:, 1:]
    fast = m(x, targets=y, z_loss=1e-3)
    fast.loss.backward()
    g_fast = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    slow = reference_lm_loss(m(x).logits.reshape(-1, 211), y.reshape(-1), None, 1e-3)
    slow[0].backward()
    assert torch.allclose(fast.loss, slow[0], atol=1e-5) and torch.allclose(fast.ce_loss, slow[1], atol=1e-5)
    for n, p in m.named_parameters():
        assert torch.allclose(g_fast[n], p.grad, atol=1e-6), n
    # a hook that keeps the LM head output must see the real logits, not the gradient written in place
    seen = []
    h = m.lm_head.register_forward_hook(lambda mod, i, o: seen.append(o))
    m(x, targets=y).loss.backward()
    h.remove()
    with torch.no_grad():
        assert torch.equal(seen[0], m.lm_head(m.model(x).last_hidden_state))


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("cap", [None, 5.0])
@pytest.mark.parametrize("z_coef", [0.0, 1e-3])
def test_chunked_lm_head_loss_equals_logits_plus_reference(tied, cap, z_coef):
    "Loss and gradients (hidden states, LM-head weight) of the blockwise head equal logits + reference_lm_loss."
    torch.manual_seed(0)
    m = KaiyuanForCausalLM(tiny(tie_word_embeddings=tied, final_logit_softcap=cap))
    ids = torch.randint(0, 211, (3, 21))
    y = ids[:, 1:].reshape(-1).clone()
    y[[0, 7, 30]] = -100
    h = m.model(ids[:, :-1]).last_hidden_state.reshape(-1, 64).detach()
    w = m.lm_head.weight.detach()
    ha, wa, hb, wb = (t.clone().requires_grad_() for t in (h, w, h, w))
    fa = fused_lm_head_loss(ha, wa, y, cap, z_coef, chunk_rows=16)  # 60 rows: 3 full blocks and a partial one
    fb = reference_lm_loss(hb @ wb.t(), y, cap, z_coef)
    fa[0].backward()
    fb[0].backward()
    for a, b in zip(fa, fb):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-6)
    assert torch.allclose(ha.grad, hb.grad, rtol=1e-6, atol=1e-6)
    assert torch.allclose(wa.grad, wb.grad, rtol=1e-6, atol=1e-6)
    # the model's training path uses it: same loss and LM-head gradient as logits + reference
    x = ids[:, :-1]
    fast = m(x, targets=y.view(3, 20), z_loss=z_coef)
    fast.loss.backward()
    g_fast = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    slow = reference_lm_loss(m(x).logits.reshape(-1, 211), y, None, z_coef)
    slow[0].backward()
    assert torch.allclose(fast.loss, slow[0], rtol=1e-6, atol=1e-6)
    for n, p in m.named_parameters():
        assert torch.allclose(g_fast[n], p.grad, rtol=1e-5, atol=1e-6), n


def test_chunked_lm_head_loss_bad_shapes():
    h, w, y = torch.randn(4, 8), torch.randn(10, 8), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="expected hidden"):
        fused_lm_head_loss(h, w.t(), y)
    with pytest.raises(ValueError, match="expected hidden"):
        fused_lm_head_loss(h, w, y[:3])

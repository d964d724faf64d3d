"Unit and bad-input tests of kaiyuan_nb.eval (fast: tiny models, a tokenizer trained in seconds on real text)."
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import Qwen3Config, Qwen3ForCausalLM

import kaiyuan_nb.eval as ev
import kaiyuan_nb.tasks as tk
from kaiyuan_nb.core import ConfigError, get_scale
from kaiyuan_nb.eval import (EvalSuite, arithmetic_problems, bits_per_byte, bootstrap_ci, default_suite, document_nll,
                             encode_pairs, evaluate, greedy_generate, score_requests)
from kaiyuan_nb.tasks import TASKS, ClozeItem, MCItem, eval_manifest, load_task, read_jsonl

from conftest import ROOT


# ---------------------------------------------------------------- fixtures
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok():
    "The project's tokenizer trainer (chapter 01) on real text: LAMBADA passages + XCOPA-zh premises."
    from kaiyuan_nb.data import train_tokenizer
    texts = [it.context for it in load_task("lambada_openai", 600)]
    texts += [c + k for it in load_task("xcopa_zh") for c, k in zip(it.contexts, it.continuations)]
    return train_tokenizer(texts, 1024)


def qwen3(vocab: int, seed: int = 0) -> Qwen3ForCausalLM:
    torch.manual_seed(seed)
    cfg = Qwen3Config(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, intermediate_size=128, max_position_embeddings=512)
    return Qwen3ForCausalLM(cfg).eval()


def kaiyuan(vocab: int, seed: int = 0, **kw):
    from kaiyuan_nb.model import KaiyuanConfig, KaiyuanForCausalLM
    torch.manual_seed(seed)
    cfg = KaiyuanConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, head_dim=16, intermediate_size=128, max_position_embeddings=512, **kw)
    return KaiyuanForCausalLM(cfg).eval()


MODELS = {"qwen3": qwen3, "kaiyuan": kaiyuan,
          "kaiyuan_sandwich_softcap": lambda v: kaiyuan(v, sandwich_norm=True, final_logit_softcap=3.0,
                                                          attn_logit_softcap=5.0)}


def reference_logprob(model, ctx, cont) -> float:
    "The definition: one unpadded sequence, full logits."
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    return float(logp[torch.arange(len(ctx) - 1, ids.shape[1] - 1), torch.tensor(cont)].sum())


# ---------------------------------------------------------------- data files
def test_every_vendored_task_loads_with_manifest_and_license():
    total = 0
    for task in TASKS:
        m = eval_manifest(task)
        assert m["role"] == "eval" and m["license"] and m["upstream"]["revision"]
        for f in m["license_files"]:
            assert (ROOT / f).exists(), f
        items = load_task(task)
        assert len(items) == m["rows"], task
        for it in items[:50]:
            if isinstance(it, MCItem):
                assert len(it.contexts) == len(it.continuations) >= 2 and 0 <= it.gold < len(it.contexts)
            else:
                assert isinstance(it, ClozeItem) and it.continuation.strip()
        total += sum(p.stat().st_size for p in (ROOT / "data" / "eval" / task).iterdir())
    assert total < 15e6, f"vendored eval data is {total / 1e6:.1f} MB"


def test_subsample_is_seeded():
    a, b = load_task("hellaswag", 30, seed=1), load_task("hellaswag", 30, seed=1)
    assert a == b and a != load_task("hellaswag", 30, seed=2)


def test_sha256_mismatch_and_unknown_task(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text("{}\n")
    with pytest.raises(ConfigError, match=r"x\.jsonl: sha256 .* does not match"):
        tk._verified(str(f), "0" * 64)
    with pytest.raises(ConfigError, match="vendored tasks are"):
        eval_manifest("nope")
    with pytest.raises(ConfigError, match="known tasks are"):
        load_task("nope")


GOOD = {
    "foundry_mc": {"query": "Question: Q?", "choices": ["a", "b"], "gold": 1},
    "hellaswag": {"ctx": "A: b", "endings": ["a", "b", "c", "d"], "label": 3},
    "winogrande": {"context_options": ["x A", "x B"], "continuation": "went home.", "gold": 0},
    "mmlu": {"subject": "anatomy", "question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 2},
    "xcopa": {"premise": "他哭了。", "choice1": "甲", "choice2": "乙", "question": "cause", "label": 1},
    "cmmlu": {"Question": "问", "A": "a", "B": "b", "C": "c", "D": "d", "Answer": "C"},
    "ceval": {"subject_zh": "法学", "question": "问", "A": "a", "B": "b", "C": "c", "D": "d", "answer": "B"},
    "c3": {"context": ["男：你好。", "女：你好。"], "question": "他们在做什么？", "choice": ["打招呼", "吃饭"], "label": 0},
    "agieval": {"question": "问", "passage": None, "options": ["(A)甲", "B．乙", "(C)丙"], "label": "B"},
    "lambada": {"context": "He said", "continuation": "hello"},
}
BAD = [  # (format, field change, expected message)
    ("foundry_mc", {"gold": 2}, "field 'gold' = 2 is not an index into 2 options"),
    ("foundry_mc", {"choices": ["only one"]}, "field 'choices' should list at least 2 options"),
    ("foundry_mc", {"query": None}, "field 'query' should be str"),
    ("hellaswag", {"endings": ["a", "b", "c"]}, "field 'endings' should list 4 options, got 3"),
    ("hellaswag", {"label": "3"}, "field 'label' should be int"),
    ("winogrande", {"continuation": "  "}, "field 'continuation' is empty"),
    ("mmlu", {"answer": True}, "field 'answer' should be int"),
    ("mmlu", {"choices": ["a", "", "c", "d"]}, "field 'choices' should hold non-empty strings"),
    ("xcopa", {"question": "why"}, "field 'question' should be 'cause' or 'effect'"),
    ("cmmlu", {"Answer": "E"}, "field 'Answer' should be one of A/B/C/D"),
    ("ceval", {"subject_zh": 3}, "field 'subject_zh' should be str"),
    ("c3", {"context": ["a", 1]}, "field 'context' should be a list of strings"),
    ("c3", {"label": 2}, "field 'label' = 2 is not an index into 2 options"),
    ("agieval", {"label": "D"}, "field 'label' should be one of A/B/C, got 'D'"),
    ("agieval", {"options": ["(A)甲", "(B)"]}, "field 'options' has an option with no text after its letter"),
    ("lambada", {"context": 3}, "field 'context' should be str"),
]
LOADERS = {"foundry_mc": tk.load_foundry_mc, "hellaswag": tk.load_hellaswag, "winogrande": tk.load_winogrande,
           "mmlu": tk.load_mmlu, "xcopa": tk.load_xcopa, "cmmlu": tk.load_cmmlu, "lambada": tk.load_lambada,
           "ceval": tk.load_ceval, "c3": tk.load_c3, "agieval": tk.load_agieval}


@pytest.mark.parametrize("fmt,change,message", BAD)
def test_malformed_row_names_file_and_line(tmp_path, fmt, change, message):
    path = tmp_path / f"{fmt}.jsonl"
    rows = [GOOD[fmt], GOOD[fmt], {**GOOD[fmt], **change}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        LOADERS[fmt](path)
    assert f"{path}:3: " in str(e.value) and message in str(e.value)


@pytest.mark.parametrize("fmt", sorted(GOOD))
def test_missing_field_and_broken_json(tmp_path, fmt):
    path = tmp_path / f"{fmt}.jsonl.gz"
    key = next(iter(GOOD[fmt]))
    lines = [json.dumps(GOOD[fmt]), json.dumps({k: v for k, v in GOOD[fmt].items() if k != key})]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(ConfigError, match=rf"{fmt}\.jsonl\.gz:2: missing field '{key}'"):
        LOADERS[fmt](path)
    path.write_bytes(gzip.compress((lines[0] + "\n\n" + lines[0][:-3] + "\n").encode()))
    with pytest.raises(ConfigError, match=rf"{fmt}\.jsonl\.gz:3: not valid JSON"):
        LOADERS[fmt](path)
    assert len(LOADERS[fmt](_write(tmp_path / "ok.jsonl", [GOOD[fmt]] * 2))) == 2


def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_new_loaders_build_the_documented_prompts(tmp_path):
    ceval, = tk.load_ceval(_write(tmp_path / "c.jsonl", [GOOD["ceval"]]))
    assert ceval.contexts[0] == "以下是中国关于法学考试的单项选择题。\n\n题目：问\n答案：" and ceval.gold == 1
    c3, = tk.load_c3(_write(tmp_path / "c3.jsonl", [GOOD["c3"]]))
    assert c3.contexts[0] == "男：你好。\n女：你好。\n问：他们在做什么？\n答：" and c3.continuations == ("打招呼", "吃饭")
    agi, = tk.load_agieval(_write(tmp_path / "a.jsonl", [GOOD["agieval"]]))
    assert agi.choices == ("甲", "乙", "丙") and agi.gold == 1 and agi.contexts[0] == "问题：问\n答案："
    assert tk.agieval_option_text("錀   第七周期", "A") == "錀   第七周期"  # no letter upstream: kept as is
    assert tk.agieval_option_text("(A)、镶嵌", "A") == "镶嵌"


def test_every_task_is_vendored_with_license_and_language():
    "18 tasks (12 en, 6 zh); non-commercial or unlicensed sets are marked eval-only; every item loads."
    assert len(TASKS) == 18 and sorted(t.language for t in TASKS.values()).count("zh") == 6
    for name, info in TASKS.items():
        m = eval_manifest(name)
        assert m["role"] == "eval" and m["language"] == info.language and m["license"], name
        assert (ROOT / "data" / "eval" / name / "SOURCE.md").exists(), name
        nc = any(k in m["license"] for k in ("-NC-", "non-commercial", "NOASSERTION"))
        assert m["eval_only"] is nc, name
        assert len(load_task(name)) == m["rows"], name
        assert (ROOT / m["files"][0]["path"]).stat().st_size < 2.1e6, name
    assert {n for n in TASKS if eval_manifest(n)["eval_only"]} == {"cmmlu", "ceval", "c3", "agieval_logiqa_zh", "siqa"}


def test_read_jsonl_rejects_non_objects(tmp_path):
    with pytest.raises(ConfigError, match=r"a\.jsonl:1: expected a JSON object, got list"):
        list(read_jsonl(_write(tmp_path / "a.jsonl", [[1, 2]])))


# ---------------------------------------------------------------- scoring
def test_encode_pairs_like_the_harness(tok):
    (ctx, cont), = encode_pairs(tok, [("Question: why?\nAnswer: ", "because")])  # trailing space moves
    assert ctx[0] == tok.eos_token_id
    assert tok.decode(ctx[1:]) == "Question: why?\nAnswer:" and tok.decode(cont) == " because"


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_batched_shared_prefix_scores_equal_reference(tok, arch):
    model = MODELS[arch](len(tok))
    items = load_task("hellaswag", 5) + load_task("winogrande", 4) + load_task("xcopa_zh", 3)
    pairs = [(c, k) for it in items for c, k in zip(it.contexts, it.continuations)]
    pairs += [(it.context, it.continuation) for it in load_task("lambada_openai", 3)]
    gids = [i for i, it in enumerate(items) for _ in it.contexts] + [100, 101, 102]
    reqs = encode_pairs(tok, pairs)
    ref = np.array([reference_logprob(model, c, k) for c, k in reqs])
    for share in (True, False):
        for bt in (300, 5000):  # many small batches / one batch
            got = score_requests(model, reqs, gids, 256, bt, tok.pad_token_id, share_prefix=share)
            np.testing.assert_allclose(got["logprob"], ref, atol=2e-3, err_msg=f"share={share} batch={bt}")
            assert (got["n_tokens"] == [len(k) for _, k in reqs]).all()


def test_truncation_from_the_left(tok):
    model = qwen3(len(tok))
    ctx, cont = encode_pairs(tok, [(load_task("lambada_openai", 1)[0].context, " word")])[0]
    got = score_requests(model, [(ctx, cont)], seq_len=32, pad_id=tok.pad_token_id)
    full = (ctx + cont)[-33:]
    np.testing.assert_allclose(got["logprob"], reference_logprob(model, full[:-len(cont)], cont), atol=1e-3)


def test_greedy_flag_matches_argmax(tok):
    model = qwen3(len(tok))
    ctx = encode_pairs(tok, [("The cat sat on the", " mat")])[0][0]
    with torch.no_grad():
        nxt = int(model(input_ids=torch.tensor([ctx])).logits[0, -1].argmax())
    hit, miss = score_requests(model, [(ctx, [nxt]), (ctx, [(nxt + 1) % len(tok)])], pad_id=tok.pad_token_id)["greedy"]
    assert hit and not miss


# ---------------------------------------------------------------- bits per byte
def test_bpb_matches_reference_and_uniform_model(tok):
    model = kaiyuan(len(tok))
    docs = [it.context for it in load_task("lambada_openai", 5)] + ["中文的句子，用来测试。"]
    nll, nbytes = document_nll(model, tok, docs, seq_len=512)
    ref = [-reference_logprob(model, [tok.eos_token_id], tok(d)["input_ids"]) for d in docs]
    np.testing.assert_allclose(nll, ref, rtol=1e-4)
    assert list(nbytes) == [len(d.encode()) for d in docs]
    with torch.no_grad():  # zero output embeddings -> uniform next-token distribution
        model.get_output_embeddings().weight.zero_()
    n_tok = sum(len(tok(d)["input_ids"]) for d in docs)
    expect = n_tok * math.log2(len(tok)) / sum(len(d.encode()) for d in docs)
    assert bits_per_byte(model, tok, docs, seq_len=16) == pytest.approx(expect, rel=1e-5)
    with pytest.raises(ConfigError, match="no non-empty texts"):
        bits_per_byte(model, tok, ["", ""])


# ---------------------------------------------------------------- arithmetic
def test_arithmetic_problems_are_seeded_and_correct():
    prompts, answers, chance = arithmetic_problems(50, digits=2, seed=3)
    assert (prompts, answers) == arithmetic_problems(50, digits=2, seed=3)[:2]
    for p, a in zip(prompts, answers):
        *shots, q = p.split("\n")
        assert q.endswith("=") and int(a) == eval(q[:-1]) >= 0
        for s in shots:
            lhs, rhs = s.split("=")
            assert eval(lhs) == int(rhs)
    assert 1 / 199 <= chance <= 1 / 100
    with pytest.raises(ConfigError, match="digits >= 1"):
        arithmetic_problems(5, digits=0)


@pytest.mark.parametrize("arch", ["qwen3", "kaiyuan"])
def test_batched_greedy_equals_generate(tok, arch):
    model = MODELS[arch](len(tok), 1) if arch == "qwen3" else kaiyuan(len(tok), 1)
    prompts = arithmetic_problems(6, seed=0)[0] + ["The man said", "他说"]
    got = greedy_generate(model, tok, prompts, max_new_tokens=6, batch_size=4, stop="\x00")
    for p, g in zip(prompts, got):
        ids = torch.tensor([[tok.eos_token_id] + tok(p, add_special_tokens=False)["input_ids"]])
        ref = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=None)
        assert g == tok.decode(ref[0, ids.shape[1]:]), p


# ---------------------------------------------------------------- statistics and evaluate
def test_bootstrap_ci():
    lo, hi = bootstrap_ci(np.r_[np.ones(300), np.zeros(100)], n_boot=2000, seed=1)
    assert lo < 0.75 < hi and hi - lo == pytest.approx(2 * 1.96 * math.sqrt(0.75 * 0.25 / 400), rel=0.15)
    lo, hi = bootstrap_ci(np.array([1.0, 3.0, 2.0]), weights=np.array([1.0, 1.0, 1.0]))
    assert 1.0 <= lo <= 2.0 <= hi <= 3.0
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([1.0])))


def test_acc_and_acc_norm_bookkeeping(tok, monkeypatch):
    "With scores that favour the gold option, acc = 1; favouring the longest option, acc_norm differs."
    items = load_task("arc_easy", 20)
    def oracle(model, reqs, gids, *a, **k):
        out = np.zeros(len(reqs), dtype=[("logprob", "f8"), ("n_tokens", "i4"), ("greedy", "?")])
        out["logprob"] = [-5.0 + 4.0 * (j == it.gold) for it in items for j in range(len(it.contexts))]
        return out
    monkeypatch.setattr(ev, "score_requests", oracle)
    suite = EvalSuite(tasks=("arc_easy",), items=20, arith_items=0, n_boot=100)
    df = evaluate(qwen3(len(tok)), tok, suite, progress=False).query("task == 'arc_easy'").set_index("metric")
    assert df.loc["acc", "value"] == 1.0 and df.loc["acc", "chance"] == 0.25 and df.loc["acc", "n"] == 20


def test_mc_metrics_follow_the_harness_definitions():
    "acc: argmax log-likelihood; acc_norm: per character of the choice; acc_bytes: per UTF-8 byte of it (no delimiter)."
    item = MCItem.shared_context("Q:", ["abcd", "éé", "xyz"], gold=0)  # 4/4, 2/4 and 3/3 characters/bytes
    assert item.choices == ("abcd", "éé", "xyz") and item.continuations[0] == " abcd"
    lp = [-2.0, -1.8, -1.7]  # argmax: raw → xyz, per character → abcd, per byte → éé (per byte of " "+choice → éé too)
    got = {m: v.tolist() for m, v in ev.mc_item_metrics([item], lp).items() if m in ev.MC_METRICS}
    assert got == {"acc": [0.0], "acc_norm": [1.0], "acc_bytes": [0.0]}
    got = ev.mc_item_metrics([MCItem.shared_context("Q:", ["abcd", "éé", "xyz"], 1)], lp)
    assert {m: got[m].tolist() for m in ev.MC_METRICS} == {"acc": [0.0], "acc_norm": [0.0], "acc_bytes": [1.0]}
    # per byte: abcd -0.5, éé -0.45, xyz -0.5667; gold éé: its value, margin to the best wrong (abcd)
    assert got["gold_logprob_per_byte"][0] == pytest.approx(-0.45) and got["margin"][0] == pytest.approx(0.05)
    lost = ev.mc_item_metrics([item], lp)
    assert lost["gold_logprob_per_byte"][0] == pytest.approx(-0.5) and lost["margin"][0] == pytest.approx(-0.05)
    wino = load_task("winogrande", 1)[0]  # one shared continuation: normalising cannot change the argmax
    assert len(set(wino.choices)) == 1
    assert len({float(v[0]) for m, v in ev.mc_item_metrics([wino], [-3.0, -2.0]).items() if m in ev.MC_METRICS}) == 1
    with pytest.raises(ConfigError, match="3 log-probabilities for 2 options"):
        ev.mc_item_metrics([wino], [-1.0, -2.0, -3.0])
    with pytest.raises(ConfigError, match="choices must be non-empty"):
        MCItem(("a", "a"), (" x", " y"), 2, ("x", "y"))


def test_lm_eval_task_files_hold_our_items(tmp_path, tok):
    "The harness tasks read back exactly the items load_task picks, with the evaluator's delimiter and boundary token."
    names = ev.write_lm_eval_tasks(tmp_path, tok, ("xcopa_zh", "winogrande", "lambada_openai"), n=5, seed=3)
    assert names == ["kaiyuan_xcopa_zh", "kaiyuan_winogrande", "kaiyuan_lambada_openai"]
    assert yaml.safe_load((tmp_path / "kaiyuan.yaml").read_text())["task"] == names
    def rows(name):
        return [json.loads(l) for l in (tmp_path / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    cfg = {n: yaml.safe_load((tmp_path / f"{n}.yaml").read_text(encoding="utf-8")) for n in names}
    assert all(c["description"] == tok.eos_token for c in cfg.values())
    assert Path(cfg["kaiyuan_xcopa_zh"]["dataset_kwargs"]["data_files"]["test"]) == tmp_path / "kaiyuan_xcopa_zh.jsonl"
    assert cfg["kaiyuan_xcopa_zh"]["target_delimiter"] == ""
    assert [MCItem.shared_context(r["context"], r["choices"], r["gold"], sep="") for r in rows("kaiyuan_xcopa_zh")] \
        == load_task("xcopa_zh", 5, 3)
    wino = load_task("winogrande", 5, 3)
    assert [(tuple(r["contexts"]), r["continuation"], r["gold"]) for r in rows("kaiyuan_winogrande")] == \
        [(it.contexts, it.choices[0], it.gold) for it in wino]
    assert cfg["kaiyuan_lambada_openai"]["output_type"] == "loglikelihood"
    assert [ClozeItem(**r) for r in rows("kaiyuan_lambada_openai")] == load_task("lambada_openai", 5, 3)

def test_evaluate_frame_is_tidy_and_deterministic(tok):
    model = kaiyuan(len(tok))
    docs = tuple(it.context for it in load_task("lambada_openai", 6))
    suite = EvalSuite(tasks=("copa", "winogrande", "xcopa_zh", "lambada_openai"), items=12, arith_items=8,
                      bpb_texts={"en": docs, "zh": ("今天天气很好。我们去公园散步。",) * 3}, seq_len=128, n_boot=200)
    df = evaluate(model, tok, suite, progress=False)
    assert list(df.columns) == ["task", "metric", "value", "ci_low", "ci_high", "chance", "n"]
    assert set(df.task) == {"copa", "winogrande", "xcopa_zh", "lambada_openai", "bpb/en", "bpb/zh", "arithmetic",
                            "avg", "avg/en", "avg/zh"}
    assert ((df.ci_low <= df.value + 1e-9) & (df.value <= df.ci_high + 1e-9)).all()
    assert df.chance.notna().all() and (df.n > 0).all()  # no NaN: results are written as strict JSON
    r = df.set_index(["task", "metric"])
    assert r.loc[("copa", "acc"), "chance"] == 0.5 and r.loc[("bpb/en", "bpb"), "chance"] == 8.0
    assert r.loc[("bpb/en", "bpb"), "value"] == pytest.approx(bits_per_byte(model, tok, docs, seq_len=128), rel=1e-9)
    assert r.loc[("lambada_openai", "ppl"), "value"] > 1
    assert 0 < df.attrs["tokens"] <= df.attrs["padded_tokens"] < 2 * df.attrs["tokens"]
    assert set(df.attrs["seconds"]) == {"copa", "winogrande", "xcopa_zh", "lambada_openai", "bpb/en", "bpb/zh", "arithmetic"}
    per = df.attrs["per_item"]
    assert set(per) == {"copa", "winogrande", "xcopa_zh", "lambada_openai"}
    for t in ("copa", "winogrande", "xcopa_zh"):  # per-task rows are the means of the per-item records
        assert per[t]["item"] == tk.task_item_ids(t, 12).tolist()
        for m in ev.MC_METRICS + ev.CONTINUOUS_METRICS:
            assert r.loc[(t, m), "value"] == pytest.approx(np.mean(per[t][m]), abs=1e-12)
        assert all((mg > 0) == (a == 1) for mg, a in zip(per[t]["margin"], per[t]["acc_bytes"]) if mg != 0)
    for m in ev.AVERAGED_METRICS:
        assert r.loc[("avg", m), "value"] == pytest.approx(np.mean([r.loc[(t, m), "value"] for t in ("copa", "winogrande", "xcopa_zh")]))
        assert r.loc[("avg/zh", m), "value"] == pytest.approx(r.loc[("xcopa_zh", m), "value"])
    assert r.loc[("avg/en", "acc"), "chance"] == 0.5 and r.loc[("avg", "acc"), "n"] == 36
    assert r.loc[("copa", "margin"), "chance"] == 0.0 and r.loc[("avg", "gold_logprob_per_byte"), "chance"] == -math.log(256)
    pd_again = evaluate(model, tok, suite, progress=False)
    assert pd_again.value.tolist() == df.value.tolist() and pd_again.ci_low.tolist() == df.ci_low.tolist()


def test_suite_validation_and_default_suite():
    with pytest.raises(ConfigError, match=r"unknown task\(s\) \['squad'\]"):
        EvalSuite(tasks=("arc_easy", "squad"))
    with pytest.raises(ConfigError, match="EvalSuite.items: expected a positive int"):
        EvalSuite(items=0)
    with pytest.raises(ConfigError, match="cannot hold one sequence"):
        EvalSuite(seq_len=512, batch_tokens=256)
    with pytest.raises(ConfigError, match="suite should be an EvalSuite"):
        evaluate(None, None, "report")

    class FakeCorpus:
        sources = ["a", "b", "c"]
        def domain(self, s): return {"a": "en-web", "b": "en-web", "c": "zh"}[s]
        def texts(self, s, split):
            assert split == "heldout"
            return [f"{s} doc {i} " * 400 for i in range(30)]
    suite = default_suite("report", corpus=FakeCorpus())
    assert suite.items == ev.EVAL_BUDGETS["report"].items and suite.seq_len == get_scale("report").model.seq_len
    assert set(suite.bpb_texts) == {"en-web", "zh"}
    en = suite.bpb_texts["en-web"]
    assert len(en) == ev.EVAL_BUDGETS["report"].bpb_docs_per_domain and en[0].startswith("a") and en[1].startswith("b")
    assert max(len(t.encode()) for t in en) <= ev.EVAL_BUDGETS["report"].bpb_doc_bytes
    assert suite.tasks == tuple(TASKS) and len(suite.tasks) >= 18
    assert default_suite("smoke").items == ev.EVAL_BUDGETS["smoke"].items and default_suite("smoke").bpb_texts == {}
    with pytest.raises(ConfigError, match="unknown scale"):
        default_suite("huge")

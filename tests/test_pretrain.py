"""Tests of kaiyuan_nb.pretrain (chapter 08): a tiny recipe/baseline pair end to end (per-document scores of the
last checkpoint and of the average, cached records), the paired per-document effects over seeds, diverged runs
counted and left out, and the claim rows."""
import dataclasses

import numpy as np
import pytest

from kaiyuan_nb import pretrain as P
from kaiyuan_nb.core import ConfigError
from kaiyuan_nb.curriculum import Phase, Pick, build_curriculum
from kaiyuan_nb.data import train_tokenizer
from kaiyuan_nb.model import config_for_scale

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = {"en": ("The cat sat on the mat and looked at the dog.", "A short history of the printing press."),
         "code": ("def add(a, b):\n    return a + b\n", "for i in range(3):\n    print(i)\n")}


class _Toy:
    sources = ["a", "b"]
    def scores(self, s, split="train"):
        return np.arange(40.0)
    def offsets(self, s, split="train"):
        return np.arange(0, 41 * 10, 10)
    def tokens(self, s, split="train"):
        return (np.arange(400, dtype=np.int32) * 7) % 200 + (0 if s == "a" else 50)


def test_recipe_and_baseline_runs_record_paired_document_scores(tmp_path):
    tok = train_tokenizer([t for v in TEXTS.values() for t in v] * 20, 300)
    cfg = config_for_scale("smoke", max(len(tok), 300), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, sandwich_norm=True, final_logit_softcap=15.0)
    budget = dataclasses.replace(P.PRETRAIN_BUDGETS["smoke"], average_k=2, average_every=2, eval_every=4, warmup_steps=1)
    cur = build_curriculum(_Toy(), [Phase("p1", (Pick("a"), Pick("b"))), Phase("p2", (Pick("a"),), "ascending")], 700)
    doc_fn = P.domain_nll_fn(tok, TEXTS, 32)
    records = {}
    for kind, c in (("recipe", cur), ("baseline", P.shuffled_like(cur, 0))):
        _, records[kind, 0] = P.pretrain_run(kind, cfg, c, budget, 16, 4, 0, tmp_path / kind,
                                             eval_fn=P.domain_bpb_fn(tok, TEXTS, 32), doc_fn=doc_fn, progress=False)
    assert set(records["recipe", 0]["documents"]) == {"final", "averaged"}
    assert set(records["baseline", 0]["documents"]) == {"final"} and records["baseline", 0]["diverged"] is None
    _, again = P.pretrain_run("recipe", cfg, cur, budget, 16, 4, 0, tmp_path / "recipe", doc_fn=doc_fn, progress=False)
    assert again["documents"] == records["recipe", 0]["documents"]  # the cached record, not a rerun
    effects, diverged = P.pretrain_effects(records, n_boot=100)
    assert effects["advantage"].n_seeds == 1 and effects["advantage"].n_items == 4 and diverged == {"recipe": 0, "baseline": 0}
    check = {"max_logit_diff": 0.0, "generation_equal": True, "model_type": "kaiyuan"}
    rows = P.pretrain_claims(effects, diverged, check, "tiny")
    assert [r["status"] for r in rows if r["kind"] == "paper" and r["estimate"] is not None] == ["inconclusive"] * 2  # one seed
    assert [r["status"] for r in rows if r["kind"] == "check"] == ["passed"]


def _docs(bpb):
    return {d: {"nll": list(np.asarray(v) * np.log(2) * 10), "bytes": [10.0] * len(v)} for d, v in bpb.items()}


def test_effects_pair_documents_and_leave_out_diverged_seeds():
    recs = {}
    for s in range(4):
        recs["recipe", s] = {"diverged": None, "documents": {"final": _docs({"x": [2.0, 2.1]}), "averaged": _docs({"x": [1.9, 2.0]})}}
        recs["baseline", s] = {"diverged": "non-finite loss" if s == 3 else None, "documents": {"final": _docs({"x": [2.3, 2.2 + s / 100]})}}
    effects, diverged = P.pretrain_effects(recs, n_boot=200)
    assert diverged == {"recipe": 0, "baseline": 1} and effects["advantage"].n_seeds == 3
    assert effects["advantage"].seed_means == pytest.approx((0.3, 0.305, 0.31))  # baseline − averaged recipe
    assert effects["averaging_gain"].estimate == pytest.approx(0.1)
    m = P.pretrain_metrics(effects, diverged)
    assert m["pretrain_diverged_runs_baseline"] == 1 and m["pretrain_advantage_bpb_x_ci_lo"] > 0
    rows = P.pretrain_claims(effects, diverged, {"max_logit_diff": 1.0, "generation_equal": True, "model_type": "k"}, "t")
    assert rows[0]["status"] == "reproduced" and rows[2]["status"] == "failed"
    none, div = P.pretrain_effects({k: {**r, "diverged": "x"} for k, r in recs.items()})
    assert none == {} and all(r["estimate"] is None for r in P.pretrain_claims(none, div, {"max_logit_diff": 0.0,
                                                                                            "generation_equal": True, "model_type": "k"}, "t")[:2])
    with pytest.raises(ConfigError, match="same documents"):
        P.paired_bpb_diffs({0: _docs({"x": [1.0]})}, {0: _docs({"y": [1.0]})})


def _multiset(c, phase=None):
    rows = c.items if phase is None else c.items[c.items.phase == phase]
    return sorted(tuple(c.tokens[r.start:r.start + r.length].tolist()) for r in rows.itertuples())


def _toy_plan():
    return build_curriculum(_Toy(), [Phase("p1", (Pick("a"), Pick("b"))),
                                     Phase("p2", (Pick("a", quality=(0, .3), repeat=2.0),), "ascending")], 500)


def test_ablation_arms_keep_the_tokens_where_they_should():
    cur = _toy_plan()
    nq, cm = P.shuffled_within_phases(cur, 0), P.constant_mixture(cur, 0)
    for arm in (nq, cm):
        assert len(arm.tokens) == len(cur.tokens) and arm.phase_starts == cur.phase_starts
        assert _multiset(arm) == _multiset(cur)  # the same pieces: the same token multiset
    assert [_multiset(nq, p) for p in cur.phases] == [_multiset(cur, p) for p in cur.phases]  # per phase too
    assert _multiset(cm, "p2") != _multiset(cur, "p2")  # the constant mixture moves pieces across phases
    sp = P.single_pass_like(cur, _Toy(), 0)
    assert len(sp.tokens) == len(cur.tokens) and sp.phase_starts == cur.phase_starts  # equal tokens, same schedule
    assert P.repeated_share(cur) > 0 and P.repeated_share(sp) == 0.0
    assert sp.items.groupby(["source", "unit"]).size().max() == 1  # no document piece repeated


def test_decay_tail_and_metric_names():
    cur = _toy_plan()
    start = cur.phase_starts[1]
    assert P.decay_tail(cur, start, "recipe", 0).tokens.tolist() == cur.tokens[start:].tolist()
    st = P.decay_tail(cur, start, "sft", 0, [np.full(7, 999, np.int32)] * 40, 0.25)
    assert len(st.tokens) == len(cur.tokens) - start and 0.1 < (st.tokens == 999).mean() < 0.4
    with pytest.raises(ConfigError, match="decay data"):
        P.decay_tail(cur, start, "other", 0)
    recs = {(k, s): {"diverged": None, "documents": {"final": _docs({"x": [2.0 + d, 2.1 + d]}),
                                                      "averaged": _docs({"x": [2.0 + d, 2.1 + d]})}}
            for s in range(3) for k, d in (("recipe", 0.0), ("single_pass", 0.05 + s / 100))}
    fx = P.ablation_effects(recs, {}, ["x"], n_boot=100)
    assert set(fx) == {"repetition", "averaging"} and fx["repetition"].estimate == pytest.approx(0.06)
    m = P.ablation_metrics(fx)
    assert {"ablation_repetition_bpb_delta", "ablation_repetition_bpb_delta_ci_lo", "ablation_repetition_bpb_delta_ci_hi",
            "ablation_repetition_bpb_delta_mde"} <= set(m)

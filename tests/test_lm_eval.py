"""lm-evaluation-harness agrees with our evaluator item by item: a tiny random model is exported as a release folder
(`export_release`), the harness (`lm_eval.simple_evaluate`, offline, on the task files of `write_lm_eval_tasks`)
scores 20 items of ARC-Easy, HellaSwag and C-Eval, and every item's `acc`, `acc_norm` and `acc_bytes` and every option's
log-likelihood equal those of `kaiyuan_nb.eval` on the same folder."""
import os

import pytest
import torch

from kaiyuan_nb import eval as E
from kaiyuan_nb.data import train_tokenizer
from kaiyuan_nb.model import KaiyuanConfig, KaiyuanForCausalLM
from kaiyuan_nb.release import export_release
from kaiyuan_nb.sft import load_sft_source

lm_eval = pytest.importorskip("lm_eval", reason="the lm-eval extra is not installed")
pytestmark = pytest.mark.usefixtures("one_thread")

TASKS, ITEMS = ("arc_easy", "hellaswag", "ceval"), 20  # ceval: a new Chinese task, no target delimiter


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    "A release folder of a tiny random Kaiyuan model (remote code) with a small BPE of chapter 01's specials."
    convs = load_sft_source("sft_self_instruct_seed")
    tok = train_tokenizer([m["content"] for c in convs for m in c.messages], 600)
    torch.manual_seed(0)
    model = KaiyuanForCausalLM(KaiyuanConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                             sandwich_norm=True, final_logit_softcap=15.0)).eval()
    return export_release(model, tok, tmp_path_factory.mktemp("lm_eval") / "base", chat=False, card="# tiny\n")


def test_harness_agrees_item_by_item(release, tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    tok = AutoTokenizer.from_pretrained(release, trust_remote_code=True)
    names = E.write_lm_eval_tasks(tmp_path / "tasks", tok, TASKS, n=ITEMS)
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={release},trust_remote_code=True,dtype=float32",
                                  tasks=names, task_manager=TaskManager(include_path=str(tmp_path / "tasks")),
                                  log_samples=True, batch_size=8, device="cpu")
    model = AutoModelForCausalLM.from_pretrained(release, trust_remote_code=True, dtype=torch.float32).eval()
    for task, name in zip(TASKS, names):
        items = E.load_task(task, ITEMS)
        pairs = [(c, k) for it in items for c, k in zip(it.contexts, it.continuations)]
        lp = E.score_requests(model, E.encode_pairs(tok, pairs), seq_len=model.config.max_position_embeddings,
                              pad_id=tok.pad_token_id)["logprob"]
        agree = E.harness_agreement(out["samples"][name], items, lp)
        assert agree["items"] == ITEMS and agree["metrics"] == list(E.MC_METRICS), agree
        assert agree["disagree"] == {m: [] for m in E.MC_METRICS}, (task, agree)
        assert agree["max_ll_diff"] <= 1e-4, (task, agree)
        ours = E.mc_item_metrics(items, lp)
        for m in E.MC_METRICS:  # and so the harness's reported means are ours
            assert out["results"][name][f"{m},none"] == pytest.approx(ours[m].mean()), (task, m)

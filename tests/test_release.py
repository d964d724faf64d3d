"""Tests of kaiyuan_nb.release (chapter 10): the generated modeling code imports nothing from kaiyuan_nb, a release
folder of a tiny model loads in a process where kaiyuan_nb cannot be imported and reproduces the library model
(logits, greedy ids, chat-template ids, stop at the end token), the plain-Qwen3 export needs no remote code, and the
installed `kaiyuan-chat` holds a scripted two-turn conversation on the folder."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kaiyuan_nb.core import read_json
from kaiyuan_nb.data import train_tokenizer
from kaiyuan_nb.model import KaiyuanConfig, KaiyuanForCausalLM
from kaiyuan_nb import release as R
from kaiyuan_nb.sft import load_sft_source

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok():
    "A small byte-level BPE with chapter 01's specials and chat template, trained on real SFT text (as test_sft)."
    convs = load_sft_source("sft_self_instruct_seed")
    return train_tokenizer([m["content"] for c in convs for m in c.messages], 600)


def tiny_model(vocab: int, switches: bool = True) -> KaiyuanForCausalLM:
    torch.manual_seed(0)
    extra = dict(sandwich_norm=True, final_logit_softcap=15.0) if switches else {}
    return KaiyuanForCausalLM(KaiyuanConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                            **extra)).eval()


def test_generated_sources_are_standalone():
    srcs = R.standalone_sources()
    for name, text in srcs.items():
        tree = ast.parse(text)
        imports = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert not [i for i in imports if "kaiyuan_nb" in i], (name, imports)
        roots = {i.split()[1].split(".")[0] for i in imports if not i.startswith("from .")}
        assert roots <= {"__future__", "dataclasses", "typing", "torch", "transformers"}, (name, roots)
    assert "class KaiyuanForCausalLM(" in srcs[R.MODELING_FILE] and "class KaiyuanConfig(" in srcs[R.CONFIG_FILE]
    assert "class ConfigError(ValueError)" in srcs[R.CONFIG_FILE]


def test_release_loads_without_kaiyuan_nb_and_chats(tmp_path, tok):
    model = tiny_model(len(tok))
    folder = R.export_release(model, tok, tmp_path / "chat", chat=True, card="# tiny\n")
    cfg = read_json(folder / "config.json")
    assert cfg["auto_map"] == R.RELEASE_AUTO_MAP and cfg["model_type"] == "kaiyuan"
    assert read_json(folder / "generation_config.json")["eos_token_id"] == tok.convert_tokens_to_ids("<|im_end|>")
    check = R.fresh_environment_check(folder, model, tok, lm_eval_task="hellaswag", lm_eval_items=10)
    assert check["isolated"] and check["remote_code"] and check["model_class"] == "KaiyuanForCausalLM"
    assert check["max_logit_diff"] <= 1e-5
    assert check["greedy_equal"] and check["template_equal"] and check["prompt_ids_equal"] and check["stops_at_end"]
    h = check["lm_eval"]  # lm-eval ran in the same process without kaiyuan_nb, and agrees with our evaluator
    assert h["ok"] and h["items"] == 10 and h["disagree"] == {"acc": [], "acc_norm": [], "acc_bytes": []}, h
    claims = R.release_claims({"chat": check}, {"chat": R.folder_sizes_mb(folder)})
    assert "release_chat_lm_eval" in [c["id"] for c in claims] and all(c["status"] == "passed" for c in claims)
    assert R.release_metrics({"chat": check}, {"chat": R.folder_sizes_mb(folder)})["release_lm_eval_ok"] == 1

    script = Path(sys.executable).parent / "kaiyuan-chat"
    assert script.exists(), "the kaiyuan-chat console script is not installed: run `make install` (pip install -e .)"
    r = subprocess.run([str(script), str(folder), "--temperature", "0", "--max-new-tokens", "8"],
                       input="Hello!\nWhat is 2 + 2?\n/exit\n", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    replies = [line for line in r.stdout.splitlines() if line.startswith("assistant: ")]
    assert len(replies) == 2, r.stdout


def test_plain_qwen3_release_needs_no_remote_code(tmp_path, tok):
    model = tiny_model(len(tok), switches=False)
    folder = R.export_release(model, tok, tmp_path / "base", chat=False, card="# tiny\n")
    cfg = read_json(folder / "config.json")
    assert cfg["model_type"] == "qwen3" and "auto_map" not in cfg
    assert not (folder / R.MODELING_FILE).exists()
    check = R.fresh_environment_check(folder, model, tok)
    assert check["model_class"] == "Qwen3ForCausalLM" and not check["remote_code"] and check["isolated"]
    assert check["max_logit_diff"] <= 1e-5 and check["greedy_equal"] and check["template_equal"] and check["stops_at_end"]


def test_bad_inputs_name_the_problem(tmp_path, tok):
    with pytest.raises(Exception, match="not a release folder"):
        R.publish_release(tmp_path, tmp_path / "out")
    r = subprocess.run([sys.executable, "-c", "from kaiyuan_nb.release import chat_main; chat_main()", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not a model folder" in r.stderr


def test_export_cli_exports_a_run_and_names_a_missing_chapter(tmp_path, tok):
    script = Path(sys.executable).parent / "kaiyuan-export"
    assert script.exists(), "the kaiyuan-export console script is not installed: run `make install` (pip install -e .)"
    run = tmp_path / "run"
    run.mkdir()
    r = subprocess.run([str(script), str(run), str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "chapter 08_training" in r.stderr, r.stderr[-2000:]
    (run / "08_training" / "k").mkdir(parents=True)
    (run / "08_training" / "LATEST").write_text("k")
    model = tiny_model(len(tok))
    model.save_pretrained(run / "08_training" / "k" / "hf_model")
    tok.save_pretrained(run / "08_training" / "k" / "hf_model")
    assert R.export_main([str(run), str(tmp_path / "out" / "base")]) == 0
    out = tmp_path / "out" / "base"
    assert read_json(out / "config.json")["auto_map"] == R.RELEASE_AUTO_MAP and (out / R.MODELING_FILE).exists()
    assert read_json(out / "generation_config.json")["eos_token_id"] == tok.eos_token_id
    assert f"pretrained={out}," in (out / "README.md").read_text(encoding="utf-8")
    r = subprocess.run([str(script), str(run), str(tmp_path / "chat"), "--chat"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "09_sft" in r.stderr, r.stderr[-2000:]

"""Copy the evaluation sets the report uses from ../shared/data/eval into data/eval/<task>/ and write
data_manifests/eval_<task>.yaml. Small sets are byte-identical copies; big ones are subsampled
deterministically (numpy seed 0, rows kept in upstream order) so each task stays <= ~2 MB and the
vendored eval data <= ~20 MB. A source given as a tuple of files is concatenated (each row gets
`subset` = its file's stem; rows failing `SINGLE_ANSWER` are dropped). Non-commercial sets get
`eval_only: true` in their manifest. Rerunning reproduces the same files and sha256s. Usage: python tools/vendor_eval.py"""
import gzip, hashlib, json, re, shutil
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared" / "data" / "eval").resolve()
SEED = 0

# task -> (shared folder, source file(s), kept rows or None = byte-identical copy, out name, license,
#          language, format, upstream repo, revision, upstream path, notes)
TASKS = {
    "arc_easy": ("arc_easy", "test.jsonl", None, "test.jsonl", "CC-BY-SA-4.0", "en", "foundry_mc",
                 "https://github.com/mosaicml/llm-foundry", "8c8dd48f72168c5d51e2f7b151595892a8fba43d",
                 "scripts/eval/local_data/world_knowledge/arc_easy.jsonl",
                 "ARC-Easy test (AI2 Reasoning Challenge), llm-foundry gauntlet format. Scored like lm-eval-harness arc_easy."),
    "arc_challenge": ("arc_challenge", "test.jsonl", None, "test.jsonl", "CC-BY-SA-4.0", "en", "foundry_mc",
                      "https://github.com/mosaicml/llm-foundry", "8c8dd48f72168c5d51e2f7b151595892a8fba43d",
                      "scripts/eval/local_data/world_knowledge/arc_challenge.jsonl",
                      "ARC-Challenge test, llm-foundry gauntlet format."),
    "hellaswag": ("hellaswag", "validation.jsonl.gz", 3000, "validation_sub3000.jsonl.gz", "MIT", "en", "hellaswag",
                  "https://github.com/klosax/hellaswag_text_data (derived from https://github.com/rowanz/hellaswag)",
                  "1105d370f8340eac3c63a91fd1fa58e8999f9505", "hellaswag_val_full.txt.bz2",
                  "HellaSwag validation (10,042 rows upstream); 3,000 rows kept, chosen by numpy default_rng(0) "
                  "without replacement and written in upstream order (field `ind` = upstream position)."),
    "piqa": ("piqa", "validation.jsonl", None, "validation.jsonl", "AFL-3.0", "en", "foundry_mc",
             "https://github.com/mosaicml/llm-foundry", "8c8dd48f72168c5d51e2f7b151595892a8fba43d",
             "scripts/eval/local_data/commonsense_reasoning/piqa.jsonl", "PIQA validation, llm-foundry format."),
    "copa": ("copa", "validation.jsonl", None, "validation.jsonl", "BSD-2-Clause", "en", "foundry_mc",
             "https://github.com/mosaicml/llm-foundry", "8c8dd48f72168c5d51e2f7b151595892a8fba43d",
             "scripts/eval/local_data/commonsense_reasoning/copa.jsonl",
             "COPA dev (100 rows); query already ends with the connector (because/therefore)."),
    "winogrande": ("winogrande", "validation.jsonl", None, "validation.jsonl", "CC-BY-4.0", "en", "winogrande",
                   "https://github.com/mosaicml/llm-foundry", "8c8dd48f72168c5d51e2f7b151595892a8fba43d",
                   "scripts/eval/local_data/language_understanding/winogrande.jsonl",
                   "WinoGrande v1.1 dev; partial scoring (continuation after the option-substituted prefix). "
                   "HF card states CC-BY (version unspecified); recorded as CC-BY-4.0."),
    "boolq": ("boolq", "validation.jsonl", 1000, "validation_sub1000.jsonl", "CC-BY-SA-3.0", "en", "foundry_mc",
              "https://github.com/mosaicml/llm-foundry", "8c8dd48f72168c5d51e2f7b151595892a8fba43d",
              "scripts/eval/local_data/reading_comprehension/boolq.jsonl",
              "BoolQ dev (3,270 rows upstream); 1,000 rows kept by numpy default_rng(0), upstream order."),
    "mmlu": ("mmlu", "test.jsonl.gz", None, "test.jsonl.gz", "MIT", "en", "mmlu",
             "https://github.com/HaeChan0305/MLILAB-FedLLM (re-export of https://github.com/hendrycks/test)",
             "d92730e8bacd7b3a61e551e015e40588e10234b4", "data/mmlu/test/*_test.csv",
             "MMLU test, 14,042 rows, 57 subjects, converted to JSONL by the shared-data curator (see SOURCE.md). "
             "Scored cloze-style (each choice text as continuation), not lettered."),
    "xcopa_zh": ("xcopa_zh", "test.jsonl", None, "test.jsonl", "CC-BY-4.0", "zh", "xcopa",
                 "https://github.com/cambridgeltl/xcopa", "e2e9d7f105a758ee869cd13e0fe251ef93a29840",
                 "data/zh/test.zh.jsonl", "XCOPA Chinese test split (500 rows), byte-identical."),
    "lambada_openai": ("lambada_openai", "test.jsonl", None, "test.jsonl", "CC-BY-4.0", "en", "lambada",
                       "https://github.com/mosaicml/llm-foundry", "8c8dd48f72168c5d51e2f7b151595892a8fba43d",
                       "scripts/eval/local_data/language_understanding/lambada_openai.jsonl",
                       "LAMBADA (OpenAI variant) test, 5,153 passages; last-word cloze."),
    "cmmlu": ("cmmlu", "test.jsonl", 2000, "test_sub2000.jsonl", "CC-BY-NC-SA-4.0", "zh", "cmmlu",
              "https://github.com/haonan-li/CMMLU", "d6e7b716d8ac694f38969a6c0407437d1fded799", "data/test/*.csv",
              "CMMLU test (11,582 rows upstream); 2,000 rows kept by numpy default_rng(0), upstream order. "
              "NON-COMMERCIAL license: evaluation use only, never used for training."),
    "siqa": ("siqa", "validation.jsonl", None, "validation.jsonl", "NOASSERTION", "en", "foundry_mc",
             "https://github.com/eric11eca/common-bench (gold cross-checked with HZQ950419/LLM-Adapters)",
             "8ff3fe714c738e0f99935939c494df0b7bb97442", "data/socialiqa/dev.jsonl",
             "Social IQa dev (1,954 rows), 3-way; query is 'Question: ..\\nAnswer:'. License NOT stated upstream "
             "(HF card has none): evaluation use only, never used for training."),
    "commonsense_qa": ("commonsense_qa", "validation.jsonl", None, "validation.jsonl", "MIT", "en", "foundry_mc",
                       "https://github.com/kojima-takeshi188/zero_shot_cot", "5ef330fcdeec0cd26aee27943504f91f8ec1c33c",
                       "dataset/CommonsenseQA/dev_rand_split.jsonl",
                       "CommonsenseQA dev (random split, 1,221 rows), 5-way; MIT per the HF card tau/commonsense_qa."),
    "mmlu_pro": ("mmlu_pro", "test.jsonl.gz", 3000, "test_sub3000.jsonl.gz", "MIT", "en", "foundry_mc",
                 "https://github.com/TIGER-AI-Lab/MMLU-Pro", "964a136e98ff17f81b0cd11c15c70784f6ee4378",
                 "eval_results/model_outputs_jamba-1.5-large_5shots.zip (Oct-2024 revision; see SOURCE.md)",
                 "MMLU-Pro test (12,032 rows upstream, 3-10 options); 3,000 rows kept by numpy default_rng(0), "
                 "upstream order. Scored cloze-style, not lettered CoT."),
    "ceval": ("ceval", "val.jsonl", None, "val.jsonl", "CC-BY-NC-SA-4.0", "zh", "ceval",
              "https://github.com/TsingmaoAI/MI-optimize (copy of hkust-nlp/ceval)",
              "b147ba570e34b6f176f4ea3bbfc93ce02d4e0a10", "mi_optimize/datasets/ceval-exam/val/*_val.csv",
              "C-Eval validation (1,346 rows, 52 subjects), 4-way. NON-COMMERCIAL license: evaluation use only, "
              "never used for training."),
    "c3": ("c3", "dev.jsonl", 1000, "dev_sub1000.jsonl", "LicenseRef-C3-non-commercial-research", "zh", "c3",
           "https://github.com/nlpdata/c3", "1f41682ebb684d63afe7c583c8f38e137fc8a826", "data/c3-{m,d}-dev.json",
           "C3 dev (3,816 questions upstream, mixed-genre + dialogue, 2-4 options); 1,000 rows kept by numpy "
           "default_rng(0), upstream order. NON-COMMERCIAL research only: evaluation use only, never used for training."),
    "agieval_gaokao": ("agieval_zh", ("gaokao-biology.jsonl", "gaokao-chemistry.jsonl", "gaokao-chinese.jsonl",
                                      "gaokao-geography.jsonl", "gaokao-history.jsonl", "gaokao-mathqa.jsonl",
                                      "gaokao-physics.jsonl"), None, "gaokao.jsonl", "MIT", "zh", "agieval",
                       "https://github.com/microsoft/AGIEval", "b1187aa0bf0e14125cb9a6c58f25288a4e272e64",
                       "data/v1/gaokao-*.jsonl",
                       "AGIEval Chinese Gaokao multiple choice (the agieval_cn subjects biology, chemistry, chinese, "
                       "geography, history, mathqa, physics), single-answer rows only (35 multi-answer physics rows "
                       "and 2 rows with an empty option dropped), concatenated with `subset` = file stem. MIT (Microsoft) per upstream data/v1/LICENSE."),
    "agieval_logiqa_zh": ("agieval_zh", "logiqa-zh.jsonl", None, "logiqa-zh.jsonl", "CC-BY-NC-SA-4.0", "zh", "agieval",
                          "https://github.com/microsoft/AGIEval", "b1187aa0bf0e14125cb9a6c58f25288a4e272e64",
                          "data/v1/logiqa-zh.jsonl",
                          "AGIEval LogiQA (Chinese, 651 rows), 4-way logical reasoning. NON-COMMERCIAL license: "
                          "evaluation use only, never used for training."),
}

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

def read_lines(path: Path) -> list[str]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return raw.decode("utf-8").split("\n")[:-1] if raw.endswith(b"\n") else raw.decode("utf-8").split("\n")

EVAL_ONLY_MARKERS = ("-NC-", "non-commercial", "NOASSERTION")  # licenses that forbid or do not grant training use

def single_answer(row: dict) -> bool:
    """An AGIEval row with one gold letter and options that all have text after their letter (multi-answer rows,
    cloze rows and rows with an empty option, e.g. '(D)' whose formula was an image, are dropped)."""
    options = row.get("options") or []
    texts = [re.sub(rf"^\s*(\({k}\)|{k}(?=[\s．.、:：]))[\s．.、:：]*", "", o).strip() for k, o in zip("ABCDEFGHIJ", options)]
    return bool(options) and all(texts) and row.get("label") in tuple("ABCDEFGHIJ"[:len(options)])

def concat_rows(src_dir: Path, names: tuple[str, ...]) -> list[str]:
    "JSON lines of several files, single-answer rows only, each tagged with `subset` = its file's stem."
    rows = [{**json.loads(l), "subset": Path(n).stem} for n in names for l in read_lines(src_dir / n) if l.strip()]
    return [json.dumps(r, ensure_ascii=False) for r in rows if single_answer(r)]

def main() -> None:
    for task, (folder, src_name, keep, out_name, lic, lang, fmt, repo, rev, upath, notes) in TASKS.items():
        src_dir, out_dir = SHARED / folder, ROOT / "data" / "eval" / task
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / out_name
        if keep is None and isinstance(src_name, str):
            shutil.copyfile(src_dir / src_name, out)
        else:
            lines = (concat_rows(src_dir, src_name) if isinstance(src_name, tuple)
                     else [l for l in read_lines(src_dir / src_name) if l.strip()])
            keep = len(lines) if keep is None else keep
            idx = np.sort(np.random.default_rng(SEED).choice(len(lines), size=keep, replace=False))
            data = ("\n".join(lines[i] for i in idx) + "\n").encode("utf-8")
            if out.suffix == ".gz":
                data = gzip.compress(data, mtime=0)
            out.write_bytes(data)
        license_files = []
        for p in sorted(src_dir.iterdir()):
            if re.match(r"(?i)licen[cs]e", p.name):
                shutil.copyfile(p, out_dir / p.name)
                license_files.append(f"data/eval/{task}/{p.name}")
        src_md = (src_dir / "SOURCE.md").read_text(encoding="utf-8")
        src_name = src_name if isinstance(src_name, str) else "{" + ",".join(src_name) + "}"
        how = ("byte-identical copy" if keep is None else
               f"all {keep} single-answer rows, concatenated with a `subset` field" if keep == len(lines) else
               f"deterministic subsample: {keep} rows, numpy.random.default_rng({SEED}).choice without replacement, upstream order")
        (out_dir / "SOURCE.md").write_text(
            f"# data/eval/{task}\n\nVendored by tools/vendor_eval.py from ../shared/data/eval/{folder}/{src_name}: "
            f"{how}.\nFile here: {out_name} (sha256 {sha256(out)}).\n\n## Upstream SOURCE.md\n\n{src_md}", encoding="utf-8")
        manifest = {
            "name": f"eval_{task}", "role": "eval", "domain": f"eval-{lang}", "language": lang, "license": lic,
            "upstream": {"repo": repo, "revision": rev, "path": upath},
            "files": [{"path": f"data/eval/{task}/{out_name}", "sha256": sha256(out)}],
            "text_field": None, "quality_field": None, "format": fmt,
            "rows": None if keep is None else keep,
            "license_files": license_files,
            "eval_only": any(m.lower() in lic.lower() for m in EVAL_ONLY_MARKERS),
            "notes": notes + (" Byte-identical copy." if not keep else " Subsampled: " + how + "." if keep < len(lines)
                              else ""),
        }
        rows = len([l for l in read_lines(out) if l.strip()])
        manifest["rows"] = rows
        (ROOT / "data_manifests" / f"eval_{task}.yaml").write_text(
            yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8")
        print(f"{task:16s} {rows:6d} rows  {out.stat().st_size/1e6:6.2f} MB  {lic}")

if __name__ == "__main__":
    main()

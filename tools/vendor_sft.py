"""Copy the SFT sets chapter 09 uses from ../shared/data/sft into data/sft/<name>/, converted to one chat
schema, and write data_manifests/sft_<name>.yaml; also vendor the GSM8K test split (evaluation data) into
data/eval/gsm8k/ with data_manifests/eval_gsm8k.yaml.

Schema of every SFT row: {"id": str, "messages": [{"role": "system"|"user"|"assistant", "content": str}, ...],
plus provenance fields}. Rows that overlap an evaluation set are dropped here (exact GSM8K test question,
or a shared 13-word n-gram with any item of kaiyuan_nb.decontam.DECONTAM_TASKS, the check chapter 01 applies to
pretraining data); the counts go into SOURCE.md and the manifest. Files are gzip JSONL written with mtime=0
and compresslevel=9, so rerunning reproduces the same bytes and sha256s.
Usage: .venv/bin/python tools/vendor_sft.py"""
import gzip, hashlib, io, json, re, shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared" / "data").resolve()
CALC = re.compile(r"<<[^>]*>>")


def write_gz(path: Path, rows: list[dict]) -> str:
    "Deterministic gzip JSONL; returns the sha256 of the written file."
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0, filename="") as g:
        for r in rows:
            g.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def norm(text: str) -> str:
    return " ".join(text.split()).lower()


def vendor_eval_gsm8k() -> None:
    "GSM8K test (+ socratic, same problems): gzip copies with identical rows, so chapter 01's decontamination index is unchanged."
    src, dst = SHARED / "eval" / "gsm8k", ROOT / "data" / "eval" / "gsm8k"
    files = []
    for name in ("test.jsonl", "test_socratic.jsonl"):
        sha = write_gz(dst / f"{name}.gz", read_jsonl(src / name))
        files.append({"path": f"data/eval/gsm8k/{name}.gz", "sha256": sha})
    shutil.copy(src / "LICENSE", dst / "LICENSE")
    (dst / "SOURCE.md").write_text(
        (src / "SOURCE.md").read_text(encoding="utf-8")
        + "\n## Vendored copy (kaiyuan-nb)\n\nRows unchanged, re-compressed as gzip JSONL (mtime=0, level 9) by "
          "`tools/vendor_sft.py`. Chapter 09 scores `test.jsonl.gz` (exact match after `#### `); "
          "`test_socratic.jsonl.gz` holds the same problems and is kept so the 13-gram decontamination "
          "index of chapter 01 (which reads every file of this folder) stays what it was.\n", encoding="utf-8")
    manifest = {"name": "eval_gsm8k", "role": "eval", "domain": "eval-math", "language": "en", "license": "MIT",
                "upstream": {"repo": "https://github.com/openai/grade-school-math",
                             "revision": "3101c7d5072418e28b9008a6636bde82a006892c",
                             "path": "grade_school_math/data/test.jsonl, grade_school_math/data/test_socratic.jsonl"},
                "files": files, "text_field": None, "quality_field": None, "format": "gsm8k_gen", "rows": 1319,
                "license_files": ["data/eval/gsm8k/LICENSE"],
                "notes": "GSM8K test, 1,319 problems (generation; gold = text after the final '#### ', commas "
                         "stripped). files[0] is scored by chapter 09; files[1] (Socratic answers, same problems) "
                         "feeds only the decontamination index. Rows identical to upstream."}
    (ROOT / "data_manifests" / "eval_gsm8k.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=110))


def decontaminate(rows: list[dict], index, test_questions: set[str]) -> tuple[list[dict], dict[str, int]]:
    "Drop rows whose user turn equals a GSM8K test question or whose text shares a 13-gram with an eval item."
    texts = [" ".join(m["content"] for m in r["messages"]) for r in rows]
    ngram_hit = index.contaminated_many(texts)
    kept, dropped = [], {"exact_gsm8k_test_question": 0, "eval_13gram_overlap": 0}
    for r, hit in zip(rows, ngram_hit):
        if any(m["role"] == "user" and norm(m["content"]) in test_questions for m in r["messages"]):
            dropped["exact_gsm8k_test_question"] += 1
        elif hit:
            dropped["eval_13gram_overlap"] += 1
        else:
            kept.append(r)
    return kept, dropped


def convert_gsm8k() -> list[dict]:
    rows = read_jsonl(SHARED / "sft" / "gsm8k" / "train.jsonl")
    return [{"id": f"gsm8k-train-{i:05d}",
             "messages": [{"role": "user", "content": r["question"].strip()},
                          {"role": "assistant", "content": CALC.sub("", r["answer"]).strip()}]}
            for i, r in enumerate(rows)]


def convert_self_instruct() -> list[dict]:
    rows = read_jsonl(SHARED / "sft" / "self_instruct_seed" / "seed_tasks.jsonl")
    return [{"id": r["id"], "task": r["task"], "category": r["category"], "messages": r["messages"]} for r in rows]


def convert_crosswoz() -> list[dict]:
    out = []
    for split in ("val", "test"):
        for r in read_jsonl(SHARED / "sft" / "crosswoz_zh" / f"{split}.jsonl"):
            out.append({"id": f"crosswoz-{split}-{r['dialog_id']}", "type": r["type"], "split": split,
                        "messages": [{"role": m["role"], "content": m["content"].strip()} for m in r["messages"]]})
    return out


SETS = {
    "gsm8k": dict(convert=convert_gsm8k, domain="math", language="en", license="MIT",
                  upstream={"repo": "https://github.com/openai/grade-school-math",
                            "revision": "3101c7d5072418e28b9008a6636bde82a006892c",
                            "path": "grade_school_math/data/train.jsonl"},
                  what="GSM8K train problems as one-turn chats: user = question, assistant = the step-by-step "
                       "solution ending in `#### <number>`, calculator annotations `<<...>>` removed (regex "
                       "`<<[^>]*>>`). The same problems are in the pretraining corpus as plain text (source "
                       "`gsm8k`, final line rewritten as 'The final answer is N.'), never in the chat format."),
    "self_instruct_seed": dict(convert=convert_self_instruct, domain="instruct", language="en", license="Apache-2.0",
                               upstream={"repo": "https://github.com/yizhongw/self-instruct",
                                         "revision": "0b26ccaa415992100fa32df62d41b994cf928e23",
                                         "path": "data/seed_tasks.jsonl"},
                               what="The 175 human-written Self-Instruct seed tasks, one [user, assistant] chat each "
                                    "(instruction + input as the user turn, output as the reply), as converted in "
                                    "../shared/data/sft/self_instruct_seed; fields task and category kept."),
    "crosswoz_zh": dict(convert=convert_crosswoz, domain="dialogue-zh", language="zh", license="Apache-2.0",
                        upstream={"repo": "https://github.com/thu-coai/CrossWOZ",
                                  "revision": "df82c9fdff91b9b130f2d6b89110d3870ba6260e",
                                  "path": "data/crosswoz/val.json.zip, data/crosswoz/test.json.zip"},
                        what="CrossWOZ Chinese multi-turn task-oriented dialogues (val + test, the splits in the "
                             "snapshot), user/assistant alternating, starting with the user, as converted in "
                             "../shared/data/sft/crosswoz_zh (usr -> user, sys -> assistant); fields type and split "
                             "kept. Long dialogues are split at user turns by kaiyuan_nb.sft at tokenization time."),
}


def main() -> None:
    from kaiyuan_nb.decontam import NgramIndex, DECONTAM_TASKS
    vendor_eval_gsm8k()
    index = NgramIndex.build(DECONTAM_TASKS)
    test_q = {norm(r["question"]) for r in read_jsonl(ROOT / "data" / "eval" / "gsm8k" / "test.jsonl.gz")}
    for name, spec in SETS.items():
        rows = spec["convert"]()
        kept, dropped = decontaminate(rows, index, test_q)
        dst = ROOT / "data" / "sft" / name
        rel = f"data/sft/{name}/{name}.jsonl.gz"
        sha = write_gz(ROOT / rel, kept)
        src = SHARED / "sft" / name
        shutil.copy(src / "LICENSE", dst / "LICENSE")
        size = (ROOT / rel).stat().st_size
        (dst / "SOURCE.md").write_text(
            f"# {name} (SFT, chat schema)\n\n"
            f"- Upstream: {spec['upstream']['repo']} at `{spec['upstream']['revision']}`, "
            f"`{spec['upstream']['path']}`\n- License: {spec['license']} (upstream LICENSE copied here)\n"
            f"- Taken from `../shared/data/sft/{name}` (its SOURCE.md, copied below, describes the upstream files)\n"
            f"- What: {spec['what']}\n"
            f"- Schema: one JSON object per line, `{{\"id\", \"messages\": [{{\"role\", \"content\"}}, ...], ...}}`\n"
            f"- Rows: {len(rows)} upstream, {len(kept)} kept; dropped as evaluation overlap: {dropped} "
            f"(exact GSM8K test question, or a 13-word n-gram shared with an item of {list(DECONTAM_TASKS)})\n"
            f"- File: `{name}.jsonl.gz` ({size:,} bytes, gzip mtime=0 level 9), sha256 `{sha}`\n"
            f"- Reproduce: `.venv/bin/python tools/vendor_sft.py`\n\n"
            f"## Upstream SOURCE.md\n\n" + (src / "SOURCE.md").read_text(encoding="utf-8"), encoding="utf-8")
        manifest = {"name": f"sft_{name}", "role": "sft", "domain": spec["domain"], "language": spec["language"],
                    "license": spec["license"], "upstream": spec["upstream"],
                    "files": [{"path": rel, "sha256": sha}], "text_field": "messages", "id_field": "id",
                    "quality_field": None, "format": "chat_messages", "rows": len(kept),
                    "decontamination_dropped": dropped, "license_files": [f"data/sft/{name}/LICENSE"],
                    "notes": spec["what"] + " `text_field: messages` names the conversation (a list of "
                             "{role, content}); load it with kaiyuan_nb.sft.load_sft_source."}
        (ROOT / "data_manifests" / f"sft_{name}.yaml").write_text(
            yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=110), encoding="utf-8")
        print(f"{name}: {len(rows)} rows, kept {len(kept)}, dropped {dropped}, {size:,} bytes")


if __name__ == "__main__":
    main()

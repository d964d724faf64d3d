"""Tests of kaiyuan_nb.data and the modules split from it (chapter 01): manifests, operators, pipeline validation, conservation,
resume after a crash, atomic sinks, local == spark, MinHash vs datasketch, prepare_corpus."""
import gzip
import itertools
import json
import random
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import yaml

from kaiyuan_nb.core import ConfigError, get_scale, repo_root
from kaiyuan_nb import data as D
from kaiyuan_nb import text as TXT
from kaiyuan_nb import decontam as DEC
from kaiyuan_nb import minhash as MH
from kaiyuan_nb import scorers as SC
from kaiyuan_nb import nodes as NO
from kaiyuan_nb import pipeline as PL
from kaiyuan_nb import engines as EN
from kaiyuan_nb import spark as SP
from kaiyuan_nb import dedup_bench as DB

ROOT = repo_root()


# ---------------------------------------------------------------- manifests and loading
def _fake_root(tmp_path: Path, license: str = "MIT", role: str = "pretrain", corrupt: bool = False) -> Path:
    "A project root with one tiny source `tiny`."
    (tmp_path / "data_manifests").mkdir()
    (tmp_path / "data" / "tiny").mkdir(parents=True)
    f = tmp_path / "data" / "tiny" / "tiny.jsonl.gz"
    with gzip.open(f, "wt", encoding="utf-8") as g:
        for i in range(5):
            g.write(json.dumps({"text": f"document number {i} " * 5}) + "\n")
    sha = D.sha256_file(f)
    if corrupt:
        with gzip.open(f, "at", encoding="utf-8") as g:
            g.write(json.dumps({"text": "tampered"}) + "\n")
    man = {"name": "tiny", "role": role, "domain": "en-web", "language": "en", "license": license,
           "upstream": {"repo": "x", "revision": "y", "path": "z"},
           "files": [{"path": "data/tiny/tiny.jsonl.gz", "sha256": sha}], "text_field": "text"}
    (tmp_path / "data_manifests" / "tiny.yaml").write_text(yaml.safe_dump(man))
    return tmp_path


def test_every_manifest_is_valid_and_checksums_match():
    names = D.list_manifests(role="pretrain")
    assert {"enwiki_sample", "stackexchange_small_sites", "openstax_textbooks", "zhwiki_sample",
            "hendrycks_math", "gsm8k", "cpython_stdlib"} <= set(names)
    for n in names:
        m = D.load_manifest(n)
        D.check_license(m)
        for f in m.files:
            assert (ROOT / f["path"]).exists(), f["path"]
        D.verify_files(m)
        assert m.generator or (ROOT / "data" / n / "LICENSE").exists()


def test_load_source_is_a_datasets_dataset(tmp_path):
    ds = D.load_source("tiny", root=_fake_root(tmp_path))
    assert len(ds) == 5 and set(ds.column_names) >= {"text", "id"}


def test_checksum_mismatch_is_a_clear_error(tmp_path):
    root = _fake_root(tmp_path, corrupt=True)
    with pytest.raises(ConfigError, match=r"files\[0\]: sha256 mismatch for .*tiny.jsonl.gz"):
        D.load_source("tiny", root=root)
    with pytest.raises(ConfigError, match="sha256 mismatch"):
        list(D.iter_records("tiny", root=root))


def test_license_allow_list_refuses_non_commercial_training_data(tmp_path):
    root = _fake_root(tmp_path, license="CC-BY-NC-SA-4.0")
    with pytest.raises(ConfigError, match=r"not usable for training.*CC-BY-NC-SA-4.0"):
        D.load_source("tiny", root=root)


def test_eval_role_may_use_non_commercial_license(tmp_path):
    root = _fake_root(tmp_path, license="CC-BY-NC-SA-4.0", role="eval")
    assert len(list(D.iter_records("tiny", root=root))) == 5


def test_bad_manifest_names_the_key(tmp_path):
    root = _fake_root(tmp_path)
    p = root / "data_manifests" / "tiny.yaml"
    m = yaml.safe_load(p.read_text())
    m["role"] = "training"
    p.write_text(yaml.safe_dump(m))
    with pytest.raises(ConfigError, match=r"tiny.yaml: role: expected one of"):
        D.load_manifest("tiny", root)
    del m["text_field"]
    m["role"] = "pretrain"
    p.write_text(yaml.safe_dump(m))
    with pytest.raises(ConfigError, match="missing required key 'text_field'"):
        D.load_manifest("tiny", root)


def test_sample_is_nested_and_stable():
    small = [r["id"] for r in D.sample_records("gsm8k", 20)]
    big = [r["id"] for r in D.sample_records("gsm8k", 60)]
    assert big[:20] == small and len(set(big)) == 60


# ---------------------------------------------------------------- operators
def _doc(i, text, **kw):
    return {"id": f"d{i:03d}", "text": text, **kw}


def _node(type_, **cfg):
    return NO.NODE_TYPES[type_]("test", {"type": type_, **cfg}, [])


def test_normalize_and_length_filter():
    out, _ = _node("normalize").apply(_doc(0, "Cafe\u0301  \r\n\n\n\nnext\x07"))
    assert out[0]["text"] == "Café\n\nnext"
    lf = _node("length_filter", min_chars=10, max_chars=50, min_words=3)
    assert lf.apply(_doc(0, "short"))[1] == "too_short"
    assert lf.apply(_doc(0, "x" * 60))[1] == "too_long"
    assert lf.apply(_doc(0, "twowords here"))[1] == "too_few_words"
    assert lf.apply(_doc(0, "three words here"))[1] is None


def test_lang_filter_uses_cjk_ratio():
    zh = _node("lang_filter", min_cjk_ratio=0.5)
    en = _node("lang_filter", max_cjk_ratio=0.1)
    assert zh.apply(_doc(0, "北京是中国的首都。"))[1] is None
    assert zh.apply(_doc(0, "Beijing is the capital"))[1] == "cjk_ratio_low"
    assert en.apply(_doc(0, "北京是中国的首都"))[1] == "cjk_ratio_high"


def test_repetition_filter_gopher_rules():
    rf = _node("repetition_filter")
    assert rf.apply(_doc(0, "same line\n" * 10 + "other"))[1] == "duplicate_lines"
    assert rf.apply(_doc(0, "buy now " * 50))[1] == "top_2gram"
    prose = D.sample_records("openstax_textbooks", 1)[0]["text"][:3000]
    assert rf.apply(_doc(0, prose))[1] is None


def test_split_is_stable_and_keep_filters():
    sp = _node("split", heldout_fraction=0.3)
    docs = [_doc(i, "x") for i in range(300)]
    out, why = sp.apply_batch(docs)
    frac = np.mean([d["split"] == "heldout" for d in out])
    assert 0.2 < frac < 0.4 and why == {}
    assert [d["split"] for d in sp.apply_batch(docs)[0]] == [d["split"] for d in out]
    kept, why = _node("split", heldout_fraction=0.3, keep="train").apply_batch(docs)
    assert len(kept) + why["other_split"] == 300 and all(d["split"] == "train" for d in kept)


def test_repeat_floor_plus_bernoulli():
    docs = [_doc(i, "x") for i in range(2000)]
    out, why = _node("repeat", factor=2.5, seed=1).apply_batch(docs)
    counts = np.bincount([int(d["id"][1:]) for d in out])
    assert set(counts) <= {2, 3} and abs(len(out) / 2000 - 2.5) < 0.05
    assert len({(d["id"], d["repeat_index"]) for d in out}) == len(out)
    zero, why = _node("repeat", factor=0.0).apply_batch(docs[:10])
    assert zero == [] and why == {"repeat_zero": 10}


def test_quality_score_metadata_and_bad_field():
    qs = _node("quality_score", scorer="metadata", metadata_field="votes")
    out, _ = qs.apply_batch([_doc(0, "a", votes="3"), _doc(1, "b", votes=-1)])
    assert [d["score"] for d in out] == [3.0, -1.0]
    with pytest.raises(ConfigError, match=r"test.metadata_field: document d000 has no numeric field 'votes'"):
        qs.apply_batch([_doc(0, "a")])


def test_scorers_have_different_scales_and_separate_classes():
    pos = [r["text"] for r in D.sample_records("openstax_textbooks", 90)]
    neg = [r["text"] for r in D.sample_records("stackexchange_small_sites", 180)]
    clf = SC.EduClassifier().fit(pos[:60], neg[:120])
    p_pos, p_neg = clf.score(pos[60:]), clf.score(neg[120:])
    assert ((p_pos > 0.5).mean() + (p_neg < 0.5).mean()) / 2 > 0.85
    lm = SC.NgramLM().fit(pos[:60])
    s_pos, s_neg = lm.score(pos[60:]), lm.score(neg[120:])
    assert s_pos.mean() > s_neg.mean()
    assert (p_pos >= 0).all() and (p_pos <= 1).all() and (s_neg < -1).all()  # different, incomparable scales


def test_decontamination_drops_eval_overlap():
    items = DEC.eval_item_texts("gsm8k")
    if not items:
        pytest.skip("no gsm8k evaluation data available")
    ix = DEC.NgramIndex.build(["gsm8k"])
    docs = ["Intro. " + items[3][:500], "An unrelated text about the migration of arctic terns across the ocean every year."]
    assert ix.contaminated_many(docs).tolist() == [True, False]


def _local(docs, ctx=None):
    return EN.LocalEngine(workers=1)


def test_exact_and_minhash_dedup_keep_smallest_id_with_counts():
    base = " ".join(D.sample_records("openstax_textbooks", 1)[0]["text"].split()[:400])
    w = base.split()
    near = " ".join(w[:200] + ["zebra"] + w[201:])
    other = D.sample_records("gsm8k", 1)[0]["text"]
    docs = [_doc(5, base), _doc(2, near), _doc(9, base.upper()), _doc(1, other)]
    ed = _node("exact_dedup")
    out, why = ed.run_local(docs, None)
    assert sorted(d["id"] for d in out) == ["d001", "d002", "d005"] and why == {"exact_duplicate": 1}
    assert {d["id"]: d["exact_duplicate_count"] for d in out}["d005"] == 2

    class Ctx:
        engine = EN.LocalEngine(workers=1)
    md = _node("minhash_dedup")
    out, why = md.run_local(docs, Ctx())
    assert sorted(d["id"] for d in out) == ["d001", "d002"] and why == {"near_duplicate": 2}
    assert {d["id"]: d["duplicate_count"] for d in out} == {"d001": 1, "d002": 3}


def test_ratio_filter_top_bottom_and_nested_slice():
    docs = [_doc(i, "x", score=float(i)) for i in range(100)]
    top, _ = _node("ratio_filter", ratio=0.17).run_local(docs, None)
    assert sorted(d["score"] for d in top) == [float(i) for i in range(83, 100)]
    sl, _ = _node("ratio_filter", ratio=0.12 / 0.17, keep="bottom").run_local(top, None)
    assert sorted(d["score"] for d in sl) == [float(i) for i in range(83, 95)]
    with pytest.raises(ConfigError, match="has no finite numeric 'score'"):
        _node("ratio_filter", ratio=0.5).run_local([_doc(0, "x")], None)


# ---------------------------------------------------------------- validation
GOOD = {
    "name": "t", "engine": "local", "workers": 2,
    "branches": [
        {"type": "write", "name": "a", "ops": [{"type": "normalize"}, {"type": "length_filter", "min_chars": 30}],
         "child_configs": [{"type": "read_source", "source": "gsm8k", "limit": 40}]},
        {"type": "write", "name": "b", "format": "parquet",
         "ops": [{"type": "exact_dedup"}, {"type": "minhash_dedup"}, {"type": "split"}],
         "child_configs": [{"type": "read_branch", "branch": "a"},
                           {"type": "read_source", "source": "hendrycks_math", "limit": 40}]},
    ]}


def _bad(mutate):
    cfg = json.loads(json.dumps(GOOD))
    mutate(cfg)
    with pytest.raises(ConfigError) as e:
        PL.parse_pipeline(cfg)
    return str(e.value)


def test_validation_names_the_yaml_path():
    PL.parse_pipeline(GOOD)
    msg = _bad(lambda c: c["branches"][1]["ops"][1].update(threshold="high"))
    assert "branches[1].ops[1].threshold: expected a float in (0, 1], got 'high'" in msg
    assert "unknown node type 'dedupe'" in _bad(lambda c: c["branches"][0]["ops"].append({"type": "dedupe"}))
    assert "branches[0].ops[1].min_char: unknown key" in _bad(lambda c: c["branches"][0]["ops"][1].update(min_char=3))
    assert "branches[0].child_configs[0].source: missing required key" in _bad(
        lambda c: c["branches"][0]["child_configs"][0].pop("source"))
    assert "branches[0].child_configs[0].limit: expected an int in [0, inf], got -1" in _bad(
        lambda c: c["branches"][0]["child_configs"][0].update(limit=-1))
    assert "unknown source 'nope'" in _bad(lambda c: c["branches"][0]["child_configs"][0].update(source="nope"))
    assert "branches[1].child_configs[0].branch: unknown branch 'zz'" in _bad(
        lambda c: c["branches"][1]["child_configs"][0].update(branch="zz"))
    assert "a branch must be rooted at a `write` node" in _bad(lambda c: c["branches"][0].update(type="normalize", name=None))
    assert "engine: expected one of ['local', 'spark'], got 'dask'" in _bad(lambda c: c.update(engine="dask"))
    assert "duplicate branch name 'a'" in _bad(lambda c: c["branches"][1].update(name="a"))
    assert "is a leaf" in _bad(lambda c: c["branches"][0]["child_configs"][0].update(child_configs=[{"type": "normalize"}]))
    assert "read_branch cycle" in _bad(lambda c: c["branches"][0]["child_configs"].append({"type": "read_branch", "branch": "b"}))
    # several problems are reported together
    msg = _bad(lambda c: (c["branches"][1]["ops"][1].update(threshold=2.0), c["branches"][0]["ops"][1].update(min_chars="x")))
    assert "2 problems" in msg


def test_parameters_are_substituted():
    cfg = json.loads(json.dumps(GOOD))
    cfg["branches"][0]["child_configs"][0]["limit"] = "${n}"
    spec = PL.parse_pipeline(cfg, {"n": 7})
    assert spec.branches[0].children[0].children[0].children[0].cfg["limit"] == 7
    with pytest.raises(ConfigError, match=r"unknown parameter \$\{n\}"):
        PL.parse_pipeline(cfg, {})


# ---------------------------------------------------------------- running: conservation, sinks, resume
def test_pipeline_conservation_outputs_and_manifest(tmp_path):
    res = PL.run_pipeline(GOOD, tmp_path)
    assert PL.check_conservation(res) == []
    assert res.outputs["a"]["docs"] == len(res.docs("a")) and res.outputs["b"]["format"] == "parquet"
    b_in = next(s for s in res.stats if s["path"] == "branches[1].ops[0]")["in"]
    assert b_in == res.outputs["a"]["docs"] + 40
    man = json.loads((tmp_path / "b.manifest.json").read_text())
    assert man["sha256"] == D.sha256_file(tmp_path / "b.parquet")
    ids = [d["id"] for d in res.docs("b")]
    assert ids == sorted(ids) and all(d["split"] in ("train", "heldout") for d in res.docs("b"))
    # a corrupt output is detected
    (tmp_path / "a.jsonl.gz").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="does not match its output manifest"):
        NO.read_output(tmp_path, "a")


def test_resume_after_crash_skips_finished_nodes(tmp_path, monkeypatch):
    cfg = json.loads(json.dumps(GOOD))
    clean = PL.run_pipeline(cfg, tmp_path / "clean")
    calls = {"n": 0}
    orig = NO.MinHashDedup.run_local

    def crash(self, docs, ctx):
        calls["n"] += 1
        raise RuntimeError("simulated crash")
    monkeypatch.setattr(NO.MinHashDedup, "run_local", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        PL.run_pipeline(cfg, tmp_path / "crash")
    assert (tmp_path / "crash" / "a.manifest.json").exists() and not (tmp_path / "crash" / "b.manifest.json").exists()
    monkeypatch.setattr(NO.MinHashDedup, "run_local", orig)
    res = PL.run_pipeline(cfg, tmp_path / "crash")
    resumed = {s["path"]: s["resumed"] for s in res.stats}
    assert resumed["branches[0]"] and resumed["branches[1].ops[0]"]  # finished branch + exact_dedup restored
    assert not resumed["branches[1].ops[1]"]  # the node that crashed ran again
    assert PL.check_conservation(res) == []
    for name in ("a", "b"):
        assert res.outputs[name]["sha256"] == clean.outputs[name]["sha256"]
    # a second rerun does nothing
    again = PL.run_pipeline(cfg, tmp_path / "crash")
    assert all(s["resumed"] for s in again.stats)


# ---------------------------------------------------------------- dedup key: table path == regex definition
def _regex_minhash_normalize(text: str) -> str:
    "The regex definition of the dedup key (the implementation the table path replaced), kept as the reference."
    text = text.lower()
    if not text.isascii():
        text = TXT._COMBINING_RE.sub("", unicodedata.normalize("NFD", text))
    return " ".join(TXT._NONWORD_RE.sub(" ", TXT._DIGIT_RE.sub("0", text)).split())


def test_table_normalization_matches_regex_on_every_code_point():
    cps = [cp for cp in range(0x110000)]
    shuffled = cps[:]
    random.Random(0).shuffle(shuffled)  # combining marks after random starters and after each other
    for order in (cps, shuffled):
        for lo in range(0, len(order), 4096):
            text = "".join(map(chr, order[lo:lo + 4096]))
            assert TXT.minhash_normalize(text) == _regex_minhash_normalize(text), (order is cps, lo)
    # the premise of per-character mapping: NFD's reordering only moves marks that become nothing or a space
    marks = [chr(cp) for cp in cps if unicodedata.combining(chr(cp))]
    assert marks and all(not TXT.normalize_char(m).strip() for m in marks)
    assert TXT.minhash_normalize("ΟΔΟΣ ΟΔΟΣ.") == _regex_minhash_normalize("ΟΔΟΣ ΟΔΟΣ.") == "οδος οδος"  # final sigma


def test_table_normalization_gives_identical_tokens_on_the_vendored_corpora():
    sources = [m for m in D.list_manifests() if D.load_manifest(m).role == "pretrain"]
    assert {"enwiki_sample", "zhwiki_sample", "chinese_poetry"} <= set(sources)
    n = 0
    for name in sources:
        recs = (itertools.islice(D.stdlib_documents(D.load_manifest(name)), 150) if name == "cpython_stdlib"
                else D.sample_records(name, 150))
        for r in recs:
            t = r["text"]
            ref = MH._split_words(_regex_minhash_normalize(t), "auto")
            assert MH.minhash_tokens(t) == ref, (name, r["id"])
            assert [w.decode() if isinstance(w, bytes) else w for w in MH.fast_minhash_tokens(t)] == ref, (name, r["id"])
            n += 1
    assert n >= 150 * len(sources) // 2


# ---------------------------------------------------------------- MinHash vs datasketch
def test_fast_minhash_agrees_with_datasketch():
    docs = D.sample_records("enwiki_sample", 300)
    texts, ids, truth = DB.inject_near_duplicates([d["text"] for d in docs], [d["id"] for d in docs],
                                                 n_dups=60, seed=0)
    bench = DB.dedup_benchmark(texts, ids, truth, repeats=1, paired_rounds=2)
    assert bench["ours"]["recall"] >= 0.95 and bench["datasketch"]["recall"] >= 0.95
    assert bench["agreement"] >= 0.99
    assert set(bench["paired"]) == {"rensa", "datasketch_bulk"} and bench["paired"]["rensa"]["rounds"] == 2


def test_paired_speedups_are_per_round_ratios():
    "Back-to-back rounds: the median of peer / ours seconds per round, its interval and range; bad input is refused."
    import time as _time
    naps = {"ours": 0.01, "slow_peer": 0.04}
    contenders = {n: (lambda ids, texts, cfg, s=s: _time.sleep(s), None) for n, s in naps.items()}
    out = DB.paired_speedups(contenders, [], [], rounds=4)
    p = out["slow_peer"]
    assert set(out) == {"slow_peer"} and p["rounds"] == 4 and 2.0 < p["speedup"] < 4.5
    assert p["min"] <= p["ci"][0] <= p["speedup"] <= p["ci"][1] <= p["max"]
    assert DB.paired_speedups(contenders, [], [], rounds=0) == {}
    with pytest.raises(ConfigError, match="paired_rounds"):
        DB.paired_speedups(contenders, [], [], rounds=-1)


# ---------------------------------------------------------------- local == spark (local[2] and a standalone cluster)
def _spark_eq_config(limit: int = 120) -> dict:
    """One node of each Spark code path: exact dedup (reduceByKey), MinHash LSH (groupByKey over band buckets),
    per-document ops (mapPartitions), ratio filter (sortBy + zipWithIndex), repeat (adds documents)."""
    return {"name": "eq", "workers": 2, "spark": {"master": "local[2]"}, "checkpoint": False,
            "branches": [{"type": "write", "name": "m",
                          "ops": [{"type": "exact_dedup"}, {"type": "minhash_dedup"},
                                  {"type": "quality_score", "scorer": "metadata", "metadata_field": "votes"},
                                  {"type": "ratio_filter", "ratio": 0.6}, {"type": "repeat", "factor": 1.5}],
                          "child_configs": [{"type": "read_source", "source": "stackexchange_small_sites", "limit": limit,
                                             "rename": {"score": "votes"}}]}]}


def _needs_spark():
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime for Spark")


def test_spark_engine_matches_local(tmp_path):
    _needs_spark()
    cfg = _spark_eq_config()
    local = PL.run_pipeline(cfg, tmp_path / "local", engine="local")
    spark = PL.run_pipeline(cfg, tmp_path / "spark", engine="spark")
    EN.stop_spark()
    assert PL.check_conservation(spark) == []
    assert spark.outputs["m"]["sha256"] == local.outputs["m"]["sha256"]
    key = lambda r: [(s["path"], s["in"], s["out"], s["dropped"], s["added"]) for s in r.stats]
    assert key(spark) == key(local)


def test_spark_standalone_cluster_matches_local_and_always_stops(tmp_path):
    "A master + 2 workers from the installed pyspark: byte-identical outputs; stopped, no JVM left, after a failing job."
    _needs_spark()
    cfg = _spark_eq_config(limit=60)
    cfg["branches"][0]["ops"] = cfg["branches"][0]["ops"][:3]  # exact dedup, MinHash LSH, a per-document op
    local = PL.run_pipeline(cfg, tmp_path / "local", engine="local")
    bad = _spark_eq_config(limit=60)
    bad["branches"][0]["ops"] = [{"type": "quality_score", "scorer": "metadata", "metadata_field": "no_such_field"}]
    bad["spark"]["conf"] = {"spark.task.maxFailures": 1}  # raises on the executors: fail at once, no retries
    with pytest.raises(Exception, match="no numeric field 'no_such_field'"):
        with SP.spark_standalone_cluster(workers=2) as cluster:
            assert cluster.alive_workers() == 2 and len(cluster.leftover_pids()) >= 3  # master + 2 workers
            res, info = SP.run_on_spark_cluster(cfg, tmp_path / "cluster", cluster=cluster)
            assert info["workers_used"] == 2  # executors ran on both workers
            assert res.outputs["m"]["sha256"] == local.outputs["m"]["sha256"]
            assert [(s["path"], s["out"]) for s in res.stats] == [(s["path"], s["out"]) for s in local.stats]
            SP.run_on_spark_cluster(bad, tmp_path / "bad", cluster=cluster)
    assert all(p.poll() is not None for p in cluster.procs)
    assert cluster.leftover_pids() == []
    from pyspark.sql import SparkSession
    assert SparkSession.getActiveSession() is None


# ---------------------------------------------------------------- prepare_corpus
def test_prepare_corpus_contract(tmp_path):
    scale = get_scale("smoke", docs_per_source=60, model={"vocab_size": 600})
    srcs = ["enwiki_sample", "stackexchange_small_sites", "zhwiki_sample", "gsm8k"]
    c = D.prepare_corpus(scale, tmp_path, sources=srcs, progress=False)
    assert c.sources == srcs and c.domain("zhwiki_sample") == "zh"
    tok = c.tokenizer()
    assert len(tok) == 600 and tok.eos_token_id is not None and tok.pad_token_id is not None and tok.chat_template
    for s in srcs:
        for split in ("train", "heldout"):
            t, off, docs = c.tokens(s, split), c.offsets(s, split), c.docs(s, split)
            assert t.dtype == np.int32 and len(off) == len(docs) + 1 and off[-1] == len(t)
            assert (t == tok.eos_token_id).sum() == len(docs)
            if docs:
                assert tok.decode(t[off[0]:off[1] - 1]) == docs[0]["text"]
        assert not {d["id"] for d in c.docs(s, "train")} & {d["id"] for d in c.docs(s, "heldout")}
    edu, ppl = c.scores("enwiki_sample"), c.scores("stackexchange_small_sites")
    assert len(edu) == len(c.docs("enwiki_sample")) and (0 <= edu).all() and (edu <= 1).all()
    assert (ppl < 0).all()
    with pytest.raises(KeyError, match="has no quality score"):
        c.scores("gsm8k")
    with pytest.raises(ConfigError, match="split: expected one of"):
        c.tokens("gsm8k", "test")
    again = D.prepare_corpus(scale, tmp_path, sources=srcs, progress=False)
    assert again.root == c.root and set(c.meta["bytes_per_token"]) == {"en-web", "zh", "math"}

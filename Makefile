# Every target installs what it needs first (a fresh clone needs nothing else).
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JOBS   ?= 2

.PHONY: install install-katex system-deps sync-check nbdev-test pytest test smoke report docs clean lab export lm-eval

# pyproject.toml is left out: nbdev_export rewrites it (same content, new mtime), which would reinstall every time.
$(STAMP): settings.ini setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(STAMP)

# KaTeX for the docs site's maths, from the npm registry (the site must render offline).
KATEX_VERSION := 0.16.11
KATEX := $(VENV)/share/katex/katex.min.js
$(KATEX): | $(STAMP)
	rm -rf $(VENV)/share/katex && mkdir -p $(VENV)/share/katex
	cd $(VENV)/share/katex && npm pack --silent katex@$(KATEX_VERSION) >/dev/null \
	  && tar xzf katex-$(KATEX_VERSION).tgz --strip-components=2 package/dist && rm katex-$(KATEX_VERSION).tgz

install-katex: $(KATEX)

# Chromium (docs test) and a JRE (pyspark): installed with apt when missing and we are root.
system-deps:
	bash tools/system_deps.sh

sync-check: install
	$(BIN)/nbdev_export
	@changed=$$(git status --porcelain -- kaiyuan_nb); \
	if [ -n "$$changed" ]; then echo "kaiyuan_nb/ is out of sync with nbs/ (run nbdev_export and commit):"; echo "$$changed"; exit 1; fi

nbdev-test: install
	$(BIN)/nbdev_test --n_workers $(JOBS) --timing

pytest: install system-deps $(KATEX)
	$(BIN)/pytest -q tests

test: sync-check nbdev-test pytest

smoke: install
	$(BIN)/kaiyuan-report --scale smoke

report: install system-deps
	$(BIN)/kaiyuan-report --scale report --in-place
	$(BIN)/nbdev_clean  # drops papermill's metadata (it records this machine's paths)
	$(PY) -c "from kaiyuan_nb.core import update_readme; update_readme('README.md', 'results')"
	$(MAKE) docs

docs: install system-deps $(KATEX)
	$(BIN)/kaiyuan-docs --screenshot results/site_index.png

# The report's base and chat models as release folders (what chapter 10 publishes at report scale), from a run directory.
EXPORT_RUN ?= runs/report
export: install
	$(BIN)/kaiyuan-export $(EXPORT_RUN) release/base
	$(BIN)/kaiyuan-export --chat $(EXPORT_RUN) release/chat

# lm-evaluation-harness on the released base model: harness tasks of every vendored eval set (chapter 04), local and
# offline; LM_EVAL_ITEMS per task are the items report-scale chapters score (scale.eval_items, seed 0).
LM_EVAL_DIR   ?= runs/lm_eval_tasks
LM_EVAL_ITEMS ?= 400
lm-eval: install
	$(PY) -c "from transformers import AutoTokenizer; from kaiyuan_nb.eval import write_lm_eval_tasks; \
	write_lm_eval_tasks('$(LM_EVAL_DIR)', AutoTokenizer.from_pretrained('release/base', trust_remote_code=True), n=$(LM_EVAL_ITEMS))"
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/lm_eval --model hf \
	  --model_args pretrained=release/base,trust_remote_code=True,dtype=float32 \
	  --include_path $(LM_EVAL_DIR) --tasks kaiyuan --output_path runs/lm_eval

lab: install
	$(BIN)/jupyter lab nbs

clean:
	rm -rf _docs _proc runs

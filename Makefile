# Every target installs what it needs first (a fresh clone needs nothing else).
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JOBS   ?= 2

.PHONY: install system-deps sync-check nbdev-test pytest test smoke report docs clean lab

# pyproject.toml is left out: nbdev_export rewrites it (same content, new mtime), which would reinstall every time.
$(STAMP): settings.ini setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(STAMP)

# Chromium (docs test) and a JRE (pyspark): installed with apt when missing and we are root.
system-deps:
	bash tools/system_deps.sh

sync-check: install
	$(BIN)/nbdev_export
	@changed=$$(git status --porcelain -- kaiyuan_nb); \
	if [ -n "$$changed" ]; then echo "kaiyuan_nb/ is out of sync with nbs/ (run nbdev_export and commit):"; echo "$$changed"; exit 1; fi

nbdev-test: install
	$(BIN)/nbdev_test --n_workers $(JOBS) --timing

pytest: install system-deps
	$(BIN)/pytest -q tests

test: sync-check nbdev-test pytest

smoke: install
	$(BIN)/kaiyuan-report --scale smoke

report: install system-deps
	$(BIN)/kaiyuan-report --scale report --in-place
	$(PY) -c "from kaiyuan_nb.core import update_readme; update_readme('README.md', 'results')"
	$(MAKE) docs

docs: install system-deps
	$(BIN)/kaiyuan-docs --screenshot results/site_index.png

lab: install
	$(BIN)/jupyter lab nbs

clean:
	rm -rf _docs _proc runs

# topo_mi — two commands do all set-up:  `make demo`  and  `make test`.
PY      ?= python3
VENV    ?= .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
EXTRAS  ?= dev,hf,dask,bench
PYTEST_ARGS ?=
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export MPLBACKEND = Agg

.PHONY: venv demo test test-slow test-all bench bench-peers browser-test clean

venv: $(STAMP)

$(STAMP): setup.cfg constraints.txt pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	$(PYTHON) -m topo_mi._warmup
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/topo-mi demo --out runs/demo --force

# pytest's exit code 5 (no test collected) is a failure, never a pass.
define run_pytest
	@$(PYTHON) -m pytest $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc
endef

test: $(STAMP)
	$(call run_pytest,-m "not slow")

test-slow: $(STAMP)
	$(call run_pytest,-m slow)

test-all: $(STAMP)
	$(call run_pytest,)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done

# the separate venv of the dictionaries' peers (SAELens, EleutherAI's sparsify) beside torch 2.13.0
bench-peers:
	bash benchmarks/benchvenv_dictionaries.sh

browser-test: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)
	$(call run_pytest,tests/integration -k browser)

clean:
	rm -rf $(VENV) build *.egg-info runs

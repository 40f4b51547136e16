# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv from scratch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck unit docs bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# torch==2.13.0 first: it is the local CPU wheel; any other spec would pull GBs of CUDA packages.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[dev,docs]"
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check oinfo_monitor tests demos benchmarks docs
	$(VENV)/bin/ruff format --check oinfo_monitor tests demos benchmarks docs

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest

# The documentation site (mkdocs.yml: docs/ -> site/), strict: a broken link or reference fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

test: lint typecheck docs unit

demo: $(STAMP)
	$(PY) demos/grokking.py

# A separate .venv-bench, so the peers (HOI pulls in JAX) never touch .venv; torch==2.13.0 first, as above.
bench:
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install torch==2.13.0
	.venv-bench/bin/python -m pip install -e ".[bench]"
	.venv-bench/bin/python benchmarks/bench_oinfo.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

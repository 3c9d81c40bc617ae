# The two commands a new user runs: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: setup browser demo test test-fast bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/install.sh

demo: setup
	$(VENV)/bin/styleavatar doctor
	$(VENV)/bin/styleavatar demo

browser:
	bash scripts/install_browser.sh

test: setup browser
	STYLEAVATAR_REQUIRE_GL=1 $(PY) -m pytest -q --durations=15

test-fast: setup
	STYLEAVATAR_REQUIRE_GL=1 $(PY) -m pytest -q -m "not slow"

# Every speed figure twice: natively and restricted to AVX2 (the CPU class of most laptops).
AVX2_ONLY := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2

bench: setup
	$(PY) benchmarks/tracking.py
	$(PY) benchmarks/preprocess.py
	$(PY) benchmarks/train.py
	$(AVX2_ONLY) $(PY) benchmarks/tracking.py
	$(AVX2_ONLY) $(PY) benchmarks/preprocess.py
	$(AVX2_ONLY) $(PY) benchmarks/train.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache

# bilateral-bench: `make demo` (install + the default run), `make test` (the test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --editable '.[test]'
	$(PY) -m benchmark.hdrnet.warmup  # numba's kernels into its cache: every run then loads the same code (README "Determinism")
	$(PY) -m benchmark.evaluation.lpips_weights || echo "LPIPS weights not built: LPIPS will be reported as skipped"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m benchmark task=local_laplacian model=bicubic
	$(PY) -m benchmark task=local_laplacian model=hdrnet

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

clean:
	rm -rf outputs multirun .cache .pytest_cache

# Two commands: `make demo` (set up + run the whole pipeline on the embedded demo data + report)
# and `make test` (set up + run the test suite). Everything lives in ./.venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo report test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[test]"
	# rembg imports pymatting, whose numba kernels compile on first import (~95 CPU-s, cached in
	# site-packages): pay it once here, not in the first mask job of the demo or the tests.
	$(BIN)/python -c "import rembg"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores all
	$(BIN)/snakemake --report results/report.html

report: $(STAMP)
	$(BIN)/snakemake --report results/report.html

test: $(STAMP)
	$(BIN)/python -m pytest

# Rules (snakemake --lint), rule-file layout (snakefmt) and Python (ruff; config in pyproject.toml).
lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check workflow Snakefile
	$(BIN)/ruff check src tests workflow benchmarks

clean:
	rm -rf results .snakemake resources/demo resources/torch-demo resources/rembg_models/demo-sod.onnx

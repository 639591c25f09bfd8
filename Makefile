# One place for the commands that README and CI call, so they cannot drift apart.
PY ?= .venv/bin/python
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: help setup demo test test-all lint format bench fuzz clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install spinr with every extra (torch pinned to the CPU wheel)

browser-deps:  ## install Debian's chromium for the browser tests (needs root and apt)
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

demo: setup  ## encode a real photograph (stages as PNG, PSNR per stage), then serve, upload and stream it through loss
	$(VENV)/bin/spinr demo --out demo-out
	bash scripts/demo-stream.sh demo-out/stream

test: setup browser-deps  ## lint, type-check and run the test suite (CPU only, a few minutes)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -q -m "not slow and not gpu"

test-all: setup browser-deps  ## include slow tests
	$(VENV)/bin/python -m pytest -q -m "not gpu"

lint:  ## ruff lint and format check, mypy type check (the packages in pyproject's [tool.mypy])
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

format:
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench: setup  ## run benchmarks, writing JSON under bench-out/
	$(VENV)/bin/spinr bench --out bench-out

FUZZ_INPUTS ?= 100000
fuzz: setup  ## fuzz every decode entry point with structure-aware hostile streams of format 2, then 1 (counts, slowest input, RSS growth, reproducers under bench-out/fuzz)
	@cd tests && failed=""; for f in 2 1; do \
	  ../$(VENV)/bin/python -m fuzz run --format $$f --inputs $(FUZZ_INPUTS) --out ../bench-out/fuzz/v$$f || failed="$$failed v$$f"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAIL in$$failed (reports: bench-out/fuzz/v2/fuzz.json, bench-out/fuzz/v1/fuzz.json)"; exit 1; fi; \
	echo "fuzz: PASS for formats 2 and 1"

clean:
	rm -rf $(VENV) demo-out bench-out .pytest_cache .mypy_cache

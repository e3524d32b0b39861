# Two commands do everything on a fresh clone: `make demo` and `make test`.
# Both create .venv when missing and install torch==2.13.0 first (the pinned CPU wheel),
# then the package with its extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO := demo-out

.PHONY: demo test venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[export,dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/tdpcr-edge synth $(DEMO)/scenes --scenes 4 --size 256 --seed 2026
	$(BIN)/tdpcr-edge eval --data $(DEMO)/scenes --json $(DEMO)/eval.json --quicklook $(DEMO)/quicklook.png

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(DEMO) .pytest_cache

# Two commands do everything on a fresh clone: `make demo` and `make test`.
# Both create .venv when missing and install torch==2.13.0 first (the pinned CPU wheel),
# then the package with its extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO := demo-out

.PHONY: demo test venv clean kernels

# The fused PGF kernels: host reference always, CUDA library with nvcc, TensorRT plugin
# when TRT_INCLUDE is given (e.g. make kernels TRT_INCLUDE=/usr/include/aarch64-linux-gnu).
kernels:
	cmake -S . -B build $(if $(TRT_INCLUDE),-DTensorRT_INCLUDE_DIR=$(TRT_INCLUDE))
	cmake --build build -j

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# --no-compile: byte-compiling torch's thousands of modules at install time costs minutes; Python compiles on import.
	$(BIN)/python -m pip install -q --no-compile torch==2.13.0
	$(BIN)/python -m pip install -q --no-compile -e ".[export,dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/tdpcr-edge synth $(DEMO)/scenes --scenes 4 --size 256 --seed 2026
	$(BIN)/tdpcr-edge eval --data $(DEMO)/scenes --json $(DEMO)/eval.json --quicklook $(DEMO)/quicklook.png
	# Export every precision and measure accuracy against latency on every backend this machine runs. One
	# process, so the model is traced once; calibration on 16 tiles and an 8-tile drift gate (defaults 32 and 16).
	$(BIN)/tdpcr-edge bench --calib-tiles 16 --eval-tiles 8 --tiles 8 --iterations 12 --report $(DEMO)/report
	# The drift of each artifact in detail, on the demo's own scenes.
	$(BIN)/tdpcr-edge compare $(DEMO)/report/artifacts/fp32 $(DEMO)/report/artifacts/fp16 $(DEMO)/report/artifacts/mixed $(DEMO)/report/artifacts/int8 --data $(DEMO)/scenes --tiles 8
	$(BIN)/tdpcr-edge synth $(DEMO)/big --scenes 1 --size 1024 --seed 99
	$(BIN)/tdpcr-edge infer --model $(DEMO)/report/artifacts/int8 --optical $(DEMO)/big/scene_0000/optical_cloudy.tif \
	  --sar $(DEMO)/big/scene_0000/sar.tif --reference $(DEMO)/big/scene_0000/optical_clear.tif \
	  --labels $(DEMO)/big/scene_0000/labels.tif --cloud $(DEMO)/big/scene_0000/cloud.tif --out $(DEMO)/stream
	@cat $(DEMO)/report/report.md
	@echo "quick looks: $(DEMO)/quicklook.png, $(DEMO)/stream/quicklook.png; report: $(DEMO)/report/report.md, $(DEMO)/report/report.png"

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(DEMO) .pytest_cache

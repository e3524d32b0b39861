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
	# The demo calibrates on 16 tiles and gates on 8 (defaults 32 and 16), to stay within 10 minutes on 2 cores.
	for p in fp32 fp16 mixed; do \
	  $(BIN)/tdpcr-edge export --precision $$p --calib-tiles 16 --eval-tiles 8 --out $(DEMO)/artifacts/$$p || exit 1; \
	done
	# Pure INT8 breaks the default drift budget for this model; kept here to show by how much.
	$(BIN)/tdpcr-edge export --precision int8 --calib-tiles 16 --eval-tiles 8 --allow-drift --out $(DEMO)/artifacts/int8
	$(BIN)/tdpcr-edge compare $(DEMO)/artifacts/fp32 $(DEMO)/artifacts/fp16 $(DEMO)/artifacts/mixed $(DEMO)/artifacts/int8 --data $(DEMO)/scenes --tiles 8
	$(BIN)/tdpcr-edge synth $(DEMO)/big --scenes 1 --size 1024 --seed 99
	$(BIN)/tdpcr-edge infer --model $(DEMO)/artifacts/mixed --optical $(DEMO)/big/scene_0000/optical_cloudy.tif \
	  --sar $(DEMO)/big/scene_0000/sar.tif --reference $(DEMO)/big/scene_0000/optical_clear.tif \
	  --labels $(DEMO)/big/scene_0000/labels.tif --cloud $(DEMO)/big/scene_0000/cloud.tif --out $(DEMO)/stream
	# Accuracy against latency for every backend and precision this machine runs (reuses the artifacts above).
	$(BIN)/tdpcr-edge bench --artifacts $(DEMO)/artifacts --tiles 8 --iterations 12 --report $(DEMO)/report
	@echo "quick looks: $(DEMO)/quicklook.png, $(DEMO)/stream/quicklook.png; report: $(DEMO)/report/report.md, $(DEMO)/report/report.png"

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(DEMO) .pytest_cache

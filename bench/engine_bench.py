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
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"],
                    help="bf16: Metronome --precision bf16 against OpenVINO with INFERENCE_PRECISION_HINT bf16 "
                         "(and Metronome fp32, for the speed-up); ONNX Runtime has no bf16 CPU kernels and is left out. "
                         "int8: each model quantized by `metronome quantize` (QDQ), the same file in Metronome "
                         "--precision int8, OpenVINO and ONNX Runtime")
    args = ap.parse_args()
    if args.out is None:
        args.out = os.path.join(HERE, {"fp32": "RESULTS.md", "bf16": "RESULTS-bf16.md", "int8": "RESULTS-int8.md"}[args.precision])
    if args.precision == "bf16":
        return bf16_main(args)
    if args.precision == "int8":
        return int8_main(args)

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


def int8_main(args):
    if ov is None:
        sys.exit("--precision int8 compares with OpenVINO: pip install openvino")
    workdir = os.path.join(HERE, "out")
    os.makedirs(workdir, exist_ok=True)
    core = ov.Core()
    calibration = os.path.join(workdir, "calibration-224.npy")
    np.save(calibration, np.random.default_rng(7).normal(0, 1, (16, 3, 224, 224)).astype(np.float32))
    rows = []
    for model in args.models.split(","):
        path = export_model(args.binary, model, workdir)
        qpath = os.path.join(workdir, f"{model}-int8.onnx")
        out = subprocess.run([args.binary, "quantize", path, "--calibration", calibration, "--out", qpath, "--per-channel",
                              "--batch", "8", "--force", "--json"], check=True, capture_output=True, text=True)
        quality = json.loads(out.stdout)["fidelity"]
        rng = np.random.default_rng(42)
        for threads in [int(t) for t in args.threads.split(",")]:
            session = ort_session(qpath, threads)
            name = session.get_inputs()[0].name
            feed = {name: rng.uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)}
            # OpenVINO's own choice for what is not quantized (bf16 on this CPU): its fastest.
            compiled = core.compile_model(qpath, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                                                         "NUM_STREAMS": 1})
            int8, fp32, ov_samples, ort_samples = [], [], [], []
            for _ in range(args.rounds):
                int8.append(metronome_round(args.binary, qpath, threads, args.runs, args.warmup, "int8")["median_ms"])
                fp32.append(metronome_round(args.binary, path, threads, args.runs, args.warmup)["median_ms"])
                ov_samples += openvino_round(compiled, feed, args.runs, args.warmup)
                ort_samples += ort_round(session, feed, args.runs, args.warmup)
            m, f = statistics.median(int8), statistics.median(fp32)
            o, r = statistics.median(ov_samples), statistics.median(ort_samples)
            rows.append((model, threads, m, f, o, r, m / min(o, r), f / m, quality))
            print(f"{model:20s} threads={threads}  metronome int8 {m:8.3f} ms  fp32 {f:8.3f} ms  openvino {o:8.3f} ms  "
                  f"onnxruntime {r:8.3f} ms  ratio {m / min(o, r):5.2f}  speed-up over fp32 {f / m:5.2f}", flush=True)
    with open(args.out, "w") as out:
        out.write("# int8 benchmark: Metronome vs OpenVINO and ONNX Runtime on the same QDQ file\n\n")
        out.write(f"Generated by `make bench-int8` on {datetime.date.today().isoformat()}; {os.cpu_count()} cores; "
                  f"onnxruntime {ort.__version__}, openvino {ov.__version__}. Each model exported by `metronome export`, "
                  "quantized by `metronome quantize --per-channel` (minmax ranges from 16 seeded normal inputs; uint8 "
                  "activations, symmetric int8 weights), and that one QDQ file run by every engine. Batch 1, 224×224; "
                  f"{args.rounds} interleaved rounds × {args.runs} runs after {args.warmup} warm-up runs; medians in ms. "
                  "OpenVINO: PERFORMANCE_HINT LATENCY (its default precision for what is not quantized). "
                  "Ratio = Metronome int8 / the faster peer; speed-up = Metronome fp32 (float model) / Metronome int8; "
                  "agreement and error: the int8 model against the float model on the calibration inputs "
                  "(`quantize`'s fidelity report).\n\n")
        out.write("| model | threads | Metronome int8 ms | Metronome fp32 ms | OpenVINO ms | ONNX Runtime ms | ratio | speed-up over fp32 | top-1 agreement | max rel err |\n"
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
        for model, t, m, f, o, r, ratio, speed, q in rows:
            out.write(f"| {model} | {t} | {m:.3f} | {f:.3f} | {o:.3f} | {r:.3f} | {ratio:.2f} | {speed:.2f} | "
                      f"{100 * q['top1Agreement']:.0f}% | {q['maxRelativeError']:.1e} |\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Branch-parallel execution of multi-branch networks (NN-Stretch), side by side.

For every branched config in examples/branch (NAME-CD.yaml) and its single-branch baseline
(NAME-C.yaml), `metronome stretch --compare` measures in one process: the branched network
branch-parallel (one core per device, --devices auto), the same network's kernels one after
another with 2 intra-op threads, and the baseline with 2 threads. Rounds repeat the whole
folder; the best (minimum) and the median over rounds are kept per column. Then each
branched network is exported (`metronome branch`) and run on one input branch-parallel,
sequentially and in ONNX Runtime; the largest relative difference is reported. Writes
bench/RESULTS-branch.md.
"""
import argparse
import csv
import datetime
import os
import platform
import statistics
import subprocess
import tempfile

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONFIGS = os.path.join(ROOT, "examples", "branch")


def stretch_round(binary, out, runs, threads):
    subprocess.run([binary, "stretch", CONFIGS, "--out", out, "--runs", str(runs), "--warmup", "10",
                    "--threads", str(threads), "--compare", "--force"], check=True, capture_output=True, text=True)
    with open(out) as f:
        return {row["cfg"]: row for row in csv.DictReader(f)}


def relerr(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def agreement(binary, name, work):
    config = os.path.join(CONFIGS, f"{name}.yaml")
    model = os.path.join(work, f"{name}.onnx")
    subprocess.run([binary, "branch", config, "--out", model, "--force"], check=True, capture_output=True)
    x = np.random.default_rng(7).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
    np.save(os.path.join(work, "x.npy"), x)
    outs = {}
    for label, flags in [("parallel", ["--devices", "auto"]), ("sequential", ["--threads", "2"])]:
        path = os.path.join(work, f"{name}-{label}.npy")
        subprocess.run([binary, "infer", model, "--input", os.path.join(work, "x.npy"), "--output", path, "--force"] + flags,
                       check=True, capture_output=True)
        outs[label] = np.load(path)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    outs["ort"] = session.run(None, {session.get_inputs()[0].name: x})[0]
    return (relerr(outs["parallel"], outs["sequential"]), relerr(outs["parallel"], outs["ort"]),
            relerr(outs["sequential"], outs["ort"]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "metronome"))
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS-branch.md"))
    a = p.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory() as work:
        for r in range(a.rounds):
            print(f"round {r + 1}/{a.rounds}", flush=True)
            rounds.append(stretch_round(a.binary, os.path.join(work, "result.csv"), a.runs, a.threads))
        names = sorted(n[:-3] for n in rounds[0] if n.endswith("-CD"))
        agree = {n: agreement(a.binary, f"{n}-CD", work) for n in names}

    def col(cfg, key, pick):
        return pick([float(r[cfg][key]) for r in rounds])

    lines = [
        "# Branch-parallel execution of multi-branch networks (NN-Stretch)",
        "",
        f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"batch 1, by `make bench-branch` (`bench/branch_bench.py`: {a.rounds} rounds of `metronome stretch "
        f"examples/branch --compare --runs {a.runs} --threads {a.threads}`).",
        "",
        "Per network: **parallel** = the branched network with each stage's branches at once, one core per device "
        "(`--devices auto`: cpu=0, dsp=1); **sequential** = the same network's kernels one after another with "
        f"{a.threads} intra-op threads; **baseline** = the single-branch network (NAME-C) with {a.threads} threads. "
        "Times in ms: the minimum over all runs and rounds (NN-Stretch's latency) and the median of the rounds' medians. "
        "Speedup > 1 means branch-parallel is faster.",
        "",
        "| network | parallel min | parallel median | sequential min | sequential median | baseline min | baseline median "
        "| speedup vs sequential (median) | speedup vs baseline (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in names:
        cd, c = f"{n}-CD", f"{n}-C"
        pm, pmed = col(cd, "latency", min), col(cd, "median", statistics.median)
        sm, smed = col(cd, "sequential_latency", min), col(cd, "sequential_median", statistics.median)
        bm, bmed = col(c, "latency", min), col(c, "median", statistics.median)
        lines.append(f"| {n} | {pm:.2f} | {pmed:.2f} | {sm:.2f} | {smed:.2f} | {bm:.2f} | {bmed:.2f} "
                     f"| {smed / pmed:.2f}x | {bmed / pmed:.2f}x |")
    lines += [
        "",
        "Outputs of the exported ONNX file on one input (largest |difference| / largest |output|):",
        "",
        "| network | parallel vs sequential | parallel vs ONNX Runtime | sequential vs ONNX Runtime |",
        "|---|---|---|---|",
    ]
    for n in names:
        ps, po, so = agree[n]
        lines.append(f"| {n}-CD | {ps:.1e} | {po:.1e} | {so:.1e} |")
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

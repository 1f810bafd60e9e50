#!/usr/bin/env python3
"""Where a weight-heavy convolution stops running from the last-level cache on this machine.

Builds networks of N identical 512->512 3x3 convolutions on a 4x4 map (9 MiB of weights
each, batch 1), profiles them with `metronome profile --layers` on one thread in interleaved
rounds, and prints the median time of one such convolution against the network's total
weight bytes. While the whole network's weights stay in the last-level cache between runs,
each convolution is compute-bound; once they do not, each one streams its weights from
memory and takes longer, although the layer itself is the same. This is the context the
latency predictor's network-weight feature stands for; the edge moves with what other
tenants of a shared cache use, so measure it on the machine you predict for.

    python3 scripts/cache_edge_probe.py [--counts 2,4,6,8,12] [--rounds 3] [--metronome PATH]
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def network(path, count, channels=512, size=4):
    rng = np.random.default_rng(count)
    nodes, inits, x = [], [], "input"
    for i in range(count):
        w = (rng.standard_normal((channels, channels, 3, 3)) * 0.01).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1], kernel_shape=[3, 3], name=f"big{i}"))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        x = f"r{i}"
    graph = helper.make_graph(
        nodes, f"edge{count}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, channels, size, size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return 4 * count * channels * channels * 9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="2,4,6,8,12", help="convolutions per network (comma-separated)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the networks")
    parser.add_argument("--metronome", default=".build/release/metronome", help="the metronome binary")
    args = parser.parse_args()
    try:
        counts = [int(c) for c in args.counts.split(",")]
    except ValueError:
        sys.exit(f"--counts must be integers separated by commas, got '{args.counts}'")
    if not counts or min(counts) < 1 or args.rounds < 1:
        sys.exit("--counts must be positive and --rounds at least 1")
    if not os.access(args.metronome, os.X_OK):
        sys.exit(f"{args.metronome} is not an executable; build it first (swift build -c release)")
    times = {c: [] for c in counts}
    with tempfile.TemporaryDirectory() as tmp:
        weights = {c: network(os.path.join(tmp, f"edge{c}.onnx"), c) for c in counts}
        for r in range(args.rounds):
            for c in counts:
                out = os.path.join(tmp, f"edge{c}-{r}.csv")
                done = subprocess.run([args.metronome, "profile", os.path.join(tmp, f"edge{c}.onnx"), "--batch", "1",
                                       "--threads", "1", "--runs", "20", "--warmup", "2", "--layers", "--out", out],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                if done.returncode != 0:
                    sys.exit(f"metronome profile failed on edge{c}.onnx:\n{done.stderr}")
                with open(out) as f:
                    layers = [float(row["layer_median_ms"]) for row in csv.DictReader(f)
                              if row["kernel_name"].startswith("big") and row["layer_median_ms"]]
                times[c].append(statistics.median(layers))
                print(f"round {r + 1}/{args.rounds}: {c} convolutions done", file=sys.stderr)
    print(f"{'CONVS':>5}  {'WEIGHTS MB':>10}  {'MS PER CONV (median)':>20}  ROUNDS")
    for c in counts:
        print(f"{c:>5}  {weights[c] / 1e6:>10.1f}  {statistics.median(times[c]):>20.3f}  "
              + " ".join(f"{t:.3f}" for t in times[c]))


if __name__ == "__main__":
    main()

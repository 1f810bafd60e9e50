#!/usr/bin/env python3
"""Quantized (QDQ) models in Metronome's int8 path against ONNX Runtime on the same file.

Builds three float CNNs with the onnx helper at test time (a ResNet-style network with batch
norms and residual adds, a MobileNet-style one with ReLU6, depthwise convolutions and an
inverted residual, a VGG-style one ending in Flatten + MatMul + Add), then
  * quantizes each with ONNX Runtime's own quantizer (quantize_static, QDQ format; per tensor
    and per channel; uint8 and int8 activations) and runs the files in ONNX Runtime and in
    `metronome infer --precision int8` and `--precision fp32` (the quantization computed in
    float) at batch 1 and 2: the difference is counted in quanta of the output's scale;
  * quantizes each with `metronome quantize` (every method; per channel or not; uint8 and
    int8 activations), checks the file with onnx.checker and runs it in ONNX Runtime and in
    Metronome int8: relative error of the logits;
  * quantizes one model twice and compares the files byte for byte (calibration is
    deterministic).

ONNX Runtime's integer kernels are the reference only on CPUs with VNNI. Before VNNI (AVX2,
AVX-512 without VNNI) its u8s8 kernels add pairs of 8-bit products in 16 bits with saturation
(`vpmaddubsw`) and miss the QDQ formulas by up to 8% of the logits on these models (measured
2026-12-02, AMD EPYC with AVX2; ONNX Runtime's quantizer has `reduce_range` for this). There
the reference is ONNX Runtime with graph optimizations off: each QuantizeLinear and
DequantizeLinear node computed by its ONNX formula and the layers in float, still ONNX
Runtime's code, not Metronome's.

Usage: ort_quantized.py --metronome BIN --work DIR --report FILE.json
"""
import argparse, hashlib, json, os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_static)

from ort_common import relerr, run

rng = np.random.default_rng(7)

with open("/proc/cpuinfo") as f:
    FLAGS = set(next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), []))
VNNI = bool(FLAGS & {"avx512_vnni", "avx_vnni", "amx_int8"})


class Net:
    def __init__(self, name):
        self.name, self.nodes, self.inits, self.n = name, [], [], 0

    def fresh(self, p):
        self.n += 1
        return "%s%d" % (p, self.n)

    def w(self, a):
        name = self.fresh("w")
        self.inits.append(numpy_helper.from_array(np.asarray(a, np.float32), name))
        return name

    def node(self, op, ins, **attrs):
        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, ins, [out], name=out + "_node", **attrs))
        return out

    def conv(self, x, cin, cout, k=3, s=1, g=1, bn=False, act="relu"):
        w = self.w(rng.normal(0, (2.0 / (cin // g * k * k)) ** 0.5, (cout, cin // g, k, k)))
        ins = [x, w] if bn else [x, w, self.w(rng.normal(0, 0.1, cout))]
        y = self.node("Conv", ins, pads=[k // 2] * 4, strides=[s, s], group=g)
        if bn:
            y = self.node("BatchNormalization", [y, self.w(rng.uniform(0.5, 1.5, cout)), self.w(rng.normal(0, 0.1, cout)),
                                                 self.w(rng.normal(0, 0.1, cout)), self.w(rng.uniform(0.5, 1.5, cout))])
        if act == "relu":
            y = self.node("Relu", [y])
        elif act == "relu6":
            y = self.node("Clip", [y, self.w(np.array(0.0)), self.w(np.array(6.0))])
        return y

    def model(self, out, classes):
        g = helper.make_graph(self.nodes, self.name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", classes])], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        onnx.checker.check_model(m)
        return m


def resnet():
    n = Net("resnet")
    x = n.conv("input", 3, 16, 3, 1, bn=True)
    x = n.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    for cin, cout, s in [(16, 16, 1), (16, 32, 2)]:
        y = n.conv(x, cin, cout, 3, s, bn=True)
        y = n.conv(y, cout, cout, 3, 1, bn=True, act=None)
        short = x if (cin == cout and s == 1) else n.conv(x, cin, cout, 1, s, bn=True, act=None)
        x = n.node("Relu", [n.node("Add", [y, short])])
    x = n.node("Flatten", [n.node("GlobalAveragePool", [x])])
    return n.model(n.node("Gemm", [x, n.w(rng.normal(0, 0.3, (10, 32))), n.w(rng.normal(0, 0.1, 10))], transB=1), 10)


def mobilenet():
    n = Net("mobilenet")
    x = n.conv("input", 3, 16, 3, 2, act="relu6")
    y = n.conv(x, 16, 48, 1, act="relu6")
    y = n.conv(y, 48, 48, 3, 1, g=48, act="relu6")
    y = n.conv(y, 48, 16, 1, act=None)
    x = n.node("Add", [x, y])
    x = n.conv(x, 16, 64, 1, act="relu6")
    x = n.conv(x, 64, 64, 3, 2, g=64, act="relu6")
    x = n.node("Flatten", [n.node("GlobalAveragePool", [x])])
    return n.model(n.node("Gemm", [x, n.w(rng.normal(0, 0.2, (12, 64))), n.w(rng.normal(0, 0.1, 12))], transB=1), 12)


def vgg():
    n = Net("vgg")
    x = n.conv("input", 3, 8, 3)
    x = n.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = n.conv(x, 8, 16, 3)
    x = n.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = n.node("Flatten", [x])
    x = n.node("MatMul", [x, n.w(rng.normal(0, 0.05, (16 * 8 * 8, 10)))])
    return n.model(n.node("Add", [x, n.w(rng.normal(0, 0.1, 10))]), 10)


class Reader(CalibrationDataReader):
    def __init__(self, data):
        self.data, self.i = data, 0

    def get_next(self):
        if self.i >= len(self.data):
            return None
        self.i += 1
        return {"input": self.data[self.i - 1:self.i]}


def output_scale(model):
    """The scale of the DequantizeLinear producing the graph output (ONNX Runtime's quantizer ends with one)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.output[0] == model.graph.output[0].name and node.op_type == "DequantizeLinear":
            return float(inits[node.input[1]])
    return None


def ort_run(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    if not VNNI:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def metronome_run(binary, path, x, precision, work):
    xin, out = os.path.join(work, "x.npy"), os.path.join(work, "y.npy")
    np.save(xin, x)
    run([binary, "infer", path, "--input", xin, "--output", out, "--precision", precision, "--force"])
    return np.load(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--metronome", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--report", required=True)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    calibration = rng.normal(0, 1, (16, 3, 32, 32)).astype(np.float32)
    cal_path = os.path.join(args.work, "calibration.npy")
    np.save(cal_path, calibration)
    inputs = {b: rng.normal(0, 1, (b, 3, 32, 32)).astype(np.float32) for b in (1, 2)}
    rows = []
    for build in (resnet, mobilenet, vgg):
        model = build()
        name = model.graph.name
        float_path = os.path.join(args.work, name + ".onnx")
        onnx.save(model, float_path)
        # ONNX Runtime's quantizer.
        for per_channel in (False, True):
            for act in (QuantType.QUInt8, QuantType.QInt8):
                variant = "ort-%s-%s" % ("channel" if per_channel else "tensor", "u8" if act == QuantType.QUInt8 else "s8")
                path = os.path.join(args.work, "%s-%s.onnx" % (name, variant))
                quantize_static(float_path, path, Reader(calibration), quant_format=QuantFormat.QDQ,
                                per_channel=per_channel, activation_type=act, weight_type=QuantType.QInt8)
                scale = output_scale(onnx.load(path))
                for b, x in inputs.items():
                    ref = ort_run(path, x)
                    for precision in ("int8", "fp32"):
                        y = metronome_run(args.metronome, path, x, precision, args.work)
                        rows.append({"model": name, "variant": variant, "batch": b, "precision": precision,
                                     "quanta": float(np.abs(y - ref).max() / scale) if scale else None,
                                     "relerr": relerr(y, ref), "top1_agree": bool((y.argmax(1) == ref.argmax(1)).all())})
        # Metronome's quantizer.
        for method, per_channel, act in [("minmax", False, "uint8"), ("percentile", True, "uint8"),
                                         ("entropy", True, "uint8"), ("minmax", True, "int8")]:
            variant = "metronome-%s-%s-%s" % (method, "channel" if per_channel else "tensor", act)
            path = os.path.join(args.work, "%s-%s.onnx" % (name, variant))
            run([args.metronome, "quantize", float_path, "--calibration", cal_path, "--out", path, "--method", method,
                 "--activations", act, "--batch", "8", "--force"] + (["--per-channel"] if per_channel else []))
            onnx.checker.check_model(onnx.load(path))
            for b, x in inputs.items():
                ref = ort_run(path, x)
                y = metronome_run(args.metronome, path, x, "int8", args.work)
                rows.append({"model": name, "variant": variant, "batch": b, "precision": "int8", "quanta": None,
                             "relerr": relerr(y, ref), "top1_agree": bool((y.argmax(1) == ref.argmax(1)).all()),
                             "float_relerr": relerr(y, ort_run(float_path, x))})
    # Determinism: the same command twice gives the same file.
    digests = []
    for i in range(2):
        path = os.path.join(args.work, "twice%d.onnx" % i)
        run([args.metronome, "quantize", os.path.join(args.work, "resnet.onnx"), "--calibration", cal_path, "--out", path,
             "--method", "entropy", "--per-channel", "--force"])
        digests.append(hashlib.sha256(open(path, "rb").read()).hexdigest())
    report = {"rows": rows, "deterministic": digests[0] == digests[1], "ort_integer_kernels": VNNI}
    with open(args.report, "w") as f:
        json.dump(report, f, indent=1)
    for r in rows:
        print("%-10s %-34s batch %d %-5s quanta %-8s relerr %.2e top1 %s" % (
            r["model"], r["variant"], r["batch"], r["precision"],
            "%.1f" % r["quanta"] if r["quanta"] is not None else "-", r["relerr"], r["top1_agree"]))
    print("deterministic:", report["deterministic"])


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Models built with the onnx Python helper, run in Metronome and in ONNX Runtime.

Builds ResNet- and MobileNet-style networks at test time (nothing is committed) in the
forms other exporters produce -- a dynamic batch with a Shape/Gather/Unsqueeze/Concat
subgraph feeding Reshape, Constant nodes, typed float_data and raw_data initializers, an
external data file, float16 weights, opsets 11 to 21 -- writes random inputs as .npy, runs
`metronome infer` and ONNX Runtime on each and compares the outputs (relative error: the
largest absolute difference over the largest absolute reference value). It also exports
each model with `metronome export` and runs the exported file in ONNX Runtime and back in
Metronome (import -> export -> import).

Usage: ort_models.py --metronome BIN --work DIR --report FILE.json [--full]
"""
import argparse, json, os, subprocess, sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort

from ort_common import relerr, run

rng = np.random.default_rng(2024)


class Builder:
    def __init__(self, name, opset, typed_fields=False, fp16=False):
        self.name, self.opset, self.typed, self.fp16 = name, opset, typed_fields, fp16
        self.nodes, self.inits, self.counter = [], [], 0

    def fresh(self, p):
        self.counter += 1
        return "%s_%d" % (p, self.counter)

    def weight(self, arr, name=None):
        name = name or self.fresh("w")
        arr = np.asarray(arr, dtype=np.float32)
        if self.fp16 and arr.ndim == 4:
            t = numpy_helper.from_array(arr.astype(np.float16), name)
            # Cast the float16 weight back to float, as mixed-precision exporters do.
            self.inits.append(t)
            out = self.fresh("w32")
            self.nodes.append(helper.make_node("Cast", [name], [out], to=TensorProto.FLOAT))
            return out
        if self.typed:
            t = helper.make_tensor(name, TensorProto.FLOAT, arr.shape, arr.flatten().tolist())
        else:
            t = numpy_helper.from_array(arr, name)
        self.inits.append(t)
        return name

    def ints(self, values, name=None):
        name = name or self.fresh("i")
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def node(self, op, inputs, **attrs):
        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv_bn(self, x, cin, cout, k, stride=1, groups=1, act="relu"):
        w = self.weight(rng.uniform(-1, 1, (cout, cin // groups, k, k)) * np.sqrt(6 / (cin // groups * k * k)) / 2)
        y = self.node("Conv", [x, w], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=groups)
        bn = [self.weight(rng.uniform(lo, hi, cout)) for lo, hi in [(0.5, 1.5), (-0.2, 0.2), (-0.2, 0.2), (0.5, 1.5)]]
        y = self.node("BatchNormalization", [y] + bn, epsilon=1e-5)
        if act == "relu":
            y = self.node("Relu", [y])
        elif act == "relu6":
            if self.opset >= 11:
                lo = self.weight(np.array(0, np.float32)); hi = self.weight(np.array(6, np.float32))
                y = self.node("Clip", [y, lo, hi])
            else:
                y = self.node("Clip", [y], min=0.0, max=6.0)
        return y

    def flatten_dynamic(self, x):
        """torch's x.view(x.size(0), -1) as exported: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
        shape = self.node("Shape", [x])
        idx = self.fresh("idx")
        self.nodes.append(helper.make_node("Constant", [], [idx], value=numpy_helper.from_array(np.array(0, np.int64))))
        n = self.node("Gather", [shape, idx], axis=0)
        if self.opset >= 13:
            n = self.node("Unsqueeze", [n, self.ints([0])])
        else:
            n = self.node("Unsqueeze", [n], axes=[0])
        target = self.node("Concat", [n, self.ints([-1])], axis=0)
        return self.node("Reshape", [x, target])

    def head(self, x, channels, classes, dynamic_flatten):
        x = self.node("GlobalAveragePool", [x])
        x = self.flatten_dynamic(x) if dynamic_flatten else self.node("Flatten", [x], axis=1)
        w = self.weight(rng.uniform(-1, 1, (classes, channels)) * np.sqrt(6 / channels) / 2)
        b = self.weight(rng.uniform(-0.1, 0.1, classes))
        return self.node("Gemm", [x, w, b], transB=1)

    def model(self, x_name, out, size, dynamic=True):
        batch = "N" if dynamic else 1
        g = helper.make_graph(self.nodes, self.name,
                              [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, [batch, 3, size, size])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["d0", "d1"])], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)], producer_name="onnx-helper")
        m.ir_version = 7 if self.opset <= 15 else 8
        return m


def resnet(name, opset, depth_blocks=(2, 2, 2, 2), width=64, size=224, classes=1000, **kw):
    b = Builder(name, opset, **kw)
    x = b.conv_bn("input", 3, width, 7, stride=2)
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = width
    for stage, n in enumerate(depth_blocks):
        cout = width << stage
        for i in range(n):
            stride = 2 if i == 0 and stage > 0 else 1
            y = b.conv_bn(x, cin, cout, 3, stride)
            y = b.conv_bn(y, cout, cout, 3, 1, act=None)
            sc = b.conv_bn(x, cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else x
            x = b.node("Relu", [b.node("Add", [y, sc])])
            cin = cout
    return b.model("input", b.head(x, cin, classes, dynamic_flatten=True), size)


def mobilenet(name, opset, width=1.0, size=224, classes=1000, **kw):
    b = Builder(name, opset, **kw)
    def div(v, d=8):
        n = max(d, int(v + d / 2) // d * d)
        return n + d if n < 0.9 * v else n
    cin = div(32 * width)
    x = b.conv_bn("input", 3, cin, 3, 2, act="relu6")
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        cout = div(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x
            if t != 1:
                y = b.conv_bn(y, cin, hidden, 1, act="relu6")
            y = b.conv_bn(y, hidden, hidden, 3, stride, groups=hidden, act="relu6")
            y = b.conv_bn(y, hidden, cout, 1, act=None)
            x = b.node("Add", [y, x]) if stride == 1 and cin == cout else y
            cin = cout
    last = div(1280 * max(1.0, width))
    x = b.conv_bn(x, cin, last, 1, act="relu6")
    return b.model("input", b.head(x, last, classes, dynamic_flatten=False), size)


def small_ops(name, opset):
    """Pad, Concat, Split, Slice, Transpose, Softmax, MatMul, Dropout and a Squeeze/Unsqueeze pair."""
    b = Builder(name, opset)
    x = b.conv_bn("input", 3, 16, 3, 1)
    if opset >= 11:
        x = b.node("Pad", [x, b.ints([0, 0, 1, 1, 0, 0, 1, 1])], mode="constant")
    else:
        x = b.node("Pad", [x], pads=[0, 0, 1, 1, 0, 0, 1, 1], mode="constant")
    x = b.node("AveragePool", [x], kernel_shape=[3, 3], strides=[1, 1])
    if opset >= 13:
        parts = [b.fresh("split"), b.fresh("split")]
        b.nodes.append(helper.make_node("Split", [x, b.ints([8, 8])], parts, axis=1))
    else:
        parts = [b.fresh("split"), b.fresh("split")]
        b.nodes.append(helper.make_node("Split", [x], parts, axis=1, split=[8, 8]))
    y = b.node("Concat", [b.node("Sigmoid", [parts[1]]), parts[0]], axis=1)
    y = b.node("Slice", [y, b.ints([1]), b.ints([15]), b.ints([1])])
    y = b.node("Dropout", [y])
    y = b.node("GlobalAveragePool", [y])
    if opset >= 13:
        y = b.node("Squeeze", [y, b.ints([2, 3])])
        y = b.node("Unsqueeze", [y, b.ints([1])])
    else:
        y = b.node("Squeeze", [y], axes=[2, 3])
        y = b.node("Unsqueeze", [y], axes=[1])
    w = b.weight(rng.uniform(-0.5, 0.5, (14, 10)))
    y = b.node("MatMul", [y, w])
    y = b.node("Transpose", [y], perm=[0, 2, 1])
    y = b.flatten_dynamic(y)
    y = b.node("Softmax", [y], axis=1)
    return b.model("input", y, 32)


def unfoldable_batchnorm(name, opset):
    """BatchNormalization where no convolution can absorb it, so it runs as its own step:
    pre-activation residual blocks (BN -> Relu -> Conv, BN after an Add), a densely connected
    block (Conv -> Concat -> BN -> Relu -> Conv), BN after MaxPool and after a Relu."""
    b = Builder(name, opset)
    def bn(x, c):
        stats = [b.weight(rng.uniform(lo, hi, c)) for lo, hi in [(0.5, 1.5), (-0.2, 0.2), (-0.2, 0.2), (0.5, 1.5)]]
        return b.node("BatchNormalization", [x] + stats, epsilon=1e-5)
    def conv(x, cin, cout, k):
        w = b.weight(rng.uniform(-1, 1, (cout, cin, k, k)) * np.sqrt(3 / (cin * k * k)))
        return b.node("Conv", [x, w], kernel_shape=[k, k], pads=[k // 2] * 4)
    x = conv("input", 3, 8, 3)
    for _ in range(2):  # pre-activation residual block
        y = conv(b.node("Relu", [bn(x, 8)]), 8, 8, 3)
        y = conv(b.node("Relu", [bn(y, 8)]), 8, 8, 3)
        x = b.node("Add", [x, y])
    x = bn(x, 8)  # after the residual Add
    z = conv(b.node("Relu", [x]), 8, 4, 3)
    x = b.node("Concat", [x, z, conv(x, 8, 4, 1)], axis=1)  # dense connection: 16 channels
    x = conv(b.node("Relu", [bn(x, 16)]), 16, 8, 1)
    x = bn(b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2]), 8)
    x = bn(b.node("Relu", [x]), 8)
    return b.model("input", b.head(x, 8, 6, dynamic_flatten=True), 16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--metronome", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--full", action="store_true", help="full-size 224x224 ResNet-18 and MobileNetV2 (default: also built)")
    ap.add_argument("--only", nargs="*", help="build and compare only these models")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)

    models = [
        (resnet("resnet18", 13), [1, 2], {}),
        (mobilenet("mobilenet_v2", 11), [1, 3], {}),
        (resnet("resnet_mini_opset17_external", 17, depth_blocks=(1, 1), width=16, size=64, classes=10), [2], {"external": True}),
        (resnet("resnet_mini_opset21_typed", 21, depth_blocks=(1, 1, 1), width=8, size=48, classes=7, typed_fields=True), [1, 2], {}),
        (mobilenet("mobilenet_mini_opset12_fp16", 12, width=0.35, size=64, classes=5, fp16=True), [2], {}),
        (mobilenet("mobilenet_v2_0.5_opset15", 15, width=0.5, size=96, classes=20), [1], {}),
        (small_ops("ops_opset11", 11), [1, 2], {}),
        (small_ops("ops_opset18", 18), [3], {}),
        (unfoldable_batchnorm("unfoldable_bn_opset13", 13), [1, 2], {}),
    ]
    if args.only:
        models = [m for m in models if m[0].graph.name in args.only]
    results = []
    for model, batches, opts in models:
        name = model.graph.name
        d = os.path.join(args.work, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "model.onnx")
        if opts.get("external"):
            onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin", size_threshold=64)
        else:
            onnx.save(model, path)
        onnx.checker.check_model(path)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        exported = os.path.join(d, "exported.onnx")
        run([args.metronome, "export", path, "--out", exported, "--force"])
        onnx.checker.check_model(exported)
        exported_session = ort.InferenceSession(exported, providers=["CPUExecutionProvider"])
        size = model.graph.input[0].type.tensor_type.shape.dim[2].dim_value
        for batch in batches:
            x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
            xin = os.path.join(d, "input_b%d.npy" % batch)
            np.save(xin, x)
            ref = session.run(None, {"input": x})[0]
            entry = {"model": name, "opset": model.opset_import[0].version, "batch": batch}
            for label, file in [("metronome", path), ("reimported", exported)]:
                out = os.path.join(d, "%s_b%d.npy" % (label, batch))
                run([args.metronome, "infer", file, "--input", xin, "--output", out, "--force"])
                entry[label + "_relerr"] = relerr(np.load(out), ref)
            entry["ort_exported_relerr"] = relerr(exported_session.run(None, {"input": x})[0], ref)
            results.append(entry)
            print("%-32s batch %d: metronome %.2e  reimported %.2e  exported-in-ORT %.2e" % (
                name, batch, entry["metronome_relerr"], entry["reimported_relerr"], entry["ort_exported_relerr"]))
    with open(args.report, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())

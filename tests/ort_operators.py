#!/usr/bin/env python3
"""Single operators and small pattern graphs, run in Metronome and in ONNX Runtime.

Each case is a small graph built with the onnx Python helper at test time (nothing is
committed) around one operator and one of its attribute variants (element-wise math, Pow,
PRelu, variadic Sum/Max/Min/Mean, the reductions, layer and instance normalization), the
same operators fused after a convolution, and the patterns common families build from them:
a squeeze-excite block and a ConvNeXt-style inverted residual with LayerNormalization and
Gelu. Every case has a symbolic batch and runs at batch 1 and 2: through ONNX Runtime (the
reference), through `metronome infer` with the oneDNN plan and with the reference
interpreter, and through `metronome export` (the exported file in ONNX Runtime and back in
Metronome). Errors are relative: the largest absolute difference over the largest absolute
reference value.

Usage: ort_operators.py --metronome BIN --work DIR --report FILE.json [--only NAME ...]
"""
import argparse, json, os, subprocess, sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort

from ort_common import relerr, run

rng = np.random.default_rng(909)


class Graph:
    """A graph under construction: inputs with a symbolic batch, initializers, nodes."""

    def __init__(self, name, opset):
        self.name, self.opset = name, opset
        self.nodes, self.inits, self.inputs, self.counter = [], [], [], 0
        self.data = {}  # input name -> function (batch) -> array

    def fresh(self, p):
        self.counter += 1
        return "%s_%d" % (p, self.counter)

    def input(self, shape, kind="normal"):
        """A graph input of shape [N] + shape; `kind` chooses its values."""
        name = "x%d" % len(self.inputs)
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N"] + list(shape)))
        def make(batch):
            v = rng.standard_normal([batch] + list(shape)).astype(np.float32)
            if kind == "positive":
                v = np.abs(v) + 0.1
            elif kind == "nonzero":
                v = np.sign(v + 1e-9) * (np.abs(v) + 0.5)
            return v.astype(np.float32)
        self.data[name] = make
        return name

    def weight(self, arr):
        name = self.fresh("w")
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    def ints(self, values):
        name = self.fresh("i")
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def node(self, op, inputs, **attrs):
        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, k, groups=1):
        w = self.weight(rng.uniform(-1, 1, (cout, cin // groups, k, k)) * np.sqrt(3 / (cin // groups * k * k)))
        b = self.weight(rng.uniform(-0.2, 0.2, cout))
        return self.node("Conv", [x, w, b], kernel_shape=[k, k], pads=[k // 2] * 4, group=groups)

    def model(self, out):
        g = helper.make_graph(self.nodes, self.name, self.inputs, [], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)], producer_name="onnx-helper")
        m.ir_version = 7 if self.opset <= 15 else 8
        # The output's type as ONNX's shape inference gives it (with the symbolic batch).
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
        info = [v for v in inferred.graph.value_info if v.name == out]
        if not info:
            raise RuntimeError("%s: shape inference gave no type for %s" % (self.name, out))
        m.graph.output.extend(info)
        return m


# MARK: Cases. Each returns (Graph, output name).

SHAPE = [4, 5, 6]


def unary(op, opset=13, kind="normal", **attrs):
    def build(name):
        g = Graph(name, opset)
        return g, g.node(op, [g.input(SHAPE, kind)], **attrs)
    return build


def fused_after_conv(ops, opset=13):
    """Conv -> op -> op ...: the oneDNN plan appends each op it can as a post-op."""
    def build(name):
        g = Graph(name, opset)
        y = g.conv(g.input([3, 6, 6]), 3, 8, 3)
        for op, attrs in ops:
            if op == "Pow":  # the exponent is an input: a constant scalar here
                y = g.node(op, [y, g.weight(np.array(attrs["exponent"], np.float32))])
            else:
                y = g.node(op, [y], **attrs)
        return g, y
    return build


def pow_case(exponent, kind="normal", integer=False, opset=13):
    def build(name):
        g = Graph(name, opset)
        x = g.input(SHAPE, kind)
        if isinstance(exponent, str):
            e = g.node("Sigmoid", [g.input(SHAPE)])
        elif integer:
            e = g.ints(exponent)
        else:
            e = g.weight(exponent)
        return g, g.node("Pow", [x, e])
    return build


def prelu_case(slope_shape):
    def build(name):
        g = Graph(name, 13)
        slope = g.weight(rng.uniform(0.05, 0.5, slope_shape))
        return g, g.node("PRelu", [g.input(SHAPE), slope])
    return build


def variadic(op, operands):
    """`operands`: "x" (the input), "computed" (Sigmoid of a second input), or a constant's shape."""
    def build(name):
        g = Graph(name, 13)
        x = g.input(SHAPE)
        ins = []
        for o in operands:
            if o == "x":
                ins.append(x)
            elif o == "computed":
                ins.append(g.node("Sigmoid", [g.input(SHAPE)]))
            else:
                ins.append(g.weight(rng.standard_normal(o)))
        return g, g.node(op, ins)
    return build


def reduce_case(op, opset, axes, keepdims=None, noop=None, axes_as_input=None, kind="normal"):
    """Axes as an attribute or an input as the opset has them, unless `axes_as_input` says."""
    def build(name):
        g = Graph(name, opset)
        x = g.input(SHAPE, kind)
        as_input = axes_as_input if axes_as_input is not None else (opset >= 18 or (op == "ReduceSum" and opset >= 13))
        attrs, ins = {}, [x]
        if keepdims is not None:
            attrs["keepdims"] = keepdims
        if noop is not None:
            attrs["noop_with_empty_axes"] = noop
        if axes is not None:
            if as_input:
                ins.append(g.ints(axes))
            else:
                attrs["axes"] = axes
        return g, g.node(op, ins, **attrs)
    return build


def layer_norm(axis, bias=True, epsilon=None):
    def build(name):
        g = Graph(name, 17)
        x = g.input(SHAPE)
        rank = len(SHAPE) + 1
        a = axis if axis >= 0 else axis + rank
        row = ([None] + SHAPE)[a:]
        ins = [x, g.weight(rng.uniform(0.5, 1.5, row))]
        if bias:
            ins.append(g.weight(rng.uniform(-0.5, 0.5, row)))
        attrs = {"axis": axis}
        if epsilon is not None:
            attrs["epsilon"] = epsilon
        return g, g.node("LayerNormalization", ins, **attrs)
    return build


def instance_norm(epsilon=None):
    def build(name):
        g = Graph(name, 13)
        x = g.input(SHAPE)
        attrs = {} if epsilon is None else {"epsilon": epsilon}
        return g, g.node("InstanceNormalization", [x, g.weight(rng.uniform(0.5, 1.5, 4)),
                                                   g.weight(rng.uniform(-0.5, 0.5, 4))], **attrs)
    return build


def squeeze_excite(pool, opset):
    """Conv -> Relu -> pool (GlobalAveragePool or ReduceMean over H, W) -> Conv -> Relu ->
    Conv -> Sigmoid -> Mul with the features."""
    def build(name):
        g = Graph(name, opset)
        f = g.node("Relu", [g.conv(g.input([3, 8, 8]), 3, 16, 3)])
        if pool == "gap":
            s = g.node("GlobalAveragePool", [f])
        elif opset >= 18:
            s = g.node("ReduceMean", [f, g.ints([2, 3])], keepdims=1)
        else:
            s = g.node("ReduceMean", [f], axes=[2, 3], keepdims=1)
        s = g.node("Relu", [g.conv(s, 16, 4, 1)])
        s = g.node("Sigmoid", [g.conv(s, 4, 16, 1)])
        return g, g.node("Mul", [f, s])
    return build


def convnext(gelu_form):
    """Depthwise 7x7 conv -> NHWC -> LayerNorm -> MatMul -> Gelu -> MatMul -> NCHW -> Add,
    with Gelu as the opset-20 operator or as torch's opset-17 export (Erf formula)."""
    def build(name):
        g = Graph(name, 20 if gelu_form == "op" else 17)
        c = 16
        x = g.input([c, 8, 8])
        y = g.conv(x, c, c, 7, groups=c)
        y = g.node("Transpose", [y], perm=[0, 2, 3, 1])
        y = g.node("LayerNormalization", [y, g.weight(rng.uniform(0.5, 1.5, c)), g.weight(rng.uniform(-0.2, 0.2, c))],
                   axis=-1, epsilon=1e-6)
        y = g.node("Add", [g.node("MatMul", [y, g.weight(rng.standard_normal((c, 4 * c)) / np.sqrt(c))]),
                           g.weight(rng.uniform(-0.1, 0.1, 4 * c))])
        if gelu_form == "op":
            y = g.node("Gelu", [y])
        else:
            e = g.node("Erf", [g.node("Div", [y, g.weight(np.array(np.sqrt(2), np.float32))])])
            y = g.node("Mul", [g.node("Mul", [y, g.node("Add", [e, g.weight(np.array(1, np.float32))])]),
                               g.weight(np.array(0.5, np.float32))])
        y = g.node("Add", [g.node("MatMul", [y, g.weight(rng.standard_normal((4 * c, c)) / np.sqrt(4 * c))]),
                           g.weight(rng.uniform(-0.1, 0.1, c))])
        y = g.node("Transpose", [y], perm=[0, 3, 1, 2])
        return g, g.node("Add", [x, y])
    return build


def audio_cnn():
    """A 1-D (NCW) network as audio and sequence models export it: Conv1d (padded, strided,
    grouped, dilated) -> Relu -> MaxPool1d -> AveragePool1d -> ConvTranspose1d -> MatMul of a
    1-D vector."""
    def build(name):
        g = Graph(name, 17)
        x = g.input([4, 40])
        y = g.node("Conv", [x, g.weight(rng.standard_normal((8, 2, 5)) * 0.3), g.weight(rng.uniform(-0.2, 0.2, 8))],
                   pads=[2, 1], strides=[2], group=2)
        y = g.node("Relu", [g.node("Conv", [y, g.weight(rng.standard_normal((8, 8, 3)) * 0.2)], dilations=[2], pads=[2, 2])])
        y = g.node("MaxPool", [y], kernel_shape=[3], strides=[2], pads=[1, 1])
        y = g.node("AveragePool", [y], kernel_shape=[2], strides=[1], pads=[0, 1], count_include_pad=0)
        y = g.node("ConvTranspose", [y, g.weight(rng.standard_normal((8, 6, 3)) * 0.3)], strides=[2], pads=[1, 0], output_padding=[1])
        return g, g.node("MatMul", [y, g.weight(rng.standard_normal(21) * 0.2)])
    return build


def video_cnn():
    """A 3-D (NCDHW) network as video and volumetric models export it: Conv3d (padded,
    strided, grouped, dilated, SAME_UPPER) -> Relu -> MaxPool3d (ceil mode) -> AveragePool3d
    (counting padding) -> GlobalAveragePool over the volume."""
    def build(name):
        g = Graph(name, 17)
        x = g.input([4, 6, 9, 10])
        y = g.node("Conv", [x, g.weight(rng.standard_normal((8, 2, 3, 3, 3)) * 0.2), g.weight(rng.uniform(-0.2, 0.2, 8))],
                   pads=[1, 1, 0, 1, 0, 1], strides=[1, 2, 1], group=2)
        y = g.node("Conv", [y, g.weight(rng.standard_normal((8, 8, 2, 3, 3)) * 0.1)], dilations=[1, 1, 2], pads=[0, 1, 2, 1, 1, 2])
        y = g.node("Relu", [g.node("Conv", [y, g.weight(rng.standard_normal((8, 8, 3, 1, 3)) * 0.2)], auto_pad="SAME_UPPER")])
        y = g.node("MaxPool", [y], kernel_shape=[2, 2, 2], strides=[2, 2, 2], ceil_mode=1)
        y = g.node("AveragePool", [y], kernel_shape=[2, 2, 3], pads=[1, 0, 1, 0, 1, 1], count_include_pad=1)
        return g, g.node("GlobalAveragePool", [y])
    return build


def gather_runtime():
    """Gather of computed data with constant indices: a 2-D index tensor on a spatial axis,
    then a scalar index that drops the last axis."""
    def build(name):
        g = Graph(name, 13)
        y = g.node("Relu", [g.input(SHAPE)])
        y = g.node("Gather", [y, g.ints([[2, 0], [1, 1]])], axis=2)
        return g, g.node("Gather", [y, g.ints(3)], axis=-1)
    return build


CASES = [
    ("gather_runtime", gather_runtime()),
    ("audio_cnn_1d", audio_cnn()),
    ("video_cnn_3d", video_cnn()),
    ("lrn_size5", unary("LRN", size=5)),
    ("lrn_size3_params", unary("LRN", size=3, alpha=0.01, beta=0.6, bias=2.0)),
    ("erf", unary("Erf")),
    ("gelu_none_opset20", unary("Gelu", 20)),
    ("gelu_tanh_opset20", unary("Gelu", 20, approximate="tanh")),
    ("sqrt", unary("Sqrt", kind="positive")),
    ("exp", unary("Exp")),
    ("log", unary("Log", kind="positive")),
    ("abs", unary("Abs")),
    ("neg", unary("Neg")),
    ("reciprocal", unary("Reciprocal", kind="nonzero")),
    ("elu_default", unary("Elu")),
    ("elu_alpha", unary("Elu", alpha=0.3)),
    ("selu_default", unary("Selu")),
    ("selu_alpha_gamma", unary("Selu", alpha=2.0, gamma=0.5)),
    ("softplus", unary("Softplus")),
    ("mish_opset18", unary("Mish", 18)),
    ("conv_gelu_fused", fused_after_conv([("Gelu", {})], 20)),
    # The second Elu repeats oneDNN's elu algorithm with another alpha: oneDNN 2.6 computes
    # that post-op chain wrongly, so Metronome must leave it unfused.
    ("conv_elu_selu_fused", fused_after_conv([("Elu", {"alpha": 0.7}), ("Selu", {})])),
    ("conv_elu_elu", fused_after_conv([("Elu", {"alpha": 0.7}), ("Elu", {"alpha": 0.5})])),
    ("conv_hardsigmoid_neg", fused_after_conv([("HardSigmoid", {}), ("Neg", {})])),
    ("conv_abs_pow_pow", fused_after_conv([("Abs", {}), ("Pow", {"exponent": 2.0}), ("Pow", {"exponent": 0.5})])),
    ("conv_mish_fused", fused_after_conv([("Mish", {})], 18)),
    ("conv_abs_sqrt_fused", fused_after_conv([("Abs", {}), ("Sqrt", {})])),
    ("conv_softplus_log_unfused", fused_after_conv([("Softplus", {}), ("Log", {})])),
    ("conv_neg_exp_fused", fused_after_conv([("Neg", {}), ("Exp", {})])),
    ("conv_erf_unfused", fused_after_conv([("Erf", {})])),
    ("pow_square", pow_case(np.array(2.0, np.float32))),
    ("pow_cube_int64", pow_case(3, integer=True)),
    ("pow_sqrt", pow_case(np.array([0.5], np.float32), kind="positive")),
    ("pow_reciprocal", pow_case(np.array(-1.0, np.float32), kind="nonzero")),
    ("pow_per_channel", pow_case(rng.uniform(0.5, 2, (4, 1, 1)).astype(np.float32), kind="positive")),
    ("pow_computed", pow_case("computed", kind="positive")),
    ("prelu_per_channel", prelu_case((4, 1, 1))),
    ("prelu_scalar", prelu_case((1,))),
    ("prelu_full", prelu_case((4, 5, 6))),
    ("sum_three_broadcast", variadic("Sum", ["x", (4, 1, 1), "computed"])),
    ("sum_single", variadic("Sum", ["x"])),
    ("max_scalar", variadic("Max", ["x", ()])),
    ("min_two", variadic("Min", ["x", "computed"])),
    ("mean_three", variadic("Mean", ["x", (6,), "computed"])),
    ("reduce_mean_hw_keep_opset13", reduce_case("ReduceMean", 13, [2, 3])),
    ("reduce_mean_hw_keep_opset18", reduce_case("ReduceMean", 18, [2, 3])),
    ("reduce_mean_channels_drop", reduce_case("ReduceMean", 13, [1], keepdims=0)),
    ("reduce_max_last", reduce_case("ReduceMax", 13, [-1])),
    ("reduce_max_opset18_drop", reduce_case("ReduceMax", 18, [1, 3], keepdims=0)),
    ("reduce_min_opset18", reduce_case("ReduceMin", 18, [-2])),
    ("reduce_min_all", reduce_case("ReduceMin", 13, None, keepdims=0)),
    ("reduce_sum_opset11_attr", reduce_case("ReduceSum", 11, [1, 2])),
    ("reduce_sum_opset13_input", reduce_case("ReduceSum", 13, [2], keepdims=0)),
    ("reduce_sum_all_keep", reduce_case("ReduceSum", 13, None)),
    ("reduce_sum_noop_empty", reduce_case("ReduceSum", 13, None, noop=1)),
    ("reduce_mean_noop_empty_opset18", reduce_case("ReduceMean", 18, None, noop=1)),
    ("reduce_l2_opset13", reduce_case("ReduceL2", 13, [2, 3])),
    ("reduce_l2_opset18_batch", reduce_case("ReduceL2", 18, [0, 3], keepdims=0)),
    ("reduce_l1_opset13", reduce_case("ReduceL1", 13, [2, 3])),
    ("reduce_l1_opset18_drop", reduce_case("ReduceL1", 18, [1], keepdims=0)),
    ("reduce_sum_square_opset13", reduce_case("ReduceSumSquare", 13, [-1])),
    ("reduce_sum_square_opset18", reduce_case("ReduceSumSquare", 18, [0, 3])),
    ("reduce_prod_opset13", reduce_case("ReduceProd", 13, [2])),
    ("reduce_prod_opset18_drop", reduce_case("ReduceProd", 18, [1, 3], keepdims=0)),
    ("reduce_log_sum_opset13", reduce_case("ReduceLogSum", 13, [2, 3], kind="positive")),
    ("reduce_log_sum_opset18", reduce_case("ReduceLogSum", 18, [1], kind="positive")),
    ("reduce_log_sum_exp_opset13", reduce_case("ReduceLogSumExp", 13, [2, 3])),
    ("reduce_log_sum_exp_opset18_all", reduce_case("ReduceLogSumExp", 18, None, keepdims=0)),
    ("layer_norm_last", layer_norm(-1)),
    ("layer_norm_axis2_no_bias", layer_norm(2, bias=False)),
    ("layer_norm_axis1_eps", layer_norm(1, epsilon=1e-3)),
    ("instance_norm", instance_norm()),
    ("instance_norm_eps", instance_norm(1e-2)),
    ("se_block_gap", squeeze_excite("gap", 13)),
    ("se_block_reduce_mean_opset13", squeeze_excite("reduce", 13)),
    ("se_block_reduce_mean_opset18", squeeze_excite("reduce", 18)),
    ("convnext_block_gelu_opset20", convnext("op")),
    ("convnext_block_erf_opset17", convnext("erf")),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--metronome", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--only", nargs="*", help="run only these cases")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    results = []
    for name, build in CASES:
        if args.only and name not in args.only:
            continue
        g, out = build(name)
        model = g.model(out)
        d = os.path.join(args.work, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "model.onnx")
        onnx.save(model, path)
        onnx.checker.check_model(path)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        exported = os.path.join(d, "exported.onnx")
        run([args.metronome, "export", path, "--out", exported, "--force"])
        onnx.checker.check_model(exported)
        exported_session = ort.InferenceSession(exported, providers=["CPUExecutionProvider"])
        for batch in [1, 2]:
            feeds, flags = {}, []
            for k, make in g.data.items():
                feeds[k] = make(batch)
                f = os.path.join(d, "%s_b%d.npy" % (k, batch))
                np.save(f, feeds[k])
                flags += ["--input", "%s=%s" % (k, f)]
            ref = session.run(None, feeds)[0]
            entry = {"case": name, "opset": g.opset, "batch": batch, "ops": sorted({n.op_type for n in g.nodes})}
            for label, file, backend in [("onednn", path, "onednn"), ("reference", path, "reference"),
                                         ("reimported", exported, "onednn")]:
                o = os.path.join(d, "%s_b%d.npy" % (label, batch))
                run([args.metronome, "infer", file, "--backend", backend, "--output", o, "--force"] + flags)
                entry[label + "_relerr"] = relerr(np.load(o), ref)
            entry["ort_exported_relerr"] = relerr(exported_session.run(None, feeds)[0], ref)
            results.append(entry)
            print("%-34s batch %d: onednn %.1e  reference %.1e  reimported %.1e  exported-in-ORT %.1e" % (
                name, batch, entry["onednn_relerr"], entry["reference_relerr"], entry["reimported_relerr"],
                entry["ort_exported_relerr"]))
    with open(args.report, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())

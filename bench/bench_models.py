#!/usr/bin/env python3
"""ONNX models in the patterns of well-known CNN families, with seeded random weights, for the
engine benchmark: squeeze-excite ResNet blocks, RegNet-style grouped convolutions with
squeeze-excite, ShuffleNet-style channel shuffle, and ConvNeXt-style blocks (depthwise 7×7,
LayerNorm, MLP with Gelu). Batch is symbolic (N), input N×3×224×224.

    python3 bench/bench_models.py OUTDIR
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self, name, seed=0):
        self.name = name
        self.nodes, self.inits = [], []
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def fresh(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, array, prefix="w"):
        name = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, prefix=None, **attrs):
        out = self.fresh(prefix or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, k, stride=1, groups=1, bias=True):
        fan = cin // groups * k * k
        w = self.const((self.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2 / fan)).astype(np.float32))
        ins = [x, w]
        if bias:
            ins.append(self.const((self.rng.standard_normal(cout) * 0.01).astype(np.float32), "b"))
        p = k // 2
        return self.node("Conv", ins, kernel_shape=[k, k], strides=[stride, stride], pads=[p, p, p, p], group=groups)

    def relu(self, x):
        return self.node("Relu", [x])

    def se(self, x, c, reduced):
        s = self.node("GlobalAveragePool", [x])
        s = self.relu(self.conv(s, c, reduced, 1))
        s = self.node("Sigmoid", [self.conv(s, reduced, c, 1)])
        return self.node("Mul", [x, s])

    def head(self, x, c, classes=1000):
        x = self.node("GlobalAveragePool", [x])
        x = self.node("Flatten", [x], axis=1)
        w = self.const((self.rng.standard_normal((c, classes)) * np.sqrt(1 / c)).astype(np.float32))
        b = self.const(np.zeros(classes, np.float32), "b")
        return self.node("Gemm", [x, w, b])

    def model(self, x_in, y, opset=17):
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info(x_in, TensorProto.FLOAT, ["N", 3, 224, 224])],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["N", 1000])], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        onnx.checker.check_model(m)
        return m


def se_resnet():
    b = Builder("se_resnet18", 1)
    x = b.relu(b.conv("input", 3, 64, 7, stride=2))
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c = 64
    for stage, cout in enumerate([64, 128, 256, 512]):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            y = b.relu(b.conv(x, c, cout, 3, stride))
            y = b.se(b.conv(y, cout, cout, 3), cout, cout // 16)
            skip = x if stride == 1 and c == cout else b.conv(x, c, cout, 1, stride)
            x = b.relu(b.node("Add", [y, skip]))
            c = cout
    return b.model("input", b.head(x, c))


def regnet():
    # RegNetY-800MF-like widths with group width 16 and squeeze-excite.
    b = Builder("regnet_y", 2)
    x = b.relu(b.conv("input", 3, 32, 3, stride=2))
    c = 32
    for cout, depth in [(64, 1), (128, 3), (320, 8), (768, 2)]:
        for block in range(depth):
            stride = 2 if block == 0 else 1
            y = b.relu(b.conv(x, c, cout, 1))
            y = b.relu(b.conv(y, cout, cout, 3, stride, groups=cout // 16))
            y = b.se(y, cout, max(8, c // 4))
            y = b.conv(y, cout, cout, 1)
            skip = x if stride == 1 and c == cout else b.conv(x, c, cout, 1, stride)
            x = b.relu(b.node("Add", [y, skip]))
            c = cout
    return b.model("input", b.head(x, c))


def shufflenet():
    # ShuffleNetV2-1.0-like: split, branch (1×1, depthwise 3×3, 1×1), concat, channel shuffle.
    b = Builder("shufflenet_v2", 3)
    x = b.relu(b.conv("input", 3, 24, 3, stride=2))
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c = 24

    def shuffle(t, channels, h):
        t = b.node("Reshape", [t, b.const(np.array([-1, 2, channels // 2, h, h], np.int64), "shape")])
        t = b.node("Transpose", [t], perm=[0, 2, 1, 3, 4])
        return b.node("Reshape", [t, b.const(np.array([-1, channels, h, h], np.int64), "shape")])

    size = 56
    for cout, repeats in [(116, 4), (232, 8), (464, 4)]:
        for i in range(repeats):
            if i == 0:
                size //= 2
                left = b.conv(b.conv(x, c, c, 3, 2, groups=c), c, cout // 2, 1)
                left = b.relu(left)
                right = b.relu(b.conv(x, c, cout // 2, 1))
                right = b.conv(right, cout // 2, cout // 2, 3, 2, groups=cout // 2)
                right = b.relu(b.conv(right, cout // 2, cout // 2, 1))
            else:
                half = cout // 2
                split = b.fresh("split")
                left, right_in = split + "_a", split + "_b"
                b.nodes.append(helper.make_node("Split", [x, b.const(np.array([half, half], np.int64), "sizes")],
                                                [left, right_in], name=split, axis=1))
                right = b.relu(b.conv(right_in, half, half, 1))
                right = b.conv(right, half, half, 3, 1, groups=half)
                right = b.relu(b.conv(right, half, half, 1))
            x = shuffle(b.node("Concat", [left, right], axis=1), cout, size)
            c = cout
    x = b.relu(b.conv(x, c, 1024, 1))
    return b.model("input", b.head(x, 1024))


def convnext():
    # ConvNeXt-T-like at reduced depth: patchify stem, blocks of depthwise 7×7 → LayerNorm
    # (channels last) → Linear ×4 → Gelu → Linear → residual, downsampling between stages.
    b = Builder("convnext", 4)
    x = b.node("Conv", ["input", b.const((b.rng.standard_normal((96, 3, 4, 4)) * 0.2).astype(np.float32))],
               kernel_shape=[4, 4], strides=[4, 4])
    c = 96

    def layer_norm_cl(t, channels):
        scale = b.const(np.ones(channels, np.float32), "ln_scale")
        bias = b.const(np.zeros(channels, np.float32), "ln_bias")
        return b.node("LayerNormalization", [t, scale, bias], axis=-1, epsilon=1e-6)

    def linear(t, cin, cout):
        w = b.const((b.rng.standard_normal((cin, cout)) * np.sqrt(1 / cin)).astype(np.float32))
        return b.node("Add", [b.node("MatMul", [t, w]), b.const(np.zeros(cout, np.float32), "b")])

    for stage, (cout, depth) in enumerate([(96, 2), (192, 2), (384, 4), (768, 2)]):
        if stage > 0:
            x = b.node(
                "Conv", [x, b.const((b.rng.standard_normal((cout, c, 2, 2)) * np.sqrt(2 / (4 * c))).astype(np.float32))],
                kernel_shape=[2, 2], strides=[2, 2])
            c = cout
        for _ in range(depth):
            y = b.conv(x, c, c, 7, groups=c)
            y = b.node("Transpose", [y], perm=[0, 2, 3, 1])
            y = layer_norm_cl(y, c)
            y = linear(y, c, 4 * c)
            y = b.node("Gelu", [y])
            y = linear(y, 4 * c, c)
            y = b.node("Transpose", [y], perm=[0, 3, 1, 2])
            x = b.node("Add", [x, y])
    return b.model("input", b.head(x, c), opset=20)


MODELS = {"se_resnet18": se_resnet, "regnet_y": regnet, "shufflenet_v2": shufflenet, "convnext": convnext}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    for name, build in MODELS.items():
        path = os.path.join(out, f"{name}.onnx")
        onnx.save(build(), path)
        print(path)


if __name__ == "__main__":
    main()

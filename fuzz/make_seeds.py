#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz corpora (fuzz/corpus/<target>/seed-*): small valid
files of each format, so that fuzzing starts from the structures the loaders accept, plus
the hostile inputs issue 8 names. Everything else in the corpus directories was found by
libFuzzer (`make fuzz`) and kept because it reached new code.

Usage: fuzz/make_seeds.py   (needs numpy, onnx, Pillow; run from the repository root)
"""
import io, os, shutil, subprocess, sys, tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def checkpoints():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "make_checkpoints.py"), tmp], check=True, capture_output=True)
        for name in sorted(os.listdir(tmp)):
            if name.endswith(".pt") or name.endswith(".pkl"):
                with open(os.path.join(tmp, name), "rb") as f:
                    write("checkpoint", name.replace(".", "-"), f.read())
    # Issue 8's hostile pickles: a 2^64-leaf shared tuple, deep nesting, a self-containing list.
    write("checkpoint", "dup-tuple2-dag", bytes([0x80, 0x02, 0x4E]) + bytes([0x32, 0x86]) * 64 + bytes([0x2E]))
    write("checkpoint", "deep-tuple1", bytes([0x80, 0x02, 0x4E]) + bytes([0x85]) * 2000 + bytes([0x2E]))
    write("checkpoint", "self-list", bytes([0x80, 0x02, 0x5D, 0x94, 0x68, 0x00, 0x61, 0x2E]))


def onnx_models():
    rng = np.random.default_rng(1)
    def w(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
    def ints(name, values):
        return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)
    # Conv -> BN -> Relu -> MaxPool -> BN -> GAP -> dynamic flatten -> Gemm -> Softmax.
    nodes = [
        helper.make_node("Conv", ["x", "cw"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["p", "s", "b", "m", "v"], ["p2"]),
        helper.make_node("Concat", ["p2", "p"], ["cc"], axis=1),
        helper.make_node("GlobalAveragePool", ["cc"], ["g"]),
        helper.make_node("Shape", ["g"], ["sh"]),
        helper.make_node("Gather", ["sh", "zero"], ["n0"], axis=0),
        helper.make_node("Unsqueeze", ["n0", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["tgt"], axis=0),
        helper.make_node("Reshape", ["g", "tgt"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["o"], transB=1),
        helper.make_node("Softmax", ["o"], ["y"], axis=1),
    ]
    inits = [w("cw", (4, 3, 3, 3)), numpy_helper.from_array(np.abs(rng.standard_normal(4)).astype(np.float32) + 0.5, "s"),
             w("b", (4,)), w("m", (4,)), numpy_helper.from_array(np.ones(4, np.float32), "v"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"), ints("ax0", [0]), ints("minus1", [-1]),
             w("fw", (5, 8)), w("fb", (5,))]
    g = helper.make_graph(nodes, "seed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    write("onnx", "small-cnn", helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    # Import-time evaluation: ConstantOfShape, Range, Cast, integer arithmetic and Slice.
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["k"], value=numpy_helper.from_array(np.array([0.5], np.float32))),
        helper.make_node("Range", ["r0", "r1", "r2"], ["rg"]),
        helper.make_node("Cast", ["rg"], ["rf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["shape", "two"], ["sh2"]),
        helper.make_node("Slice", ["sh2", "st", "en"], ["sl"]),
        helper.make_node("Add", ["x", "k"], ["a"]),
        helper.make_node("Add", ["a", "rf"], ["y"]),
    ]
    inits = [ints("shape", [4]), numpy_helper.from_array(np.array(0, np.int64), "r0"),
             numpy_helper.from_array(np.array(8, np.int64), "r1"), numpy_helper.from_array(np.array(2, np.int64), "r2"),
             ints("two", [2]), ints("st", [0]), ints("en", [1])]
    g = helper.make_graph(nodes, "consts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    write("onnx", "import-time-ops", helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    # Opset 9 legacy attributes (Pad/Slice attributes, Softmax coercion).
    nodes = [helper.make_node("Pad", ["x"], ["p"], pads=[0, 1, 0, 1], mode="constant"),
             helper.make_node("Slice", ["p"], ["s"], starts=[1], ends=[5], axes=[1]),
             helper.make_node("Softmax", ["s"], ["y"], axis=1)]
    g = helper.make_graph(nodes, "legacy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    write("onnx", "legacy-opset9", helper.make_model(g, opset_imports=[helper.make_opsetid("", 9)]).SerializeToString())


def npy():
    for name, a in [("f32", np.arange(12, dtype=np.float32).reshape(3, 4)), ("f64", np.linspace(0, 1, 5)),
                    ("i64", np.arange(6, dtype=np.int64).reshape(2, 3)), ("scalar", np.float32(3.5)),
                    ("fortran", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))),
                    ("big-endian", np.arange(4, dtype=">f4")), ("f16", np.arange(4, dtype=np.float16)),
                    ("empty", np.zeros((0, 3), np.float32)), ("u8", np.arange(5, dtype=np.uint8))]:
        b = io.BytesIO()
        np.save(b, a)
        write("npy", name, b.getvalue())


def images():
    rng = np.random.default_rng(2)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8), "RGB")
    for name, img, fmt, opts in [("rgb-png", rgb, "PNG", {}), ("gray-png", rgb.convert("L"), "PNG", {}),
                                 ("palette-png", rgb.convert("P"), "PNG", {}), ("rgba-png", rgb.convert("RGBA"), "PNG", {}),
                                 ("rgb-jpeg", rgb, "JPEG", {"quality": 80}), ("gray-jpeg", rgb.convert("L"), "JPEG", {}),
                                 ("progressive-jpeg", rgb, "JPEG", {"progressive": True}),
                                 ("cmyk-jpeg", rgb.convert("CMYK"), "JPEG", {})]:
        b = io.BytesIO()
        img.save(b, fmt, **opts)
        write("image", name, b.getvalue())


def tasksets():
    ex = os.path.join(ROOT, "examples")
    for name in sorted(os.listdir(ex)):
        if name.endswith(".yaml"):
            with open(os.path.join(ex, name), "rb") as f:
                write("taskset", name.replace(".", "-"), f.read())


if __name__ == "__main__":
    checkpoints(); onnx_models(); npy(); images(); tasksets()
    for t in sorted(os.listdir(CORPUS)):
        print(t, len(os.listdir(os.path.join(CORPUS, t))), "files")

#!/usr/bin/env python3
"""Resize/Upsample, Expand, Tile, DepthToSpace, SpaceToDepth, Pad modes, negative-step Slice
and ConvTranspose, in Metronome and in ONNX Runtime.

Each model is built with the onnx Python helper at test time (nothing is committed) and has
one graph input and many outputs: one per attribute variant (every
coordinate_transformation_mode x nearest_mode, scales vs sizes, reflect/edge, DCR/CRD,
ConvTranspose groups/output_padding/pads...), plus pattern graphs that common model
families use (a segmentation head with a bilinear x4 Resize, an FPN upsample-and-add, a
channel shuffle, a ConvTranspose decoder). Every output is computed by ONNX Runtime (the
reference) and by `metronome infer` with the oneDNN plan and with the reference kernels;
exportable models are also written by `metronome export` and run in ONNX Runtime and back
in Metronome. The relative error is the largest absolute difference over the largest
absolute reference value.

Usage: ort_resampling.py --metronome BIN --work DIR --report FILE.json [--only NAME ...]
"""
import argparse, json, os, subprocess, sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort

from ort_common import relerr, run

rng = np.random.default_rng(7)
ort.set_default_logger_severity(3)  # unused-initializer warnings of the exported models

COORDS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


class Model:
    """A graph with one input `input` of shape [batch, ...] and one output per variant."""

    def __init__(self, name, opset, shape, batch="N", exportable=True, batches=(1, 2)):
        self.name, self.opset, self.shape, self.batch = name, opset, list(shape), batch
        self.exportable, self.batches = exportable, list(batches)
        self.nodes, self.inits, self.outputs, self.counter = [], [], [], 0

    def fresh(self, p):
        self.counter += 1
        return "%s_%d" % (p, self.counter)

    def floats(self, values, name=None):
        name = name or self.fresh("f")
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.float32), name))
        return name

    def ints(self, values, name=None):
        name = name or self.fresh("i")
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def roi(self):
        """Resize's unused roi: required (an empty tensor) before opset 13, left out after."""
        return self.floats([]) if self.opset < 13 else ""

    def node(self, op, inputs, **attrs):
        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def output(self, value, label):
        """Exposes `value` as a graph output named after the variant."""
        name = "%s__%s" % (label, self.fresh("o"))
        self.nodes.append(helper.make_node("Identity", [value], [name], name=name))
        self.outputs.append(name)

    def conv(self, x, cin, cout, k, stride=1, groups=1, relu=True):
        w = self.floats(rng.uniform(-1, 1, (cout, cin // groups, k, k)) * np.sqrt(3 / (cin // groups * k * k)))
        b = self.floats(rng.uniform(-0.1, 0.1, cout))
        y = self.node("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=groups)
        return self.node("Relu", [y]) if relu else y

    def build(self):
        g = helper.make_graph(self.nodes, self.name,
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [self.batch] + self.shape)],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in self.outputs], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)], producer_name="onnx-helper")
        m.ir_version = 7 if self.opset <= 15 else 8
        # Declare each output with its rank (symbolic extents), as exporters do.
        inferred = onnx.shape_inference.infer_shapes(m)
        ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in list(inferred.graph.value_info) + list(inferred.graph.output)
                 if v.type.tensor_type.HasField("shape")}
        del m.graph.output[:]
        m.graph.output.extend(helper.make_tensor_value_info(o, TensorProto.FLOAT, ["%s_d%d" % (o, i) for i in range(ranks[o])])
                              for o in self.outputs)
        return m


# --- Resize and Upsample ---------------------------------------------------------------

def resize_nearest(opset=13):
    """Every coordinate_transformation_mode x nearest_mode, integer up-scaling (where oneDNN
    may run) and fractional up/down-scaling (reference kernel)."""
    m = Model("resize_nearest_opset%d" % opset, opset, [3, 5, 7])
    for coord in COORDS:
        for mode in NEAREST:
            for label, scales in [("x2x3", [1, 1, 2, 3]), ("x0.6x1.5", [1, 1, 0.6, 1.5]), ("x1.7x0.5", [1, 1, 1.7, 0.5])]:
                if coord == "align_corners" and label != "x2x3":
                    continue  # fractional scale x length: refused (ONNX Runtime and the ONNX reference differ)
                y = m.node("Resize", ["input", m.roi(), m.floats(scales)], mode="nearest",
                           coordinate_transformation_mode=coord, nearest_mode=mode)
                m.output(y, "nearest_%s_%s_%s" % (coord, mode, label))
    return m


def resize_linear(opset=13):
    m = Model("resize_linear_opset%d" % opset, opset, [3, 5, 7])
    for coord in COORDS:
        for label, scales in [("x2", [1, 1, 2, 2]), ("x4", [1, 1, 4, 4]), ("x0.6x1.5", [1, 1, 0.6, 1.5]), ("x3x0.5", [1, 1, 3, 0.5])]:
            if coord == "align_corners" and label in ("x0.6x1.5", "x3x0.5"):
                continue  # fractional scale x length: refused (ONNX Runtime and the ONNX reference differ)
            y = m.node("Resize", ["input", m.roi(), m.floats(scales)], mode="linear", coordinate_transformation_mode=coord)
            m.output(y, "linear_%s_%s" % (coord, label))
    return m


def resize_cubic(opset=13):
    """Cubic: every coordinate mode, growing and shrinking scales, the default a = -0.75 and
    a = -0.5 with exclude_outside (what PyTorch's bicubic exports)."""
    m = Model("resize_cubic_opset%d" % opset, opset, [3, 5, 7])
    for coord in COORDS:
        for label, scales in [("x2", [1, 1, 2, 2]), ("x0.6x1.5", [1, 1, 0.6, 1.5])]:
            if coord == "align_corners" and label == "x0.6x1.5":
                continue  # fractional scale x length: refused
            for a, exclude in [(-0.75, 0), (-0.5, 1)]:
                y = m.node("Resize", ["input", m.roi(), m.floats(scales)], mode="cubic", coordinate_transformation_mode=coord,
                           cubic_coeff_a=a, exclude_outside=exclude)
                m.output(y, "cubic_%s_%s_a%g_ex%d" % (coord, label, a, exclude))
    return m


def resize_crop(opset=13):
    """tf_crop_and_resize in every mode: a region inside the input, one reaching outside it
    (extrapolation value), and scales over the whole input."""
    m = Model("resize_crop_opset%d" % opset, opset, [3, 6, 8], batch=2, batches=[2])
    for mode in ["nearest", "linear", "cubic"]:
        # With scales, implementations agree only on a whole-axis region (refused otherwise).
        roi = m.floats([0, 0, 0, 0, 1, 1, 1, 1])
        m.output(m.node("Resize", ["input", roi, m.floats([1, 1, 1.5, 2])], mode=mode,
                        coordinate_transformation_mode="tf_crop_and_resize"), "crop_%s_scales" % mode)
        m.output(m.node("Resize", ["input", m.floats([0, 0, 0.2, 0.1, 1, 1, 0.8, 0.9]), "", m.ints([2, 3, 7, 5])], mode=mode,
                        coordinate_transformation_mode="tf_crop_and_resize"), "crop_%s_inside" % mode)
        out = m.node("Resize", ["input", m.floats([0, 0, -0.2, 0.3, 1, 1, 1.1, 0.7]), "", m.ints([2, 3, 5, 4])],
                     mode=mode, coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-1.5)
        m.output(out, "crop_%s_sizes_outside" % mode)
    return m


def resize_sizes(batch, opset):
    """Sizes instead of scales (sizes include the batch, so the batch is fixed). Opset 11
    writes the unused roi and scales as empty tensors, opset 13 as empty names."""
    m = Model("resize_sizes_opset%d_b%d" % (opset, batch), opset, [3, 5, 7], batch=batch, batches=[batch])
    for label, hw in [("10x14", [10, 14]), ("4x9", [4, 9]), ("15x7", [15, 7])]:
        sizes = m.ints([batch, 3] + hw)
        for mode, coord, nearest in [("nearest", "half_pixel", "round_prefer_floor"), ("nearest", "asymmetric", "floor"),
                                     ("nearest", "align_corners", "round_prefer_ceil"), ("linear", "half_pixel", None),
                                     ("linear", "pytorch_half_pixel", None), ("linear", "align_corners", None),
                                     ("linear", "asymmetric", None)]:
            empty = [m.floats([]), m.floats([])] if opset < 13 else ["", ""]
            attrs = dict(mode=mode, coordinate_transformation_mode=coord)
            if nearest:
                attrs["nearest_mode"] = nearest
            y = m.node("Resize", ["input"] + empty + [sizes], **attrs)
            m.output(y, "sizes_%s_%s_%s" % (mode, coord, label))
    return m


def resize_pytorch_sizes():
    """torch F.interpolate(size=...) as exported: sizes = Concat(Shape(x)[:2], size), which
    depends on the dynamic batch; and torchvision's segmentation heads, which resize the
    logits to the input's own height and width (Shape(input)[2:])."""
    m = Model("resize_pytorch_sizes_opset13", 13, [3, 8, 12])
    nc = m.node("Slice", [m.node("Shape", ["input"]), m.ints([0]), m.ints([2])])
    for label, hw, attrs in [("linear_16x24", [16, 24], dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel")),
                             ("linear_5x7", [5, 7], dict(mode="linear", coordinate_transformation_mode="align_corners")),
                             ("nearest_16x36", [16, 36], dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")),
                             ("nearest_11x13", [11, 13], dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"))]:
        sizes = m.node("Concat", [nc, m.ints(hw)], axis=0)
        m.output(m.node("Resize", ["input", "", "", sizes], **attrs), "pytorch_size_" + label)
    feat = m.conv(m.conv("input", 3, 8, 3, stride=2), 8, 4, 3, stride=2, relu=False)
    head = m.node("Slice", [m.node("Shape", [feat]), m.ints([0]), m.ints([2])])
    hw = m.node("Slice", [m.node("Shape", ["input"]), m.ints([2]), m.ints([4])])
    sizes = m.node("Concat", [head, hw], axis=0)
    y = m.node("Resize", [feat, "", "", sizes], mode="linear", coordinate_transformation_mode="pytorch_half_pixel")
    m.output(y, "segmentation_to_input_size")
    return m


def resize_opset18():
    """Opset 18: `axes`, keep_aspect_ratio_policy, antialias=0 (not expressible in opset 17)."""
    m = Model("resize_opset18_axes", 18, [3, 5, 7], exportable=False)
    m.output(m.node("Resize", ["input", "", m.floats([2, 3])], mode="nearest", axes=[2, 3]), "axes_scales_nearest")
    m.output(m.node("Resize", ["input", "", m.floats([3, 2])], mode="linear", axes=[3, 2]), "axes_scales_linear_reversed")
    m.output(m.node("Resize", ["input", "", "", m.ints([9, 4])], mode="linear", axes=[-2, -1], antialias=0), "axes_sizes_linear")
    for policy in ["not_larger", "not_smaller"]:
        for mode in ["nearest", "linear"]:
            y = m.node("Resize", ["input", "", "", m.ints([10, 10])], mode=mode, axes=[2, 3], keep_aspect_ratio_policy=policy)
            m.output(y, "policy_%s_%s" % (policy, mode))
    return m


def resize_opset19():
    m = Model("resize_opset19_symmetric", 19, [3, 5, 7], exportable=False)
    for label, scales in [("x2", [1, 1, 2, 2]), ("x0.6x1.5", [1, 1, 0.6, 1.5])]:
        for mode in ["nearest", "linear"]:
            y = m.node("Resize", ["input", "", m.floats(scales)], mode=mode, coordinate_transformation_mode="half_pixel_symmetric")
            m.output(y, "symmetric_%s_%s" % (mode, label))
    return m


def resize_opset11_tf_half_pixel():
    m = Model("resize_opset11_tf_half_pixel_for_nn", 11, [3, 5, 7], exportable=False)
    for mode in ["round_prefer_floor", "floor"]:  # the ceil-leaning modes are refused
        for label, scales in [("x2x3", [1, 1, 2, 3]), ("x0.6x1.5", [1, 1, 0.6, 1.5])]:
            y = m.node("Resize", ["input", m.floats([]), m.floats(scales)], mode="nearest",
                       coordinate_transformation_mode="tf_half_pixel_for_nn", nearest_mode=mode)
            m.output(y, "tf_half_pixel_for_nn_%s_%s" % (mode, label))
    return m


def legacy_resize():
    """Upsample (opsets 7 and 9) and Resize-10: asymmetric coordinates, no nearest_mode."""
    models = []
    m = Model("upsample_opset9", 9, [3, 5, 7])
    m.output(m.node("Upsample", ["input", m.floats([1, 1, 2, 3])], mode="nearest"), "upsample_nearest_x2x3")
    m.output(m.node("Upsample", ["input", m.floats([1, 1, 2, 2])], mode="linear"), "upsample_linear_x2")
    m.output(m.node("Upsample", ["input", m.floats([1, 1, 1.5, 2.5])], mode="linear"), "upsample_linear_x1.5x2.5")
    models.append(m)
    m = Model("upsample_opset7", 7, [3, 5, 7])
    m.output(m.node("Upsample", ["input"], mode="nearest", scales=[1.0, 1.0, 2.0, 2.0]), "upsample7_nearest_x2")
    m.output(m.node("Upsample", ["input"], mode="linear", scales=[1.0, 1.0, 3.0, 1.5]), "upsample7_linear")
    models.append(m)
    m = Model("resize_opset10", 10, [3, 5, 7])
    m.output(m.node("Resize", ["input", m.floats([1, 1, 2, 3])], mode="nearest"), "resize10_nearest_x2x3")
    m.output(m.node("Resize", ["input", m.floats([1, 1, 1.5, 2.5])], mode="nearest"), "resize10_nearest_x1.5x2.5")
    m.output(m.node("Resize", ["input", m.floats([1, 1, 0.6, 0.5])], mode="nearest"), "resize10_nearest_down")
    m.output(m.node("Resize", ["input", m.floats([1, 1, 2, 0.6])], mode="linear"), "resize10_linear")
    models.append(m)
    return models


# --- Expand, Tile, DepthToSpace, SpaceToDepth, Pad, Slice -----------------------------------

def expand_tile():
    m = Model("expand_tile_opset13", 13, [3, 5, 7])
    row = m.node("Slice", ["input", m.ints([0]), m.ints([1]), m.ints([2])])  # [N, 3, 1, 7]
    m.output(m.node("Expand", [row, m.ints([1, 1, 4, 1])]), "expand_rows")
    m.output(m.node("Expand", [row, m.ints([3, 4, 1])]), "expand_shorter_shape")
    m.output(m.node("Expand", ["input", m.ints([3, 1, 1])]), "expand_same_shape")
    col = m.node("Slice", ["input", m.ints([0]), m.ints([1]), m.ints([1])])  # [N, 1, 5, 7]
    m.output(m.node("Expand", [col, m.ints([1, 6, 1, 1])]), "expand_channels")
    m.output(m.node("Tile", ["input", m.ints([1, 1, 2, 3])]), "tile_spatial")
    m.output(m.node("Tile", ["input", m.ints([1, 2, 1, 1])]), "tile_channels")
    m.output(m.node("Tile", ["input", m.ints([2, 1, 1, 1])]), "tile_batch")
    return m


def depth_space():
    m = Model("depth_space_opset13", 13, [8, 6, 4])
    for mode in ["DCR", "CRD"]:
        m.output(m.node("DepthToSpace", ["input"], blocksize=2, mode=mode), "depth_to_space_%s" % mode)
    m.output(m.node("SpaceToDepth", ["input"], blocksize=2), "space_to_depth_2")
    s = m.node("SpaceToDepth", ["input"], blocksize=2)
    m.output(m.node("DepthToSpace", [s], blocksize=2, mode="DCR"), "space_to_depth_and_back")
    conv = m.conv("input", 8, 36, 3)
    m.output(m.node("DepthToSpace", [conv], blocksize=3, mode="CRD"), "pixel_shuffle_x3")
    return m


def depth_space_opset11():
    m = Model("depth_space_opset11", 11, [8, 6, 4])
    m.output(m.node("DepthToSpace", ["input"], blocksize=2), "depth_to_space_default_dcr")
    m.output(m.node("SpaceToDepth", ["input"], blocksize=2), "space_to_depth")
    return m


def pad_slice(opset):
    m = Model("pad_slice_opset%d" % opset, opset, [3, 5, 7])
    for mode, pads in [("reflect", [0, 0, 1, 2, 0, 0, 2, 1]), ("edge", [0, 0, 2, 0, 0, 1, 3, 4]),
                       ("reflect", [0, 1, 4, 6, 0, 1, 4, 6]), ("edge", [0, 1, 0, 0, 0, 2, 0, 1])]:
        if opset >= 11:
            y = m.node("Pad", ["input", m.ints(pads)], mode=mode)
        else:
            y = m.node("Pad", ["input"], mode=mode, pads=pads)
        m.output(y, "pad_%s_%s" % (mode, "_".join(map(str, pads))))
    if opset >= 10:
        big = 2 ** 63 - 1
        m.output(m.node("Slice", ["input", m.ints([-1]), m.ints([-big - 1]), m.ints([3]), m.ints([-1])]), "slice_reverse_w")
        m.output(m.node("Slice", ["input", m.ints([4]), m.ints([0]), m.ints([2]), m.ints([-2])]), "slice_step_minus2")
        m.output(m.node("Slice", ["input", m.ints([10, 1]), m.ints([-big - 1, 7]), m.ints([2, 3]), m.ints([-1, 2])]),
                 "slice_reverse_h_step_w")
        m.output(m.node("Slice", ["input", m.ints([2, 6]), m.ints([-10, 1]), m.ints([1, 3]), m.ints([-1, -3])]),
                 "slice_channels_and_w_backwards")
    return m


def pad_wrap():
    m = Model("pad_wrap_opset19", 19, [3, 5, 7], exportable=False)
    m.output(m.node("Pad", ["input", m.ints([0, 0, 1, 2, 0, 0, 2, 1])], mode="wrap"), "pad_wrap")
    m.output(m.node("Pad", ["input", m.ints([0, 0, 2, 1]), m.floats(0), m.ints([2, 3])], mode="reflect"), "pad_reflect_axes")
    return m


# --- ConvTranspose -------------------------------------------------------------------------

def conv_transpose():
    m = Model("conv_transpose_opset13", 13, [4, 5, 6])
    def ct(label, cout, k, groups=1, bias=True, act=None, **attrs):
        w = m.floats(rng.uniform(-1, 1, (4, cout // groups, k, k)) * np.sqrt(3 / (4 * k * k)))
        inputs = ["input", w] + ([m.floats(rng.uniform(-0.5, 0.5, cout))] if bias else [])
        y = m.node("ConvTranspose", inputs, group=groups, **attrs)
        m.output(m.node(act, [y]) if act else y, "convtranspose_" + label)
    ct("k3", 6, 3)
    ct("k3_nobias", 6, 3, bias=False)
    ct("k3_s2_p1_outpad1", 6, 3, strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
    ct("k3_s2_outpad1_nopad", 6, 3, strides=[2, 2], output_padding=[1, 1])
    ct("k4_s2_p1", 8, 4, strides=[2, 2], pads=[1, 1, 1, 1])
    ct("k4_s2_p1_relu", 8, 4, act="Relu", strides=[2, 2], pads=[1, 1, 1, 1])
    ct("g2_k3_sigmoid", 6, 3, groups=2, act="Sigmoid")
    ct("g2_k3_s2", 6, 3, groups=2, strides=[2, 2])
    ct("depthwise_k3_s2_outpad", 4, 3, groups=4, strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 0])
    ct("dilations2", 3, 3, dilations=[2, 2])
    ct("asymmetric_pads", 5, 3, strides=[2, 3], pads=[1, 0, 0, 2])
    ct("same_upper", 5, 3, strides=[2, 2], auto_pad="SAME_UPPER")
    ct("same_lower", 5, 3, strides=[2, 2], auto_pad="SAME_LOWER")
    ct("output_shape", 5, 3, strides=[2, 2], output_shape=[10, 12])
    ct("output_shape_odd", 5, 3, strides=[2, 2], output_shape=[9, 13])
    ct("output_shape_beyond_extent", 5, 3, strides=[2, 2], output_shape=[12, 14])
    ct("kernel_shape_attr", 5, 2, strides=[2, 2], kernel_shape=[2, 2])
    ct("valid_s3", 5, 3, strides=[3, 3], auto_pad="VALID")
    return m


# --- Pattern graphs ----------------------------------------------------------------------

def segmentation_head():
    """Backbone at 1/4 resolution, 1x1 classifier, bilinear x4 upsample to the input size
    (torch F.interpolate(scale_factor=4, mode='bilinear') exports pytorch_half_pixel; with
    align_corners=True, align_corners)."""
    m = Model("segmentation_head", 13, [3, 32, 32])
    x = m.conv("input", 3, 16, 3, stride=2)
    x = m.conv(x, 16, 24, 3, stride=2)
    x = m.conv(x, 24, 24, 3)
    logits = m.conv(x, 24, 5, 1, relu=False)
    for coord in ["pytorch_half_pixel", "half_pixel", "align_corners"]:
        y = m.node("Resize", [logits, "", m.floats([1, 1, 4, 4])], mode="linear", coordinate_transformation_mode=coord)
        m.output(m.node("Softmax", [y], axis=1), "segmentation_%s" % coord)
    return m


def fpn():
    """FPN top-down path: nearest x2 (torch's default: asymmetric, floor) plus a lateral 1x1
    conv, then a 3x3 smoothing conv, over two levels; also with half_pixel nearest."""
    m = Model("fpn_upsample_add", 13, [3, 32, 32])
    c3 = m.conv("input", 3, 8, 3, stride=2)      # 16x16
    c4 = m.conv(c3, 8, 16, 3, stride=2)          # 8x8
    c5 = m.conv(c4, 16, 32, 3, stride=2)         # 4x4
    for coord, nearest in [("asymmetric", "floor"), ("half_pixel", "round_prefer_floor")]:
        p5 = m.conv(c5, 32, 12, 1, relu=False)
        up = m.node("Resize", [p5, "", m.floats([1, 1, 2, 2])], mode="nearest", coordinate_transformation_mode=coord, nearest_mode=nearest)
        p4 = m.node("Add", [up, m.conv(c4, 16, 12, 1, relu=False)])
        up = m.node("Resize", [p4, "", m.floats([1, 1, 2, 2])], mode="nearest", coordinate_transformation_mode=coord, nearest_mode=nearest)
        p3 = m.node("Add", [m.conv(c3, 8, 12, 1, relu=False), up])
        m.output(m.conv(p3, 12, 12, 3, relu=False), "fpn_p3_%s" % coord)
        m.output(m.conv(p4, 12, 12, 3, relu=False), "fpn_p4_%s" % coord)
    return m


def channel_shuffle():
    """ShuffleNet's channel shuffle (Reshape -> Transpose -> Reshape with a dynamic batch)
    between grouped convolutions, and a UNet-style decoder with ConvTranspose and Concat."""
    m = Model("channel_shuffle_decoder", 13, [3, 16, 16])
    x = m.conv("input", 3, 12, 3, stride=2)
    x = m.conv(x, 12, 12, 1, groups=3)
    y = m.node("Reshape", [x, m.ints([0, 3, 4, 8, 8])])
    y = m.node("Transpose", [y], perm=[0, 2, 1, 3, 4])
    y = m.node("Reshape", [y, m.ints([0, -1, 8, 8])])
    shuffled = m.conv(y, 12, 12, 3, groups=3)
    m.output(shuffled, "channel_shuffle")
    w = m.floats(rng.uniform(-1, 1, (12, 6, 2, 2)) * 0.3)
    up = m.node("ConvTranspose", [shuffled, w, m.floats(rng.uniform(-0.1, 0.1, 6))], strides=[2, 2], kernel_shape=[2, 2])
    skip = m.conv("input", 3, 6, 3)
    cat = m.node("Concat", [up, skip], axis=1)
    m.output(m.conv(cat, 12, 4, 3, relu=False), "unet_decoder")
    return m


# --- Running -------------------------------------------------------------------------------

def infer(metronome, model_path, xin, outputs, d, tag, backend="onednn"):
    cmd = [metronome, "infer", model_path, "--input", "input=" + xin, "--backend", backend, "--force"]
    files = {}
    for i, o in enumerate(outputs):
        files[o] = os.path.join(d, "%s_%d.npy" % (tag, i))
        cmd += ["--output", "%s=%s" % (o, files[o])]
    run(cmd)
    return {o: np.load(f) for o, f in files.items()}


def all_models():
    models = [resize_nearest(13), resize_nearest(19), resize_linear(13), resize_linear(11), resize_cubic(13), resize_crop(13)]
    models += [resize_sizes(1, 11), resize_sizes(2, 13), resize_pytorch_sizes(), resize_opset18(), resize_opset19(), resize_opset11_tf_half_pixel()]
    models += legacy_resize()
    models += [expand_tile(), depth_space(), depth_space_opset11(), pad_slice(13), pad_slice(9), pad_wrap(), conv_transpose()]
    models += [segmentation_head(), fpn(), channel_shuffle()]
    return models


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--metronome", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--only", nargs="*", help="build and compare only these models")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    models = all_models()
    if args.only:
        models = [m for m in models if m.name in args.only]
    results = []
    for spec in models:
        model = spec.build()
        d = os.path.join(args.work, spec.name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "model.onnx")
        onnx.save(model, path)
        onnx.checker.check_model(path)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        exported = None
        if spec.exportable:
            exported = os.path.join(d, "exported.onnx")
            run([args.metronome, "export", path, "--out", exported, "--force"])
            onnx.checker.check_model(exported)
            exported_session = ort.InferenceSession(exported, providers=["CPUExecutionProvider"])
        for batch in spec.batches:
            x = rng.standard_normal([batch] + spec.shape).astype(np.float32)
            xin = os.path.join(d, "input_b%d.npy" % batch)
            np.save(xin, x)
            refs = dict(zip(spec.outputs, session.run(spec.outputs, {"input": x})))
            got = {"metronome": infer(args.metronome, path, xin, spec.outputs, d, "onednn_b%d" % batch),
                   "reference": infer(args.metronome, path, xin, spec.outputs, d, "ref_b%d" % batch, backend="reference")}
            if exported:
                got["reimported"] = infer(args.metronome, exported, xin, spec.outputs, d, "reimported_b%d" % batch)
                got["ort_exported"] = dict(zip(spec.outputs, exported_session.run(spec.outputs, {"input": x})))
            worst = {}
            for o in spec.outputs:
                entry = {"model": spec.name, "opset": spec.opset, "output": o.split("__")[0], "batch": batch,
                         "shape": list(refs[o].shape)}
                for label, values in got.items():
                    entry[label + "_relerr"] = relerr(values[o], refs[o])
                    worst[label] = max(worst.get(label, 0.0), entry[label + "_relerr"])
                results.append(entry)
            print("%-36s batch %d, %2d outputs: %s" % (spec.name, batch, len(spec.outputs),
                  "  ".join("%s %.2e" % (k, v) for k, v in worst.items())))
    with open(args.report, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())

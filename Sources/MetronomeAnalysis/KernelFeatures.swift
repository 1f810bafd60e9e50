import Foundation
import Metronome

/// The kinds of compiled kernel a latency predictor models separately: each has its own cost
/// structure (a 1×1 convolution is a GEMM, a depthwise one is bandwidth-bound, a reorder is a
/// copy with a layout change).
public enum KernelFamily: String, Codable, CaseIterable, Sendable {
    case convDense = "conv_dense"
    case conv1x1 = "conv_1x1"
    case convDepthwise = "conv_depthwise"
    case convGrouped = "conv_grouped"
    case innerProduct = "inner_product"
    case pooling
    case elementwise
    case concat
    case reorder
    /// Metronome's Swift kernels (what oneDNN does not cover).
    case reference
    case copy
    case other

    public init(_ k: KernelInfo) {
        switch k.backend {
        case "reference": self = .reference; return
        case "copy": self = .copy; return
        default: break
        }
        switch k.primitive {
        case "convolution", "deconvolution":
            let cin = k.srcShape.count > 1 ? k.srcShape[1] : 1, cout = k.dstShape.count > 1 ? k.dstShape[1] : 1
            if k.groups > 1 {
                self = k.groups == cin && k.groups == cout ? .convDepthwise : .convGrouped
            } else {
                self = k.kernelShape.allSatisfy { $0 == 1 } ? .conv1x1 : .convDense
            }
        case "inner_product", "matmul": self = .innerProduct
        case "pooling", "pooling_v2": self = .pooling
        case "eltwise", "binary", "softmax", "softmax_v2", "batch_normalization", "layer_normalization", "prelu":
            self = .elementwise
        case "concat", "sum": self = .concat
        case "reorder": self = .reorder
        // A trainer's reshapes and its gradient zeroing move memory without arithmetic.
        case "copy", "gradients": self = .copy
        default: self = .other
        }
    }
}

/// The features a kernel-level latency model sees: exactly what the compiler knows about a
/// kernel (shapes, geometry, groups, fused post-ops, layouts, oneDNN's implementation), its
/// work (FLOPs, bytes moved) and the thread count.
public enum KernelFeatures {
    public static let names = [
        "threads", "log_cin", "log_hin", "log_win", "log_cout", "log_hout", "log_wout",
        "kh", "kw", "sh", "sw", "dilation", "log_groups", "log_cin_per_group", "log_cout_per_group",
        "log_flops", "log_bytes", "intensity", "log_weights", "post_ops", "has_sum", "src_block", "dst_block",
        "implementation", "log_network_weight_bytes",
        "cin", "cout", "cin_block_fill", "cout_block_fill", "log_weight_reuse",
    ]

    /// What a kernel's speed depends on beyond itself: how much the whole network touches per
    /// run. The same convolution runs faster in a network whose weights stay in cache between
    /// runs than in one that evicts them, so identical kernels differ by network.
    public struct Context: Sendable {
        public var weightBytes: Double

        public init(_ kernels: [KernelInfo]) {
            weightBytes = kernels.reduce(0) { $0 + 4 * KernelFeatures.weightElements($1) }
        }
    }

    /// The number of elements of a shape; 0 for none (a kernel without weights).
    static func elements(_ shape: [Int]) -> Double { shape.isEmpty ? 0 : Double(shape.reduce(1, *)) }

    /// A kernel's weight elements (0 when it has none).
    public static func weightElements(_ k: KernelInfo) -> Double { elements(k.weightsShape) }

    /// FLOPs (multiply-adds count 2) and bytes read and written (float32) of one kernel.
    public static func work(_ k: KernelInfo) -> (flops: Double, bytes: Double) {
        let src = elements(k.srcShape), dst = elements(k.dstShape), weights = weightElements(k)
        let bytes = 4 * (src + dst + weights)
        let window = Double(k.kernelShape.reduce(1, *))
        switch KernelFamily(k) {
        case .convDense, .conv1x1, .convDepthwise, .convGrouped:
            let cin = k.srcShape.count > 1 ? Double(k.srcShape[1]) : 1
            return (2 * dst * cin / Double(max(k.groups, 1)) * window, bytes)
        case .innerProduct:
            let inner = k.weightsShape.count > 1 ? Double(k.weightsShape.dropFirst().reduce(1, *)) : src
            return (2 * dst * inner, bytes)
        case .pooling: return (dst * max(window, 1), bytes)
        case .elementwise: return (dst * Double(max(1, k.postOps.count + 1)), bytes)
        default: return (0, bytes)
        }
    }

    /// The unit a kernel's time is measured in before the trees see it: a roofline-like cost
    /// (1 GFLOP weighs like 125 MB moved), so that the trees learn efficiency, which stays
    /// bounded when batch sizes or widths grow past those trained on.
    public static func unit(_ k: KernelInfo) -> Double {
        let w = work(k)
        return (w.flops + 8 * w.bytes) / 1e9 + 1e-7
    }

    /// The feature vector; `implementations` is the predictor's vocabulary of oneDNN
    /// implementation names for the kernel's family (unknown names get -1).
    public static func vector(_ k: KernelInfo, threads: Int, implementations: [String], context: Context) -> [Float] {
        func dim(_ s: [Int], _ i: Int) -> Double { s.count > i ? Double(s[i]) : 1 }
        func lg(_ x: Double) -> Float { Float(log2(max(x, 1))) }
        let spatialIn = Array(k.srcShape.dropFirst(2)), spatialOut = Array(k.dstShape.dropFirst(2))
        let hin = spatialIn.count > 1 ? Double(spatialIn[spatialIn.count - 2]) : 1
        let win = Double(spatialIn.last ?? 1)
        let hout = spatialOut.count > 1 ? Double(spatialOut[spatialOut.count - 2]) : 1
        let wout = Double(spatialOut.last ?? 1)
        let g = Double(max(k.groups, 1))
        let w = work(k)
        let weights = weightElements(k)
        // Channels fill oneDNN's 16-wide (AVX-512) blocks only when divisible by 16; a pruned
        // layer with 37 channels computes 48. The fraction of each block that is real work:
        func fill(_ c: Double) -> Float { Float(c / (16 * (c / 16).rounded(.up))) }
        func block(_ layout: String) -> Float {
            Float(Int(layout.filter(\.isNumber)) ?? 0)
        }
        return [
            // No batch feature: the batch enters through the work (FLOPs, bytes), which is
            // continuous, so batch sizes between or beyond the profiled ones are not put on
            // one side of a split learned between two of them.
            Float(threads), lg(dim(k.srcShape, 1)), lg(hin), lg(win),
            lg(dim(k.dstShape, 1)), lg(hout), lg(wout),
            Float(k.kernelShape.first ?? 0), Float(k.kernelShape.last ?? 0),
            Float(k.strides.first ?? 0), Float(k.strides.last ?? 0), Float(k.dilations.first ?? 1),
            lg(g), lg(dim(k.srcShape, 1) / g), lg(dim(k.dstShape, 1) / g),
            lg(w.flops), lg(w.bytes), Float(w.bytes > 0 ? w.flops / w.bytes : 0),
            lg(weights), Float(k.postOps.count), k.postOps.contains("sum") ? 1 : 0,
            block(k.srcLayout), block(k.dstLayout),
            Float(implementations.firstIndex(of: k.implementation) ?? -1),
            lg(context.weightBytes),
            Float(dim(k.srcShape, 1)), Float(dim(k.dstShape, 1)), fill(dim(k.srcShape, 1) / g), fill(dim(k.dstShape, 1) / g),
            // FLOPs per weight: 2 × batch × output pixels for a convolution, the reuse each
            // weight gets once read. Low reuse (a wide layer on a tiny map at batch 1) makes a
            // kernel as fast as its weights arrive, from cache or from memory by the
            // network's size; no other feature carries the batch.
            weights > 0 ? Float(log2(max(w.flops / weights, 1))) : -1,
        ]
    }
}

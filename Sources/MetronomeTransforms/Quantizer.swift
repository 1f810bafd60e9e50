import Foundation
import Metronome

/// Post-training quantization into the standard QDQ form (what ONNX Runtime's quantizer
/// writes, and what Metronome's int8 path and other runtimes read): every convolution and
/// fully connected layer with constant weights reads `DequantizeLinear(QuantizeLinear(x))` of
/// its data and `DequantizeLinear` of symmetric int8 weights, its bias an int32
/// `DequantizeLinear` at scale `input scale × weight scale`. Activations get the ranges the
/// calibration method chose: uint8 with a zero point (asymmetric), or int8 symmetric.
public struct Quantizer {
    public struct Options: Sendable {
        public var method: CalibrationMethod = .minmax
        /// One weight scale per output channel instead of one per layer.
        public var perChannel = false
        /// The activations' type: uint8 (asymmetric, with a zero point) or int8 (symmetric).
        public var activationType: QuantizedType = .uint8
        /// Magnitudes kept by the percentile method.
        public var percentile = 99.999
        /// Layers (node names) left in float.
        public var keep: Set<String> = []
        /// 7-bit weights (`[-64, 64]`) instead of `[-127, 127]`: what CPUs without VNNI compute
        /// on their integer kernels (``OptimizationOptions/integerWeightLimit``); with full-range
        /// weights those layers run in float there. ONNX Runtime's `reduce_range` is the same idea.
        public var reduceRange = false

        public init() {}
    }

    /// One quantized layer, for the report.
    public struct Layer: Sendable, Codable, Equatable {
        public var node: String
        public var opType: String
        public var input: String
        public var inputScale: Float
        public var inputZeroPoint: Int
        public var weightScales: Int
    }

    public let options: Options

    public init(options: Options) { self.options = options }

    /// The layers this quantizer turns into integer layers: Conv with a 4-D constant weight,
    /// Gemm (no transposed A, alpha = beta = 1) and MatMul with a 2-D constant weight.
    public func quantizableNodes(_ graph: Graph) throws -> [Node] {
        for name in options.keep where !graph.nodes.contains(where: { $0.name == name }) {
            throw MetronomeError.invalidArgument("--keep \(name): the model has no node of that name")
        }
        return graph.nodes.filter { n in
            guard !options.keep.contains(n.name), n.inputs.count >= 2, let w = graph.initializers[n.inputs[1]] else { return false }
            switch n.opType {
            case "Conv": return w.rank == 4 && (n.inputs.count < 3 || graph.initializers[n.inputs[2]] != nil)
            case "Gemm":
                return w.rank == 2 && int(n, "transA") == 0 && float(n, "alpha") == 1 && float(n, "beta") == 1
                    && (n.inputs.count < 3 || graph.initializers[n.inputs[2]]?.count == w.shape[int(n, "transB") == 1 ? 0 : 1])
            case "MatMul": return w.rank == 2
            default: return false
            }
        }
    }

    func int(_ n: Node, _ key: String) -> Int {
        if case .int(let v)? = n.attributes[key] { return v }
        return 0
    }

    func float(_ n: Node, _ key: String) -> Float {
        switch n.attributes[key] {
        case .float(let v)?: return v
        case .int(let v)?: return Float(v)
        default: return 1
        }
    }

    /// The data tensors to calibrate (each quantized layer's first input).
    public func calibratedTensors(_ graph: Graph) throws -> [String] {
        var seen = Set<String>()
        return try quantizableNodes(graph).map { $0.inputs[0] }.filter { seen.insert($0).inserted }
    }

    /// The activation map of a tensor from its statistics.
    public func activationMap(_ s: TensorStatistics) -> Quantization {
        let levels = 128
        let (low, high) = s.range(options.method, percentile: options.percentile, levels: levels)
        switch options.activationType {
        case .int8:
            let m = max(abs(low), abs(high))
            return Quantization(scale: m > 0 ? m / 127 : 1, zeroPoint: 0, type: .int8)
        default:
            guard high > low else { return Quantization(scale: 1, zeroPoint: 0, type: .uint8) }
            let scale = (high - low) / 255
            let zp = Int((-low / scale).rounded(.toNearestOrEven))
            return Quantization(scale: scale, zeroPoint: min(max(zp, 0), 255), type: .uint8)
        }
    }

    /// The quantized graph, given each calibrated tensor's statistics.
    public func quantize(_ graph: Graph, statistics: [String: TensorStatistics]) throws -> (Graph, [Layer]) {
        let layers = Set(try quantizableNodes(graph).map(\.name))
        var out = graph
        out.nodes = []
        var dequantized: [String: (name: String, map: Quantization)] = [:]
        var taken = Set(graph.initializers.keys).union(graph.inputs.map(\.name)).union(graph.nodes.flatMap(\.outputs))
            .union(graph.integerConstants.keys)
        func fresh(_ base: String) -> String {
            var name = base, i = 2
            while taken.contains(name) { name = "\(base)_\(i)"; i += 1 }
            taken.insert(name)
            return name
        }
        var report: [Layer] = []
        for node in graph.nodes {
            guard layers.contains(node.name) else { out.nodes.append(node); continue }
            let x = node.inputs[0]
            if dequantized[x] == nil {
                guard let s = statistics[x] else {
                    throw MetronomeError.invalidArgument("no calibration statistics for '\(x)', the input of \(node.name)")
                }
                let map = activationMap(s)
                let q = fresh(x + "_quantized"), d = fresh(x + "_dequantized")
                out.nodes.append(Self.node(node.name + "_input_QuantizeLinear", "QuantizeLinear", x, q, map))
                out.nodes.append(Self.node(node.name + "_input_DequantizeLinear", "DequantizeLinear", q, d, map))
                dequantized[x] = (d, map)
            }
            let input = dequantized[x]!
            var n = node
            n.inputs[0] = input.name
            // Weights: symmetric int8, per output channel (axis 0 for Conv and transposed Gemm
            // weights, 1 for [K, N] weights) or per tensor.
            let wName = node.inputs[1]
            let w = graph.initializers[wName]!
            let axis = node.opType == "Conv" || (node.opType == "Gemm" && int(node, "transB") == 1) ? 0 : 1
            let (wq, wScales) = quantizeWeights(w, axis: axis)
            let wq8 = fresh(wName + "_quantized")
            out.initializers[wq8] = wq
            let wMap = Quantization(scales: wScales, zeroPoints: Array(repeating: 0, count: wScales.count), axis: axis, type: .int8)
            let wd = fresh(wName + "_dequantized")
            out.nodes.append(Self.node(node.name + "_weight_DequantizeLinear", "DequantizeLinear", wq8, wd, wMap))
            n.inputs[1] = wd
            if node.inputs.count > 2, let b = graph.initializers[node.inputs[2]] {
                let scales = wScales.map { $0 * input.map.scales[0] }
                var bq = b
                let bMap = Quantization(scales: scales, zeroPoints: Array(repeating: 0, count: scales.count), axis: 0, type: .int32)
                for i in 0..<b.count {
                    let s = scales.count == 1 ? scales[0] : scales[i]
                    bq.scalars[i] = min(max((b.scalars[i] / s).rounded(.toNearestOrEven), -2_147_483_647), 2_147_483_647)
                }
                let bq32 = fresh(node.inputs[2] + "_quantized"), bd = fresh(node.inputs[2] + "_dequantized")
                out.initializers[bq32] = bq
                out.nodes.append(Self.node(node.name + "_bias_DequantizeLinear", "DequantizeLinear", bq32, bd, bMap))
                n.inputs[2] = bd
            }
            out.nodes.append(n)
            report.append(Layer(node: node.name, opType: node.opType, input: x, inputScale: input.map.scales[0],
                                inputZeroPoint: input.map.zeroPoints[0], weightScales: wScales.count))
        }
        var used = Set(out.nodes.flatMap(\.inputs))
        used.formUnion(out.outputs)
        for k in Array(out.initializers.keys) where !used.contains(k) { out.initializers[k] = nil }
        return (out, report)
    }

    /// Symmetric int8 weights (`[-127, 127]`, or `[-64, 64]` with `reduceRange`) and their scales.
    func quantizeWeights(_ w: Tensor, axis: Int) -> (Tensor, [Float]) {
        let channels = options.perChannel ? w.shape[axis] : 1
        var maxima = [Float](repeating: 0, count: channels)
        let inner = w.shape[(axis + 1)...].reduce(1, *)
        func channel(_ i: Int) -> Int { channels == 1 ? 0 : (i / inner) % w.shape[axis] }
        for i in 0..<w.count { maxima[channel(i)] = max(maxima[channel(i)], abs(w.scalars[i])) }
        let top: Float = options.reduceRange ? MachineInfo.exactInt8WeightLimit : 127
        let scales = maxima.map { $0 > 0 ? $0 / top : 1 }
        var q = w
        for i in 0..<w.count {
            q.scalars[i] = min(max((w.scalars[i] / scales[channel(i)]).rounded(.toNearestOrEven), -top), top)
        }
        return (q, scales)
    }

    static func node(_ name: String, _ opType: String, _ input: String, _ output: String, _ map: Quantization) -> Node {
        var attributes: [String: Attribute] = [
            "scale": .floats(map.scales), "zero_point": .ints(map.zeroPoints), "type": .string(map.type.rawValue),
        ]
        if let axis = map.axis { attributes["axis"] = .int(axis) }
        return Node(name: name, opType: opType, inputs: [input], outputs: [output], attributes: attributes)
    }
}

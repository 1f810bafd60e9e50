import Metronome

/// Folds `BatchNormalization(Conv(x))` into the convolution's weights and bias at the graph
/// level (the compiler does the same on programs, but a quantizer must see the folded weights:
/// it quantizes the weights the integer kernel will multiply with, as ONNX Runtime's
/// pre-processing does before its quantizer).
public enum BatchNormFolding {
    public static func fold(_ graph: Graph) throws -> Graph {
        var g = graph
        var producer: [String: Int] = [:]
        var readers: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() {
            for o in n.outputs { producer[o] = i }
            for v in n.inputs { readers[v, default: 0] += 1 }
        }
        for o in graph.outputs { readers[o, default: 0] += 1 }
        var removed = Set<Int>()
        for (i, bn) in graph.nodes.enumerated() where bn.opType == "BatchNormalization" && bn.inputs.count == 5 && bn.outputs.count == 1 {
            guard let ci = producer[bn.inputs[0]], !removed.contains(ci), readers[bn.inputs[0]] == 1 else { continue }
            let conv = g.nodes[ci]
            guard conv.opType == "Conv", conv.outputs.count == 1, conv.inputs.count >= 2,
                  let w = g.initializers[conv.inputs[1]], w.rank == 4,
                  let scale = g.initializers[bn.inputs[1]], let shift = g.initializers[bn.inputs[2]],
                  let mean = g.initializers[bn.inputs[3]], let variance = g.initializers[bn.inputs[4]] else { continue }
            let m = w.shape[0]
            guard [scale, shift, mean, variance].allSatisfy({ $0.count == m }) else { continue }
            var bias = [Float](repeating: 0, count: m)
            if conv.inputs.count > 2 {
                guard let b = g.initializers[conv.inputs[2]], b.count == m else { continue }
                bias = b.scalars
            }
            var epsilon: Float = 1e-5
            if case .float(let e)? = bn.attributes["epsilon"] { epsilon = e }
            var folded = w
            let per = w.count / m
            for c in 0..<m {
                let k = scale.scalars[c] / (variance.scalars[c] + epsilon).squareRoot()
                for j in 0..<per { folded.scalars[c * per + j] *= k }
                bias[c] = (bias[c] - mean.scalars[c]) * k + shift.scalars[c]
            }
            let wName = unique(conv.name + ".weight_bn_folded", in: g), bName = unique(conv.name + ".bias_bn_folded", in: g)
            g.initializers[wName] = folded
            g.initializers[bName] = try Tensor(shape: [m], scalars: bias)
            g.nodes[ci].inputs = [conv.inputs[0], wName, bName]
            g.nodes[ci].outputs = bn.outputs
            removed.insert(i)
        }
        g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        let used = Set(g.nodes.flatMap(\.inputs)).union(g.outputs)
        for k in Array(g.initializers.keys) where !used.contains(k) { g.initializers[k] = nil }
        return g
    }

    static func unique(_ base: String, in g: Graph) -> String {
        var name = base, i = 2
        while g.initializers[name] != nil { name = "\(base)_\(i)"; i += 1 }
        return name
    }
}

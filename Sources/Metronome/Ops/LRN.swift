#if canImport(Glibc)
import Glibc
#endif

/// `LRN`: local response normalization across channels (AlexNet, GoogLeNet):
/// `y = x / (bias + alpha/size · Σ x²)^beta`, the sum over the channels
/// `c − ⌊(size−1)/2⌋ … c + ⌈(size−1)/2⌉` that exist. oneDNN's across-channels LRN computes
/// the same for an odd `size` (its window is centred); an even one runs the reference kernel.
struct LRNOperator: Operator {
    struct Attributes: Hashable, Sendable {
        var size: Int
        var alpha: Float
        var beta: Float
        var bias: Float
    }

    var onnxNames: [String] { ["LRN"] }

    func attributes(of opType: String) -> [String] { ["alpha", "beta", "bias", "size"] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        try p.requireInputs(1...1)
        guard p.node.attributes["size"] != nil else { throw p.fail("attribute 'size' is required") }
        let size = try p.int("size", default: 1)
        guard size >= 1, size <= 1 << 16 else { throw p.fail("size must be between 1 and 65536, got \(size)") }
        let a = Attributes(size: size, alpha: try p.float("alpha", default: 1e-4), beta: try p.float("beta", default: 0.75),
                           bias: try p.float("bias", default: 1))
        guard [a.alpha, a.beta, a.bias].allSatisfy(\.isFinite) else { throw p.fail("alpha, beta and bias must be finite") }
        return (.custom(CustomAttributes(a)), [p.node.inputs[0]])
    }

    static func attributes(_ op: Op) -> Attributes? {
        guard case .custom(let c) = op else { return nil }
        return c.as(Attributes.self)
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard inputs[0].count >= 3 else { throw c.fail("input must be at least 3-D (N, C, spatial...), got shape \(inputs[0])") }
        return (op, [inputs[0]])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard let a = Self.attributes(step.op) else { throw unexpected(step.op, step.name, step.opType) }
        let shape = xs[0]
        let n = shape[0], c = shape[1], plane = shape[2...].reduce(1, *)
        let before = (a.size - 1) / 2, after = a.size - 1 - before
        for b in 0..<n {
            for ch in 0..<c {
                let lo = max(0, ch - before), hi = min(c - 1, ch + after)
                for i in 0..<plane {
                    var sum: Float = 0
                    for k in lo...hi { let v = x[0][(b * c + k) * plane + i]; sum += v * v }
                    let idx = (b * c + ch) * plane + i
                    y[0][idx] = x[0][idx] / powf(a.bias + a.alpha / Float(a.size) * sum, a.beta)
                }
            }
        }
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard let a = Self.attributes(step.op), a.size % 2 == 1, step.postOps.isEmpty else { return false }
        return try b.lrn(step, size: a.size, alpha: a.alpha, beta: a.beta, bias: a.bias)
    }

    /// Per element: `size` squares and adds, then a power and a division.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        guard let a = Self.attributes(step.op) else { return OperatorCost(category: .batchNorm) }
        return OperatorCost(category: .batchNorm, flops: (2 * a.size + 4) * p.values[step.outputs[0]].count)
    }

    /// Each channel is normalized by its neighbours: removing or reordering channels changes
    /// the others' results.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        .pinned("LRN '\(step.name)' normalizes across neighbouring channels")
    }

}

/// The variadic element-wise operators `Sum`, `Max`, `Min`, `Mean`: one or more inputs
/// combined with NumPy broadcasting. Reference kernel only; the two-input forms exporters
/// emit most (`Max(x, c)`, `Sum(a, b)`) are cheap next to the convolutions around them.
struct VariadicOperator: Operator {
    enum Kind: String, Hashable, Sendable {
        case sum = "Sum", max = "Max", min = "Min", mean = "Mean"

        func combine(_ a: Float, _ b: Float) -> Float {
            switch self {
            case .sum, .mean: return a + b
            // NaN propagates, as in ONNX Runtime.
            case .max: return a.isNaN || b.isNaN ? .nan : Swift.max(a, b)
            case .min: return a.isNaN || b.isNaN ? .nan : Swift.min(a, b)
            }
        }
    }

    var onnxNames: [String] { ["Sum", "Max", "Min", "Mean"] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        guard let kind = Kind(rawValue: n.opType) else { throw p.unsupported() }
        guard !n.inputs.isEmpty, n.inputs.allSatisfy({ !$0.isEmpty }) else {
            throw p.fail("expects one or more inputs, none of them omitted")
        }
        return (.custom(CustomAttributes(kind)), n.inputs)
    }

    func kind(_ op: Op) -> Kind? {
        guard case .custom(let c) = op else { return nil }
        return c.as(Kind.self)
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        var shape = inputs[0]
        for s in inputs.dropFirst() {
            guard let b = ShapeInference.broadcast(shape, s) else {
                throw c.fail("shapes \(inputs.map(\.description).joined(separator: ", ")) cannot be broadcast together")
            }
            shape = b
        }
        return (op, [shape])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard let kind = kind(step.op) else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.broadcastCopy(x[0], xs[0], out: y[0], ys[0])
        for i in 1..<x.count {
            ReferenceKernels.broadcast(UnsafePointer(y[0]), ys[0], x[i], xs[i], out: y[0], ys[0], kind.combine)
        }
        if kind == .mean {
            let n = Float(x.count)
            for i in 0..<ys[0].reduce(1, *) { y[0][i] /= n }
        }
    }

    /// One FLOP per output element and extra input (Mean: one more for the division).
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        let out = step.outputs.reduce(0) { $0 + p.values[$1].count }
        let extra = kind(step.op) == .mean ? 1 : 0
        return OperatorCost(category: .elementwise, flops: out * (step.inputs.count - 1 + extra))
    }

    /// Like the binary operators: computed operands whose channel axis lines up with the
    /// output's share its channels; constant per-channel operands follow them.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        guard p.shape(step.outputs[0]).count >= 2 else { return .same([]) }
        return BinaryOperator().channelBehaviour(step, in: p)
    }

    func channelResize(_ step: Step, in p: Program) -> ChannelResize {
        guard p.shape(step.outputs[0]).count >= 2 else { return ChannelResize() }
        return BinaryOperator().channelResize(step, in: p)
    }
}

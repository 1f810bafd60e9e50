/// The normalizations whose statistics are computed at run time: `LayerNormalization`
/// (opset 17; over the axes from `axis` on, with a scale and an optional bias broadcast to
/// those axes) and `InstanceNormalization` (over the spatial axes of each `(n, c)` plane,
/// with per-channel scale and bias). Layer normalization with constant scale and bias runs
/// oneDNN's layer normalization primitive; instance normalization the reference kernel.
struct LayerNormOperator: Operator {
    enum Kind: Hashable, Sendable { case layer, instance }

    /// `axis` is non-negative once shapes are inferred. `outputs`: Y, and for layer
    /// normalization optionally its Mean and InvStdDev.
    struct Attributes: Hashable, Sendable {
        var kind: Kind
        var axis: Int
        var epsilon: Float
        var outputs = 1
    }

    var onnxNames: [String] { ["LayerNormalization", "InstanceNormalization"] }

    func attributes(of opType: String) -> [String] {
        opType == "LayerNormalization" ? ["axis", "epsilon", "stash_type"] : ["epsilon"]
    }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        let eps = try p.float("epsilon", default: 1e-5)
        guard n.outputs.count == 1 || (n.opType == "LayerNormalization" && n.outputs.count <= 3),
              n.outputs.allSatisfy({ !$0.isEmpty }) else {
            throw p.fail("expects the outputs Y\(n.opType == "LayerNormalization" ? " (and Mean, InvStdDev)" : ""), none omitted; got \(n.outputs)")
        }
        if n.opType == "LayerNormalization" {
            try p.requireInputs(2...3)
            // stash_type chooses the precision of the statistics; the reference kernel keeps
            // them in double and oneDNN in float, both at least float32 as stash_type 1 asks.
            _ = try p.int("stash_type", default: 1)
            guard let scale = p.input(1) else { throw p.fail("the Scale input is missing") }
            let a = Attributes(kind: .layer, axis: try p.int("axis", default: -1), epsilon: eps, outputs: n.outputs.count)
            return (.custom(CustomAttributes(a)), [n.inputs[0], scale] + (p.input(2).map { [$0] } ?? []))
        }
        try p.requireInputs(3...3)
        guard let scale = p.input(1), let bias = p.input(2) else { throw p.fail("the scale and B inputs are required") }
        return (.custom(CustomAttributes(Attributes(kind: .instance, axis: 2, epsilon: eps))), [n.inputs[0], scale, bias])
    }

    func attributes(_ op: Op) -> Attributes? {
        guard case .custom(let c) = op else { return nil }
        return c.as(Attributes.self)
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard var a = attributes(op) else { throw unexpected(op, c.node.name, c.node.opType) }
        let xs = inputs[0]
        switch a.kind {
        case .layer:
            guard !xs.isEmpty else { throw c.fail("the input must have at least one axis") }
            a.axis = try c.normalize(a.axis, rank: xs.count)
            let row = Array(xs[a.axis...])
            for (i, s) in inputs.dropFirst().enumerated() where ShapeInference.broadcast(row, s) != row {
                throw c.fail("\(i == 0 ? "Scale" : "B") of shape \(s) does not broadcast to the normalized shape \(row)")
            }
        case .instance:
            guard xs.count >= 3 else { throw c.fail("the input must be [N, C, D1, ...], got shape \(xs)") }
            for (i, s) in inputs.dropFirst().enumerated() where s != [xs[1]] {
                throw c.fail("\(i == 0 ? "scale" : "B") has shape \(s) but must be [\(xs[1])]")
            }
        }
        // Mean and InvStdDev keep the leading axes and have 1 for the normalized ones.
        let stats = Array(xs[..<a.axis]) + Array(repeating: 1, count: xs.count - a.axis)
        return (.custom(CustomAttributes(a)), [xs] + Array(repeating: stats, count: a.outputs - 1))
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard let a = attributes(step.op) else { throw unexpected(step.op, step.name, step.opType) }
        switch a.kind {
        case .layer:
            ReferenceKernels.layerNorm(x[0], xs[0], axis: a.axis, epsilon: a.epsilon, scale: (x[1], xs[1]),
                                       bias: x.count > 2 ? (x[2], xs[2]) : nil, out: y[0],
                                       mean: y.count > 1 ? y[1] : nil, invStdDev: y.count > 2 ? y[2] : nil)
        case .instance:
            ReferenceKernels.instanceNorm(x[0], xs[0], scale: x[1], bias: x[2], epsilon: a.epsilon, out: y[0])
        }
    }

    /// Layer normalization with constant scale and bias, expanded to one normalized row.
    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard let a = attributes(step.op), a.kind == .layer, step.postOps.isEmpty, step.outputs.count == 1,
              let scale = b.program.constants[step.inputs[1]] else { return false }
        let row = Array(b.program.shape(step.inputs[0])[a.axis...])
        func expanded(_ t: Tensor) -> [Float] {
            var out = [Float](repeating: 0, count: row.reduce(1, *))
            t.scalars.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                    ReferenceKernels.broadcastCopy(s, t.shape, out: d, row)
                }
            }
            return out
        }
        var shift = [Float](repeating: 0, count: row.reduce(1, *))
        if step.inputs.count > 2 {
            guard let bias = b.program.constants[step.inputs[2]] else { return false }
            shift = expanded(bias)
        }
        return try b.layerNormalization(step, axis: a.axis, epsilon: a.epsilon, scale: expanded(scale), shift: shift)
    }

    /// 8 FLOPs per element: the mean (an add), the variance (a subtract, a multiply, an
    /// add), normalizing (a subtract, a multiply), scale and shift. Scale and bias are learned.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        OperatorCost(category: .batchNorm, flops: 8 * step.outputs.reduce(0) { $0 + p.values[$1].count },
                     parameterInputs: step.inputs.dropFirst().filter(p.isConstant))
    }

    /// Instance normalization works channel by channel: channels pass through and may be
    /// slimmed or pruned, its scale and bias following them. Layer normalization over the
    /// axes after the channel axis (`axis ≥ 2`, as after a transpose to channels-last)
    /// leaves axis 1 alone; over the channel axis its statistics and scale span the
    /// channels, which are fixed.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        guard let a = attributes(step.op), p.shape(step.inputs[0]).count >= 2 else { return .passThrough }
        switch a.kind {
        case .instance:
            guard step.inputs.dropFirst().allSatisfy(p.isConstant) else {
                return .pinned("InstanceNormalization '\(step.name)' has a computed scale or bias")
            }
            return .passThrough
        case .layer:
            return a.axis >= 2 ? .passThrough
                : .pinned("LayerNormalization '\(step.name)' normalizes over the channel axis")
        }
    }

    /// Instance normalization's scale and bias hold one value per channel.
    func channelResize(_ step: Step, in p: Program) -> ChannelResize {
        var r = ChannelResize()
        guard attributes(step.op)?.kind == .instance else { return r }
        for v in step.inputs.dropFirst() where p.isConstant(v) { r.inputs[v] = .perChannel(axis: 0) }
        return r
    }
}

/// `Flatten` and `Reshape` (constant target shape with `0` and `-1`): a new shape over the
/// same bytes, so the compiler aliases the input instead of copying.
struct ReshapeOperator: Operator {
    var onnxNames: [String] { ["Flatten", "Reshape"] }

    func attributes(of opType: String) -> [String] { opType == "Flatten" ? ["axis"] : ["allowzero"] }

    func parameterInputs(of opType: String) -> Set<Int> { opType == "Reshape" ? [1] : [] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        if n.opType == "Flatten" {
            try p.requireInputs(1...1)
            return (.flatten(axis: try p.int("axis", default: 1)), [n.inputs[0]])
        }
        try p.requireInputs(2...2)
        if try p.int("allowzero", default: 0) != 0 { throw p.fail("allowzero=1 is not supported") }
        guard let shape = try p.integerInput(1, what: "shape") else { throw p.fail("missing shape input") }
        return (.reshape(shape: shape), [n.inputs[0]])
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        let x = inputs[0]
        switch op {
        case .flatten(let axis):
            let a = axis < 0 ? axis + x.count : axis
            guard a >= 0 && a <= x.count else { throw c.fail("axis \(axis) is out of range for rank \(x.count)") }
            return (.flatten(axis: a), [[x[..<a].reduce(1, *), x[a...].reduce(1, *)]])
        case .reshape(let target):
            var out = target.enumerated().map { $0.element == 0 && $0.offset < x.count ? x[$0.offset] : $0.element }
            let total = x.reduce(1, *)
            let unknown = out.indices.filter { out[$0] == -1 }
            guard unknown.count <= 1, out.allSatisfy({ $0 >= -1 }) else { throw c.fail("invalid target shape \(target)") }
            let known = out.filter { $0 != -1 }.reduce(1, *)
            if let u = unknown.first {
                guard known > 0, total % known == 0 else { throw c.fail("cannot reshape \(x) to \(target)") }
                out[u] = total / known
            }
            guard out.reduce(1, *) == total else { throw c.fail("cannot reshape \(x) (\(total) elements) to \(target)") }
            return (.reshape(shape: out), [out])
        default:
            throw unexpected(op, c.node.name, c.node.opType)
        }
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        y[0].update(from: x[0], count: xs[0].reduce(1, *))
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard step.postOps.isEmpty else { return false }
        return try b.aliasOutput(step)
    }

    func cost(_ step: Step, in program: Program) -> OperatorCost { OperatorCost(category: .dataMovement) }

    /// Flattening from the channel axis keeps channels as the outer feature index; a reshape
    /// to `[N, features]` is such a flatten; other reshapes mix the channel axis.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        switch step.op {
        case .flatten(let axis):
            return axis == 1 ? .flatten : .pinned("Flatten '\(step.name)' that mixes the channel axis")
        case .reshape(let shape):
            let s = p.shape(step.inputs[0])
            if shape == s { return .passThrough }
            if shape.count == 2 && s.count >= 2 && shape[0] == s[0] { return .flatten }
            return .pinned("Reshape '\(step.name)' that mixes the channel axis")
        default:
            return .pinned("'\(step.name)'")
        }
    }

    /// A reshape to `[N, features]` of a value with more dimensions flattens channels; its
    /// feature count changes with them.
    func channelResize(_ step: Step, in p: Program) -> ChannelResize {
        guard case .reshape(let shape) = step.op else { return ChannelResize() }
        let s = p.shape(step.inputs[0])
        return ChannelResize(flattensChannels: shape.count == 2 && s.count >= 2 && shape[0] == s[0] && shape != s)
    }
}

/// Training: the gradient keeps its elements and takes the input's shape.
extension ReshapeOperator {
    func isDifferentiable(_ step: Step) -> Bool { true }

    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws {
        Autograd.passThrough(b, dy, dx)
    }
}

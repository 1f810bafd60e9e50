/// `Concat` along any axis.
struct ConcatOperator: Operator {
    var onnxNames: [String] { ["Concat"] }

    func attributes(of opType: String) -> [String] { ["axis"] }

    /// Empty tensors: a slice may select nothing, and a concatenation may have empty parts.
    func acceptsEmptyTensors(_ op: Op) -> Bool { true }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        guard !n.inputs.isEmpty else { throw p.fail("needs at least one input") }
        guard let axis = try p.ints("axis")?.first else { throw p.fail("missing attribute 'axis'") }
        return (.concat(axis: axis), n.inputs)
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard case .concat(let axis) = op else { throw unexpected(op, c.node.name, c.node.opType) }
        let x = inputs[0]
        let a = try c.normalize(axis, rank: x.count)
        var out = x
        out[a] = 0
        for s in inputs {
            guard s.count == x.count,
                  s.indices.allSatisfy({ $0 == a || s[$0] == x[$0] }) else {
                throw c.fail("cannot concatenate shapes \(inputs) along axis \(axis)")
            }
            out[a] += s[a]
        }
        return (.concat(axis: a), [out])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .concat(let axis) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.concat(Array(zip(x, xs)), axis: axis, out: y[0], ys[0])
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard case .concat(let axis) = step.op, step.postOps.isEmpty else { return false }
        return try b.concat(step, axis: axis)
    }

    func cost(_ step: Step, in program: Program) -> OperatorCost { OperatorCost(category: .dataMovement) }

    /// Along channels the output's channels are the inputs' in order; along another axis all
    /// inputs share the output's channels.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        guard case .concat(let axis) = step.op else { return .pinned("'\(step.name)'") }
        if axis == 1 {
            guard step.inputs.allSatisfy({ !p.isConstant($0) }) else {
                return .pinned("concat '\(step.name)' of a constant along channels")
            }
            return .concat
        }
        guard step.inputs.allSatisfy({ !p.isConstant($0) }) else { return .pinned("concat '\(step.name)' with a constant") }
        return .same(step.inputs)
    }
}

/// Training: each input gets its slice of the gradient.
extension ConcatOperator {
    func isDifferentiable(_ step: Step) -> Bool { true }

    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws {
        guard case .concat(let axis) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.concatBackward(b.inputShapes, axis: axis, dy: dy[0], b.outputShapes[0], dx: dx)
    }
}

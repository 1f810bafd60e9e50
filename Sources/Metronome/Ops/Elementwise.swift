/// The broadcasting binary operators `Add`, `Sub`, `Mul`, `Div` (NumPy broadcasting).
struct BinaryOperator: Operator {
    var onnxNames: [String] { BinaryKind.allCases.map(\.rawValue) }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        try p.requireInputs(2...2)
        guard let kind = BinaryKind(rawValue: n.opType) else { throw p.fail("unknown binary operator") }
        return (.binary(kind), [n.inputs[0], n.inputs[1]])
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard let shape = ShapeInference.broadcast(inputs[0], inputs[1]) else {
            throw c.fail("shapes \(inputs[0]) and \(inputs[1]) cannot be broadcast together")
        }
        return (op, [shape])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .binary(let kind) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.binary(kind, x[0], xs[0], x[1], xs[1], out: y[0], ys[0])
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard case .binary(let kind) = step.op else { return false }
        return try b.binary(step, kind)
    }

    func acceptsFusedActivation(_ step: Step) -> Bool { true }

    /// One FLOP per output element.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        OperatorCost(category: .elementwise, flops: step.outputs.reduce(0) { $0 + p.values[$1].count })
    }

    /// Computed operands whose channel axis lines up with the output's share its channels.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        let out = step.outputs[0]
        let rank = p.shape(out).count
        let c = p.shape(out)[1]
        var shared: [ValueID] = []
        for v in step.inputs where !p.isConstant(v) {
            let s = p.shape(v)
            guard let axis = ChannelBehaviour.alignedChannelAxis(s, rank: rank) else { continue }
            if s[axis] == c && c > 1 { shared.append(v) }
        }
        return .same(shared)
    }

    /// A constant operand whose channel axis lines up with the output's is a per-channel
    /// vector (a scale or shift).
    func channelResize(_ step: Step, in p: Program) -> ChannelResize {
        let out = step.outputs[0]
        let rank = p.shape(out).count, c = p.shape(out)[1]
        var r = ChannelResize()
        for v in step.inputs where p.isConstant(v) {
            let s = p.shape(v)
            if let axis = ChannelBehaviour.alignedChannelAxis(s, rank: rank), s[axis] == c, c > 1 {
                r.inputs[v] = .perChannel(axis: axis)
            }
        }
        return r
    }
}

/// Training: broadcasting binary operators sum their gradients over broadcast dimensions.
extension BinaryOperator {
    func isDifferentiable(_ step: Step) -> Bool { true }

    /// Fast kernels, for the residual add (two operands of the output's shape): eight lanes at
    /// a time, split over the OpenMP team. Broadcasting and the other kinds take the
    /// reference kernels.
    func trainingForward(_ step: Step, _ b: StepBuffers, _ memory: inout StepMemory, _ kernels: TrainingKernels) throws -> Bool {
        guard kernels == .fast, case .binary(.add) = step.op, b.inputShapes[0] == b.outputShapes[0],
              b.inputShapes[1] == b.outputShapes[0] else { return false }
        let x = b.inputs[0], z = b.inputs[1], y = b.outputs[0]
        let n = b.outputShapes[0].reduce(1, *), chunk = 1 << 14
        ParallelFor.run((n + chunk - 1) / chunk) { c, _ in
            let start = c * chunk, count = min(n, start + chunk) - start
            GemmKernels.copy(x + start, to: y + start, count)
            GemmKernels.add(z + start, into: y + start, count)
        }
        return true
    }

    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws {
        guard case .binary(let kind) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        if kernels == .fast, kind == .add, b.inputShapes[0] == b.outputShapes[0], b.inputShapes[1] == b.outputShapes[0] {
            // Both operands' gradients are the output's: added in place, as every backward adds.
            let g = dy[0], n = b.outputShapes[0].reduce(1, *), chunk = 1 << 14
            let targets = dx.compactMap { $0 }
            ParallelFor.run((n + chunk - 1) / chunk) { c, _ in
                let start = c * chunk, count = min(n, start + chunk) - start
                for d in targets { GemmKernels.add(g + start, into: d + start, count) }
            }
            return
        }
        ReferenceKernels.binaryBackward(kind, b.inputs[0], b.inputShapes[0], b.inputs[1], b.inputShapes[1],
                                        dy: dy[0], b.outputShapes[0], da: dx[0], db: dx[1])
    }
}

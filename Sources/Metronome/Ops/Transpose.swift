/// `Transpose` by a permutation (reversed axes by default).
struct TransposeOperator: Operator {
    var onnxNames: [String] { ["Transpose"] }

    func attributes(of opType: String) -> [String] { ["perm"] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        try p.requireInputs(1...1)
        return (.transpose(perm: try p.ints("perm") ?? []), [p.node.inputs[0]])
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard case .transpose(var perm) = op else { throw unexpected(op, c.node.name, c.node.opType) }
        let x = inputs[0]
        if perm.isEmpty { perm = Array((0..<x.count).reversed()) }
        guard perm.sorted() == Array(0..<x.count) else { throw c.fail("perm \(perm) is not a permutation of 0..<\(x.count)") }
        return (.transpose(perm: perm), [perm.map { x[$0] }])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .transpose(let perm) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.transpose(x[0], xs[0], perm: perm, out: y[0], ys[0])
    }

    /// oneDNN: one reorder, reading the input through strides permuted into the output's order
    /// (a JIT-compiled copy instead of the Swift loop).
    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard case .transpose(let perm) = step.op, step.postOps.isEmpty else { return false }
        return try b.transpose(step, perm: perm)
    }

    func cost(_ step: Step, in program: Program) -> OperatorCost { OperatorCost(category: .dataMovement) }

    func channelBehaviour(_ step: Step, in program: Program) -> ChannelBehaviour {
        .pinned("transpose '\(step.name)'")
    }
}

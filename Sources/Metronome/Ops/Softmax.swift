/// `Softmax` along one axis (opset 13 semantics; the importer rewrites older opsets'
/// flatten-to-2-D form).
struct SoftmaxOperator: Operator {
    var onnxNames: [String] { ["Softmax"] }

    func attributes(of opType: String) -> [String] { ["axis"] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        try p.requireInputs(1...1)
        return (.softmax(axis: try p.int("axis", default: -1)), [p.node.inputs[0]])
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard case .softmax(let axis) = op else { throw unexpected(op, c.node.name, c.node.opType) }
        return (.softmax(axis: try c.normalize(axis, rank: inputs[0].count)), [inputs[0]])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .softmax(let axis) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.softmax(x[0], xs[0], axis: axis, out: y[0])
    }

    // oneDNN: reference only.

    /// 5 FLOPs per element (max, subtract, exp, sum, divide).
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        OperatorCost(category: .softmax, flops: 5 * step.outputs.reduce(0) { $0 + p.values[$1].count })
    }

    func channelBehaviour(_ step: Step, in program: Program) -> ChannelBehaviour { .passThrough }
}

/// Training: the softmax Jacobian applied to the output gradient.
extension SoftmaxOperator {
    func isDifferentiable(_ step: Step) -> Bool { true }

    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws {
        guard case .softmax(let axis) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        guard let d = dx[0] else { return }
        ReferenceKernels.softmaxBackward(b.outputs[0], b.outputShapes[0], axis: axis, dy: dy[0], dx: d)
    }
}

/// `Identity` and `Dropout` (an identity at inference). The optimization passes turn them
/// into renames; what remains is aliased by the compiler.
struct IdentityOperator: Operator {
    var onnxNames: [String] { ["Identity", "Dropout"] }

    func attributes(of opType: String) -> [String] { opType == "Dropout" ? ["ratio", "seed"] : [] }

    /// Empty tensors: the kernel loops over zero elements (a reduction writes its identity).
    func acceptsEmptyTensors(_ op: Op) -> Bool { true }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        if n.opType == "Identity" {
            try p.requireInputs(1...1)
            return (.identity, [n.inputs[0]])
        }
        try p.requireInputs(1...3)
        p.ignore("ratio"); p.ignore("seed")
        guard n.outputs.count == 1 else { throw p.fail("the mask output is not supported at inference") }
        return (.identity, [n.inputs[0]])
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        (op, [inputs[0]])
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

    func channelBehaviour(_ step: Step, in program: Program) -> ChannelBehaviour { .passThrough }

    /// Opset 17 takes Dropout's ratio and training_mode as inputs; neither matters at inference.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        guard node.opType == "Dropout" else { return [node] }
        var node = node
        node.attributes = [:]
        node.inputs = [node.inputs[0]]
        return [node]
    }
}

/// Training: the gradient passes through (Dropout is the identity: training runs without it).
extension IdentityOperator {
    func isDifferentiable(_ step: Step) -> Bool { true }

    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws {
        Autograd.passThrough(b, dy, dx)
    }
}

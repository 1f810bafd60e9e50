/// `Split` into given sizes (attribute before opset 13, input after) or equal parts.
struct SplitOperator: Operator {
    var onnxNames: [String] { ["Split"] }

    func attributes(of opType: String) -> [String] { ["axis", "num_outputs", "split"] }

    func parameterInputs(of opType: String) -> Set<Int> { [1] }

    /// Empty tensors: the kernel loops over zero elements (a reduction writes its identity).
    func acceptsEmptyTensors(_ op: Op) -> Bool { true }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        try p.requireInputs(1...2)
        let axis = try p.int("axis", default: 0)
        var sizes = try p.ints("split") ?? []
        if let s = try p.integerInput(1, what: "split sizes") { sizes = s }
        p.ignore("num_outputs")
        // Sizes left empty mean equal parts; shape inference fills them in.
        return (.split(axis: axis, sizes: sizes.isEmpty ? Array(repeating: -1, count: n.outputs.count) : sizes),
                [n.inputs[0]])
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard case .split(let axis, var sizes) = op else { throw unexpected(op, c.node.name, c.node.opType) }
        let x = inputs[0]
        let a = try c.normalize(axis, rank: x.count)
        if sizes.allSatisfy({ $0 == -1 }) {
            let parts = sizes.count
            guard parts > 0 else { throw c.fail("split needs at least one output") }
            let chunk = (x[a] + parts - 1) / parts
            sizes = (0..<parts).map { min(chunk, max(0, x[a] - $0 * chunk)) }
        }
        guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == x[a] else {
            throw c.fail("split sizes \(sizes) do not add up to dimension \(a) of shape \(x)")
        }
        return (.split(axis: a, sizes: sizes), sizes.map { var s = x; s[a] = $0; return s })
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .split(let axis, _) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.split(x[0], xs[0], axis: axis, outputs: Array(zip(y, ys)))
    }

    // oneDNN: reference only (a copy per output).

    func cost(_ step: Step, in program: Program) -> OperatorCost { OperatorCost(category: .dataMovement) }

    func channelBehaviour(_ step: Step, in program: Program) -> ChannelBehaviour {
        guard case .split(let axis, _) = step.op, axis != 1 else { return .pinned("split '\(step.name)' along channels") }
        return .passThrough
    }

    /// Opset 17 takes the sizes as an input and has no `num_outputs` (the output count
    /// implies equal parts).
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        var node = node
        node.attributes["num_outputs"] = nil
        if let a = node.attributes.removeValue(forKey: "split"), case .ints(let sizes) = a {
            node.inputs = [node.inputs[0], context.addInt64(sizes, base: node.name + "_split")]
        }
        return [node]
    }
}

/// Training: the outputs' gradients concatenated back.
extension SplitOperator {
    func isDifferentiable(_ step: Step) -> Bool { true }

    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws {
        guard case .split(let axis, _) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        guard let d = dx[0] else { return }
        ReferenceKernels.splitBackward(b.inputShapes[0], axis: axis, dy: Array(zip(dy, b.outputShapes)), dx: d)
    }
}

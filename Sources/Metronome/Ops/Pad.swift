/// `Pad` with a constant value; pads as an attribute (opset < 11) or a constant input.
struct PadOperator: Operator {
    var onnxNames: [String] { ["Pad"] }

    func attributes(of opType: String) -> [String] { ["mode", "pads", "value"] }

    func parameterInputs(of opType: String) -> Set<Int> { [1, 3] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        try p.requireInputs(1...4)
        let mode = try p.string("mode", default: "constant")
        guard mode == "constant" else { throw p.fail("only constant padding is supported, got mode '\(mode)'") }
        var pads = try p.ints("pads") ?? []
        var value = try p.float("value", default: 0)
        if let v = try p.integerInput(1, what: "pads") { pads = v }
        if let v = try p.scalarInput(2, what: "constant value") { value = v }
        if p.input(3) != nil { throw p.fail("the axes input is not supported") }
        guard pads.allSatisfy({ $0 >= 0 }) else { throw p.fail("negative pads \(pads) are not supported") }
        return (.pad(pads: pads, value: value), [p.node.inputs[0]])
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard case .pad(let pads, _) = op else { throw unexpected(op, c.node.name, c.node.opType) }
        let x = inputs[0]
        guard pads.count == 2 * x.count else { throw c.fail("pads \(pads) need \(2 * x.count) values for rank \(x.count)") }
        return (op, [x.indices.map { x[$0] + pads[$0] + pads[$0 + x.count] }])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .pad(let pads, let value) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.pad(x[0], xs[0], pads: pads, value: value, out: y[0], ys[0])
    }

    // oneDNN: reference only.

    func cost(_ step: Step, in program: Program) -> OperatorCost { OperatorCost(category: .dataMovement) }

    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        guard case .pad(let pads, _) = step.op else { return .pinned("pad '\(step.name)' along channels") }
        let r = p.shape(step.inputs[0]).count
        return pads[1] == 0 && pads[1 + r] == 0 ? .passThrough : .pinned("pad '\(step.name)' along channels")
    }

    /// Opset 17 takes pads and the constant value as inputs.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        var node = node
        if let a = node.attributes.removeValue(forKey: "pads"), case .ints(let v) = a {
            let name = context.addInt64(v, base: node.name + "_pads")
            node.inputs = [node.inputs[0], name] + (node.inputs.count > 2 ? Array(node.inputs[2...]) : [])
        }
        if let a = node.attributes.removeValue(forKey: "value") {
            var value: Float = 0
            if case .float(let f) = a { value = f }
            let name = context.addFloat(Tensor(shape: [], repeating: value), base: node.name + "_value")
            while node.inputs.count < 2 { node.inputs.append("") }
            node.inputs = Array(node.inputs.prefix(2)) + [name]
        }
        return [node]
    }
}

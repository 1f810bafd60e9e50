/// Typed attributes of `Pad` in the modes that copy input values instead of a constant
/// (constant padding keeps its own ``Op/pad(pads:value:)`` case).
struct PadModeAttributes: Hashable, Sendable {
    /// `reflect` mirrors without repeating the edge, `edge` repeats it, `wrap` (opset 19)
    /// continues periodically.
    enum Mode: String, Hashable, Sendable { case reflect, edge, wrap }
    var mode: Mode
    /// ONNX pad order: all begins, then all ends.
    var pads: [Int]
}

/// `Pad` in modes constant, reflect, edge and wrap; pads as an attribute (opset < 11) or a
/// constant input.
struct PadOperator: Operator {
    var onnxNames: [String] { ["Pad"] }

    func attributes(of opType: String) -> [String] { ["mode", "pads", "value"] }

    func parameterInputs(of opType: String) -> Set<Int> { [1, 3] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        try p.requireInputs(1...4)
        let modeName = try p.string("mode", default: "constant")
        let mode = PadModeAttributes.Mode(rawValue: modeName)
        guard modeName == "constant" || mode != nil else {
            throw p.fail("unsupported mode '\(modeName)'; Pad has constant, reflect, edge and wrap")
        }
        var pads = try p.ints("pads") ?? []
        var value = try p.float("value", default: 0)
        if let v = try p.integerInput(1, what: "pads") { pads = v }
        if let v = try p.scalarInput(2, what: "constant value") { value = v }
        if p.input(3) != nil { throw p.fail("the axes input is not supported") }
        guard pads.allSatisfy({ $0 >= 0 }) else { throw p.fail("negative pads \(pads) are not supported") }
        if let mode { return (.custom(CustomAttributes(PadModeAttributes(mode: mode, pads: pads))), [p.node.inputs[0]]) }
        return (.pad(pads: pads, value: value), [p.node.inputs[0]])
    }

    /// The pads of either form.
    private func padAmounts(of op: Op) -> [Int]? {
        if case .pad(let pads, _) = op { return pads }
        if case .custom(let c) = op, let a = c.as(PadModeAttributes.self) { return a.pads }
        return nil
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard let pads = padAmounts(of: op) else { throw unexpected(op, c.node.name, c.node.opType) }
        let x = inputs[0]
        guard pads.count == 2 * x.count else { throw c.fail("pads \(pads) need \(2 * x.count) values for rank \(x.count)") }
        if case .custom(let custom) = op, let a = custom.as(PadModeAttributes.self) {
            for d in x.indices where x[d] == 0 && pads[d] + pads[d + x.count] > 0 {
                throw c.fail("\(a.mode.rawValue) padding needs input values, but axis \(d) of \(x) is empty")
            }
        }
        return (op, [x.indices.map { x[$0] + pads[$0] + pads[$0 + x.count] }])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        if case .custom(let custom) = step.op, let a = custom.as(PadModeAttributes.self) {
            ReferenceKernels.pad(x[0], xs[0], a, out: y[0], ys[0])
            return
        }
        guard case .pad(let pads, let value) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.pad(x[0], xs[0], pads: pads, value: value, out: y[0], ys[0])
    }

    // oneDNN: reference only.

    func cost(_ step: Step, in program: Program) -> OperatorCost { OperatorCost(category: .dataMovement) }

    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        guard let pads = padAmounts(of: step.op) else { return .pinned("pad '\(step.name)' along channels") }
        let r = p.shape(step.inputs[0]).count
        return pads[1] == 0 && pads[1 + r] == 0 ? .passThrough : .pinned("pad '\(step.name)' along channels")
    }

    /// Opset 17 takes pads and the constant value as inputs, and has no wrap mode.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        var node = node
        if node.attributes["mode"] == .string("wrap") {
            throw MetronomeError.node(node: node.name, op: node.opType, message: "cannot export to opset 17: mode wrap (opset 19)")
        }
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

extension ReferenceKernels {
    /// Reflect, edge or wrap padding: each output position along each axis reads the input
    /// position the mode maps it to.
    static func pad(_ x: In, _ xs: [Int], _ a: PadModeAttributes, out y: Out, _ ys: [Int]) {
        let r = xs.count
        let count = ys.reduce(1, *)
        guard count > 0 else { return }
        let inStrides = ReferenceKernels.rowMajorStrides(xs)
        let tables = (0..<r).map { d -> [Int] in
            let length = xs[d]
            return (0..<ys[d]).map { o -> Int in
                let i = o - a.pads[d]
                switch a.mode {
                case .edge: return min(max(i, 0), length - 1) * inStrides[d]
                case .wrap: return ((i % length + length) % length) * inStrides[d]
                case .reflect:
                    guard length > 1 else { return 0 }
                    let period = 2 * (length - 1)
                    let m = (i % period + period) % period
                    return (m < length ? m : period - m) * inStrides[d]
                }
            }
        }
        var index = Array(repeating: 0, count: r)
        for i in 0..<count {
            var src = 0
            for d in 0..<r { src += tables[d][index[d]] }
            y[i] = x[src]
            var d = r - 1
            while d >= 0 { index[d] += 1; if index[d] < ys[d] { break }; index[d] = 0; d -= 1 }
        }
    }
}

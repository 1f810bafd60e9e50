/// `Gather` of run-time data with constant indices (a class or channel selection, the last
/// token of a sequence). Gather of shapes and constants is evaluated at import time; here the
/// importer hands over the indices as an integer constant and their shape as the attribute
/// `indices_shape` (a scalar index drops the axis). Reference kernel: it copies rows.
struct GatherOperator: Operator {
    struct Attributes: Hashable, Sendable {
        var axis: Int
        var indices: [Int]
        var indicesShape: [Int]
    }

    var onnxNames: [String] { ["Gather"] }

    func attributes(of opType: String) -> [String] { ["axis"] }

    func parameterInputs(of opType: String) -> Set<Int> { [1] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        try p.requireInputs(2...2)
        guard let indices = try p.integerInput(1, what: "indices") else { throw p.fail("the indices input is missing") }
        var shape = [indices.count]
        if let s = try p.ints("indices_shape") { shape = s }
        guard shape.reduce(1, *) == indices.count else {
            throw p.fail("indices_shape \(shape) does not hold \(indices.count) indices")
        }
        let axis = try p.int("axis", default: 0)
        return (.custom(CustomAttributes(Attributes(axis: axis, indices: indices, indicesShape: shape))), [p.node.inputs[0]])
    }

    static func attributes(_ op: Op) -> Attributes? {
        guard case .custom(let c) = op else { return nil }
        return c.as(Attributes.self)
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard var a = Self.attributes(op) else { throw unexpected(op, c.node.name, c.node.opType) }
        let x = inputs[0]
        a.axis = try c.normalize(a.axis, rank: x.count)
        let n = x[a.axis]
        a.indices = try a.indices.map { i in
            guard i >= -n && i < n else { throw c.fail("index \(i) is out of range for axis \(a.axis) of extent \(n)") }
            return i < 0 ? i + n : i
        }
        let out = Array(x[..<a.axis]) + a.indicesShape + Array(x[(a.axis + 1)...])
        return (.custom(CustomAttributes(a)), [out])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard let a = Self.attributes(step.op) else { throw unexpected(step.op, step.name, step.opType) }
        let outer = xs[0][..<a.axis].reduce(1, *), inner = xs[0][(a.axis + 1)...].reduce(1, *), n = xs[0][a.axis]
        var o = 0
        for b in 0..<outer {
            for i in a.indices {
                (y[0] + o).update(from: x[0] + (b * n + i) * inner, count: inner)
                o += inner
            }
        }
    }

    func cost(_ step: Step, in program: Program) -> OperatorCost { OperatorCost(category: .dataMovement) }

    /// Selecting along a spatial axis with a list of indices keeps the channels; anything else
    /// selects or moves them.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        guard let a = Self.attributes(step.op), a.axis >= 2, a.indicesShape.count == 1 else {
            return .pinned("Gather '\(step.name)' selects along the channel or batch axis, or drops an axis")
        }
        return .passThrough
    }

    /// The indices as an int32 tensor of their shape.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        var n = node
        guard let indices = context.integerConstants[node.inputs[1]] else {
            throw MetronomeError.node(node: node.name, op: node.opType, message: "indices '\(node.inputs[1])' are not a constant")
        }
        var shape = [indices.count]
        if case .ints(let s)? = node.attributes["indices_shape"] { shape = s }
        n.attributes["indices_shape"] = nil
        n.inputs[1] = context.addIntegers(indices, shape: shape, type: .int32, base: node.name + "_indices")
        return [n]
    }
}

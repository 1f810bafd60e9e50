/// Typed attributes of `Expand` (the target shape, broadcast both ways with the input) and
/// `Tile` (one repeat count per axis); both come from constant inputs.
struct ExpandTileAttributes: Hashable, Sendable {
    enum Kind: String, Hashable, Sendable { case expand, tile }
    var kind: Kind
    /// Expand's `shape` or Tile's `repeats`, as the node gives them.
    var values: [Int]
}

/// `Expand` and `Tile`: copies of the input along axes, to a constant shape or a constant
/// number of repeats. Reference kernel only (oneDNN has no broadcast-copy primitive).
struct ExpandTileOperator: Operator {
    var onnxNames: [String] { ["Expand", "Tile"] }

    func parameterInputs(of opType: String) -> Set<Int> { [1] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        try p.requireInputs(2...2)
        let expand = p.node.opType == "Expand"
        let what = expand ? "shape" : "repeats"
        guard let values = try p.integerInput(1, what: what) else { throw p.fail("the \(what) input is missing") }
        if expand {
            guard values.allSatisfy({ $0 >= 1 }) else { throw p.fail("shape \(values) must be positive") }
        } else {
            guard values.allSatisfy({ $0 >= 0 }) else { throw p.fail("repeats \(values) must not be negative") }
        }
        let a = ExpandTileAttributes(kind: expand ? .expand : .tile, values: values)
        return (.custom(CustomAttributes(a)), [p.node.inputs[0]])
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard case .custom(let custom) = op, let a = custom.as(ExpandTileAttributes.self) else {
            throw unexpected(op, c.node.name, c.node.opType)
        }
        let x = inputs[0]
        switch a.kind {
        case .expand:
            guard let out = ShapeInference.broadcast(x, a.values) else {
                throw c.fail("input \(x) cannot be broadcast to shape \(a.values)")
            }
            _ = try c.checkedCount(out)
            return (op, [out])
        case .tile:
            guard a.values.count == x.count else {
                throw c.fail("repeats \(a.values) need \(x.count) values for input \(x)")
            }
            let out = try zip(x, a.values).map { d, r -> Int in
                let (v, overflow) = d.multipliedReportingOverflow(by: r)
                guard !overflow else { throw c.fail("tiling \(x) by \(a.values) overflows") }
                return v
            }
            guard out.allSatisfy({ $0 > 0 }) else { throw c.fail("tiling \(x) by \(a.values) gives the empty shape \(out)") }
            _ = try c.checkedCount(out)
            return (op, [out])
        }
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .custom(let custom) = step.op, let a = custom.as(ExpandTileAttributes.self) else {
            throw unexpected(step.op, step.name, step.opType)
        }
        switch a.kind {
        case .expand: ReferenceKernels.expand(x[0], xs[0], out: y[0], ys[0])
        case .tile: ReferenceKernels.tile(x[0], xs[0], out: y[0], ys[0])
        }
    }

    // oneDNN: reference only.

    func cost(_ step: Step, in program: Program) -> OperatorCost { OperatorCost(category: .dataMovement) }

    /// Channels pass through when the channel axis is neither broadcast from 1 nor
    /// repeated, and the constant does not name a channel count (Expand's aligned entry is
    /// 1 or absent, Tile's repeat is 1); otherwise the step fixes the channel count.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        let pinned = ChannelBehaviour.pinned("\(step.opType.lowercased()) '\(step.name)' along channels")
        guard case .custom(let custom) = step.op, let a = custom.as(ExpandTileAttributes.self) else { return pinned }
        let x = p.shape(step.inputs[0]), y = p.shape(step.outputs[0])
        guard x.count == y.count, x.count > 1, x[1] == y[1] else { return pinned }
        switch a.kind {
        case .expand:
            let aligned = a.values.count - y.count + 1
            return aligned < 0 || a.values[aligned] == 1 ? .passThrough : pinned
        case .tile:
            return a.values[1] == 1 ? .passThrough : pinned
        }
    }
}

extension ReferenceKernels {
    /// `y = x` broadcast to `ys` (NumPy rules; `x` may have fewer axes).
    static func expand(_ x: In, _ xs: [Int], out y: Out, _ ys: [Int]) {
        let count = ys.reduce(1, *)
        guard count > 0 else { return }
        let strides = broadcastStrides(xs, to: ys)
        var index = Array(repeating: 0, count: ys.count)
        var src = 0
        for i in 0..<count {
            y[i] = x[src]
            var d = ys.count - 1
            while d >= 0 {
                index[d] += 1
                src += strides[d]
                if index[d] < ys[d] { break }
                src -= strides[d] * ys[d]
                index[d] = 0
                d -= 1
            }
        }
    }

    /// `y[i] = x[i mod xs]` along every axis: the input repeated to fill `ys`.
    static func tile(_ x: In, _ xs: [Int], out y: Out, _ ys: [Int]) {
        let count = ys.reduce(1, *)
        guard count > 0 else { return }
        let inStrides = ReferenceKernels.rowMajorStrides(xs)
        var index = Array(repeating: 0, count: ys.count)
        for i in 0..<count {
            var src = 0
            for d in 0..<xs.count { src += (index[d] % xs[d]) * inStrides[d] }
            y[i] = x[src]
            var d = ys.count - 1
            while d >= 0 { index[d] += 1; if index[d] < ys[d] { break }; index[d] = 0; d -= 1 }
        }
    }
}

extension ShapeContext {
    /// The element count of `shape`, or an error naming the node when it overflows or
    /// exceeds 2^31 elements (an output no model needs, and a trap or an allocation failure
    /// if computed).
    func checkedCount(_ shape: [Int]) throws -> Int {
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p <= 1 << 31 else { throw fail("output shape \(shape) is too large") }
            count = p
        }
        return count
    }
}

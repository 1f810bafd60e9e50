/// `Slice` with positive or negative steps; bounds as attributes (opset < 10) or constant inputs.
struct SliceOperator: Operator {
    var onnxNames: [String] { ["Slice"] }

    func attributes(of opType: String) -> [String] { ["axes", "ends", "starts"] }

    func parameterInputs(of opType: String) -> Set<Int> { [1, 2, 3, 4] }

    /// Empty tensors: a slice may select nothing, and a concatenation may have empty parts.
    func acceptsEmptyTensors(_ op: Op) -> Bool { true }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        try p.requireInputs(1...5)
        // Opset < 10 passes bounds as attributes.
        var starts = try p.ints("starts"), ends = try p.ints("ends"), axes = try p.ints("axes")
        var steps: [Int]? = nil
        if let s = try p.integerInput(1, what: "starts") { starts = s }
        if let e = try p.integerInput(2, what: "ends") { ends = e }
        if let a = try p.integerInput(3, what: "axes") { axes = a }
        if let s = try p.integerInput(4, what: "steps") { steps = s }
        guard let starts, let ends, starts.count == ends.count else { throw p.fail("starts and ends must be given with equal lengths") }
        let ax = axes ?? Array(0..<starts.count)
        let st = steps ?? Array(repeating: 1, count: starts.count)
        guard ax.count == starts.count, st.count == starts.count else { throw p.fail("axes and steps must match starts") }
        guard !st.contains(0) else { throw p.fail("steps must not be 0, got \(st)") }
        return (.slice(starts: starts, ends: ends, axes: ax, steps: st), [n.inputs[0]])
    }

    /// Clamps the bounds to the input's extent and normalizes negative axes. A negative step
    /// walks from `start` (clamped to `[0, dim − 1]`) down to `end` exclusive (clamped to
    /// `[−1, dim − 1]`), as ONNX defines it.
    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard case .slice(let starts, let ends, let axes, let steps) = op else { throw unexpected(op, c.node.name, c.node.opType) }
        let x = inputs[0]
        var out = x
        var rStarts: [Int] = [], rEnds: [Int] = [], rAxes: [Int] = []
        for i in starts.indices {
            let a = try c.normalize(axes[i], rank: x.count)
            guard !rAxes.contains(a) else { throw c.fail("axis \(axes[i]) is sliced twice") }
            let dim = x[a]
            let step = steps[i]
            func clamp(_ v: Int) -> Int {
                let w = v < 0 ? v + dim : v
                return step > 0 ? min(max(w, 0), dim) : min(max(w, -1), dim - 1)
            }
            let s = clamp(starts[i]), e = clamp(ends[i])
            if step > 0 {
                out[a] = e > s ? (e - s + step - 1) / step : 0
                rStarts.append(s); rEnds.append(max(e, s))
            } else {
                out[a] = s > e ? (s - e - step - 1) / -step : 0
                rStarts.append(max(s, 0)); rEnds.append(min(e, s))
            }
            rAxes.append(a)
        }
        return (.slice(starts: rStarts, ends: rEnds, axes: rAxes, steps: steps), [out])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .slice(let starts, _, let axes, let steps) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.slice(x[0], xs[0], starts: starts, axes: axes, steps: steps, out: y[0], ys[0])
    }

    // oneDNN: reference only.

    func cost(_ step: Step, in program: Program) -> OperatorCost { OperatorCost(category: .dataMovement) }

    func channelBehaviour(_ step: Step, in program: Program) -> ChannelBehaviour {
        guard case .slice(_, _, let axes, _) = step.op, !axes.contains(1) else {
            return .pinned("slice '\(step.name)' along channels")
        }
        return .passThrough
    }

    /// Opset 17 takes the bounds as inputs.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        var node = node
        var params: [String] = []
        for key in ["starts", "ends", "axes"] {
            guard let a = node.attributes.removeValue(forKey: key), case .ints(let v) = a else { continue }
            params.append(context.addInt64(v, base: node.name + "_" + key))
        }
        if !params.isEmpty { node.inputs = [node.inputs[0]] + params }
        return [node]
    }
}

import CDNNL

/// What a reduction computes over its axes.
public enum ReduceKind: String, Hashable, Sendable, CaseIterable {
    case mean = "ReduceMean", max = "ReduceMax", min = "ReduceMin", sum = "ReduceSum", l2 = "ReduceL2"
    case l1 = "ReduceL1", sumSquare = "ReduceSumSquare", prod = "ReduceProd"
    case logSum = "ReduceLogSum", logSumExp = "ReduceLogSumExp"

    /// The accumulator's starting value (the result over an empty set, before `finish`).
    var initial: Double {
        switch self {
        case .max: return -.infinity
        case .min: return .infinity
        case .prod: return 1
        default: return 0
        }
    }

    /// The oneDNN reduction algorithm and its `p`; nil for the log reductions (reference only).
    var oneDNN: (dnnl_alg_kind_t, Float)? {
        switch self {
        case .mean: return (dnnl_reduction_mean, 0)
        case .max: return (dnnl_reduction_max, 0)
        case .min: return (dnnl_reduction_min, 0)
        case .sum: return (dnnl_reduction_sum, 0)
        case .l2: return (dnnl_reduction_norm_lp_sum, 2)
        case .l1: return (dnnl_reduction_norm_lp_sum, 1)
        case .sumSquare: return (dnnl_reduction_norm_lp_power_p_sum, 2)
        case .prod: return (dnnl_reduction_mul, 0)
        case .logSum, .logSumExp: return nil
        }
    }
}

/// `ReduceMean`, `ReduceMax`, `ReduceMin`, `ReduceSum`, `ReduceL2`, `ReduceL1`, `ReduceSumSquare`,
/// `ReduceProd`, `ReduceLogSum`, `ReduceLogSumExp`. The axes are an attribute
/// before opset 18 (ReduceSum: before 13) and a constant input from then on; both forms are
/// read whatever the opset, since a valid node uses only one. `keepdims` (default 1) and
/// `noop_with_empty_axes` (default 0: no axes means all axes) as ONNX defines them. A oneDNN
/// reduction primitive runs them, on plain layouts.
struct ReduceOperator: Operator {
    /// `axes` is nil until shape inference, which resolves it to sorted, non-negative axes
    /// (empty: the input is copied, `noop_with_empty_axes`).
    struct Attributes: Hashable, Sendable {
        var kind: ReduceKind
        var axes: [Int]?
        var keepdims: Bool
        var noopWithEmptyAxes: Bool
    }

    var onnxNames: [String] { ReduceKind.allCases.map(\.rawValue) }

    func attributes(of opType: String) -> [String] { ["axes", "keepdims", "noop_with_empty_axes"] }

    func parameterInputs(of opType: String) -> Set<Int> { [1] }

    /// Empty tensors: the kernel loops over zero elements (a reduction writes its identity).
    func acceptsEmptyTensors(_ op: Op) -> Bool { true }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        guard let kind = ReduceKind(rawValue: n.opType) else { throw p.unsupported() }
        try p.requireInputs(1...2)
        let keepdims = try p.int("keepdims", default: 1) != 0
        let noop = try p.int("noop_with_empty_axes", default: 0) != 0
        let attributeAxes = try p.ints("axes")
        let inputAxes = try p.integerInput(1, what: "axes")
        if attributeAxes != nil && inputAxes != nil { throw p.fail("axes are given both as an attribute and as an input") }
        var axes = attributeAxes ?? inputAxes
        if axes?.isEmpty == true { axes = nil }
        let a = Attributes(kind: kind, axes: axes, keepdims: keepdims, noopWithEmptyAxes: noop)
        return (.custom(CustomAttributes(a)), [n.inputs[0]])
    }

    func attributes(_ op: Op) -> Attributes? {
        guard case .custom(let c) = op else { return nil }
        return c.as(Attributes.self)
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard var a = attributes(op) else { throw unexpected(op, c.node.name, c.node.opType) }
        let xs = inputs[0], rank = xs.count
        var axes: [Int]
        if let given = a.axes {
            axes = try given.map { try c.normalize($0, rank: rank) }
            guard Set(axes).count == axes.count else { throw c.fail("axes \(given) name an axis twice") }
            axes.sort()
        } else {
            axes = a.noopWithEmptyAxes ? [] : Array(0..<rank)
        }
        a.axes = axes
        var shape: [Int] = []
        for (d, n) in xs.enumerated() {
            if !axes.contains(d) { shape.append(n) } else if a.keepdims { shape.append(1) }
        }
        return (.custom(CustomAttributes(a)), [shape])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard let a = attributes(step.op), let axes = a.axes else { throw unexpected(step.op, step.name, step.opType) }
        if axes.isEmpty {
            y[0].update(from: x[0], count: ys[0].reduce(1, *))
        } else {
            ReferenceKernels.reduce(a.kind, x[0], xs[0], axes: axes, out: y[0])
        }
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard let a = attributes(step.op), let axes = a.axes, !axes.isEmpty, step.postOps.isEmpty else { return false }
        return try b.reduction(step, a.kind, axes: axes)
    }

    /// One FLOP per input element (ReduceL2: two, a square and an add), plus one per output
    /// element for ReduceMean's division and ReduceL2's square root.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        let input = p.values[step.inputs[0]].count, output = p.values[step.outputs[0]].count
        switch attributes(step.op)?.kind {
        case .mean?: return OperatorCost(category: .pooling, flops: input + output)
        case .l2?, .sumSquare?, .l1?: return OperatorCost(category: .pooling, flops: 2 * input + output)
        case .logSum?: return OperatorCost(category: .pooling, flops: input + 4 * output)
        case .logSumExp?: return OperatorCost(category: .pooling, flops: 6 * input + 4 * output)
        default: return OperatorCost(category: .pooling, flops: input)
        }
    }

    /// A reduction over spatial (or later) axes keeps channels on axis 1: they pass through,
    /// and slimming and pruning may change them (an SE block's ReduceMean). One over the
    /// channel axis, or one that drops the batch axis so channels move to axis 0, fixes the
    /// channels of its input.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        guard let a = attributes(step.op), let axes = a.axes, p.shape(step.inputs[0]).count >= 2 else { return .passThrough }
        if axes.contains(1) {
            return .pinned("\(step.opType) '\(step.name)' reduces over the channel axis")
        }
        if axes.contains(0) && !a.keepdims {
            return .pinned("\(step.opType) '\(step.name)' drops the batch axis, moving channels off axis 1")
        }
        return .passThrough
    }

    /// Opset 17 takes ReduceSum's axes as an input and the other reductions' axes as an
    /// attribute, and has `noop_with_empty_axes` for ReduceSum only (elsewhere such a node is
    /// an Identity).
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        var node = node
        let noop: Bool
        switch node.attributes["noop_with_empty_axes"] {
        case .int(let v)?: noop = v != 0
        default: noop = false
        }
        var axes: [Int]? = nil
        if case .ints(let v)? = node.attributes["axes"] { axes = v }
        if case .int(let v)? = node.attributes["axes"] { axes = [v] }
        if node.inputs.count > 1, !node.inputs[1].isEmpty {
            guard let v = context.integerConstants[node.inputs[1]] else {
                throw MetronomeError.node(node: node.name, op: node.opType, message: "axes input '\(node.inputs[1])' is not a constant")
            }
            axes = v
        }
        node.inputs = [node.inputs[0]]
        node.attributes["axes"] = nil
        if noop && (axes ?? []).isEmpty {
            return [Node(name: node.name, opType: "Identity", inputs: node.inputs, outputs: node.outputs)]
        }
        node.attributes["noop_with_empty_axes"] = nil
        if let axes, !axes.isEmpty {
            if node.opType == "ReduceSum" {
                node.inputs.append(context.addInt64(axes, base: node.name + "_axes"))
            } else {
                node.attributes["axes"] = .ints(axes)
            }
        }
        return [node]
    }
}

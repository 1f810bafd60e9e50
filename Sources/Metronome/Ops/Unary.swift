/// The one-input element-wise math operators real exports use besides the activations:
/// `Erf`, `Gelu` (opset 20), `Sqrt`, `Exp`, `Log`, `Abs`, `Neg`, `Reciprocal`, `Elu`,
/// `Selu`, `Softplus`, `Mish`. Each becomes an ``Eltwise`` function: a oneDNN eltwise
/// primitive where oneDNN 2.6 has an algorithm accurate to ONNX's tolerances (all but Erf,
/// Log and Softplus, see ``Eltwise/oneDNNAlgorithms``), and a post-op fused onto the
/// convolution, Gemm or binary step before it on the same condition.
struct UnaryOperator: Operator {
    var onnxNames: [String] {
        ["Erf", "Gelu", "Sqrt", "Exp", "Log", "Abs", "Neg", "Reciprocal", "Elu", "Selu", "Softplus", "Mish"]
    }

    func attributes(of opType: String) -> [String] {
        switch opType {
        case "Elu": return ["alpha"]
        case "Selu": return ["alpha", "gamma"]
        case "Gelu": return ["approximate"]
        default: return []
        }
    }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        try p.requireInputs(1...1)
        let f: Eltwise
        switch n.opType {
        case "Erf": f = .erf
        case "Gelu":
            switch try p.string("approximate", default: "none") {
            case "none": f = .gelu(tanh: false)
            case "tanh": f = .gelu(tanh: true)
            case let other: throw p.fail("approximate '\(other)' is not one of none, tanh")
            }
        case "Sqrt": f = .sqrt
        case "Exp": f = .exp
        case "Log": f = .log
        case "Abs": f = .abs
        case "Neg": f = .neg
        case "Reciprocal": f = .reciprocal
        case "Elu": f = .elu(alpha: try p.float("alpha", default: 1))
        case "Selu":
            // ONNX's defaults are the self-normalizing constants, in float32.
            f = .selu(alpha: try p.float("alpha", default: 1.67326319217681884765625),
                      gamma: try p.float("gamma", default: 1.05070102214813232421875))
        case "Softplus": f = .softplus
        case "Mish": f = .mish
        default: throw p.unsupported()
        }
        return (.eltwise(f), [n.inputs[0]])
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        (op, [inputs[0]])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .eltwise(let f) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.eltwise(f, x[0], count: xs[0].reduce(1, *), out: y[0])
    }

    /// A oneDNN eltwise primitive; Erf, Log and Softplus run the reference kernel.
    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard case .eltwise(let f) = step.op, step.postOps.isEmpty else { return false }
        return try b.eltwise(step, f)
    }

    /// Every function oneDNN computes can be a post-op; Erf, Log and Softplus cannot.
    func fusedActivation(_ step: Step, in program: Program) -> Eltwise? {
        guard case .eltwise(let f) = step.op, !f.oneDNNAlgorithms.isEmpty else { return nil }
        return f
    }

    /// Per element: Neg, Abs, Reciprocal, Sqrt 1; Exp, Log, Erf, Softplus 4; Elu 5; Selu 6;
    /// Gelu 8; Mish 10 (``Eltwise/flopsPerElement``).
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        guard case .eltwise(let f) = step.op else { return OperatorCost(category: .activation) }
        let outCount = step.outputs.reduce(0) { $0 + p.values[$1].count }
        return OperatorCost(category: .activation, flops: f.flopsPerElement * outCount)
    }

    /// Element-wise: slimming and pruning may change channels freely.
    func channelBehaviour(_ step: Step, in program: Program) -> ChannelBehaviour { .passThrough }

    /// Opset 17 has neither `Gelu` (opset 20) nor `Mish` (opset 18): they are written as the
    /// formulas they stand for.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        let x = node.inputs[0]
        func fresh(_ what: String) -> String { context.freshName(node.name + "_" + what) }
        func constant(_ v: Float, _ what: String) -> String {
            context.addFloat(Tensor(shape: [], repeating: v), base: node.name + "_" + what)
        }
        switch node.opType {
        case "Mish":
            let sp = fresh("softplus"), th = fresh("tanh")
            return [Node(name: sp, opType: "Softplus", inputs: [x], outputs: [sp]),
                    Node(name: th, opType: "Tanh", inputs: [sp], outputs: [th]),
                    Node(name: node.name, opType: "Mul", inputs: [x, th], outputs: node.outputs)]
        case "Gelu":
            let tanhForm: Bool
            switch node.attributes["approximate"] {
            case .string("tanh")?: tanhForm = true
            case nil, .string("none")?: tanhForm = false
            default: throw MetronomeError.node(node: node.name, op: node.opType, message: "approximate must be none or tanh")
            }
            var nodes: [Node] = []
            let inner: String
            if tanhForm {
                // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
                let cube = fresh("cube"), scaled = fresh("cube_scaled"), sum = fresh("sum"), arg = fresh("arg")
                let three = constant(3, "three")
                nodes += [Node(name: cube, opType: "Pow", inputs: [x, three], outputs: [cube]),
                          Node(name: scaled, opType: "Mul", inputs: [cube, constant(0.044715, "k")], outputs: [scaled]),
                          Node(name: sum, opType: "Add", inputs: [x, scaled], outputs: [sum]),
                          Node(name: arg, opType: "Mul", inputs: [sum, constant(0.7978845608028654, "sqrt_2_over_pi")], outputs: [arg])]
                inner = fresh("tanh")
                nodes.append(Node(name: inner, opType: "Tanh", inputs: [arg], outputs: [inner]))
            } else {
                // 0.5·x·(1 + erf(x/√2))
                let arg = fresh("arg")
                nodes.append(Node(name: arg, opType: "Mul", inputs: [x, constant(0.7071067811865476, "inv_sqrt2")], outputs: [arg]))
                inner = fresh("erf")
                nodes.append(Node(name: inner, opType: "Erf", inputs: [arg], outputs: [inner]))
            }
            let plusOne = fresh("plus_one"), half = fresh("half_x")
            nodes += [Node(name: plusOne, opType: "Add", inputs: [inner, constant(1, "one")], outputs: [plusOne]),
                      Node(name: half, opType: "Mul", inputs: [x, constant(0.5, "half")], outputs: [half]),
                      Node(name: node.name, opType: "Mul", inputs: [half, plusOne], outputs: node.outputs)]
            return nodes
        default:
            return [node]
        }
    }
}

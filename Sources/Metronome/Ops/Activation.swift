/// The element-wise activations: `Relu`, `LeakyRelu`, `Clip`, `Sigmoid`, `Silu`/`Swish`,
/// `HardSigmoid`, `HardSwish`, `Tanh`. Each becomes an ``Eltwise`` function, which can also
/// be fused as a post-op onto the convolution, Gemm or binary step before it.
struct ActivationOperator: Operator {
    var onnxNames: [String] {
        ["Relu", "LeakyRelu", "Clip", "Sigmoid", "Silu", "Swish", "HardSigmoid", "HardSwish", "Tanh"]
    }

    func attributes(of opType: String) -> [String] {
        switch opType {
        case "Silu", "Swish", "LeakyRelu": return ["alpha"]
        case "HardSigmoid": return ["alpha", "beta"]
        case "Clip": return ["max", "min"]
        default: return []
        }
    }

    func parameterInputs(of opType: String) -> Set<Int> { opType == "Clip" ? [1, 2] : [] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        try p.requireInputs(n.opType == "Clip" ? 1...3 : 1...1)
        switch n.opType {
        case "Relu": return (.eltwise(.relu), [n.inputs[0]])
        case "Sigmoid": return (.eltwise(.sigmoid), [n.inputs[0]])
        case "Tanh": return (.eltwise(.tanh), [n.inputs[0]])
        case "Silu", "Swish":
            if try p.float("alpha", default: 1) != 1 { throw p.fail("only alpha = 1 is supported") }
            return (.eltwise(.silu), [n.inputs[0]])
        case "HardSwish": return (.eltwise(.hardSwish), [n.inputs[0]])
        case "LeakyRelu":
            return (.eltwise(.leakyRelu(alpha: try p.float("alpha", default: 0.01))), [n.inputs[0]])
        case "HardSigmoid":
            let a = try p.float("alpha", default: 0.2), b = try p.float("beta", default: 0.5)
            return (.eltwise(.hardSigmoid(alpha: a, beta: b)), [n.inputs[0]])
        case "Clip":
            // Opset < 11 passes the bounds as attributes, later opsets as inputs.
            var lo = try p.float("min", default: -.greatestFiniteMagnitude)
            var hi = try p.float("max", default: .greatestFiniteMagnitude)
            if let v = try p.scalarInput(1, what: "min") { lo = v }
            if let v = try p.scalarInput(2, what: "max") { hi = v }
            // ONNX computes min(max(x, min), max): with min > max every element becomes max.
            guard !lo.isNaN, !hi.isNaN else { throw p.fail("the bounds must be numbers, got min \(lo) and max \(hi)") }
            if lo > hi { lo = hi }
            if lo == 0 && hi == .greatestFiniteMagnitude { return (.eltwise(.relu), [n.inputs[0]]) }
            return (.eltwise(.clip(min: lo, max: hi)), [n.inputs[0]])
        default:
            throw p.unsupported()
        }
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        (op, [inputs[0]])
    }

    func fusedActivation(_ step: Step, in program: Program) -> Eltwise? {
        guard case .eltwise(let f) = step.op else { return nil }
        return f
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .eltwise(let f) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.eltwise(f, x[0], count: xs[0].reduce(1, *), out: y[0])
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard case .eltwise(let f) = step.op, step.postOps.isEmpty else { return false }
        return try b.eltwise(step, f)
    }

    /// Per element: ReLU 1, LeakyReLU 2, Clip 2, Sigmoid 4, Tanh 4, HardSigmoid 4, SiLU 5, HardSwish 5.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        guard case .eltwise(let f) = step.op else { return OperatorCost(category: .activation) }
        let outCount = step.outputs.reduce(0) { $0 + p.values[$1].count }
        return OperatorCost(category: .activation, flops: f.flopsPerElement * outCount)
    }

    func channelBehaviour(_ step: Step, in program: Program) -> ChannelBehaviour { .passThrough }

    /// Opset 17 has no `Silu`/`Swish` (it becomes `x · Sigmoid(x)`) and takes Clip's bounds
    /// as inputs.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        switch node.opType {
        case "Silu", "Swish":
            let s = context.freshName(node.name + "_sigmoid")
            return [Node(name: s, opType: "Sigmoid", inputs: [node.inputs[0]], outputs: [s]),
                    Node(name: node.name, opType: "Mul", inputs: [node.inputs[0], s], outputs: node.outputs)]
        case "Clip":
            var node = node
            for (i, key) in [(1, "min"), (2, "max")] {
                guard let a = node.attributes.removeValue(forKey: key) else { continue }
                let value: Float
                switch a { case .float(let f): value = f; case .int(let v): value = Float(v); default: continue }
                let name = context.addFloat(Tensor(shape: [], repeating: value), base: node.name + "_" + key)
                while node.inputs.count <= i { node.inputs.append("") }
                node.inputs[i] = name
            }
            return [node]
        default:
            return [node]
        }
    }
}

/// Training: d f(x)/dx element by element.
extension ActivationOperator {
    func isDifferentiable(_ step: Step) -> Bool {
        if case .eltwise(let f) = step.op { return f.isDifferentiable }
        return false
    }

    func trainingForward(_ step: Step, _ b: StepBuffers, _ memory: inout StepMemory, _ kernels: TrainingKernels) throws -> Bool {
        guard kernels == .fast, case .eltwise(let f) = step.op else { return false }
        let x = b.inputs[0], y = b.outputs[0]
        let n = b.count(input: 0), chunk = 1 << 14
        ParallelFor.run((n + chunk - 1) / chunk) { c, _ in
            if case .relu = f {
                for i in (c * chunk)..<min(n, (c + 1) * chunk) { y[i] = x[i] > 0 ? x[i] : 0 }
            } else {
                for i in (c * chunk)..<min(n, (c + 1) * chunk) { y[i] = f.apply(x[i]) }
            }
        }
        return true
    }

    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws {
        guard case .eltwise(let f) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        guard let d = dx[0] else { return }
        let x = b.inputs[0], y = b.outputs[0], g = dy[0]
        let n = b.count(input: 0), chunk = 1 << 14
        ParallelFor.run((n + chunk - 1) / chunk) { c, _ in
            if case .relu = f {
                // 16 lanes at a time: the compiler cannot prove d, x and g apart, so it would
                // not vectorize the plain loop.
                var i = c * chunk
                let end = min(n, (c + 1) * chunk)
                while i + 16 <= end {
                    let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
                    let gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD16<Float>.self)
                    var dv = UnsafeRawPointer(d + i).loadUnaligned(as: SIMD16<Float>.self)
                    dv += gv.replacing(with: 0, where: xv .<= 0)
                    UnsafeMutableRawPointer(d + i).storeBytes(of: dv, as: SIMD16<Float>.self)
                    i += 16
                }
                while i < end { d[i] += x[i] > 0 ? g[i] : 0; i += 1 }
            } else {
                for i in (c * chunk)..<min(n, (c + 1) * chunk) { d[i] += g[i] * (f.derivative(x[i], y[i]) ?? 0) }
            }
        }
    }
}

/// `Gemm` (`alpha·op(A)·op(B) + beta·C`, 2-D) and `MatMul` (batched, broadcasting).
struct MatrixProductOperator: Operator {
    var onnxNames: [String] { ["Gemm", "MatMul"] }

    func attributes(of opType: String) -> [String] {
        opType == "Gemm" ? ["alpha", "beta", "transA", "transB"] : []
    }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        if n.opType == "MatMul" {
            try p.requireInputs(2...2)
            return (.matMul, [n.inputs[0], n.inputs[1]])
        }
        try p.requireInputs(2...3)
        let alpha = try p.float("alpha", default: 1), beta = try p.float("beta", default: 1)
        let ta = try p.int("transA", default: 0) != 0, tb = try p.int("transB", default: 0) != 0
        return (.gemm(alpha: alpha, beta: beta, transA: ta, transB: tb),
                [n.inputs[0], n.inputs[1]] + (p.input(2).map { [$0] } ?? []))
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        let x = inputs[0], b = inputs[1]
        switch op {
        case .gemm(_, _, let ta, let tb):
            guard x.count == 2, b.count == 2 else { throw c.fail("A and B must be 2-D, got \(x) and \(b)") }
            let (m, k) = ta ? (x[1], x[0]) : (x[0], x[1])
            let (k2, n) = tb ? (b[1], b[0]) : (b[0], b[1])
            guard k == k2 else { throw c.fail("inner dimensions differ: A is \(x) (transA=\(ta)), B is \(b) (transB=\(tb))") }
            if inputs.count == 3, ShapeInference.broadcast(inputs[2], [m, n]) != [m, n] {
                throw c.fail("C of shape \(inputs[2]) cannot be broadcast to [\(m), \(n)]")
            }
            return (op, [[m, n]])
        case .matMul:
            guard x.count >= 2, b.count >= 2 else { throw c.fail("inputs must be at least 2-D, got \(x) and \(b)") }
            guard x[x.count - 1] == b[b.count - 2] else { throw c.fail("inner dimensions differ: \(x) × \(b)") }
            guard let batch = ShapeInference.broadcast(Array(x.dropLast(2)), Array(b.dropLast(2))) else {
                throw c.fail("batch dimensions of \(x) and \(b) cannot be broadcast")
            }
            return (op, [batch + [x[x.count - 2], b[b.count - 1]]])
        default:
            throw unexpected(op, c.node.name, c.node.opType)
        }
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        switch step.op {
        case .gemm(let alpha, let beta, let ta, let tb):
            ReferenceKernels.gemm(x[0], xs[0], x[1], xs[1], c: x.count > 2 ? (x[2], xs[2]) : nil,
                                  alpha: alpha, beta: beta, transA: ta, transB: tb, out: y[0], ys[0])
        case .matMul:
            ReferenceKernels.matMul(x[0], xs[0], x[1], xs[1], out: y[0], ys[0])
        default:
            throw unexpected(step.op, step.name, step.opType)
        }
    }

    /// Gemm becomes a oneDNN inner product; MatMul runs the reference kernel.
    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        switch step.op {
        case .gemm(let alpha, let beta, let ta, let tb): return try b.innerProduct(step, alpha, beta, ta, tb)
        case .matMul: return try b.matMul(step)
        default: return false
        }
    }

    func acceptsFusedActivation(_ step: Step) -> Bool { step.op != .matMul }
    func acceptsResidualAdd(_ step: Step) -> Bool { step.op != .matMul }

    /// A fully connected layer: `transB = 1`, `alpha = beta = 1`, on 2-D data.
    func absorbsBatchNorm(_ step: Step, in program: Program) -> Bool {
        guard case .gemm(1, 1, false, true) = step.op else { return false }
        return program.shape(step.outputs[0]).count == 2
    }

    /// MACs = M·N·K (times batch dimensions); FLOPs = 2 × MACs, plus one per output element
    /// for a bias and one more for Gemm's alpha ≠ 1 or beta ≠ 1.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        let outCount = step.outputs.reduce(0) { $0 + p.values[$1].count }
        let a = p.shape(step.inputs[0])
        switch step.op {
        case .gemm(let alpha, let beta, let ta, _):
            let macs = outCount * (ta ? a[0] : a[1])
            var bias = step.inputs.count > 2 ? outCount * (beta != 1 ? 2 : 1) : 0
            if alpha != 1 { bias += outCount }
            return OperatorCost(category: .convolution, macs: macs, flops: 2 * macs + bias, biasFlops: bias,
                                kernelElements: p.values[step.inputs[1]].count)
        default:
            let macs = outCount * a[a.count - 1]
            return OperatorCost(category: .convolution, macs: macs, flops: 2 * macs,
                                kernelElements: p.isConstant(step.inputs[1]) ? p.values[step.inputs[1]].count : 0)
        }
    }

    /// Output channels are free when B is a constant weight matrix.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        switch step.op {
        case .gemm(_, _, let transA, _):
            guard !transA, !p.isConstant(step.inputs[0]), p.isConstant(step.inputs[1]) else {
                return .pinned("Gemm '\(step.name)' without a constant weight or with transA")
            }
            if step.inputs.count > 2 {
                let c = step.inputs[2]
                if !p.isConstant(c) { return .pinned("Gemm '\(step.name)' with a computed C") }
                if p.shape(c).count == 2 && p.shape(c)[0] != 1 { return .pinned("Gemm '\(step.name)' with a per-row C") }
            }
            return .free
        default:
            guard p.shape(step.inputs[0]).count == 2, !p.isConstant(step.inputs[0]),
                  p.isConstant(step.inputs[1]), p.shape(step.inputs[1]).count == 2 else {
                return .pinned("MatMul '\(step.name)' that is not a 2-D product with a constant matrix")
            }
            return .free
        }
    }

    /// A constant B is a weight (`[N, K]` with transB, else `[K, N]`); a C with one value
    /// per output feature follows the output.
    func channelResize(_ step: Step, in p: Program) -> ChannelResize {
        var r = ChannelResize()
        switch step.op {
        case .gemm(_, _, let transA, let transB) where !transA && p.isConstant(step.inputs[1]):
            r.inputs[step.inputs[1]] = transB ? .weight(output: 0, input: 1, fanInPerChannel: 1)
                                              : .weight(output: 1, input: 0, fanInPerChannel: 1)
            if step.inputs.count > 2, p.isConstant(step.inputs[2]) {
                let c = p.shape(step.inputs[2]), n = p.shape(step.outputs[0])[1]
                if c.count >= 1 && c[c.count - 1] == n && n > 1 { r.inputs[step.inputs[2]] = .perChannel(axis: c.count - 1) }
            }
        case .matMul where p.isConstant(step.inputs[1]) && p.shape(step.inputs[0]).count == 2:
            r.inputs[step.inputs[1]] = .weight(output: 1, input: 0, fanInPerChannel: 1)
        default:
            break
        }
        return r
    }
}

/// Training: Gemm through `dnnl_sgemm` (fast) or plain loops; 2-D MatMul.
extension MatrixProductOperator {
    func isDifferentiable(_ step: Step) -> Bool {
        if case .gemm = step.op { return true }
        return false
    }

    func trainingForward(_ step: Step, _ b: StepBuffers, _ memory: inout StepMemory, _ kernels: TrainingKernels) throws -> Bool {
        guard kernels == .fast, case .gemm(let alpha, let beta, let ta, let tb) = step.op else { return false }
        let (m, n) = (b.outputShapes[0][0], b.outputShapes[0][1])
        let k = ta ? b.inputShapes[0][0] : b.inputShapes[0][1]
        let y = b.outputs[0]
        if b.inputs.count > 2 && beta != 0 {
            // C broadcast into Y first, then Y = alpha·op(A)·op(B) + Y.
            let cs = ReferenceKernels.broadcastStrides(b.inputShapes[2], to: b.outputShapes[0])
            for i in 0..<m { for j in 0..<n { y[i * n + j] = beta * b.inputs[2][i * cs[0] + j * cs[1]] } }
        }
        try GemmKernels.sgemm(ta, tb, m: m, n: n, k: k, alpha: alpha, b.inputs[0], lda: ta ? m : k, b.inputs[1], ldb: tb ? k : n,
                              beta: b.inputs.count > 2 && beta != 0 ? 1 : 0, y, ldc: n)
        return true
    }

    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws {
        guard case .gemm(let alpha, let beta, let ta, let tb) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        let (m, n) = (b.outputShapes[0][0], b.outputShapes[0][1])
        let k = ta ? b.inputShapes[0][0] : b.inputShapes[0][1]
        guard kernels == .fast else {
            ReferenceKernels.gemmBackward(b.inputs[0], b.inputShapes[0], b.inputs[1], b.inputShapes[1],
                                          cShape: b.inputs.count > 2 ? b.inputShapes[2] : nil, alpha: alpha, beta: beta,
                                          transA: ta, transB: tb, dy: dy[0], b.outputShapes[0], da: dx[0], db: dx[1],
                                          dc: dx.count > 2 ? dx[2] : nil)
            return
        }
        // dop(A) = alpha·dY·op(B)ᵀ (m×k), dop(B) = alpha·op(A)ᵀ·dY (k×n); transposed back when stored transposed.
        if let da = dx[0] {
            if ta {  // A is k×m: dA = alpha·op(B)·dYᵀ
                try GemmKernels.sgemm(tb, true, m: k, n: m, k: n, alpha: alpha, b.inputs[1], lda: tb ? k : n, dy[0], ldb: n,
                                      beta: 1, da, ldc: m)
            } else {
                try GemmKernels.sgemm(false, !tb, m: m, n: k, k: n, alpha: alpha, dy[0], lda: n, b.inputs[1], ldb: tb ? k : n,
                                      beta: 1, da, ldc: k)
            }
        }
        if let db = dx[1] {
            if tb {  // B is n×k: dB = alpha·dYᵀ·op(A)
                try GemmKernels.sgemm(true, ta, m: n, n: k, k: m, alpha: alpha, dy[0], lda: n, b.inputs[0], ldb: ta ? m : k,
                                      beta: 1, db, ldc: k)
            } else {
                try GemmKernels.sgemm(!ta, false, m: k, n: n, k: m, alpha: alpha, b.inputs[0], lda: ta ? m : k, dy[0], ldb: n,
                                      beta: 1, db, ldc: n)
            }
        }
        if dx.count > 2, let dc = dx[2] {
            let cs = ReferenceKernels.broadcastStrides(b.inputShapes[2], to: b.outputShapes[0])
            for i in 0..<m { for j in 0..<n { dc[i * cs[0] + j * cs[1]] += beta * dy[0][i * n + j] } }
        }
    }
}

import CDNNL

/// `MaxPool`, `AveragePool` (1-D, 2-D and 3-D, `auto_pad`, `ceil_mode`, `count_include_pad`) and
/// `GlobalAveragePool`.
struct PoolingOperator: Operator {
    var onnxNames: [String] { ["MaxPool", "AveragePool", "GlobalAveragePool"] }

    func attributes(of opType: String) -> [String] {
        switch opType {
        case "MaxPool": return ["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"]
        case "AveragePool": return ["auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"]
        default: return []
        }
    }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        try p.requireInputs(1...1)
        if n.opType == "GlobalAveragePool" { return (.globalAveragePool, [n.inputs[0]]) }
        guard let kernel = try p.ints("kernel_shape") else { throw p.fail("missing attribute 'kernel_shape'") }
        guard (1...3).contains(kernel.count) else {
            throw p.fail("only 1-D, 2-D and 3-D pooling are supported, kernel_shape is \(kernel)")
        }
        let rank = kernel.count
        let strides = try p.spatial("strides", default: Array(repeating: 1, count: rank))
        let dilations = try p.spatial("dilations", default: Array(repeating: 1, count: rank))
        let ceil = try p.int("ceil_mode", default: 0) != 0
        if n.opType == "MaxPool" {
            if try p.int("storage_order", default: 0) != 0 { throw p.fail("storage_order=1 is not supported") }
            guard n.outputs.count == 1 else { throw p.fail("the Indices output is not supported") }
        }
        let pads = try p.pads(kernelExtent: kernel)
        var attrs = PoolAttributes(kernel: kernel, strides: strides, pads: pads ?? Array(repeating: 0, count: 2 * rank),
                                   dilations: dilations, ceilMode: ceil)
        if pads == nil, case .string(let mode)? = n.attributes["auto_pad"] {
            attrs.pads = [mode == "SAME_LOWER" ? -1 : -2]
        }
        if n.opType == "MaxPool" { return (.maxPool(attrs), [n.inputs[0]]) }
        let include = try p.int("count_include_pad", default: 0) != 0
        return (.averagePool(attrs, countIncludePad: include), [n.inputs[0]])
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        let x = inputs[0]
        switch op {
        case .maxPool(var a), .averagePool(var a, _):
            let rank = a.kernel.count
            guard x.count == rank + 2 else { throw c.fail("input must be \(rank + 2)-D \(["NCW", "NCHW", "NCDHW"][rank - 1]), got shape \(x)") }
            a.pads = try ShapeInference.resolvePads(a.pads, input: Array(x[2...]), kernel: a.kernel, strides: a.strides,
                                                    dilations: a.dilations, fail: c.fail)
            guard a.kernel.allSatisfy({ $0 >= 1 }), a.strides.allSatisfy({ $0 >= 1 }) else {
                throw c.fail("kernel and strides must be positive")
            }
            for i in 0..<rank where a.pads[i] >= a.kernel[i] || a.pads[i + rank] >= a.kernel[i] {
                throw c.fail("pads \(a.pads) must be smaller than the kernel \(a.kernel)")
            }
            let out = try (0..<rank).map { i -> Int in
                let ext = (a.kernel[i] - 1) * a.dilations[i] + 1
                let span = x[2 + i] + a.pads[i] + a.pads[i + rank] - ext
                guard span >= 0 else { throw c.fail("kernel \(a.kernel) is larger than the padded input \(x)") }
                var o = (a.ceilMode ? (span + a.strides[i] - 1) / a.strides[i] : span / a.strides[i]) + 1
                // A window may not start in the end padding (PyTorch's and ONNX's ceil rule).
                if a.ceilMode && (o - 1) * a.strides[i] >= x[2 + i] + a.pads[i] { o -= 1 }
                return o
            }
            let shape = [x[0], x[1]] + out
            if case .averagePool(_, let include) = op { return (.averagePool(a, countIncludePad: include), [shape]) }
            return (.maxPool(a), [shape])
        case .globalAveragePool:
            guard x.count >= 3 else { throw c.fail("input must be at least 3-D (N, C, spatial...), got shape \(x)") }
            return (op, [[x[0], x[1]] + Array(repeating: 1, count: x.count - 2)])
        default:
            throw unexpected(op, c.node.name, c.node.opType)
        }
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        switch step.op {
        case .maxPool(let a) where a.kernel.count == 2:
            ReferenceKernels.pool(x[0], xs[0], a, max: true, countIncludePad: false, out: y[0], ys[0])
        case .averagePool(let a, let include) where a.kernel.count == 2 && a.dilations.allSatisfy({ $0 == 1 }):
            ReferenceKernels.pool(x[0], xs[0], a, max: false, countIncludePad: include, out: y[0], ys[0])
        case .maxPool(let a):
            ReferenceKernels.poolND(x[0], xs[0], a, max: true, countIncludePad: false, out: y[0], ys[0])
        case .averagePool(let a, let include):
            ReferenceKernels.poolND(x[0], xs[0], a, max: false, countIncludePad: include, out: y[0], ys[0])
        case .globalAveragePool:
            ReferenceKernels.globalAveragePool(x[0], xs[0], out: y[0])
        default:
            throw unexpected(step.op, step.name, step.opType)
        }
    }

    /// oneDNN pooling, except average pooling that counts padding in ceil mode (oneDNN
    /// would count the extra end padding too).
    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard step.postOps.isEmpty else { return false }
        switch step.op {
        case .maxPool(let a):
            return try b.pool(step, a, alg: dnnl_pooling_max)
        case .averagePool(let a, let include):
            // Dilated average windows run the reference kernel, which counts taps as ONNX does.
            if (include && a.ceilMode) || a.dilations.contains(where: { $0 != 1 }) { return false }
            return try b.pool(step, a, alg: include ? dnnl_pooling_avg_include_padding : dnnl_pooling_avg_exclude_padding)
        case .globalAveragePool:
            let s = b.program.shape(step.inputs[0])
            guard (3...5).contains(s.count) else { return false }
            let spatial = Array(s[2...])
            let a = PoolAttributes(kernel: spatial, strides: spatial.map { _ in 1 }, pads: Array(repeating: 0, count: 2 * spatial.count),
                                   dilations: spatial.map { _ in 1 })
            return try b.pool(step, a, alg: dnnl_pooling_avg_exclude_padding)
        default:
            return false
        }
    }

    func window(_ step: Step, in program: Program) -> KernelWindow? {
        switch step.op {
        case .maxPool(let a), .averagePool(let a, _):
            return KernelWindow(kernel: a.kernel, strides: a.strides, dilations: a.dilations)
        case .globalAveragePool:
            let spatial = Array(program.shape(step.inputs[0]).dropFirst(2))
            return KernelWindow(kernel: spatial, strides: spatial.map { _ in 1 }, dilations: spatial.map { _ in 1 })
        default:
            return nil
        }
    }

    /// MaxPool: KH·KW − 1 comparisons per output element; AveragePool: KH·KW (adds and one
    /// divide); GlobalAveragePool: H·W per output element.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        let outCount = step.outputs.reduce(0) { $0 + p.values[$1].count }
        switch step.op {
        case .maxPool(let a): return OperatorCost(category: .pooling, flops: (a.kernel.reduce(1, *) - 1) * outCount)
        case .averagePool(let a, _): return OperatorCost(category: .pooling, flops: a.kernel.reduce(1, *) * outCount)
        default:
            let x = p.shape(step.inputs[0])
            return OperatorCost(category: .pooling, flops: x[2...].reduce(1, *) * outCount)
        }
    }

    func channelBehaviour(_ step: Step, in program: Program) -> ChannelBehaviour { .passThrough }

    /// AveragePool gained `dilations` only in opset 19; the engine runs only the undilated form.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        var node = node
        if node.opType == "AveragePool", let d = node.attributes["dilations"], d == .ints([1, 1]) {
            node.attributes["dilations"] = nil
        }
        return [node]
    }
}

/// Training: max pooling routes each gradient to its window's maximum; average pooling
/// spreads it.
extension PoolingOperator {
    func isDifferentiable(_ step: Step) -> Bool {
        switch step.op {
        case .maxPool(let a), .averagePool(let a, _): return a.kernel.count == 2
        case .globalAveragePool: return true
        default: return false
        }
    }

    /// Fast kernels: planes are split over the OpenMP team, and max pooling records where each
    /// window's maximum was (the first, as the reference kernel and PyTorch choose) while it
    /// pools, so that its backward pass scatters without searching the windows again. (The
    /// reference kernels pooled on one thread and searched twice: a quarter of LeNet-5's
    /// training step.)
    func trainingForward(_ step: Step, _ b: StepBuffers, _ memory: inout StepMemory, _ kernels: TrainingKernels) throws -> Bool {
        guard kernels == .fast else { return false }
        let xs = b.inputShapes[0], ys = b.outputShapes[0]
        guard xs.count == 4, ys.count == 4 else { return false }
        let planes = xs[0] * xs[1], (h, w, oh, ow) = (xs[2], xs[3], ys[2], ys[3])
        let x = b.inputs[0], y = b.outputs[0]
        switch step.op {
        case .maxPool(let a) where a.kernel.count == 2:
            let count = planes * oh * ow
            if memory.indices.count != count { memory.indices = [Int32](repeating: -1, count: count) }
            let (kh, kw, sh, sw) = (a.kernel[0], a.kernel[1], a.strides[0], a.strides[1])
            let (dh, dw, ph, pw) = (a.dilations[0], a.dilations[1], a.pads[0], a.pads[1])
            memory.indices.withUnsafeMutableBufferPointer { buffer in
                let indices = buffer.baseAddress!
                ParallelFor.run(planes) { plane, _ in
                    let src = x + plane * h * w, dst = y + plane * oh * ow, at = indices + plane * oh * ow
                    for oy in 0..<oh {
                        let y0 = oy &* sh &- ph
                        for ox in 0..<ow {
                            let x0 = ox &* sw &- pw
                            var best = -Float.infinity, position: Int32 = -1
                            for ky in 0..<kh {
                                let iy = y0 &+ ky &* dh
                                if iy < 0 || iy >= h { continue }
                                for kx in 0..<kw {
                                    let ix = x0 &+ kx &* dw
                                    if ix < 0 || ix >= w { continue }
                                    let offset = iy &* w &+ ix
                                    let v = src[offset]
                                    // Selects, not a branch: which element wins is data, and a
                                    // branch on it mispredicts about every other time.
                                    let better = v > best
                                    position = better ? Int32(truncatingIfNeeded: offset) : position
                                    best = better ? v : best
                                }
                            }
                            dst[oy &* ow &+ ox] = best
                            at[oy &* ow &+ ox] = position
                        }
                    }
                }
            }
            return true
        case .averagePool(let a, let include) where a.kernel.count == 2:
            ParallelFor.run(planes) { plane, _ in
                ReferenceKernels.pool(x + plane * h * w, [1, 1, h, w], a, max: false, countIncludePad: include,
                                      out: y + plane * oh * ow, [1, 1, oh, ow])
            }
            return true
        default:
            return false
        }
    }

    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws {
        guard let d = dx[0] else { return }
        let xs = b.inputShapes[0], ys = b.outputShapes[0]
        if kernels == .fast, xs.count == 4, ys.count == 4 {
            let planes = xs[0] * xs[1], (h, w, oh, ow) = (xs[2], xs[3], ys[2], ys[3])
            let g = dy[0]
            switch step.op {
            case .maxPool(let a) where a.kernel.count == 2 && memory.indices.count == planes * oh * ow:
                memory.indices.withUnsafeBufferPointer { buffer in
                    let indices = buffer.baseAddress!
                    ParallelFor.run(planes) { plane, _ in
                        let grad = g + plane * oh * ow, at = indices + plane * oh * ow, dst = d + plane * h * w
                        for o in 0..<(oh * ow) where at[o] >= 0 { dst[Int(at[o])] += grad[o] }
                    }
                }
                return
            case .averagePool(let a, let include) where a.kernel.count == 2:
                let x = b.inputs[0]
                ParallelFor.run(planes) { plane, _ in
                    ReferenceKernels.poolBackward(x + plane * h * w, [1, 1, h, w], a, max: false, countIncludePad: include,
                                                  dy: g + plane * oh * ow, [1, 1, oh, ow], dx: d + plane * h * w)
                }
                return
            default:
                break
            }
        }
        switch step.op {
        case .maxPool(let a):
            ReferenceKernels.poolBackward(b.inputs[0], b.inputShapes[0], a, max: true, countIncludePad: false,
                                          dy: dy[0], b.outputShapes[0], dx: d)
        case .averagePool(let a, let include):
            ReferenceKernels.poolBackward(b.inputs[0], b.inputShapes[0], a, max: false, countIncludePad: include,
                                          dy: dy[0], b.outputShapes[0], dx: d)
        case .globalAveragePool:
            ReferenceKernels.globalAveragePoolBackward(b.inputShapes[0], dy: dy[0], dx: d)
        default:
            throw unexpected(step.op, step.name, step.opType)
        }
    }
}

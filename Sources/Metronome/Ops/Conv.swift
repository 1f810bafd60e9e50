/// `Conv`: 2-D convolution (NCHW), grouped and depthwise, with `auto_pad`.
/// Inputs: data, weight `[M, C/group, kH, kW]`, optional bias `[M]`.
struct ConvOperator: Operator {
    var onnxNames: [String] { ["Conv"] }

    func attributes(of opType: String) -> [String] {
        ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"]
    }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        try p.requireInputs(2...3)
        // 1-D (NCW), 2-D (NCHW) or 3-D (NCDHW): the kernel_shape, the weight or the other
        // per-axis attributes say which; if none does (a computed weight and defaults
        // everywhere), shape inference takes it from the input's rank.
        var rank = 0
        func count(_ key: String) -> Int? {
            if case .ints(let v)? = n.attributes[key] { return v.count }
            return nil
        }
        if let k = count("kernel_shape") { rank = k }
        else if let w = p.input(1), let t = p.graph.initializers[w], t.rank >= 3 { rank = t.rank - 2 }
        else if let k = count("strides") ?? count("dilations") ?? count("pads").map({ $0 / 2 }) { rank = k }
        guard rank == 0 || (1...3).contains(rank) else {
            throw p.fail("\(rank)-D convolution is not supported (1-D NCW, 2-D NCHW and 3-D NCDHW are)")
        }
        var kernel = try p.spatial("kernel_shape", default: Array(repeating: 0, count: rank))
        let strides = try p.spatial("strides", default: Array(repeating: 1, count: rank))
        let dilations = try p.spatial("dilations", default: Array(repeating: 1, count: rank))
        let group = try p.int("group", default: 1)
        guard group >= 1 else { throw p.fail("group must be at least 1, got \(group)") }
        guard strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }) else {
            throw p.fail("strides and dilations must be positive")
        }
        if let w = p.input(1), let t = p.graph.initializers[w], t.rank == rank + 2 {
            if kernel.allSatisfy({ $0 == 0 }) { kernel = Array(t.shape[2...]) }
        }
        let autoPad = n.attributes["auto_pad"]
        let pads = try p.pads(kernelExtent: kernel)
        var attrs = ConvAttributes(kernel: kernel, strides: strides, pads: pads ?? Array(repeating: 0, count: 2 * rank),
                                   dilations: dilations, groups: group)
        if pads == nil, case .string(let mode) = autoPad {
            attrs.pads = [mode == "SAME_LOWER" ? -1 : -2]  // marker resolved in shape inference
        }
        return (.conv(attrs), [n.inputs[0], n.inputs[1]] + (p.input(2).map { [$0] } ?? []))
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard case .conv(var a) = op else { throw unexpected(op, c.node.name, c.node.opType) }
        let x = inputs[0]
        if a.kernel.isEmpty {
            // Spatial rank unknown at parse time: the input's.
            let r = x.count - 2
            guard (1...3).contains(r) else { throw c.fail("input must be 3-D, 4-D or 5-D (N, C, spatial...), got shape \(x)") }
            a.kernel = Array(repeating: 0, count: r)
            a.strides = Array(repeating: 1, count: r)
            a.dilations = Array(repeating: 1, count: r)
            if a.pads.isEmpty { a.pads = Array(repeating: 0, count: 2 * r) }
        }
        let rank = a.kernel.count
        let layout = ["NCW", "NCHW", "NCDHW"][rank - 1]
        guard x.count == rank + 2 else { throw c.fail("input must be \(rank + 2)-D \(layout), got shape \(x)") }
        let w = inputs[1]
        guard w.count == rank + 2 else { throw c.fail("weight must be \(rank + 2)-D [M, C/group, kernel...], got shape \(w)") }
        if a.kernel.allSatisfy({ $0 == 0 }) { a.kernel = Array(w[2...]) }
        guard a.kernel == Array(w[2...]) else {
            throw c.fail("kernel_shape \(a.kernel) does not match weight shape \(w)")
        }
        guard x[1] == w[1] * a.groups else {
            throw c.fail("input has \(x[1]) channels but weight \(w) with group \(a.groups) expects \(w[1] * a.groups)")
        }
        guard w[0] % a.groups == 0 else {
            throw c.fail("\(w[0]) output channels are not divisible by group \(a.groups)")
        }
        if inputs.count == 3 && inputs[2] != [w[0]] {
            throw c.fail("bias has shape \(inputs[2]) but must be [\(w[0])]")
        }
        a.pads = try ShapeInference.resolvePads(a.pads, input: Array(x[2...]), kernel: a.kernel, strides: a.strides,
                                                dilations: a.dilations, fail: c.fail)
        let out = try (0..<rank).map { i -> Int in
            let ext = (a.kernel[i] - 1) * a.dilations[i] + 1
            let padded = x[2 + i] + a.pads[i] + a.pads[i + rank]
            guard padded >= ext else {
                throw c.fail("kernel extent \(ext) is larger than the padded input \(padded) (input shape \(x))")
            }
            return (padded - ext) / a.strides[i] + 1
        }
        return (.conv(a), [[x[0], w[0]] + out])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .conv(let a) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        if a.kernel.count == 2 {
            ReferenceKernels.conv(x[0], xs[0], weight: x[1], xs[1], bias: x.count > 2 ? x[2] : nil, a, out: y[0], ys[0])
        } else {
            ReferenceKernels.convND(x[0], xs[0], weight: x[1], xs[1], bias: x.count > 2 ? x[2] : nil, a, out: y[0], ys[0])
        }
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard case .conv(let a) = step.op else { return false }
        return try b.convolution(step, a)
    }

    func acceptsFusedActivation(_ step: Step) -> Bool { true }
    func acceptsResidualAdd(_ step: Step) -> Bool { true }
    func absorbsBatchNorm(_ step: Step, in program: Program) -> Bool { true }

    func window(_ step: Step, in program: Program) -> KernelWindow? {
        guard case .conv(let a) = step.op else { return nil }
        return KernelWindow(kernel: a.kernel, strides: a.strides, dilations: a.dilations, groups: a.groups)
    }

    /// MACs = N·M·OH·OW·(C/group)·KH·KW (and ·OD·KD in 3-D); FLOPs = 2 × MACs plus one per
    /// output element for a bias.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        guard case .conv(let a) = step.op else { return OperatorCost(category: .convolution) }
        let outCount = step.outputs.reduce(0) { $0 + p.values[$1].count }
        let w = p.shape(step.inputs[1])
        let macs = p.values[step.outputs[0]].count * w[1] * a.kernel.reduce(1, *)
        let bias = step.inputs.count > 2 ? outCount : 0
        return OperatorCost(category: .convolution, macs: macs, flops: 2 * macs + bias, biasFlops: bias,
                            kernelElements: p.values[step.inputs[1]].count)
    }

    /// A plain convolution chooses its output channels; a depthwise one follows its input
    /// (times its channel multiplier); any other grouping fixes them.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        guard case .conv(let a) = step.op else { return .pinned("'\(step.name)'") }
        guard step.inputs.dropFirst().allSatisfy(p.isConstant) else {
            return .pinned("convolution '\(step.name)' has computed weights")
        }
        let cin = p.shape(step.inputs[0])[1], m = p.shape(step.inputs[1])[0]
        if a.groups == 1 { return .free }
        if a.groups == cin {
            let k = m / a.groups
            return k == 1 ? .same([step.inputs[0]]) : .depthwise(multiplier: k)
        }
        return .pinned("grouped convolution '\(step.name)' (group \(a.groups) of \(cin) channels)")
    }

    /// A plain convolution's weight follows both channel sets, a depthwise one's only the
    /// output's (and `group` the new channel count); the bias follows the output.
    func channelResize(_ step: Step, in p: Program) -> ChannelResize {
        guard case .conv(let a) = step.op, step.inputs.dropFirst().allSatisfy(p.isConstant) else { return ChannelResize() }
        var r = ChannelResize()
        let w = p.shape(step.inputs[1]), cin = p.shape(step.inputs[0])[1]
        let spatial = w[2...].reduce(1, *)
        if a.groups == 1 {
            r.inputs[step.inputs[1]] = .weight(output: 0, input: 1, fanInPerChannel: spatial)
        } else if a.groups == cin {
            r.inputs[step.inputs[1]] = .weight(output: 0, input: nil, fanInPerChannel: spatial)
            r.channelCountAttribute = "group"
        } else {
            r.fixed = "grouped convolution cannot be resized"
        }
        if step.inputs.count > 2 { r.inputs[step.inputs[2]] = .perChannel(axis: 0) }
        return r
    }
}

/// Training: convolution through oneDNN's training primitives (fast) or plain loops (reference).
extension ConvOperator {
    func isDifferentiable(_ step: Step) -> Bool {
        if case .conv(let a) = step.op { return a.kernel.count == 2 }
        return false
    }

    func trainingForward(_ step: Step, _ b: StepBuffers, _ memory: inout StepMemory, _ kernels: TrainingKernels) throws -> Bool {
        guard kernels == .fast, case .conv(let a) = step.op else { return false }
        if memory.convolution?.threads != ParallelFor.threads {
            let engine = try memory.engine ?? TrainingEngine()
            memory.engine = engine
            memory.convolution = try ConvTrainingPrimitives(name: step.name, b.inputShapes[0], b.inputShapes[1], b.outputShapes[0], a,
                                                            hasBias: b.inputs.count > 2, engine: engine)
        }
        try memory.convolution?.forward(b.inputs[0], b.inputs[1], bias: b.inputs.count > 2 ? b.inputs[2] : nil, b.outputs[0])
        return true
    }

    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws {
        guard case .conv(let a) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        let dbias = dx.count > 2 ? dx[2] : nil
        if kernels == .fast {
            guard let primitives = memory.convolution else {
                throw MetronomeError.node(node: step.name, op: step.opType, message: "backward pass before a training forward pass")
            }
            try primitives.backward(b.inputs[0], b.inputs[1], dy: dy[0], dx: dx[0], dw: dx[1], dbias: dbias)
        } else {
            ReferenceKernels.convBackward(b.inputs[0], b.inputShapes[0], weight: b.inputs[1], b.inputShapes[1], a,
                                          dy: dy[0], b.outputShapes[0], dx: dx[0], dw: dx[1], dbias: dbias)
        }
    }
}

/// `BatchNormalization` in its inference form `x·a + b` per channel.
/// Inputs: data, scale, bias, mean, variance.
struct BatchNormOperator: Operator {
    var onnxNames: [String] { ["BatchNormalization"] }

    func attributes(of opType: String) -> [String] { ["epsilon", "momentum", "spatial", "training_mode"] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        try p.requireInputs(5...5)
        let eps = try p.float("epsilon", default: 1e-5)
        p.ignore("momentum")
        if try p.int("training_mode", default: 0) != 0 { throw p.fail("training_mode=1 is not supported for inference") }
        if try p.int("spatial", default: 1) != 1 { throw p.fail("spatial=0 is not supported") }
        guard n.outputs.count == 1 else { throw p.fail("training outputs (running mean/var) are not supported") }
        return (.batchNorm(epsilon: eps), Array(n.inputs.prefix(5)))
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        let x = inputs[0]
        guard x.count >= 2 else { throw c.fail("input must have a channel dimension, got shape \(x)") }
        for (i, s) in inputs.dropFirst().enumerated() where s != [x[1]] {
            let names = ["scale", "bias", "mean", "variance"]
            throw c.fail("\(names[i]) has shape \(s) but must be [\(x[1])]")
        }
        return (op, [x])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard case .batchNorm(let eps) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        ReferenceKernels.batchNorm(x[0], xs[0], scale: x[1], bias: x[2], mean: x[3], variance: x[4],
                                   epsilon: eps, out: y[0])
    }

    // oneDNN: none used. The optimization passes fold a batch norm into the convolution or
    // Gemm before it; one that cannot be folded runs the reference kernel.

    /// 2 FLOPs per element; scale and shift are learned, mean and variance are running statistics.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        let outCount = step.outputs.reduce(0) { $0 + p.values[$1].count }
        return OperatorCost(category: .batchNorm, flops: 2 * outCount,
                            parameterInputs: step.inputs[1...2].filter(p.isConstant))
    }

    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        guard step.inputs.dropFirst().allSatisfy(p.isConstant) else {
            return .pinned("batch norm '\(step.name)' has computed statistics")
        }
        return .passThrough
    }

    /// Scale, bias, mean and variance hold one value per channel.
    func channelResize(_ step: Step, in p: Program) -> ChannelResize {
        var r = ChannelResize()
        for v in step.inputs.dropFirst() where p.isConstant(v) { r.inputs[v] = .perChannel(axis: 0) }
        return r
    }

    /// Attributes of older opsets that opset 17 no longer has.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] {
        var node = node
        for key in ["spatial", "is_test", "consumed_inputs"] { node.attributes[key] = nil }
        return [node]
    }
}

/// Training: batch statistics in training mode (running statistics updated PyTorch's way,
/// with momentum and the unbiased variance), fixed statistics otherwise.
extension BatchNormOperator {
    func isDifferentiable(_ step: Step) -> Bool { true }

    func trainingForward(_ step: Step, _ b: StepBuffers, _ memory: inout StepMemory, _ kernels: TrainingKernels) throws -> Bool {
        guard memory.training, case .batchNorm(let epsilon) = step.op else { return false }
        let xs = b.inputShapes[0], c = xs[1]
        let (mean, variance) = ReferenceKernels.batchNormTraining(b.inputs[0], xs, scale: b.inputs[1], bias: b.inputs[2],
                                                                  epsilon: epsilon, out: b.outputs[0])
        memory.saved = mean + variance
        let count = Float(xs[0] * xs.dropFirst(2).reduce(1, *))
        let unbiased = count > 1 ? count / (count - 1) : 1
        let m = memory.momentum
        memory.runningUpdate = ((0..<c).map { (1 - m) * b.inputs[3][$0] + m * mean[$0] },
                                (0..<c).map { (1 - m) * b.inputs[4][$0] + m * variance[$0] * unbiased })
        return true
    }

    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws {
        guard case .batchNorm(let epsilon) = step.op else { throw unexpected(step.op, step.name, step.opType) }
        let c = b.inputShapes[0][1]
        if memory.training {
            guard memory.saved.count == 2 * c else {
                throw MetronomeError.node(node: step.name, op: step.opType, message: "backward pass before its training forward")
            }
            ReferenceKernels.batchNormTrainingBackward(b.inputs[0], b.inputShapes[0], scale: b.inputs[1],
                                                       mean: Array(memory.saved[..<c]), variance: Array(memory.saved[c...]),
                                                       epsilon: epsilon, dy: dy[0], dx: dx[0], dscale: dx[1], dbias: dx[2])
        } else {
            ReferenceKernels.batchNormInferenceBackward(b.inputs[0], b.inputShapes[0], scale: b.inputs[1], mean: b.inputs[3],
                                                        variance: b.inputs[4], epsilon: epsilon, dy: dy[0], dx: dx[0],
                                                        dscale: dx[1], dbias: dx[2])
        }
    }
}

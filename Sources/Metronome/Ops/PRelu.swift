/// `PRelu(X, slope)`: `x` where `x ≥ 0`, else `slope·x`, with the slope broadcast to X
/// (one value per channel as `[C, 1, 1]`, a scalar, or a full tensor). A constant slope runs
/// oneDNN's PReLU primitive; a computed one the broadcasting reference kernel.
struct PReluOperator: Operator {
    var onnxNames: [String] { ["PRelu"] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        try p.requireInputs(2...2)
        guard let slope = p.input(1) else { throw p.fail("the slope input is missing") }
        return (.custom(CustomAttributes("PRelu")), [n.inputs[0], slope])
    }

    /// The slope broadcasts to X, never X to the slope (unidirectional broadcasting).
    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard ShapeInference.broadcast(inputs[0], inputs[1]) == inputs[0] else {
            throw c.fail("slope of shape \(inputs[1]) does not broadcast to the input's shape \(inputs[0])")
        }
        return (op, [inputs[0]])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        ReferenceKernels.broadcast(x[0], xs[0], x[1], xs[1], out: y[0], ys[0]) { v, s in v < 0 ? s * v : v }
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard step.postOps.isEmpty, let slope = b.program.constants[step.inputs[1]] else { return false }
        return try b.prelu(step, slope: slope)
    }

    /// 2 FLOPs per element (a compare and a multiply); the slope is learned.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        OperatorCost(category: .activation, flops: 2 * step.outputs.reduce(0) { $0 + p.values[$1].count })
    }

    /// Element-wise: channels pass through (a computed slope whose channel axis lines up
    /// shares them).
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        let xs = p.shape(step.inputs[0])
        guard xs.count >= 2, !p.isConstant(step.inputs[1]) else { return .passThrough }
        let s = p.shape(step.inputs[1])
        if let axis = ChannelBehaviour.alignedChannelAxis(s, rank: xs.count), s[axis] == xs[1], xs[1] > 1 {
            return .same([step.inputs[0], step.inputs[1]])
        }
        return .passThrough
    }

    /// A constant per-channel slope (`[C, 1, 1]`, `[1, C, 1, 1]`) follows the channels;
    /// a scalar slope stays.
    func channelResize(_ step: Step, in p: Program) -> ChannelResize {
        let xs = p.shape(step.inputs[0]), slope = step.inputs[1]
        var r = ChannelResize()
        guard xs.count >= 2, p.isConstant(slope) else { return r }
        let s = p.shape(slope)
        if let axis = ChannelBehaviour.alignedChannelAxis(s, rank: xs.count), s[axis] == xs[1], xs[1] > 1 {
            r.inputs[slope] = .perChannel(axis: axis)
        }
        return r
    }
}

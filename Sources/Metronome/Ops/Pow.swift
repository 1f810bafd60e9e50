#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `Pow(X, Y)`. A constant scalar exponent (the common export of `x ** 2`, `x ** 0.5`)
/// makes it the element-wise ``Eltwise/pow(exponent:)``: a oneDNN eltwise primitive or
/// post-op. Any other exponent (a tensor, a computed value) runs the broadcasting reference
/// kernel.
struct PowOperator: Operator {
    /// The exponent when it is a constant scalar (then the step's only input is the base),
    /// with the shape it was given in (a `[1]` exponent broadcasts a rank-0 base to `[1]`).
    struct Attributes: Hashable, Sendable {
        var exponent: Float?
        var exponentShape: [Int]
    }

    var onnxNames: [String] { ["Pow"] }

    /// An integer exponent computed at import time may feed the exponent.
    func parameterInputs(of opType: String) -> Set<Int> { [1] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        let n = p.node
        try p.requireInputs(2...2)
        guard let e = p.input(1) else { throw p.fail("the exponent input is missing") }
        if let t = p.graph.initializers[e], t.count == 1 {
            return (.custom(CustomAttributes(Attributes(exponent: t.scalars[0], exponentShape: t.shape))), [n.inputs[0]])
        }
        if let ints = p.graph.integerConstants[e] {
            guard ints.count == 1 else { throw p.fail("an integer exponent must be a scalar, got \(ints.count) values") }
            return (.custom(CustomAttributes(Attributes(exponent: Float(ints[0]), exponentShape: [1]))), [n.inputs[0]])
        }
        return (.custom(CustomAttributes(Attributes(exponent: nil, exponentShape: []))), [n.inputs[0], e])
    }

    func attributes(_ op: Op) -> Attributes? {
        guard case .custom(let c) = op else { return nil }
        return c.as(Attributes.self)
    }

    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        guard let a = attributes(op) else { throw unexpected(op, c.node.name, c.node.opType) }
        let exponentShape = a.exponent == nil ? inputs[1] : a.exponentShape
        guard let shape = ShapeInference.broadcast(inputs[0], exponentShape) else {
            throw c.fail("shapes \(inputs[0]) and \(exponentShape) cannot be broadcast together")
        }
        return (op, [shape])
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard let a = attributes(step.op) else { throw unexpected(step.op, step.name, step.opType) }
        if let e = a.exponent {
            ReferenceKernels.eltwise(.pow(exponent: e), x[0], count: ys[0].reduce(1, *), out: y[0])
        } else {
            ReferenceKernels.broadcast(x[0], xs[0], x[1], xs[1], out: y[0], ys[0]) { powf($0, $1) }
        }
    }

    /// The constant-exponent form whose output has the base's shape; none other.
    func eltwise(_ step: Step, in program: Program) -> Eltwise? {
        guard let a = attributes(step.op), let e = a.exponent, step.inputs.count == 1,
              program.shape(step.inputs[0]) == program.shape(step.outputs[0]) else { return nil }
        return .pow(exponent: e)
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard step.postOps.isEmpty, let f = eltwise(step, in: b.program) else { return false }
        return try b.eltwise(step, f)
    }

    func fusedActivation(_ step: Step, in program: Program) -> Eltwise? { eltwise(step, in: program) }

    /// 4 FLOPs per output element (a power is an exp and a log).
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        OperatorCost(category: .activation, flops: 4 * step.outputs.reduce(0) { $0 + p.values[$1].count })
    }

    /// Element-wise in the base; a computed exponent whose channel axis lines up shares its
    /// channels, as for the binary operators.
    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        if step.inputs.count == 1 { return .passThrough }
        guard p.shape(step.outputs[0]).count >= 2 else { return .same([]) }
        return BinaryOperator().channelBehaviour(step, in: p)
    }

    /// A constant per-channel exponent tensor follows the channels.
    func channelResize(_ step: Step, in p: Program) -> ChannelResize {
        guard step.inputs.count == 2, p.shape(step.outputs[0]).count >= 2 else { return ChannelResize() }
        return BinaryOperator().channelResize(step, in: p)
    }
}

/// Interprets a ``Program`` step by step with ``ReferenceKernels``: slow, simple and the
/// oracle for every other path.
public struct ReferenceRunner: Sendable {
    public let program: Program

    public init(program: Program) { self.program = program }

    /// Runs the program on `inputs` (in the order of `program.inputs`) and returns its outputs.
    public func run(_ inputs: [Tensor]) throws -> [Tensor] {
        guard inputs.count == program.inputs.count else {
            throw MetronomeError.missingInput("the program takes \(program.inputs.count) inputs, \(inputs.count) were given")
        }
        // Every value lives in its own heap buffer for the duration of the run.
        var env: [ValueID: UnsafeMutableBufferPointer<Float>] = [:]
        defer { for buffer in env.values { buffer.deallocate() } }
        func store(_ id: ValueID, _ scalars: [Float]) {
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(scalars.count, 1))
            _ = b.initialize(from: scalars)
            env[id] = b
        }
        for (id, t) in program.constants { store(id, t.scalars) }
        for (id, t) in zip(program.inputs, inputs) {
            guard t.shape == program.shape(id) else {
                throw MetronomeError.inputShape(name: program.values[id].name, expected: program.shape(id), actual: t.shape)
            }
            store(id, t.scalars)
        }
        for step in program.steps {
            func buffer(_ id: ValueID) throws -> UnsafePointer<Float> {
                guard let b = env[id], let base = b.baseAddress else {
                    throw MetronomeError.node(node: step.name, op: step.opType,
                                              message: "input \(program.values[id].name) is not available")
                }
                return UnsafePointer(base)
            }
            let ins = try step.inputs.map(buffer)
            let outShapes = step.outputs.map(program.shape)
            var outs: [UnsafeMutablePointer<Float>] = []
            for (id, shape) in zip(step.outputs, outShapes) {
                store(id, [Float](repeating: 0, count: shape.reduce(1, *)))
                outs.append(env[id]!.baseAddress!)
            }
            try ReferenceRunner.kernel(step, ins, step.inputs.map(program.shape), outs, outShapes)
            var residuals: [ValueID: UnsafePointer<Float>] = [:]
            for case .add(let v) in step.postOps { residuals[v] = try buffer(v) }
            ReferenceKernels.applyPostOps(step.postOps, to: outs[0], count: outShapes[0].reduce(1, *)) { residuals[$0]! }
        }
        return try program.outputs.map { id in
            guard let b = env[id] else { throw MetronomeError.invalidGraph("output \(program.values[id].name) was not computed") }
            return try Tensor(shape: program.shape(id), scalars: Array(b.prefix(program.values[id].count)))
        }
    }

    /// Runs one step's reference kernel, as its operator defines it. Shared with the
    /// compiler's fallback path.
    static func kernel(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                       _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        try OperatorRegistry.of(step).reference(step, x, xs, y, ys)
    }
}

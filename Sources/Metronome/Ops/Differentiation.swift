#if canImport(Glibc)
import Glibc
#endif

/// The buffers of one step during training: its inputs and outputs (dense row-major, the
/// shapes of the lowered program), and the gradients flowing back.
public struct StepBuffers {
    public var inputs: [UnsafePointer<Float>]
    public var inputShapes: [[Int]]
    public var outputs: [UnsafeMutablePointer<Float>]
    public var outputShapes: [[Int]]

    public init(inputs: [UnsafePointer<Float>], inputShapes: [[Int]], outputs: [UnsafeMutablePointer<Float>], outputShapes: [[Int]]) {
        self.inputs = inputs
        self.inputShapes = inputShapes
        self.outputs = outputs
        self.outputShapes = outputShapes
    }

    func count(input i: Int) -> Int { inputShapes[i].reduce(1, *) }
    func count(output i: Int) -> Int { outputShapes[i].reduce(1, *) }
}

/// Which kernels training uses: the plain Swift loops (the oracle the gradient checks
/// verify against finite differences) or the fast ones (convolutions through oneDNN's
/// training primitives, matrix products through `dnnl_sgemm`, the rest split over the
/// OpenMP team).
public enum TrainingKernels: Sendable {
    case reference
    case fast
}

/// What a step keeps between its training forward and its backward pass (batch-norm batch
/// statistics, the positions max pooling took) and whether batch norm is in training mode.
public struct StepMemory {
    public var saved: [Float] = []
    public var indices: [Int32] = []
    /// Batch norm: normalize with the batch's statistics and update the running ones (in the
    /// step's mean and variance constants, through `runningUpdate`).
    public var training: Bool
    /// Batch norm's running-statistics update: new mean and variance per channel.
    public var runningUpdate: (mean: [Float], variance: [Float])?
    public var momentum: Float
    /// The oneDNN engine, stream and shared workspace of the fast kernels' primitives: one
    /// per trainer, given to every step; a step without one makes its own.
    public var engine: TrainingEngine?
    /// A convolution's oneDNN primitives, made by its first fast forward.
    var convolution: ConvTrainingPrimitives?
    /// Bytes a convolution's primitives have allocated to keep from forward to backward (its blocked copies).
    public var convolutionKeptBytes: Int { convolution?.allocatedBytes ?? 0 }

    public init(training: Bool = true, momentum: Float = 0.1, engine: TrainingEngine? = nil) {
        self.training = training
        self.momentum = momentum
        self.engine = engine
    }
}

/// The fast kernels' oneDNN convolutions of a training program (``Autograd/fastConvolutions(_:threads:)``).
public struct FastConvolutions: Sendable {
    /// Bytes kept from forward to backward: every convolution's blocked copies of its input and weights.
    public var kept = 0
    /// Bytes of the shared workspace: the largest call's blocked temporaries and scratchpads.
    public var workspace = 0
    /// Per convolution, by step index: oneDNN's forward implementation and the layouts it computes in.
    public var steps: [Int: Step] = [:]

    public struct Step: Sendable {
        public var implementation: String
        public var sourceLayout: String
        public var outputLayout: String
    }
}

/// Forward and backward passes of single steps for training (see `MetronomeTraining`). Each
/// operator's backward lives in its file under `Ops/`, with its other rules.
public enum Autograd {
    /// Computes the step's outputs, keeping in `memory` what its backward needs.
    public static func forward(_ step: Step, _ b: StepBuffers, memory: inout StepMemory, kernels: TrainingKernels) throws {
        guard step.postOps.isEmpty else {
            throw MetronomeError.node(node: step.name, op: step.opType, message: "training runs unoptimized programs; fused post-ops have no backward pass")
        }
        let op = try OperatorRegistry.of(step)
        if try !op.trainingForward(step, b, &memory, kernels) {
            try op.reference(step, b.inputs, b.inputShapes, b.outputs, b.outputShapes)
        }
    }

    /// Adds the gradients of the step's inputs to `inputGradients` (nil where none is
    /// wanted) from its outputs' gradients.
    public static func backward(_ step: Step, _ b: StepBuffers, outputGradients: [UnsafePointer<Float>],
                                inputGradients: [UnsafeMutablePointer<Float>?], memory: StepMemory, kernels: TrainingKernels) throws {
        guard step.postOps.isEmpty else {
            throw MetronomeError.node(node: step.name, op: step.opType, message: "training runs unoptimized programs; fused post-ops have no backward pass")
        }
        try OperatorRegistry.of(step).backward(step, b, outputGradients, inputGradients, memory, kernels)
    }

    /// The backward pass of an operator that only renames its input's elements (Identity,
    /// Dropout, Flatten, Reshape): the gradient is added element by element.
    static func passThrough(_ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?]) {
        guard let d = dx[0] else { return }
        for i in 0..<b.count(input: 0) { d[i] += dy[0][i] }
    }

    /// What the fast kernels' oneDNN convolutions are for `program` at `threads` OpenMP
    /// threads, found by making their primitives as the trainer makes them (so the sizes and
    /// names are oneDNN's own), without running anything.
    public static func fastConvolutions(_ program: Program, threads: Int) throws -> FastConvolutions {
        try ParallelFor.withTeam(of: threads) {
            let engine = try TrainingEngine()
            var result = FastConvolutions()
            for (index, step) in program.steps.enumerated() {
                guard case .conv(let a) = step.op, a.kernel.count == 2 else { continue }
                let c = try ConvTrainingPrimitives(name: step.name, program.shape(step.inputs[0]), program.shape(step.inputs[1]),
                                                   program.shape(step.outputs[0]), a, hasBias: step.inputs.count > 2, engine: engine)
                result.kept += c.persistentBytes
                result.workspace = max(result.workspace, c.workspaceBytes)
                result.steps[index] = .init(implementation: c.implementations[0], sourceLayout: c.sourceLayout, outputLayout: c.outputLayout)
            }
            return result
        }
    }

    /// Whether every step of `program` has a backward pass.
    public static func check(_ program: Program) throws {
        for step in program.steps {
            let op = try OperatorRegistry.of(step)
            guard op.isDifferentiable(step) else {
                throw MetronomeError.node(node: step.name, op: step.opType, message: "has no backward pass, so the model cannot be trained")
            }
        }
    }
}

extension Operator {
    func trainingForward(_ step: Step, _ b: StepBuffers, _ memory: inout StepMemory, _ kernels: TrainingKernels) throws -> Bool { false }
    func isDifferentiable(_ step: Step) -> Bool { false }
    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws {
        throw MetronomeError.node(node: step.name, op: step.opType, message: "has no backward pass, so the model cannot be trained")
    }
}

extension Eltwise {
    /// d f(x) / dx at `x` (with `y = f(x)`), for the activations training supports; nil for the others.
    @inline(__always)
    func derivative(_ x: Float, _ y: Float) -> Float? {
        switch self {
        case .relu: return x > 0 ? 1 : 0
        case .leakyRelu(let a): return x > 0 ? 1 : a
        case .clip(let lo, let hi): return x > lo && x < hi ? 1 : 0
        case .sigmoid: return y * (1 - y)
        case .tanh: return 1 - y * y
        case .silu:
            let s = 1 / (1 + expf(-x))
            return s * (1 + x * (1 - s))
        case .hardSigmoid(let a, let b):
            let t = a * x + b
            return t > 0 && t < 1 ? a : 0
        case .hardSwish:
            if x <= -3 { return 0 }
            if x >= 3 { return 1 }
            return x / 3 + 0.5
        case .elu(let a): return x > 0 ? 1 : y + a
        case .softplus: return 1 / (1 + expf(-x))
        case .exp: return y
        case .log: return 1 / x
        case .abs: return x > 0 ? 1 : (x < 0 ? -1 : 0)
        case .neg: return -1
        case .sqrt: return 0.5 / y
        case .reciprocal: return -y * y
        default: return nil
        }
    }

    var isDifferentiable: Bool { derivative(0.5, apply(0.5)) != nil }
}

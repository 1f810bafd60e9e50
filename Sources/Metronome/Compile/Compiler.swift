#if canImport(Glibc)
import Glibc
#endif
import CDNNL

/// Which kernels a plan uses.
public enum Backend: String, Sendable, CaseIterable {
    /// oneDNN primitives in their preferred (blocked) layouts, reference kernels for the rest.
    case onednn
    /// Reference kernels only, on plain layouts (still memory-planned). For testing.
    case reference
}

public struct CompileOptions: Sendable {
    /// Threads each primitive uses (the executor's OpenMP team size).
    public var threads: Int
    public var backend: Backend
    public var optimization: OptimizationOptions
    /// The data type convolutions compute in (fp32 by default; inputs and outputs stay fp32).
    public var precision: Precision
    /// Branch-parallel execution of a multi-branch network (NN-Stretch): the cores of every
    /// device its node names place work on (see ``BranchPlacement``). Each device's kernels
    /// get as many threads as its group has cores, and `threads` is not used. Nil: every
    /// kernel runs one after another with `threads` threads.
    public var devices: DeviceCores?

    public init(threads: Int = 1, backend: Backend = .onednn, optimization: OptimizationOptions = OptimizationOptions(),
                precision: Precision = .fp32, devices: DeviceCores? = nil) {
        self.threads = threads
        self.backend = backend
        self.optimization = optimization
        self.precision = precision
        self.devices = devices
    }
}

/// Numeric precision of the heavy kernels.
public enum Precision: String, Sendable, CaseIterable {
    /// Everything in 32-bit floats (the reference).
    case fp32
    /// Convolutions and inner products (and what runs between them: pooling, resampling, eltwise and binary on their
    /// outputs) in bfloat16 activations and weights, with fp32 accumulation as oneDNN does;
    /// the model's inputs and outputs, and every operator without a bf16 kernel, in fp32, with
    /// reorders inserted once at compile time where the types meet.
    case bf16
    /// A quantized (QDQ) model's convolutions and fully connected layers on oneDNN's 8-bit
    /// integer kernels (VNNI where the CPU has it): u8/s8 activations, s8 weights, s32
    /// accumulation, requantized in the kernel. Everything else runs as in fp32. A float model
    /// must be quantized first (`metronome quantize`).
    case int8
}

extension Plan {
    /// Lowers, optimizes and compiles a graph for the given batch (or explicit input shapes).
    public static func compile(_ graph: Graph, batch: Int? = nil, inputShapes: [String: [Int]] = [:],
                               options: CompileOptions = CompileOptions()) throws -> Plan {
        try compile(Program(lowering: graph, inputShapes: inputShapes, batch: batch), options: options)
    }

    /// Optimizes and compiles a lowered program.
    public static func compile(_ program: Program, options: CompileOptions = CompileOptions()) throws -> Plan {
        guard options.threads >= 1 else {
            throw MetronomeError.invalidArgument("threads must be at least 1, got \(options.threads)")
        }
        // oneDNN fixes its thread decomposition when a primitive is created: create them
        // under the team size the executor will use.
        return try ParallelFor.withTeam(of: options.threads) {
            var passes = options.optimization
            if options.precision == .int8 {
                guard program.isQuantized else {
                    throw MetronomeError.invalidArgument(
                        "--precision int8 needs a quantized model (QuantizeLinear/DequantizeLinear nodes); make one with `metronome quantize MODEL --calibration DATA --out FILE.onnx`")
                }
                passes.quantizedKernels = true
                if MachineInfo.int8ProductsSaturate {
                    passes.integerWeightLimit = min(passes.integerWeightLimit ?? MachineInfo.exactInt8WeightLimit, MachineInfo.exactInt8WeightLimit)
                }
            }
            let optimized = program.optimized(passes)
            var builder: PlanBuilder
            if let devices = options.devices {
                try devices.validate(for: BranchPlacement.devices(of: optimized.steps.map(\.name)))
                let layout = try BranchLayout(optimized, devices: devices)
                builder = try PlanBuilder(program: layout.program, options: options, layout: layout)
            } else {
                builder = try PlanBuilder(program: optimized, options: options)
            }
            return try builder.build()
        }
    }
}

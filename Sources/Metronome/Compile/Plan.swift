#if canImport(Glibc)
import Glibc
#endif
import CDNNL

/// Where a kernel argument lives at run time.
enum BufferRef: Equatable {
    /// A planned activation buffer; the index is replaced by an arena offset after planning.
    case arena(Int)
    /// A plan-owned constant (weights in the layout their primitive wants).
    case weight(Int)
    /// The caller's i-th input.
    case input(Int)
    /// The caller's i-th output.
    case output(Int)
    /// The executor's oneDNN scratchpad.
    case scratchpad
}

/// A buffer placed in the arena by the memory planner.
public struct PlannedBuffer: Equatable, Sendable {
    public var offset: Int
    public var lifetime: BufferLifetime
    public var size: Int { lifetime.size }

    /// Whether the two buffers are live at the same time and share bytes (a planning error).
    public func conflicts(with other: PlannedBuffer) -> Bool {
        lifetime.overlaps(other.lifetime) && sharesBytes(with: other)
    }

    public func sharesBytes(with other: PlannedBuffer) -> Bool {
        offset < other.offset + other.size && other.offset < offset + size
    }
}

/// oneDNN argument kinds (`DNNL_ARG_*`), restated because macro aliases do not import.
enum Arg {
    static let src: Int32 = 1
    static let src1: Int32 = 2
    static let dst: Int32 = 17
    static let weights: Int32 = 33
    static let bias: Int32 = 41
    static let scratchpad: Int32 = 80
    static let diffSrc: Int32 = 129
    static let diffDst: Int32 = 145
    static let diffWeights: Int32 = 161
    static let diffBias: Int32 = 169
    static let multipleSrc: Int32 = 1024
}

struct Argument {
    var kind: Int32
    var desc: dnnl_memory_desc_t
    var ref: BufferRef
}

enum Kernel {
    /// A oneDNN primitive created at compile time.
    case primitive(OpaquePointer, [Argument], name: String)
    /// A reference kernel on plain layouts, for what oneDNN does not cover.
    case reference(Step, inputs: [BufferRef], inShapes: [[Int]], outputs: [BufferRef], outShapes: [[Int]],
                   residuals: [ValueID: BufferRef])
    case copy(from: BufferRef, to: BufferRef, bytes: Int)
}

/// A compiled, immutable program: oneDNN primitives created once, weights reordered once,
/// and a memory plan placing every activation in one arena.
///
/// A plan can be shared; each thread that runs it needs its own ``Executor``, which owns the
/// arena and scratchpad. Plans are compiled for a thread count because oneDNN chooses its
/// work decomposition when a primitive is created.
public final class Plan: @unchecked Sendable {
    /// The optimized program the plan executes: its steps and value shapes. Its constants are
    /// dropped, because the plan holds them (reordered) in its own weight buffers.
    public let program: Program
    public let threads: Int
    /// Bytes of the activation arena one executor allocates.
    public let arenaBytes: Int
    /// Bytes of weights (in their compiled layouts) the plan holds.
    public let weightBytes: Int
    /// Bytes of oneDNN scratchpad one executor allocates.
    public let scratchpadBytes: Int
    /// Sum of the sizes of all activation buffers, as if none were reused.
    public let unplannedActivationBytes: Int
    /// Number of kernels (primitives, reference kernels and copies) one run executes.
    public var kernelCount: Int { kernels.count }
    /// How many steps run through oneDNN and how many through reference kernels.
    public let oneDNNKernelCount: Int
    public let referenceKernelCount: Int

    /// Every planned activation buffer: its arena offset, size and the span of kernel indices
    /// during which it holds live data. Two buffers whose spans overlap never share bytes.
    public let buffers: [PlannedBuffer]

    /// The program step each kernel serves (nil for the final copies into the caller's outputs).
    let kernelSteps: [Int?]
    /// What each kernel is, in run order; see ``KernelInfo``.
    public let kernelInfo: [KernelInfo]

    let engine: OpaquePointer
    let kernels: [Kernel]
    let arenaOffsets: [Int]
    /// The weights, in one anonymous mapping with a segment per layer (see ``WeightRegion``):
    /// what a memory budget swaps out and back in.
    public let weightRegion: WeightRegion
    var weights: [UnsafeMutableRawPointer] { weightRegion.pointers }
    let inputShapes: [[Int]]
    let outputShapes: [[Int]]
    /// For a plan compiled with ``CompileOptions/devices``: which kernels run on which
    /// device's cores, and which run at the same time. Nil for a sequential plan.
    public let schedule: BranchSchedule?

    init(program: Program, threads: Int, engine: OpaquePointer, kernels: [Kernel], arenaOffsets: [Int],
         lifetimes: [BufferLifetime], arenaBytes: Int, unplannedBytes: Int, weightRegion: WeightRegion, weightBytes: Int,
         scratchpadBytes: Int, kernelSteps: [Int?], schedule: BranchSchedule? = nil) {
        // The constants were copied into `weights` in the layouts their kernels want; keeping
        // them in the program too would double the plan's weight memory.
        var executed = program
        executed.constants = [:]
        self.program = executed
        self.threads = threads
        self.engine = engine
        self.kernels = kernels
        self.arenaOffsets = arenaOffsets
        buffers = zip(arenaOffsets, lifetimes).map { PlannedBuffer(offset: $0, lifetime: $1) }
        self.arenaBytes = arenaBytes
        self.unplannedActivationBytes = unplannedBytes
        self.weightRegion = weightRegion
        self.weightBytes = weightBytes
        self.scratchpadBytes = scratchpadBytes
        self.kernelSteps = kernelSteps
        self.schedule = schedule
        kernelInfo = KernelInfo.describe(kernels, steps: kernelSteps, program: program)
        inputShapes = program.inputs.map(program.shape)
        outputShapes = program.outputs.map(program.shape)
        var dnnl = 0, ref = 0
        for k in kernels {
            switch k {
            case .primitive: dnnl += 1
            case .reference: ref += 1
            case .copy: break
            }
        }
        oneDNNKernelCount = dnnl
        referenceKernelCount = ref
    }

    deinit {
        for k in kernels { if case .primitive(let p, _, _) = k { dnnl_primitive_destroy(p) } }
        dnnl_engine_destroy(engine)
    }

    public var inputNames: [String] { program.inputs.map { program.values[$0].name } }
    public var outputNames: [String] { program.outputs.map { program.values[$0].name } }
}

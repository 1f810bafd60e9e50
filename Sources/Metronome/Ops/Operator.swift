/// Everything the pipeline needs to know about one ONNX operator (or a small family that
/// shares attributes and kernels), in one place.
///
/// Each stage asks the operator instead of switching over operator kinds: lowering asks it
/// to ``parse(_:)`` a node and to ``inferShapes(_:inputs:_:)``, the reference interpreter
/// asks for its ``reference(_:_:_:_:_:)`` kernel, the compiler for a oneDNN lowering
/// (``lowerToOneDNN(_:into:)``, `false` meaning "reference only"), the optimization passes
/// what it ``acceptsFusedActivation(_:)``, the cost model for its ``cost(_:in:)``, slimming,
/// pruning and folding for its ``channelBehaviour(_:in:)`` and ``channelResize(_:in:)``, and the exporter how to
/// ``exportONNX(_:_:)`` it. A requirement added for a new stage gets a default in the
/// extension below, so that existing operators keep compiling.
///
/// Operators are registered in ``OperatorRegistry``; adding one means one file in `Ops/`
/// and one line there.
protocol Operator: Sendable {
    /// The ONNX operator types (default domain) this operator reads.
    var onnxNames: [String] { get }

    /// The attributes ``parse(_:)`` reads for `opType`, listed when a node has another one.
    func attributes(of opType: String) -> [String]

    /// Input positions of `opType` that are parameters (a shape, bounds, sizes, pads) rather
    /// than data: the importer lets integer tensors computed at import time feed only these.
    func parameterInputs(of opType: String) -> Set<Int>

    /// Reads a node's attributes (defaults, opset differences) and constant parameter inputs
    /// into a typed ``Op``, and names the inputs that are data (run-time or weights).
    func parse(_ parser: inout NodeParser) throws -> (Op, [String])

    /// Output shapes from input shapes. Also resolves the parts of `op` that depend on the
    /// input shapes (`auto_pad`, negative axes, Reshape's `0` and `-1`, ...).
    func inferShapes(_ op: Op, inputs: [[Int]], _ context: ShapeContext) throws -> (Op, [[Int]])

    /// Computes the step on dense row-major buffers: the test oracle and the fallback.
    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws

    /// Emits oneDNN primitives for the step; `false` when oneDNN does not cover it (with
    /// these post-ops, shapes or constant-ness), so the reference kernel runs instead.
    func lowerToOneDNN(_ step: Step, into builder: inout PlanBuilder) throws -> Bool

    /// Whether an element-wise activation reading the step's output may be appended to it
    /// as a post-op.
    func acceptsFusedActivation(_ step: Step) -> Bool

    /// The element-wise function this step computes, when it may be appended as a post-op
    /// to the step producing its input: nil for operators that are not a one-input
    /// element-wise function of the same shape, or whose function oneDNN post-ops lack.
    func fusedActivation(_ step: Step, in program: Program) -> Eltwise?

    /// Whether a residual `Add` of the step's output may become a post-op of the step.
    func acceptsResidualAdd(_ step: Step) -> Bool

    /// Whether a following inference batch norm can be folded into this step's constant
    /// weight (input 1, output channels on axis 0) and bias (input 2).
    func absorbsBatchNorm(_ step: Step, in program: Program) -> Bool

    /// MACs, FLOPs and which constants are learnable parameters (see ``CostCategory``).
    func cost(_ step: Step, in program: Program) -> OperatorCost

    /// How channels (axis 1) flow from the step's inputs to its outputs, for slimming,
    /// pruning and folding.
    func channelBehaviour(_ step: Step, in program: Program) -> ChannelBehaviour

    /// How the step's constant inputs and attributes follow a change of its channels.
    func channelResize(_ step: Step, in program: Program) -> ChannelResize

    /// The sliding-window geometry (kernel, strides, dilations, groups) of a convolution or
    /// pooling step, for per-kernel reports and latency features; nil for other operators.
    func window(_ step: Step, in program: Program) -> KernelWindow?

    /// Training (see ``Autograd``): whether the step has a backward pass.
    func isDifferentiable(_ step: Step) -> Bool

    /// The training forward when it differs from ``reference(_:_:_:_:_:)`` (batch norm's batch
    /// statistics) or has a faster kernel; `false` to use the reference kernel.
    func trainingForward(_ step: Step, _ b: StepBuffers, _ memory: inout StepMemory, _ kernels: TrainingKernels) throws -> Bool

    /// Adds the gradients of the step's inputs (`dx[i]`, nil when not wanted) from its
    /// outputs' gradients `dy`.
    func backward(_ step: Step, _ b: StepBuffers, _ dy: [UnsafePointer<Float>], _ dx: [UnsafeMutablePointer<Float>?],
                  _ memory: StepMemory, _ kernels: TrainingKernels) throws

    /// Whether the step's kernels handle tensors with an empty dimension (a reduction over an
    /// empty set, a zero-size split). Lowering refuses empty tensors elsewhere, naming the node,
    /// so that no kernel meets a size it was not written for.
    func acceptsEmptyTensors(_ op: Op) -> Bool

    /// The opset-17 ONNX form of a graph node: usually the node itself, with parameters
    /// moved from attributes to inputs or the node decomposed where opset 17 differs.
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node]
}

extension Operator {
    func attributes(of opType: String) -> [String] { [] }
    func parameterInputs(of opType: String) -> Set<Int> { [] }
    func lowerToOneDNN(_ step: Step, into builder: inout PlanBuilder) throws -> Bool { false }
    func acceptsFusedActivation(_ step: Step) -> Bool { false }
    func acceptsResidualAdd(_ step: Step) -> Bool { false }
    func fusedActivation(_ step: Step, in program: Program) -> Eltwise? { nil }
    func absorbsBatchNorm(_ step: Step, in program: Program) -> Bool { false }
    func channelResize(_ step: Step, in program: Program) -> ChannelResize { ChannelResize() }
    func exportONNX(_ node: Node, _ context: inout ONNXExportContext) throws -> [Node] { [node] }
    func window(_ step: Step, in program: Program) -> KernelWindow? { nil }
    func acceptsEmptyTensors(_ op: Op) -> Bool { false }

    /// The error for a step or op whose payload this operator does not produce: a bug in
    /// the pipeline, never a property of the model.
    func unexpected(_ op: Op, _ name: String, _ opType: String) -> MetronomeError {
        .node(node: name, op: opType, message: "internal error: \(type(of: self)) cannot handle \(op)")
    }
}

/// What a shape rule knows besides the input shapes: the node, for errors that name it.
struct ShapeContext {
    let node: Node

    func fail(_ message: String) -> MetronomeError {
        .node(node: node.name, op: node.opType, message: message)
    }

    /// `axis` made non-negative for a tensor of rank `rank`.
    func normalize(_ axis: Int, rank: Int) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw fail("axis \(axis) is out of range for rank \(rank)") }
        return a
    }
}

import Foundation
import Metronome

/// The cost of one layer (one node of the graph, before any fusion).
public struct LayerCost: Sendable, Equatable, Codable {
    public var name: String
    public var opType: String
    public var category: CostCategory
    /// Shapes of the computed (non-constant) inputs.
    public var inputShapes: [[Int]]
    public var outputShapes: [[Int]]
    /// Multiply-accumulates (convolution, Gemm and MatMul only; 0 elsewhere).
    public var macs: Int
    /// All floating-point operations: 2 × MACs plus bias adds for conv/Gemm, or the layer's
    /// own count (see ``CostModel``).
    public var flops: Int
    /// The part of `flops` spent adding biases (conv/Gemm only).
    public var biasFlops: Int
    /// Learnable parameters read by the layer (weights, biases, batch-norm scale and shift).
    public var params: Int
    /// Every constant element the layer reads: parameters plus batch-norm running statistics.
    public var weightElements: Int
    /// Elements of the weight tensor of a conv/Gemm/MatMul, without bias (the FoldedCNNs `ai.py` model term).
    public var kernelElements: Int
    public var inputElements: Int
    public var outputElements: Int
    public var weightBytes: Int
    public var inputBytes: Int
    public var outputBytes: Int
    /// Bytes the layer moves under the byte model: inputs and weights read once, output written once.
    public var bytesMoved: Int { inputBytes + weightBytes + outputBytes }
    /// FLOPs per byte moved.
    public var arithmeticIntensity: Double { bytesMoved > 0 ? Double(flops) / Double(bytesMoved) : 0 }

    enum CodingKeys: String, CodingKey {
        case name, opType = "op", category, inputShapes = "input_shapes", outputShapes = "output_shapes"
        case macs, flops, biasFlops = "bias_flops", params, weightElements = "weight_elements"
        case kernelElements = "kernel_elements", inputElements = "input_elements", outputElements = "output_elements"
        case weightBytes = "weight_bytes", inputBytes = "input_bytes", outputBytes = "output_bytes"
        case bytesMoved = "bytes_moved", arithmeticIntensity = "arithmetic_intensity"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        opType = try c.decode(String.self, forKey: .opType)
        category = try c.decode(CostCategory.self, forKey: .category)
        inputShapes = try c.decode([[Int]].self, forKey: .inputShapes)
        outputShapes = try c.decode([[Int]].self, forKey: .outputShapes)
        macs = try c.decode(Int.self, forKey: .macs)
        flops = try c.decode(Int.self, forKey: .flops)
        biasFlops = try c.decode(Int.self, forKey: .biasFlops)
        params = try c.decode(Int.self, forKey: .params)
        weightElements = try c.decode(Int.self, forKey: .weightElements)
        kernelElements = try c.decode(Int.self, forKey: .kernelElements)
        inputElements = try c.decode(Int.self, forKey: .inputElements)
        outputElements = try c.decode(Int.self, forKey: .outputElements)
        weightBytes = try c.decode(Int.self, forKey: .weightBytes)
        inputBytes = try c.decode(Int.self, forKey: .inputBytes)
        outputBytes = try c.decode(Int.self, forKey: .outputBytes)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(opType, forKey: .opType)
        try c.encode(category, forKey: .category)
        try c.encode(inputShapes, forKey: .inputShapes)
        try c.encode(outputShapes, forKey: .outputShapes)
        try c.encode(macs, forKey: .macs)
        try c.encode(flops, forKey: .flops)
        try c.encode(biasFlops, forKey: .biasFlops)
        try c.encode(params, forKey: .params)
        try c.encode(weightElements, forKey: .weightElements)
        try c.encode(kernelElements, forKey: .kernelElements)
        try c.encode(inputElements, forKey: .inputElements)
        try c.encode(outputElements, forKey: .outputElements)
        try c.encode(weightBytes, forKey: .weightBytes)
        try c.encode(inputBytes, forKey: .inputBytes)
        try c.encode(outputBytes, forKey: .outputBytes)
        try c.encode(bytesMoved, forKey: .bytesMoved)
        try c.encode(arithmeticIntensity, forKey: .arithmeticIntensity)
    }

    init(name: String, opType: String, category: CostCategory, inputShapes: [[Int]], outputShapes: [[Int]],
         macs: Int, flops: Int, biasFlops: Int, params: Int, weightElements: Int, kernelElements: Int,
         inputElements: Int, outputElements: Int, elementSize: Int) {
        self.name = name
        self.opType = opType
        self.category = category
        self.inputShapes = inputShapes
        self.outputShapes = outputShapes
        self.macs = macs
        self.flops = flops
        self.biasFlops = biasFlops
        self.params = params
        self.weightElements = weightElements
        self.kernelElements = kernelElements
        self.inputElements = inputElements
        self.outputElements = outputElements
        weightBytes = weightElements * elementSize
        inputBytes = inputElements * elementSize
        outputBytes = outputElements * elementSize
    }
}

/// The cost of a whole graph at one input shape and batch.
public struct CostReport: Sendable, Equatable, Codable {
    public var model: String
    public var batch: Int
    public var inputShapes: [String: [Int]]
    /// Bytes per element in the byte model (4 for float32, 2 for float16).
    public var elementSize: Int
    public var layers: [LayerCost]
    public var macs: Int
    public var flops: Int
    /// `flops` split by ``CostCategory`` raw value; `conv_gemm` is exactly 2 × `macs`.
    public var flopsByCategory: [String: Int]
    /// Learnable parameters, each shared tensor counted once.
    public var params: Int
    /// Bytes of every constant tensor (parameters and running statistics), each counted once.
    public var weightBytes: Int
    /// Bytes of the graph inputs and of every value the layers compute, as if none were reused.
    public var peakActivationBytes: Int
    /// The most activation bytes alive at once when every value is freed after its last use,
    /// layers run in graph order, no fusion (a lower bound for any planner without fusion).
    public var peakLiveActivationBytes: Int
    /// Bytes moved by all layers together under the byte model.
    public var bytesMoved: Int
    /// `flops / bytesMoved`.
    public var arithmeticIntensity: Double
    /// FoldedCNNs' `ai.py` model: conv and fully connected layers only, their FLOPs (with bias)
    /// over their input, output and kernel elements.
    public var convGemmArithmeticIntensity: Double
    /// The engine's activation arena for this batch (float32, after its fusions and layout
    /// choices; caller-owned inputs and outputs are not in it). Nil when not compiled.
    public var plannedArenaBytes: Int?
    /// Weight bytes the compiled plan holds (batch norms folded, blocked layouts).
    public var plannedWeightBytes: Int?
    /// Bytes of the caller-owned input and output buffers of the compiled plan.
    public var plannedIOBytes: Int?
    /// Per part of a multi-branch network (stem, each stage's branches, merges, head); nil
    /// when no layer name carries a ``BranchPlacement``.
    public var branches: [BranchCost]?

    enum CodingKeys: String, CodingKey {
        case model, batch, inputShapes = "input_shapes", elementSize = "element_size", layers, macs, flops
        case flopsByCategory = "flops_by_category", params, weightBytes = "weight_bytes"
        case peakActivationBytes = "peak_activation_bytes", peakLiveActivationBytes = "peak_live_activation_bytes"
        case bytesMoved = "bytes_moved", arithmeticIntensity = "arithmetic_intensity"
        case convGemmArithmeticIntensity = "arithmetic_intensity_conv_gemm"
        case plannedArenaBytes = "planned_arena_bytes", plannedWeightBytes = "planned_weight_bytes"
        case plannedIOBytes = "planned_io_bytes", branches
    }

    /// FLOPs of one image: the batch's FLOPs divided by the batch.
    public var flopsPerImage: Double { Double(flops) / Double(batch) }

    /// The network's arithmetic intensity at another (possibly fractional) batch `b`, using that
    /// FLOPs and activation bytes grow linearly with the batch while weights are read once.
    public func arithmeticIntensity(atBatch b: Double) -> Double {
        let weights = Double(layers.reduce(0) { $0 + $1.weightBytes })
        let activations = Double(layers.reduce(0) { $0 + $1.inputBytes + $1.outputBytes }) / Double(batch)
        return Double(flops) / Double(batch) * b / (weights + activations * b)
    }

    /// ``convGemmArithmeticIntensity`` at another (possibly fractional) batch `b`.
    public func convGemmArithmeticIntensity(atBatch b: Double) -> Double {
        let mac = layers.filter { $0.category == .convolution }
        let ops = Double(mac.reduce(0) { $0 + $1.flops }) / Double(batch)
        let io = Double(mac.reduce(0) { $0 + $1.inputElements + $1.outputElements }) / Double(batch)
        let model = Double(mac.reduce(0) { $0 + $1.kernelElements })
        return ops * b / (Double(elementSize) * (model + io * b))
    }
}

/// Counts MACs, FLOPs, parameters and bytes of a graph, layer by layer.
///
/// Counting rules (also in docs/analysis.md):
/// - Conv: MACs = N·M·OH·OW·(C/group)·KH·KW; Gemm/MatMul: MACs = M·N·K (times batch
///   dimensions). Their FLOPs are 2 × MACs, plus one FLOP per output element for a bias, and
///   one more per output element for Gemm's alpha ≠ 1 or beta ≠ 1.
/// - BatchNormalization: 2 per element (inference form x·a + b).
/// - Activations per element: ReLU 1, LeakyReLU 2, Clip/ReLU6 2, Sigmoid 4, Tanh 4,
///   HardSigmoid 4, SiLU 5, HardSwish 5.
/// - Add/Sub/Mul/Div: 1 per output element.
/// - MaxPool: KH·KW − 1 comparisons per output element; AveragePool: KH·KW (adds and one
///   divide); GlobalAveragePool: H·W per output element.
/// - ConvTranspose: MACs = N·C·H·W·(M/group)·KH·KW over its input (those of the convolution
///   it is the adjoint of), FLOPs as for Conv.
/// - Softmax: 5 per element (max, subtract, exp, sum, divide).
/// - Linear Resize/Upsample: 2^k multiplies and 2^k − 1 adds per output element for k resized
///   axes.
/// - Concat, Split, Slice, Flatten, Reshape, Transpose, Pad, Identity/Dropout, Expand, Tile,
///   DepthToSpace, SpaceToDepth, nearest Resize/Upsample: 0 FLOPs, but their bytes count.
/// - Byte model: each layer reads its computed inputs and its constant tensors once and writes
///   its outputs once, at `elementSize` bytes per element; no fusion, no caching.
///
/// Each operator applies these rules in its own file (`Sources/Metronome/Ops/`,
/// ``OperatorCost``); operators outside the engine's set are rejected when the graph is
/// lowered, so an operator is never silently counted as zero.
public enum CostModel {
    /// Analyzes `graph` with its symbolic batch set to `batch`; `inputShapes` overrides whole
    /// input shapes. With `plan`, the graph is also compiled (1 thread) to report the engine's
    /// memory plan.
    public static func analyze(_ graph: Graph, batch: Int = 1, inputShapes: [String: [Int]] = [:],
                               elementSize: Int = 4, plan: Bool = true) throws -> CostReport {
        guard batch >= 1 else { throw MetronomeError.invalidArgument("batch must be at least 1, got \(batch)") }
        let program = try Program(lowering: graph, inputShapes: inputShapes, batch: batch)
        var report = try analyze(program: program, elementSize: elementSize)
        report.batch = batch
        if plan {
            let compiled = try Plan.compile(program, options: CompileOptions(threads: 1))
            report.plannedArenaBytes = compiled.arenaBytes
            report.plannedWeightBytes = compiled.weightBytes
            report.plannedIOBytes = (compiled.program.inputs + compiled.program.outputs)
                .reduce(0) { $0 + compiled.program.values[$1].count * 4 }
        }
        return report
    }

    /// Analyzes an already lowered (unoptimized) program.
    public static func analyze(program: Program, elementSize: Int = 4) throws -> CostReport {
        guard elementSize >= 1 else { throw MetronomeError.invalidArgument("element size must be at least 1 byte, got \(elementSize)") }
        var layers: [LayerCost] = []
        var paramIDs = Set<ValueID>(), constantIDs = Set<ValueID>()
        for step in program.steps {
            let (layer, params) = try cost(step, program, elementSize: elementSize)
            layers.append(layer)
            paramIDs.formUnion(params)
            constantIDs.formUnion(step.inputs.filter(program.isConstant))
        }
        var byCategory: [String: Int] = Dictionary(uniqueKeysWithValues: CostCategory.allCases.map { ($0.rawValue, 0) })
        for l in layers {
            if l.category == .convolution {
                byCategory[CostCategory.convolution.rawValue, default: 0] += 2 * l.macs
                byCategory[CostCategory.bias.rawValue, default: 0] += l.flops - 2 * l.macs
            } else {
                byCategory[l.category.rawValue, default: 0] += l.flops
            }
        }
        let macs = layers.reduce(0) { $0 + $1.macs }
        let flops = layers.reduce(0) { $0 + $1.flops }
        let moved = layers.reduce(0) { $0 + $1.bytesMoved }
        let activations = program.values.indices.filter { !program.isConstant($0) }
        let mac = layers.filter { $0.category == .convolution }
        let aiOps = Double(mac.reduce(0) { $0 + $1.flops })
        let aiElements = Double(mac.reduce(0) { $0 + $1.kernelElements + $1.inputElements + $1.outputElements })
        var shapes: [String: [Int]] = [:]
        for v in program.inputs { shapes[program.values[v].name] = program.shape(v) }
        var report = CostReport(
            model: program.name, batch: program.inputs.first.map { program.shape($0).first ?? 1 } ?? 1,
            inputShapes: shapes, elementSize: elementSize, layers: layers, macs: macs, flops: flops,
            flopsByCategory: byCategory,
            params: paramIDs.reduce(0) { $0 + program.values[$1].count },
            weightBytes: constantIDs.reduce(0) { $0 + program.values[$1].count } * elementSize,
            peakActivationBytes: activations.reduce(0) { $0 + program.values[$1].count } * elementSize,
            peakLiveActivationBytes: peakLive(program) * elementSize,
            bytesMoved: moved, arithmeticIntensity: moved > 0 ? Double(flops) / Double(moved) : 0,
            convGemmArithmeticIntensity: aiElements > 0 ? aiOps / (Double(elementSize) * aiElements) : 0)
        let parts = BranchCost.parts(of: report)
        report.branches = parts.isEmpty ? nil : parts
        return report
    }

    /// Activation elements alive at the busiest step, freeing each value after its last reader.
    static func peakLive(_ program: Program) -> Int {
        var last: [ValueID: Int] = [:]
        for (i, s) in program.steps.enumerated() {
            for v in s.inputs where !program.isConstant(v) { last[v] = i }
        }
        let outputs = Set(program.outputs)
        var live = program.inputs.reduce(0) { $0 + program.values[$1].count }
        var peak = live
        for (i, s) in program.steps.enumerated() {
            live += s.outputs.reduce(0) { $0 + program.values[$1].count }
            peak = max(peak, live)
            var freed = Set<ValueID>()
            for v in s.inputs + s.outputs where !program.isConstant(v) && !outputs.contains(v) && !freed.contains(v) {
                if (last[v] ?? i) <= i { live -= program.values[v].count; freed.insert(v) }
            }
        }
        return peak
    }

    /// One step's cost, as its operator counts it, and the ids of the constants that count
    /// as learnable parameters.
    static func cost(_ step: Step, _ p: Program, elementSize: Int) throws -> (LayerCost, Set<ValueID>) {
        let data = step.inputs.filter { !p.isConstant($0) }
        let consts = step.inputs.filter(p.isConstant)
        let outCount = step.outputs.reduce(0) { $0 + p.values[$1].count }
        let c = try step.cost(in: p)
        let params = Set(c.parameterInputs ?? consts)
        let layer = LayerCost(
            name: step.name, opType: step.opType, category: c.category,
            inputShapes: data.map(p.shape), outputShapes: step.outputs.map(p.shape),
            macs: c.macs, flops: c.flops, biasFlops: c.biasFlops,
            params: params.reduce(0) { $0 + p.values[$1].count },
            weightElements: consts.reduce(0) { $0 + p.values[$1].count }, kernelElements: c.kernelElements,
            inputElements: data.reduce(0) { $0 + p.values[$1].count }, outputElements: outCount,
            elementSize: elementSize)
        return (layer, params)
    }

    /// `graph` with the spatial dimensions of every 4-D input set to `height`×`width`.
    public static func resizingInputs(_ graph: Graph, height: Int, width: Int) throws -> Graph {
        guard height >= 1, width >= 1 else { throw MetronomeError.invalidArgument("input size must be positive, got \(height)x\(width)") }
        var g = graph
        var changed = false
        for i in g.inputs.indices where g.inputs[i].shape.count == 4 {
            g.inputs[i].shape[2] = height
            g.inputs[i].shape[3] = width
            changed = true
        }
        guard changed else { throw MetronomeError.invalidArgument("'\(graph.name)' has no [N, C, H, W] input to resize") }
        return g
    }
}

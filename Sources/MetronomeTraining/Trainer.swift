import Foundation
import Metronome

/// Trains a graph: its *unoptimized* program (batch norms not folded, nothing fused) at a
/// fixed batch, every value in its own buffer, forward with the operators' training
/// forwards, backward through their backward passes in reverse step order.
///
/// Parameters are the constants the cost model calls learnable (convolution and Gemm
/// weights and biases, batch-norm scales and biases); batch-norm running statistics are
/// updated by the forward pass in training mode. ``trainedGraph()`` writes both back into
/// the graph's initializers, so the result exports to ONNX and runs anywhere.
public final class Trainer {
    public let graph: Graph
    public let program: Program
    /// Images per step (with folding, `fold` images share one input row).
    public let batch: Int
    /// Images folded into one input (FoldedCNNs): a row of the program's input holds `fold`
    /// images stacked along channels, and a row of its output their `fold × classes` logits,
    /// which in row-major memory are exactly `batch` images and `batch` rows of logits.
    public let fold: Int
    public let kernels: TrainingKernels
    /// Classes per image.
    public let classes: Int
    /// The learnable constants, in the order their steps first read them.
    public let parameters: [ValueID]
    /// Batch-norm running means and variances.
    public let runningStatistics: [ValueID]
    private var storage: [UnsafeMutablePointer<Float>]
    private var gradients: [UnsafeMutablePointer<Float>?]
    private let counts: [Int]
    private var memories: [StepMemory]
    /// Every gradient buffer cut into pieces of at most 16,384 floats, for zeroing in parallel.
    private let zeroingPieces: [(pointer: UnsafeMutablePointer<Float>, count: Int)]
    /// When set (to `program.steps.count + 2` zeros), every pass adds each step's time in
    /// nanoseconds to its entry — forward and backward together —, then the gradient zeroing
    /// and the loss to the next entry and the optimizer's update to the last: the per-kernel
    /// times of `profile --stage train --layers`, in the order of
    /// ``KernelInfo/describe(trainingSteps:kernelSet:gradientElements:parameterElements:)``.
    public var stepNanoseconds: [UInt64]?
    /// The fast convolutions as planned per thread count: the memory account and the kernel
    /// descriptions both read them, and planning makes every convolution's primitives.
    private var plannedConvolutions: [Int: FastConvolutions] = [:]

    public init(graph: Graph, batch: Int, fold: Int = 1, kernels: TrainingKernels = .fast, momentum: Float = 0.1) throws {
        guard batch >= 1 else { throw MetronomeError.invalidArgument("the training batch must be at least 1, got \(batch)") }
        guard fold >= 1, batch % fold == 0 else {
            throw MetronomeError.invalidArgument("the batch (\(batch)) must be a multiple of the fold factor (\(fold))")
        }
        guard graph.inputs.count == 1 else {
            throw MetronomeError.invalidArgument("training needs a model with one input; \(graph.name) has \(graph.inputs.count)")
        }
        let program = try Program(lowering: graph, batch: batch / fold)
        try Autograd.check(program)
        guard program.outputs.count == 1, program.shape(program.outputs[0]).count == 2,
              program.shape(program.outputs[0])[0] == batch / fold, program.shape(program.outputs[0])[1] % fold == 0 else {
            throw MetronomeError.invalidArgument(
                "training needs a model with one output of logits [batch, classes] (\(fold) images' classes per row when folded); \(graph.name) gives \(program.outputs.map(program.shape))")
        }
        self.graph = graph
        self.batch = batch
        self.fold = fold
        self.kernels = kernels
        classes = program.shape(program.outputs[0])[1] / fold
        var params: [ValueID] = [], running: [ValueID] = []
        var seen = Set<ValueID>()
        for step in program.steps {
            let cost = try step.cost(in: program)
            let learnable = cost.parameterInputs ?? step.inputs.filter(program.isConstant)
            for v in learnable where program.isConstant(v) && seen.insert(v).inserted { params.append(v) }
            if case .batchNorm = step.op { running += [step.inputs[3], step.inputs[4]] }
        }
        for v in params + running where graph.initializers[program.values[v].name]?.shape != program.shape(v) {
            throw MetronomeError.invalidArgument(
                "cannot train '\(program.values[v].name)': it is not one of the graph's initializers as the program uses it")
        }
        parameters = params
        runningStatistics = running
        counts = program.values.map { $0.count }
        storage = counts.map { UnsafeMutablePointer<Float>.allocate(capacity: max($0, 1)) }
        let trainable = Set(params)
        gradients = program.values.indices.map { v in
            if program.inputs.contains(v) { return nil }
            if program.isConstant(v) && !trainable.contains(v) { return nil }
            return UnsafeMutablePointer<Float>.allocate(capacity: max(program.values[v].count, 1))
        }
        let engine = kernels == .fast ? try TrainingEngine() : nil
        memories = program.steps.map { _ in StepMemory(training: true, momentum: momentum, engine: engine) }
        var pieces: [(pointer: UnsafeMutablePointer<Float>, count: Int)] = []
        for (v, g) in gradients.enumerated() {
            guard let g else { continue }
            var start = 0
            while start < counts[v] {
                pieces.append((g + start, min(16_384, counts[v] - start)))
                start += 16_384
            }
        }
        zeroingPieces = pieces
        for (v, t) in program.constants { storage[v].initialize(from: t.scalars, count: t.count) }
        // The program's constants share their storage with the graph's initializers (arrays
        // are copied on write), so keeping both costs one copy, which plannedMemory counts.
        self.program = program
    }

    deinit {
        storage.forEach { $0.deallocate() }
        gradients.forEach { $0?.deallocate() }
    }

    /// Elements of one input image.
    public var imageSize: Int { program.values[program.inputs[0]].count / batch }

    /// The shape of one image (`[C, H, W]`; a folded input row holds `fold` of them).
    public var imageShape: [Int] {
        var s = Array(program.shape(program.inputs[0]).dropFirst())
        if !s.isEmpty { s[0] /= fold }
        return s
    }

    /// Runs the batch's images (`batch × imageSize` floats) forward; returns the logits.
    @discardableResult
    public func forward(_ images: UnsafePointer<Float>, training: Bool) throws -> UnsafePointer<Float> {
        storage[program.inputs[0]].update(from: images, count: counts[program.inputs[0]])
        for (i, step) in program.steps.enumerated() {
            let t0 = stepNanoseconds == nil ? 0 : MonotonicClock.now()
            defer { if stepNanoseconds != nil { stepNanoseconds![i] &+= MonotonicClock.now() - t0 } }
            memories[i].training = training
            let b = buffers(step)
            try Autograd.forward(step, b, memory: &memories[i], kernels: kernels)
            if training, let update = memories[i].runningUpdate, case .batchNorm = step.op {
                storage[step.inputs[3]].update(from: update.mean, count: update.mean.count)
                storage[step.inputs[4]].update(from: update.variance, count: update.variance.count)
                memories[i].runningUpdate = nil
            }
        }
        return UnsafePointer(storage[program.outputs[0]])
    }

    /// Back-propagates `outputGradient` (the loss's gradient for the logits of the last
    /// forward pass) into the parameters' gradients.
    public func backward(outputGradient: UnsafePointer<Float>) throws {
        let zeroing = stepNanoseconds == nil ? 0 : MonotonicClock.now()
        // Zeroed in 64 KiB pieces over the OpenMP team: one thread's memset was 3% of a
        // ResNet-8 step, and at two threads the second core would wait.
        let pieces = zeroingPieces
        ParallelFor.run(pieces.count) { i, _ in pieces[i].pointer.update(repeating: 0, count: pieces[i].count) }
        if stepNanoseconds != nil { stepNanoseconds![program.steps.count] &+= MonotonicClock.now() - zeroing }
        guard let top = gradients[program.outputs[0]] else { return }
        top.update(from: outputGradient, count: counts[program.outputs[0]])
        for (i, step) in program.steps.enumerated().reversed() {
            let t0 = stepNanoseconds == nil ? 0 : MonotonicClock.now()
            defer { if stepNanoseconds != nil { stepNanoseconds![i] &+= MonotonicClock.now() - t0 } }
            let dy = try step.outputs.map { v -> UnsafePointer<Float> in
                guard let g = gradients[v] else { throw MetronomeError.node(node: step.name, op: step.opType, message: "output without a gradient") }
                return UnsafePointer(g)
            }
            try Autograd.backward(step, buffers(step), outputGradients: dy, inputGradients: step.inputs.map { gradients[$0] },
                                  memory: memories[i], kernels: kernels)
        }
    }

    /// One optimisation step on a batch: softmax cross-entropy with the labels, or, with
    /// `targets` (a teacher's logits, `batch × classes`), the mean squared error to them
    /// (distillation) plus `labelWeight` × the labels' cross-entropy; returns the batch's mean
    /// loss and how many images it classified correctly (by the labels) before the update.
    public func trainStep(images: UnsafePointer<Float>, labels: UnsafePointer<Int32>, targets: UnsafePointer<Float>? = nil,
                          labelWeight: Float = 0, optimizer: inout Optimizer, lr: Float) throws -> (loss: Double, correct: Int) {
        let logits = try forward(images, training: true)
        let lossStart = stepNanoseconds == nil ? 0 : MonotonicClock.now()
        let grad = UnsafeMutablePointer<Float>.allocate(capacity: batch * classes)
        defer { grad.deallocate() }
        let (loss, correct) = targets.map {
            Loss.distillation(logits, batch: batch, classes: classes, target: $0, labels: labels, labelWeight: labelWeight, gradient: grad)
        } ?? Loss.softmaxCrossEntropy(logits, batch: batch, classes: classes, labels: labels, gradient: grad)
        guard loss.isFinite else {
            throw MetronomeError.invalidArgument("the loss became \(loss); lower the learning rate (--lr)")
        }
        if stepNanoseconds != nil { stepNanoseconds![program.steps.count] &+= MonotonicClock.now() - lossStart }
        try backward(outputGradient: grad)
        let update = stepNanoseconds == nil ? 0 : MonotonicClock.now()
        optimizer.step(parameters.map { storage[$0] }, gradients: parameters.map { UnsafePointer(gradients[$0]!) },
                       counts: parameters.map { counts[$0] }, lr: lr)
        if stepNanoseconds != nil { stepNanoseconds![program.steps.count + 1] &+= MonotonicClock.now() - update }
        return (loss, correct)
    }

    /// Bytes the trainer holds: learnable parameters, the other values (activations and
    /// running statistics, kept for the backward pass) and the gradient buffers.
    public var memory: (parameters: Int, activations: Int, gradients: Int) {
        let params = Set(parameters)
        let p = params.reduce(0) { $0 + counts[$1] } * 4
        let all = counts.reduce(0, +) * 4
        let g = gradients.indices.reduce(0) { $0 + (gradients[$1] == nil ? 0 : counts[$1]) } * 4
        return (p, all - p, g)
    }

    /// A training step's memory as `profile --stage train` plans it and `predict --stage
    /// train` reports it:
    /// - weights: the parameters, twice — the trainer's working copy and the graph's
    ///   initializers, which it keeps to write the trained model out;
    /// - arena: every other value and every gradient;
    /// - scratchpad: Adam's two moments, the oneDNN convolutions' blocked copies of their
    ///   inputs and weights and their shared workspace at `threads` threads (fast kernels),
    ///   max pooling's recorded positions and the loss's gradient;
    /// - I/O: the batch's images.
    public func plannedMemory(threads: Int) throws -> (weights: Int, arena: Int, scratchpad: Int, io: Int) {
        let m = memory
        let graphBytes = graph.initializers.values.reduce(0) { $0 + $1.count } * 4
        var convolution = 0, positions = 0
        if kernels == .fast {
            let c = try fastConvolutions(threads: threads)
            convolution = c.kept + c.workspace
            for step in program.steps {
                if case .maxPool(let a) = step.op, a.kernel.count == 2 { positions += counts[step.outputs[0]] * 4 }
            }
        }
        return (m.parameters + graphBytes, m.activations + m.gradients,
                2 * m.parameters + convolution + positions + batch * classes * 4, batch * imageSize * 4)
    }

    /// What the fast kernels' convolutions hold after a step: their blocked copies and the
    /// engine's shared workspace (``plannedMemory(threads:)`` plans both without running).
    public var convolutionBytes: (kept: Int, workspace: Int) {
        (memories.reduce(0) { $0 + $1.convolutionKeptBytes }, memories.first?.engine?.workspaceBytes ?? 0)
    }

    /// The trainer's steps as kernels at `threads` threads, with the gradient and optimizer
    /// pseudo-kernels, for training-step profiles and predictors; fast convolutions carry
    /// oneDNN's implementation and layouts.
    public func kernelInfo(threads: Int) throws -> [KernelInfo] {
        let gradientElements = gradients.indices.reduce(0) { $0 + (gradients[$1] == nil ? 0 : counts[$1]) }
        return try KernelInfo.describe(trainingSteps: program, kernelSet: "\(kernels)", gradientElements: gradientElements,
                                       parameterElements: parameters.reduce(0) { $0 + counts[$1] },
                                       convolutions: kernels == .fast ? fastConvolutions(threads: threads) : nil)
    }

    private func fastConvolutions(threads: Int) throws -> FastConvolutions {
        if let planned = plannedConvolutions[threads] { return planned }
        let planned = try Autograd.fastConvolutions(program, threads: threads)
        plannedConvolutions[threads] = planned
        return planned
    }

    /// The values of a parameter or running statistic.
    public func values(_ v: ValueID) -> [Float] { Array(UnsafeBufferPointer(start: storage[v], count: counts[v])) }

    /// The gradient of a parameter (or of any computed value) after ``backward(outputGradient:)``.
    public func gradient(_ v: ValueID) -> [Float]? {
        gradients[v].map { Array(UnsafeBufferPointer(start: $0, count: counts[v])) }
    }

    /// Overwrites a constant (a parameter or running statistic).
    public func setValues(_ v: ValueID, _ values: [Float]) throws {
        guard values.count == counts[v] else {
            throw MetronomeError.invalidArgument("'\(program.values[v].name)' has \(counts[v]) values, got \(values.count)")
        }
        storage[v].update(from: values, count: values.count)
    }

    /// Every parameter and running statistic by name, as a checkpoint stores them.
    public var state: [(name: String, values: [Float])] {
        (parameters + runningStatistics).map { (program.values[$0].name, values($0)) }
    }

    /// The graph with the trained parameters and running statistics as its initializers.
    public func trainedGraph() throws -> Graph {
        var g = graph
        for v in parameters + runningStatistics {
            g.initializers[program.values[v].name] = try Tensor(shape: program.shape(v), scalars: values(v))
        }
        return g
    }

    private func buffers(_ step: Step) -> StepBuffers {
        StepBuffers(inputs: step.inputs.map { UnsafePointer(storage[$0]) }, inputShapes: step.inputs.map(program.shape),
                    outputs: step.outputs.map { storage[$0] }, outputShapes: step.outputs.map(program.shape))
    }
}

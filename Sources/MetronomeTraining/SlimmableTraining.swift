import CDNNL
import Foundation
import Metronome
import MetronomeTransforms

/// Slimmable training (Yu et al., *Slimmable Neural Networks*, ICLR 2019; the sandwich rule
/// and in-place distillation of *Universally Slimmable Networks*, ICCV 2019): one set of
/// weights for every width, with a private batch norm per width.
///
/// Every width is the full model slimmed (``slim(_:width:options:)``: the leading channels of
/// every layer), so a width's convolution and fully connected weights are prefixes of the
/// full ones along every axis. Each iteration runs the widest width on the labels, then the
/// narrowest and `randomWidths` others drawn from the rest on the widest's predictions
/// (soft cross-entropy to its softmax); their gradients add up on the shared weights, and
/// one optimizer step follows. Batch-norm scales, biases and statistics stay with their
/// width. After training, every width's running statistics are recalibrated on training
/// batches (their exact mean over `recalibrationBatches`, as the paper recommends).
public final class SlimmableTrainingRun {
    public let widths: [Double]
    public let trainers: [Trainer]
    public let train: LabelledImages
    public let validation: LabelledImages?
    public let options: TrainingOptions
    public let randomWidths: Int
    public private(set) var history: [[EpochReport]] = []
    /// The full (widest) parameters every width slices: name → values.
    private var shared: [String: [Float]] = [:]
    private var sharedShapes: [String: [Int]] = [:]
    private var sharedOrder: [String] = []
    private var sharedOptimizer: Optimizer
    private var privateOptimizers: [Optimizer]
    /// One shared parameter of a width: its value, the full tensor it slices (an index into
    /// `sharedOrder`) and where each of its elements sits in that tensor, worked out once.
    private struct Slice {
        var value: ValueID
        var shared: Int
        var offsets: [Int]
    }

    /// Per width: its shared parameters and its own (batch norms).
    private var slices: [[Slice]] = []
    private var privateIDs: [[ValueID]] = []

    public init(graph: Graph, widths: [Double], train: LabelledImages, validation: LabelledImages?, options: TrainingOptions,
                randomWidths: Int = 2, slimOptions: SlimOptions = SlimOptions(divisor: 1)) throws {
        let sorted = widths.sorted()
        guard !sorted.isEmpty, sorted.allSatisfy({ $0 > 0 && $0 <= 1 }), Set(sorted).count == sorted.count, sorted.last == 1 else {
            throw MetronomeError.invalidArgument("--widths must be distinct values in (0, 1] including 1, got \(widths)")
        }
        self.widths = sorted
        self.train = train
        self.validation = validation
        self.options = options
        self.randomWidths = randomWidths
        omp_set_num_threads(Int32(options.threads))
        trainers = try sorted.map { w in
            try Trainer(graph: w == 1 ? graph : slim(graph, width: w, options: slimOptions), batch: options.batch, kernels: options.kernels)
        }
        guard trainers[trainers.count - 1].imageShape == train.shape else {
            throw MetronomeError.invalidArgument("\(graph.name) takes images of \(trainers[0].imageShape); \(train.name) has \(train.shape)")
        }
        let full = trainers[trainers.count - 1]
        var batchNorm = Set<String>()
        for t in trainers {
            for step in t.program.steps { if case .batchNorm = step.op { for v in step.inputs.dropFirst() { batchNorm.insert(t.program.values[v].name) } } }
        }
        for v in full.parameters where !batchNorm.contains(full.program.values[v].name) {
            let name = full.program.values[v].name
            shared[name] = full.values(v)
            sharedShapes[name] = full.program.shape(v)
            sharedOrder.append(name)
        }
        let sharedIndex = Dictionary(uniqueKeysWithValues: sharedOrder.enumerated().map { ($1, $0) })
        for t in trainers {
            var s: [Slice] = [], p: [ValueID] = []
            for v in t.parameters {
                let name = t.program.values[v].name
                if let i = sharedIndex[name], let full = sharedShapes[name] {
                    guard Self.isPrefix(t.program.shape(v), of: full) else {
                        throw MetronomeError.invalidArgument("'\(name)' of a slimmed width is not a prefix of the full tensor")
                    }
                    s.append(Slice(value: v, shared: i, offsets: Self.prefixOffsets(t.program.shape(v), in: full)))
                } else {
                    p.append(v)
                }
            }
            slices.append(s)
            privateIDs.append(p)
        }
        sharedOptimizer = Optimizer(options.optimizer, weightDecay: options.weightDecay)
        privateOptimizers = sorted.map { _ in Optimizer(options.optimizer, weightDecay: options.weightDecay) }
    }

    static func isPrefix(_ small: [Int], of big: [Int]) -> Bool {
        small.count == big.count && zip(small, big).allSatisfy { $0 <= $1 }
    }

    /// Row-major offsets of every element of `small` within `big` (a leading slice on every axis).
    public static func prefixOffsets(_ small: [Int], in big: [Int]) -> [Int] {
        var strides = Array(repeating: 1, count: big.count)
        for d in stride(from: big.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * big[d + 1] }
        var offsets = [0]
        for d in 0..<small.count {
            var next: [Int] = []
            next.reserveCapacity(offsets.count * small[d])
            for o in offsets { for i in 0..<small[d] { next.append(o + i * strides[d]) } }
            offsets = next
        }
        return offsets
    }

    /// Copies the shared weights' slices into width `k`'s trainer.
    private func load(_ k: Int) throws {
        for slice in slices[k] {
            let full = shared[sharedOrder[slice.shared]]!
            try trainers[k].setValues(slice.value, slice.offsets.map { full[$0] })
        }
    }

    /// Epochs completed (by this run or the checkpoint it resumed).
    public private(set) var completedEpochs = 0

    /// Trains the remaining epochs (or stops once `stopAfter` are complete), writing
    /// `checkpoint` after each; `progress` is told about each epoch.
    public func run(checkpoint: URL? = nil, stopAfter: Int? = nil, progress: ((Int, [EpochReport]) -> Void)? = nil) throws {
        let loader = try BatchLoader(train, batch: options.batch, augmentation: options.augmentation, seed: options.seed)
        let classes = trainers[0].classes
        let soft = UnsafeMutablePointer<Float>.allocate(capacity: options.batch * classes)
        let grad = UnsafeMutablePointer<Float>.allocate(capacity: options.batch * classes)
        defer { soft.deallocate(); grad.deallocate() }
        while completedEpochs < min(options.epochs, stopAfter ?? options.epochs) {
            let epoch = completedEpochs
            // The widths drawn in an epoch depend on the seed and the epoch alone, so a resumed run repeats them.
            var rng = SplitMix64(seed: options.seed &+ 77 &+ UInt64(epoch) &* 0x9E37_79B9)
            loader.start(epoch: epoch)
            let t0 = Date()
            var losses = [Double](repeating: 0, count: widths.count), correct = [Int](repeating: 0, count: widths.count)
            var runs = [Int](repeating: 0, count: widths.count)
            for b in 0..<loader.batchesPerEpoch {
                let lr = options.schedule.rate(options.learningRate, epoch: Double(epoch) + Double(b) / Double(loader.batchesPerEpoch))
                var gradients = sharedOrder.map { [Float](repeating: 0, count: shared[$0]!.count) }
                let middle = Array(1..<max(1, widths.count - 1)).shuffled(using: &rng).prefix(randomWidths)
                let chosen = [widths.count - 1, 0] + middle
                try loader.next { images, labels, _ in
                    for (n, k) in chosen.enumerated() where n == 0 || k != widths.count - 1 {
                        try load(k)
                        let t = trainers[k]
                        let logits = try t.forward(images, training: true)
                        let (ce, right) = Loss.softmaxCrossEntropy(logits, batch: options.batch, classes: classes, labels: labels, gradient: grad)
                        var loss = ce
                        if n == 0 {
                            // The widest width's softmax is the others' target (in-place distillation).
                            for r in 0..<options.batch {
                                let row = logits + r * classes, out = soft + r * classes
                                var mx = -Float.infinity
                                for c in 0..<classes { mx = max(mx, row[c]) }
                                var sum: Float = 0
                                for c in 0..<classes { out[c] = expf(row[c] - mx); sum += out[c] }
                                for c in 0..<classes { out[c] /= sum }
                            }
                        } else {
                            loss = Loss.softCrossEntropy(logits, batch: options.batch, classes: classes, target: soft, gradient: grad)
                        }
                        try t.backward(outputGradient: grad)
                        losses[k] += loss
                        correct[k] += right
                        runs[k] += 1
                        // Shared gradients add up over the widths; private ones step now.
                        for slice in slices[k] {
                            guard let g = t.gradient(slice.value) else { continue }
                            for (e, o) in zip(g, slice.offsets) { gradients[slice.shared][o] += e }
                        }
                        try stepPrivate(k, lr: lr)
                    }
                }
                try stepShared(gradients, lr: lr)
            }
            loader.stop()
            let seconds = Date().timeIntervalSince(t0)
            var reports: [EpochReport] = []
            for k in widths.indices {
                try load(k)
                let accuracy = try validation.map { try Evaluation.accuracy(trainers[k].trainedGraph(), on: $0, threads: options.threads) }
                reports.append(EpochReport(epoch: epoch + 1, loss: losses[k] / Double(max(runs[k], 1)),
                                           trainAccuracy: Double(correct[k]) / Double(max(runs[k] * options.batch, 1)),
                                           validation: accuracy, seconds: seconds, imagesPerSecond: Double(loader.batchesPerEpoch * options.batch) / max(seconds, 1e-9),
                                           learningRate: options.schedule.rate(options.learningRate, epoch: Double(epoch + 1))))
            }
            history.append(reports)
            completedEpochs = epoch + 1
            progress?(epoch, reports)
            if let checkpoint { try save(to: checkpoint) }
        }
    }

    /// The checkpoint of a slimmable run: the shared weights (`shared/NAME`), each width's own
    /// batch norms (`wK/NAME`), and the optimizers' states, shared first, then width by width.
    func save(to url: URL) throws {
        var state: [String: [Float]] = [:]
        for name in sharedOrder { state["shared/" + name] = shared[name] }
        for (k, t) in trainers.enumerated() {
            for v in privateIDs[k] + t.runningStatistics { state["w\(k)/" + t.program.values[v].name] = t.values(v) }
        }
        var header = Checkpoint.Header(model: trainers[trainers.count - 1].graph.name, epoch: completedEpochs,
                                       optimizerSteps: sharedOptimizer.steps, bestValidation: 0, bestEpoch: completedEpochs,
                                       history: [], tensors: [], settings: options.summary + ", widths \(widths)")
        header.widthHistory = history
        header.privateSteps = privateOptimizers.map(\.steps)
        let first = sharedOptimizer.first + privateOptimizers.flatMap(\.first)
        let second = sharedOptimizer.second + privateOptimizers.flatMap(\.second)
        try Checkpoint(header: header, state: state, best: [:], first: first, second: second).write(to: url)
    }

    /// Restores a checkpoint written by a run of the same model, widths and settings.
    public func resume(from c: Checkpoint) throws {
        guard c.header.settings == options.summary + ", widths \(widths)", let steps = c.header.privateSteps,
              steps.count == widths.count, let widthHistory = c.header.widthHistory else {
            throw MetronomeError.invalidArgument("the checkpoint is not of a slimmable run with these widths and settings (\(c.header.settings)); start over with --force")
        }
        for name in sharedOrder {
            guard let v = c.state["shared/" + name], v.count == shared[name]!.count else {
                throw MetronomeError.invalidArgument("the checkpoint has no shared tensor '\(name)' of the right size")
            }
            shared[name] = v
        }
        for (k, t) in trainers.enumerated() {
            for v in privateIDs[k] + t.runningStatistics {
                let name = t.program.values[v].name
                guard let values = c.state["w\(k)/" + name] else {
                    throw MetronomeError.invalidArgument("the checkpoint has no tensor '\(name)' of width \(widths[k])")
                }
                try t.setValues(v, values)
            }
        }
        // Optimizer states, in the order save wrote them (empty before the first step).
        var first = c.first[...], second = c.second[...]
        func take(_ n: Int, _ from: inout ArraySlice<[Float]>) -> [[Float]] {
            let part = Array(from.prefix(n))
            from = from.dropFirst(n)
            return part
        }
        let hasSecond = !c.second.isEmpty
        sharedOptimizer.restore(steps: c.header.optimizerSteps, first: take(c.header.optimizerSteps > 0 ? sharedOrder.count : 0, &first),
                                second: hasSecond ? take(c.header.optimizerSteps > 0 ? sharedOrder.count : 0, &second) : [])
        for k in widths.indices {
            let n = steps[k] > 0 ? privateIDs[k].count : 0
            privateOptimizers[k].restore(steps: steps[k], first: take(n, &first), second: hasSecond ? take(n, &second) : [])
        }
        history = widthHistory
        completedEpochs = c.header.epoch
    }

    /// One optimizer step on arrays (copied into buffers the optimizer updates in place).
    static func step(_ optimizer: inout Optimizer, _ params: inout [[Float]], _ grads: [[Float]], lr: Float) {
        let p = params.map { a -> UnsafeMutablePointer<Float> in
            let b = UnsafeMutablePointer<Float>.allocate(capacity: max(a.count, 1))
            b.initialize(from: a, count: a.count)
            return b
        }
        let g = grads.map { a -> UnsafeMutablePointer<Float> in
            let b = UnsafeMutablePointer<Float>.allocate(capacity: max(a.count, 1))
            b.initialize(from: a, count: a.count)
            return b
        }
        defer { p.forEach { $0.deallocate() }; g.forEach { $0.deallocate() } }
        optimizer.step(p, gradients: g.map { UnsafePointer($0) }, counts: params.map(\.count), lr: lr)
        for i in params.indices { params[i] = Array(UnsafeBufferPointer(start: p[i], count: params[i].count)) }
    }

    private func stepShared(_ gradients: [[Float]], lr: Float) throws {
        var params = sharedOrder.map { shared[$0]! }
        Self.step(&sharedOptimizer, &params, gradients, lr: lr)
        for (i, name) in sharedOrder.enumerated() { shared[name] = params[i] }
    }

    private func stepPrivate(_ k: Int, lr: Float) throws {
        let t = trainers[k]
        guard !privateIDs[k].isEmpty else { return }
        var params = privateIDs[k].map { t.values($0) }
        let grads = privateIDs[k].map { t.gradient($0) ?? [] }
        Self.step(&privateOptimizers[k], &params, grads, lr: lr)
        for (v, values) in zip(privateIDs[k], params) { try t.setValues(v, values) }
    }

    /// Recomputes every width's batch-norm running statistics as the exact mean over
    /// `batches` training batches (momentum 1/(n+1)), without touching the weights.
    public func recalibrate(batches: Int) throws {
        let loader = try BatchLoader(train, batch: options.batch, seed: options.seed &+ 991)
        for k in widths.indices {
            try load(k)
            let t = trainers[k]
            loader.start(epoch: 0)
            let n = min(batches, loader.batchesPerEpoch)
            for stat in t.runningStatistics { try t.setValues(stat, [Float](repeating: 0, count: t.values(stat).count)) }
            var sums = t.runningStatistics.map { [Float](repeating: 0, count: t.values($0).count) }
            for _ in 0..<n {
                try loader.next { images, _, _ in _ = try t.forward(images, training: true) }
                // Each forward moved the running statistics 0.1 of the way from 0: undo to read the batch's.
                for (j, stat) in t.runningStatistics.enumerated() {
                    let v = t.values(stat)
                    for i in v.indices { sums[j][i] += v[i] / 0.1 }
                    try t.setValues(stat, [Float](repeating: 0, count: v.count))
                }
            }
            loader.stop()
            for (j, stat) in t.runningStatistics.enumerated() { try t.setValues(stat, sums[j].map { $0 / Float(max(n, 1)) }) }
        }
    }

    /// Width `k`'s model with the trained shared weights and its own batch norms.
    public func graph(width k: Int) throws -> Graph {
        try load(k)
        return try trainers[k].trainedGraph()
    }
}

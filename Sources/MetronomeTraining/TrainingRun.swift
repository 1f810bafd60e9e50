import CDNNL
import Foundation
import Metronome
#if canImport(Glibc)
import Glibc
#endif

/// What a training run does: epochs, batch, optimizer, learning rate and its schedule,
/// augmentation, seed, threads and kernels.
public struct TrainingOptions: Sendable, Equatable {
    public var epochs = 10
    public var batch = 64
    public var optimizer = Optimizer.Kind.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8)
    public var learningRate: Float = 1e-3
    public var weightDecay: Float = 0
    public var schedule = LearningRateSchedule.cosine(epochs: 10)
    public var augmentation = Augmentation.none
    public var seed: UInt64 = 0
    public var threads = 1
    public var kernels = TrainingKernels.fast
    /// Images per folded input (FoldedCNNs; the graph given is already folded).
    public var fold = 1
    /// FoldedCNNs' class curriculum: start with max(K/10, fold) classes (in an order drawn
    /// from the seed) and add max(K/10, 1) every this many epochs; nil: all classes from the start.
    public var curriculumEvery: Int?
    /// With a teacher: the weight of the labels' cross-entropy added to the distillation MSE
    /// (0: distillation alone, as FoldedCNNs trains).
    public var labelWeight: Float = 0

    public init() {}

    /// A one-line description, stored in checkpoints so a resume with other settings is caught.
    public var summary: String {
        "epochs \(epochs), batch \(batch), \(optimizer), lr \(learningRate), weight decay \(weightDecay), \(schedule), \(augmentation), seed \(seed)"
            + (fold > 1 ? ", fold \(fold)" : "") + (curriculumEvery.map { ", curriculum every \($0)" } ?? "")
            + (labelWeight != 0 ? ", label weight \(labelWeight)" : "")
    }
}

/// One epoch's numbers.
public struct EpochReport: Codable, Equatable, Sendable {
    public var epoch: Int
    public var loss: Double
    public var trainAccuracy: Double
    public var validation: Evaluation.Accuracy?
    public var seconds: Double
    public var imagesPerSecond: Double
    public var learningRate: Float
}

/// A training loop: epochs of shuffled batches from a ``BatchLoader``, the optimizer, the
/// validation accuracy after every epoch (through the inference engine), the best model by
/// validation accuracy, and a checkpoint after every epoch.
public final class TrainingRun {
    public let trainer: Trainer
    public let train: LabelledImages
    public let validation: LabelledImages?
    public let options: TrainingOptions
    public private(set) var optimizer: Optimizer
    public private(set) var history: [EpochReport] = []
    public private(set) var bestGraph: Graph
    public private(set) var bestValidation = -1.0
    public private(set) var bestEpoch = 0
    private var startEpoch = 0

    /// Progress within an epoch: batch index, batches, running mean loss and accuracy, images/s.
    public struct Progress {
        public var epoch: Int
        public var epochs: Int
        public var batch: Int
        public var batches: Int
        public var loss: Double
        public var accuracy: Double
        public var imagesPerSecond: Double
    }

    /// A teacher's logits for every training image (distillation), or nil.
    public let teacher: [Float]?

    public init(graph: Graph, train: LabelledImages, validation: LabelledImages?, options: TrainingOptions,
                teacher: [Float]? = nil) throws {
        guard options.epochs >= 1 else { throw MetronomeError.invalidArgument("--epochs must be at least 1") }
        guard options.learningRate > 0 else { throw MetronomeError.invalidArgument("--lr must be positive") }
        omp_set_num_threads(Int32(options.threads))
        trainer = try Trainer(graph: graph, batch: options.batch, fold: options.fold, kernels: options.kernels)
        let expected = trainer.imageShape
        guard expected == train.shape else {
            throw MetronomeError.invalidArgument("\(graph.name) takes images of \(expected); \(train.name) has \(train.shape)")
        }
        guard train.classes <= trainer.classes else {
            throw MetronomeError.invalidArgument("\(train.name) has \(train.classes) classes; \(graph.name) outputs \(trainer.classes)")
        }
        self.train = train
        self.validation = validation
        self.options = options
        if let teacher, teacher.count != train.count * trainer.classes {
            throw MetronomeError.invalidArgument("the teacher gives \(teacher.count / max(train.count, 1)) logits per image; the model has \(trainer.classes) classes")
        }
        self.teacher = teacher
        optimizer = Optimizer(options.optimizer, weightDecay: options.weightDecay)
        bestGraph = graph
    }

    /// Restores a checkpoint written by an earlier run of the same model and settings.
    public func resume(from checkpoint: Checkpoint) throws {
        guard checkpoint.header.model == trainer.graph.name else {
            throw MetronomeError.invalidArgument("the checkpoint is of '\(checkpoint.header.model)', not '\(trainer.graph.name)'")
        }
        guard checkpoint.header.settings == options.summary else {
            throw MetronomeError.invalidArgument("the checkpoint was made with other settings (\(checkpoint.header.settings)); resume with the same options or start over with --force")
        }
        for v in trainer.parameters + trainer.runningStatistics {
            let name = trainer.program.values[v].name
            guard let values = checkpoint.state[name] else {
                throw MetronomeError.invalidArgument("the checkpoint has no tensor '\(name)'")
            }
            try trainer.setValues(v, values)
        }
        var best = trainer.graph
        for (name, values) in checkpoint.best {
            guard let t = best.initializers[name], t.count == values.count else {
                throw MetronomeError.invalidArgument("the checkpoint's best model has a tensor '\(name)' the model lacks")
            }
            best.initializers[name] = try Tensor(shape: t.shape, scalars: values)
        }
        bestGraph = best
        optimizer.restore(steps: checkpoint.header.optimizerSteps, first: checkpoint.first, second: checkpoint.second)
        history = checkpoint.header.history
        bestValidation = checkpoint.header.bestValidation
        bestEpoch = checkpoint.header.bestEpoch
        startEpoch = checkpoint.header.epoch
    }

    public var completedEpochs: Int { startEpoch }

    /// Trains the remaining epochs (or stops once `stopAfter` epochs are complete, as an
    /// interrupted run would); `checkpoint` is written after each one.
    public func run(checkpoint: URL? = nil, stopAfter: Int? = nil, progress: ((Progress) -> Void)? = nil) throws {
        let loader = try BatchLoader(train, batch: options.batch, augmentation: options.augmentation, seed: options.seed, teacher: teacher)
        while startEpoch < min(options.epochs, stopAfter ?? options.epochs) {
            let epoch = startEpoch
            loader.start(epoch: epoch, classes: curriculum(epoch: epoch))
            let batches = loader.batchesPerEpoch
            guard batches > 0 else {
                throw MetronomeError.invalidArgument("epoch \(epoch + 1) has fewer images than one batch of \(options.batch)")
            }
            let t0 = Date()
            var lossSum = 0.0, correct = 0, seen = 0
            var lr = options.learningRate
            for b in 0..<batches {
                lr = options.schedule.rate(options.learningRate, epoch: Double(epoch) + Double(b) / Double(batches))
                let (loss, right) = try loader.next { images, labels, targets in
                    try trainer.trainStep(images: images, labels: labels, targets: targets, labelWeight: options.labelWeight,
                                          optimizer: &optimizer, lr: lr)
                }
                lossSum += loss * Double(options.batch)
                correct += right
                seen += options.batch
                if let progress, b % 10 == 9 || b == batches - 1 {
                    progress(Progress(epoch: epoch, epochs: options.epochs, batch: b + 1, batches: batches, loss: lossSum / Double(seen),
                                      accuracy: Double(correct) / Double(seen), imagesPerSecond: Double(seen) / max(Date().timeIntervalSince(t0), 1e-9)))
                }
            }
            loader.stop()
            let seconds = Date().timeIntervalSince(t0)
            let graph = try trainer.trainedGraph()
            let accuracy = try validation.map { try Evaluation.accuracy(graph, on: $0, fold: options.fold, threads: options.threads) }
            history.append(EpochReport(epoch: epoch + 1, loss: lossSum / Double(max(seen, 1)), trainAccuracy: Double(correct) / Double(max(seen, 1)),
                                       validation: accuracy, seconds: seconds, imagesPerSecond: Double(seen) / max(seconds, 1e-9),
                                       learningRate: lr))
            // Without validation data the last epoch's model is the result.
            let score = accuracy?.top1 ?? Double(epoch)
            if score > bestValidation {
                bestValidation = score
                bestEpoch = epoch + 1
                bestGraph = graph
            }
            startEpoch = epoch + 1
            if let checkpoint { try save(to: checkpoint) }
        }
    }

    /// The classes an epoch trains on under the curriculum (nil: all).
    public func curriculum(epoch: Int) -> Set<Int32>? {
        guard let every = options.curriculumEvery, every >= 1 else { return nil }
        let k = trainer.classes
        let first = max(k / 10, options.fold), step = max(k / 10, 1)
        let count = min(k, first + (epoch / every) * step)
        guard count < k else { return nil }
        var g = SplitMix64(seed: options.seed &+ 0xC1A5_5E5)
        let order = Array(0..<k).shuffled(using: &g)
        return Set(order.prefix(count).map { Int32($0) })
    }

    func save(to url: URL) throws {
        var state: [String: [Float]] = [:]
        for (name, values) in trainer.state { state[name] = values }
        var best: [String: [Float]] = [:]
        for v in trainer.parameters + trainer.runningStatistics {
            let name = trainer.program.values[v].name
            if let t = bestGraph.initializers[name] { best[name] = t.scalars }
        }
        let header = Checkpoint.Header(model: trainer.graph.name, epoch: startEpoch, optimizerSteps: optimizer.steps,
                                       bestValidation: bestValidation, bestEpoch: bestEpoch, history: history, tensors: [],
                                       settings: options.summary)
        try Checkpoint(header: header, state: state, best: best, first: optimizer.first, second: optimizer.second).write(to: url)
    }
}

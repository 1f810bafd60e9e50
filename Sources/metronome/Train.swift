import ArgumentParser
import Foundation
import Metronome
import MetronomeONNX
import MetronomeTraining
import MetronomeTransforms

/// The optimizers `train` offers.
enum OptimizerChoice: String, ExpressibleByArgument, CaseIterable {
    case sgd, adam, adamw
}

/// The learning-rate schedules `train` offers.
enum ScheduleChoice: String, ExpressibleByArgument, CaseIterable {
    case cosine, step, constant
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on a labelled image set and write it as ONNX.",
        discussion: """
            Runs the model's unoptimized program forward and backward (every operator's \
            backward pass; convolutions on oneDNN's training primitives, fully connected \
            layers on its sgemm), \
            with softmax cross-entropy, the optimizer and the schedule given. The data are \
            shuffled every epoch (seeded) and assembled by a loader thread, one batch ahead; a \
            last partial batch is dropped. After each epoch the model is evaluated on the \
            validation data through the inference engine, the best one is kept, and a \
            checkpoint is written (--checkpoint, default OUT.ckpt); --resume continues from it.

            --data: fashion-mnist (Debian's dataset-fashion-mnist: 60,000 training images), \
            npy:IMAGES.npy,LABELS.npy, or folder:DIR (one sub-folder of PNG/JPEG images per \
            class). --validation defaults to the last --holdout images of the training data \
            (5,000 for fashion-mnist), which are then not trained on.
            """)

    @Argument(help: "A zoo model name (e.g. lenet5, resnet8) or an .onnx file.") var model: String
    @Option(help: "Training data: fashion-mnist, npy:IMAGES.npy,LABELS.npy or folder:DIR.") var data = "fashion-mnist"
    @Option(help: "Validation data (same forms); default: --holdout images split off the training data.") var validation: String?
    @Option(help: "Training images held out for validation when --validation is not given (0: none).") var holdout = 5000
    @Option(help: "Use only the first N training images (quick runs).") var limit: Int?
    @Option(help: "Epochs.") var epochs = 10
    @Option(help: "Images per batch.") var batch = 64
    @Option(help: "Optimizer: sgd (momentum 0.9), adam or adamw.") var optimizer: OptimizerChoice = .adam
    @Option(help: "Base learning rate (default 0.002 for adam/adamw, 0.05 for sgd).") var lr: Float?
    @Option(help: "Momentum for sgd.") var momentum: Float = 0.9
    @Flag(help: "Nesterov momentum for sgd.") var nesterov = false
    @Option(name: .customLong("weight-decay"), help: "Weight decay (L2 for sgd/adam, decoupled for adamw).") var weightDecay: Float = 0
    @Option(help: "Learning-rate schedule: cosine (to 0 over the epochs), step (x0.1 every --step-every epochs) or constant.")
    var schedule: ScheduleChoice = .cosine
    @Option(name: .customLong("step-every"), help: "Epochs between decays of the step schedule.") var stepEvery = 3
    @Option(help: "Random crop padding in pixels (0: no crop augmentation).") var crop = 0
    @Flag(help: "Random horizontal flips.") var flip = false
    @Option(help: "Threads (the OpenMP team of the oneDNN and Swift kernels).") var threads = 1
    @Option(help: "Seed of the shuffling, the augmentation and a zoo model's initial weights.") var seed: UInt64 = 0
    @Option(help: "Output .onnx path (the best model by validation accuracy).") var out: String
    @Option(help: "Checkpoint file (default: OUT.ckpt).") var checkpoint: String?
    @Flag(help: "Continue from the checkpoint.") var resume = false
    @Flag(help: "Replace the output and checkpoint files if they exist.") var force = false
    @Option(name: .customLong("history"), help: "Also write the per-epoch history as JSON to this file.") var historyPath: String?
    @Option(help: "Train the model folded by this factor (FoldedCNNs: f images stacked along channels per input, widths x sqrt(f)).")
    var fold = 1
    @Option(help: "Distil from this unfolded model (.onnx or zoo name): MSE between each image's logits and the teacher's.")
    var teacher: String?
    @Option(help: "With --teacher: add this weight times the labels' cross-entropy to the distillation MSE (0: distillation alone).")
    var labelWeight: Float = 0
    @Option(help: "FoldedCNNs class curriculum: start with max(K/10, f) classes and add max(K/10, 1) every N epochs.")
    var curriculum: Int?
    @Option(help: "Slimmable training: the widths sharing one set of weights, e.g. 0.25,0.5,0.75,1.0 (each written as OUT@W.onnx).")
    var widths: String?
    @Option(name: .customLong("random-widths"), help: "Slimmable training: widths drawn per iteration besides the widest and the narrowest (sandwich rule).")
    var randomWidths = 2
    @Option(help: "Slimmable training: batches used to recalibrate every width's batch-norm statistics at the end.")
    var recalibrate = 20

    var checkpointPath: String { checkpoint ?? out + ".ckpt" }

    func validate() throws {
        guard out.hasSuffix(".onnx") else { throw ValidationError("--out must name an .onnx file, got \(out)") }
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard holdout >= 0 else { throw ValidationError("--holdout must not be negative") }
        guard crop >= 0 else { throw ValidationError("--crop must not be negative") }
        if let lr, !(lr > 0) { throw ValidationError("--lr must be positive") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        guard fold >= 1 else { throw ValidationError("--fold must be at least 1") }
        guard batch % fold == 0 else { throw ValidationError("--batch (\(batch)) must be a multiple of --fold (\(fold))") }
        if let curriculum, curriculum < 1 { throw ValidationError("--curriculum must be at least 1 epoch") }
        guard labelWeight.isFinite, labelWeight >= 0 else { throw ValidationError("--label-weight must be a finite number ≥ 0") }
        if labelWeight != 0 && teacher == nil { throw ValidationError("--label-weight weighs the labels against a teacher; give --teacher") }
        if widths != nil {
            _ = try parsedWidths()
            if fold > 1 || teacher != nil || curriculum != nil {
                throw ValidationError("--widths (slimmable training) does not combine with --fold, --teacher or --curriculum")
            }
        }
        if !resume {
            try checkWritable(out, force: force)
            if !force && FileManager.default.fileExists(atPath: checkpointPath) {
                throw ValidationError("\(checkpointPath) already exists; pass --resume to continue it or --force to start over")
            }
        } else if !FileManager.default.fileExists(atPath: checkpointPath) {
            throw ValidationError("--resume: no checkpoint at \(checkpointPath)")
        }
        if let historyPath { try checkWritable(historyPath, force: force || resume) }
    }

    var options: TrainingOptions {
        var o = TrainingOptions()
        o.epochs = epochs
        o.batch = batch
        switch optimizer {
        case .sgd: o.optimizer = .sgd(momentum: momentum, nesterov: nesterov)
        case .adam: o.optimizer = .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8)
        case .adamw: o.optimizer = .adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8)
        }
        o.learningRate = lr ?? (optimizer == .sgd ? 0.05 : 2e-3)
        o.weightDecay = weightDecay
        switch schedule {
        case .cosine: o.schedule = .cosine(epochs: epochs)
        case .step: o.schedule = .step(every: stepEvery, gamma: 0.1)
        case .constant: o.schedule = .constant
        }
        o.augmentation = Augmentation(cropPadding: crop, flip: flip)
        o.seed = seed
        o.threads = threads
        o.fold = fold
        o.curriculumEvery = curriculum
        o.labelWeight = labelWeight
        return o
    }

    func parsedWidths() throws -> [Double] {
        guard let widths else { return [] }
        let values = widths.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0! > 0 && $0! <= 1 }), values.contains(1) else {
            throw ValidationError("--widths must list values in (0, 1] including 1, e.g. 0.25,0.5,0.75,1.0; got \(widths)")
        }
        return values.compactMap { $0 }
    }

    /// `OUT@W.onnx` for width W (the widest is OUT itself).
    func path(width w: Double) -> String {
        w == 1 ? out : String(out.dropLast(5)) + "@\(w).onnx"
    }

    func runSlimmable(_ graph: Graph, train: LabelledImages, valid: LabelledImages?) throws {
        let ws = try parsedWidths()
        for w in ws where !force { try checkWritable(path(width: w), force: false) }
        let run = try SlimmableTrainingRun(graph: graph, widths: ws, train: train, validation: valid, options: options, randomWidths: randomWidths)
        let ckpt = URL(fileURLWithPath: checkpointPath)
        if resume {
            try run.resume(from: Checkpoint.read(ckpt))
            print("resuming slimmable \(graph.name) after epoch \(run.completedEpochs) of \(epochs)")
        }
        print("slimmable training of \(graph.name) at widths \(run.widths.map { String($0) }.joined(separator: ", ")) on \(train.name): \(train.count) images; \(options.summary)")
        try run.run(checkpoint: ckpt) { epoch, reports in
            let parts = zip(run.widths, reports).map { w, r in
                String(format: "%.2f: loss %.3f%@", w, r.loss, r.validation.map { String(format: " val %.2f%%", 100 * $0.top1) } ?? "")
            }
            print("epoch \(epoch + 1): " + parts.joined(separator: "; ") + String(format: " (%.1f s)", reports[0].seconds))
        }
        try run.recalibrate(batches: recalibrate)
        for (k, w) in run.widths.enumerated() {
            let g = try run.graph(width: k)
            try ONNXExporter.write(g, to: URL(fileURLWithPath: path(width: w)), overwrite: true)
            let a = try valid.map { try Evaluation.accuracy(g, on: $0, threads: threads) }
            print("wrote \(path(width: w)): width \(w)\(a.map { String(format: ", validation top-1 %.2f%% after recalibration", 100 * $0.top1) } ?? "")")
        }
    }

    func run() throws {
        var graph = try ModelSource.load(model, seed: seed)
        if fold > 1 { graph = try MetronomeTransforms.fold(graph, factor: fold, seed: seed).graph }
        var train = try LabelledImages.load(data)
        if let limit, limit < train.count { train = try train.subset(0..<limit) }
        var valid: LabelledImages?
        if let validation {
            valid = try LabelledImages.load(validation)
        } else if holdout > 0 {
            guard holdout < train.count else {
                throw ValidationError("--holdout \(holdout) leaves no training images of \(train.count); lower it or give --validation")
            }
            valid = try train.subset((train.count - holdout)..<train.count)
            train = try train.subset(0..<(train.count - holdout))
        }
        if widths != nil { return try runSlimmable(graph, train: train, valid: valid) }
        var targets: [Float]?
        if let teacher {
            let t = try ModelSource.load(teacher)
            targets = try Evaluation.logits(t, on: train, threads: threads)
            if let valid {
                let a = try Evaluation.accuracy(t, on: valid, threads: threads)
                print(String(format: "teacher %@: validation top-1 %.2f%%", teacher, 100 * a.top1))
            }
        }
        let run = try TrainingRun(graph: graph, train: train, validation: valid, options: options, teacher: targets)
        let ckpt = URL(fileURLWithPath: checkpointPath)
        if resume {
            try run.resume(from: Checkpoint.read(ckpt))
            print("resuming \(graph.name) after epoch \(run.completedEpochs) of \(epochs)")
        }
        print("training \(graph.name) on \(train.name): \(train.count) images, validation \(valid.map { "\($0.name) (\($0.count))" } ?? "none"); \(options.summary); \(threads) thread(s)")
        var last = Date.distantPast
        try run.run(checkpoint: ckpt) { p in
            guard Date().timeIntervalSince(last) > 0.2 || p.batch == p.batches else { return }
            last = Date()
            let width = 20, done = width * p.batch / p.batches
            let eta = Double(p.batches - p.batch) * Double(options.batch) / max(p.imagesPerSecond, 1e-9)
                + Double(p.epochs - p.epoch - 1) * Double(p.batches * options.batch) / max(p.imagesPerSecond, 1e-9)
            let line = String(format: "\repoch %d/%d [%@%@] %d/%d loss %.4f acc %.2f%% %.0f img/s ETA %@", p.epoch + 1, p.epochs,
                              String(repeating: "#", count: done), String(repeating: "-", count: width - done), p.batch, p.batches,
                              p.loss, 100 * p.accuracy, p.imagesPerSecond, ProgressBar.duration(eta))
            FileHandle.standardError.write(Data(line.utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        for e in run.history {
            let v = e.validation.map { String(format: "validation top-1 %.2f%% top-5 %.2f%%", 100 * $0.top1, 100 * $0.top5) } ?? "no validation"
            print(String(format: "epoch %2d: loss %.4f, train acc %.2f%%, %@, %.1f s, %.0f img/s, lr %.2g", e.epoch, e.loss,
                         100 * e.trainAccuracy, v, e.seconds, e.imagesPerSecond, e.learningRate))
        }
        try ONNXExporter.write(run.bestGraph, to: URL(fileURLWithPath: out), overwrite: true)
        print("wrote \(out): the model after epoch \(run.bestEpoch)\(valid == nil ? "" : String(format: " (best validation top-1 %.2f%%)", 100 * run.bestValidation)); checkpoint \(checkpointPath)")
        if let historyPath {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(run.history).write(to: URL(fileURLWithPath: historyPath))
        }
    }
}

struct Accuracy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Top-1 and top-5 accuracy of a model on a labelled image set.",
        discussion: "Runs the compiled model (inference engine) over every image of --data and compares the arg-max with the labels. With --precision bf16 or int8 it also runs the fp32 compile on the same images and reports both accuracies, top-1 agreement and the logits' relative error.")

    @Argument(help: "A zoo model name or an .onnx file.") var model: String
    @Option(help: "Data: fashion-mnist:test, fashion-mnist, npy:IMAGES.npy,LABELS.npy or folder:DIR.") var data = "fashion-mnist:test"
    @Option(help: "Images per inference.") var batch = 100
    @Option(help: "Threads per inference.") var threads = 1
    @Option(help: "Images per input row of a folded model (FoldedCNNs).") var fold = 1
    @Option(help: "Precision: fp32, bf16 or int8 (int8: a quantized QDQ model, see `metronome quantize`).")
    var precision: Precision = .fp32
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    /// One JSON object on one line, keys sorted.
    func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    func run() throws {
        let graph = try ModelSource.load(model)
        let set = try LabelledImages.load(data)
        if precision != .fp32 && fold == 1 {
            // Reduced precision: both compiles on the same images, and how far apart they are.
            let c = try Evaluation.compare(graph, on: set, precision: precision, batch: batch, threads: threads)
            if json {
                try printJSON(c)
            } else {
                print(String(format: "%@ on %@ (%d images, %@): top-1 %.2f%%, top-5 %.2f%%", model, set.name, c.reduced.images,
                             precision.rawValue, 100 * c.reduced.top1, 100 * c.reduced.top5))
                print(String(format: "  fp32: top-1 %.2f%%, top-5 %.2f%%; %@ agrees on the top class for %.2f%% of the images; logits' relative error max %.2e, mean %.2e",
                             100 * c.fp32.top1, 100 * c.fp32.top5, precision.rawValue, 100 * c.top1Agreement, c.maxRelativeError, c.meanRelativeError))
                if graph.isQuantized {
                    print("  (for a quantized model, fp32 computes the same quantization in float; `metronome quantize` compares with the float model)")
                }
            }
            return
        }
        let a = try Evaluation.accuracy(graph, on: set, batch: batch, fold: fold, threads: threads, precision: precision)
        if json {
            try printJSON(a)
        } else {
            print(String(format: "%@ on %@ (%d images%@): top-1 %.2f%%, top-5 %.2f%%", model, set.name, a.images,
                         precision == .fp32 ? "" : ", \(precision.rawValue)", 100 * a.top1, 100 * a.top5))
        }
    }
}

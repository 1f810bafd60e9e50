import XCTest
import Foundation
import CLITestHarness
import Metronome
import MetronomeModels
import MetronomeONNX
import MetronomeTraining
import MetronomeTransforms

/// Training runs: a tiny model overfits a tiny batch; a resumed run equals an uninterrupted
/// one; a trained model exported to ONNX gives ONNX Runtime's predictions; CLI errors.
final class TrainingTests: XCTestCase {
    static let fashion = Result { try FashionMNIST.load(.train) }

    func testATinyModelOverfitsATinyBatch() throws {
        let data = try Self.fashion.get().subset(0..<32)
        let trainer = try Trainer(graph: TrainableCNNs.lenet5(seed: 1), batch: 32)
        var optimizer = Optimizer(.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8))
        var first = 0.0, last = (loss: 0.0, correct: 0)
        for i in 0..<150 {
            last = try data.pixels.withUnsafeBufferPointer { x in
                try data.labels.withUnsafeBufferPointer { y in
                    try trainer.trainStep(images: x.baseAddress!, labels: y.baseAddress!, optimizer: &optimizer, lr: 3e-3)
                }
            }
            if i == 0 { first = last.loss }
        }
        XCTAssertGreaterThan(first, 1.5, "an untrained 10-class model starts near ln 10")
        XCTAssertLessThan(last.loss, 0.02)
        XCTAssertEqual(last.correct, 32)
    }

    /// The trainer with its fast kernels (parallel pooling with recorded maxima, the vectorized
    /// residual add, gradients zeroed in pieces over the team) gives the reference kernels'
    /// parameter gradients on LeNet-5 (max pooling) and ResNet-8 (residual adds, batch norms),
    /// also on a second backward pass, which must not add to the first.
    func testFastTrainerGradientsEqualTheReferenceOnes() throws {
        let data = try Self.fashion.get().subset(0..<8)
        for graph in [TrainableCNNs.lenet5(seed: 3), TrainableCNNs.resnet(seed: 3)] {
            let fast = try Trainer(graph: graph, batch: 8, kernels: .fast)
            let reference = try Trainer(graph: graph, batch: 8, kernels: .reference)
            var gradients: [[Float]] = []
            for trainer in [fast, reference] {
                var passes: [[Float]] = []
                for _ in 0..<2 {
                    _ = try data.pixels.withUnsafeBufferPointer { try trainer.forward($0.baseAddress!, training: true) }
                    let grad: [Float] = (0..<80).map { (i: Int) -> Float in Float((i * 7) % 11) / 11 - 0.5 }
                    try grad.withUnsafeBufferPointer { try trainer.backward(outputGradient: $0.baseAddress!) }
                    passes.append(trainer.parameters.flatMap { trainer.gradient($0)! })
                }
                let drift = zip(passes[0], passes[1]).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertEqual(drift, 0, "\(graph.name): a second backward pass must give the same gradients")
                gradients.append(passes[0])
            }
            let scale = gradients[1].map { abs($0) }.max() ?? 0
            XCTAssertGreaterThan(scale, 0)
            let worst = zip(gradients[0], gradients[1]).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(graph.name): fast against reference gradients")
            // The memory account plans the oneDNN convolutions' buffers as the steps allocated them.
            let planned = try Autograd.fastConvolutions(fast.program, threads: ParallelFor.threads)
            let held = fast.convolutionBytes
            XCTAssertGreaterThan(held.kept, 0)
            XCTAssertEqual(planned.kept, held.kept, graph.name)
            XCTAssertEqual(planned.workspace, held.workspace, graph.name)
        }
    }

    func testResumingGivesTheUninterruptedResult() throws {
        let all = try Self.fashion.get()
        let train = try all.subset(0..<640), valid = try all.subset(640..<840)
        var options = TrainingOptions()
        options.epochs = 2
        options.batch = 32
        options.threads = 1
        options.augmentation = Augmentation(cropPadding: 2, flip: true)
        options.schedule = .cosine(epochs: 2)
        options.optimizer = .sgd(momentum: 0.9, nesterov: true)
        options.learningRate = 0.02
        let graph = TrainableCNNs.resnet(width: 4, seed: 2)
        let whole = try TrainingRun(graph: graph, train: train, validation: valid, options: options)
        try whole.run()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ckpt = dir.appendingPathComponent("run.ckpt")
        let firstHalf = try TrainingRun(graph: graph, train: train, validation: valid, options: options)
        try firstHalf.run(checkpoint: ckpt, stopAfter: 1)
        XCTAssertEqual(firstHalf.completedEpochs, 1)
        let resumed = try TrainingRun(graph: graph, train: train, validation: valid, options: options)
        try resumed.resume(from: Checkpoint.read(ckpt))
        try resumed.run(checkpoint: ckpt)
        for (a, b) in zip(whole.trainer.state, resumed.trainer.state) {
            XCTAssertEqual(a.name, b.name)
            XCTAssertEqual(a.values, b.values, "'\(a.name)' differs after resuming")
        }
        XCTAssertEqual(whole.history.map(\.loss), resumed.history.map(\.loss))
        XCTAssertEqual(whole.bestEpoch, resumed.bestEpoch)
        // Other settings are refused.
        var other = options
        other.learningRate = 0.03
        let mismatched = try TrainingRun(graph: graph, train: train, validation: valid, options: other)
        XCTAssertThrowsError(try mismatched.resume(from: Checkpoint.read(ckpt))) { XCTAssertTrue("\($0)".contains("other settings"), "\($0)") }
        // A truncated checkpoint is refused, naming the file.
        let data = try Data(contentsOf: ckpt)
        try data.prefix(data.count - 100).write(to: ckpt)
        XCTAssertThrowsError(try Checkpoint.read(ckpt)) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
    }

    func testTrainedONNXGivesONNXRuntimesPredictions() throws {
        let bin = try Harness.metronome()
        _ = try Harness.python()
        let work = try Harness.temporaryDirectory("train")
        defer { try? FileManager.default.removeItem(at: work) }
        let model = work.appendingPathComponent("lenet.onnx").path
        var r = try Harness.run(bin, ["train", "lenet5", "--epochs", "1", "--limit", "3000", "--holdout", "500", "--threads", "2", "--out", model])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("validation top-1"), r.stdout)
        // The same command again is refused (the output exists); --resume with nothing to resume too.
        r = try Harness.run(bin, ["train", "lenet5", "--epochs", "1", "--out", model])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("already exists"), r.stderr)
        r = try Harness.run(bin, ["train", "lenet5", "--epochs", "1", "--out", work.appendingPathComponent("other.onnx").path, "--resume"])
        XCTAssertTrue(r.stderr.contains("no checkpoint"), r.stderr)
        r = try Harness.run(bin, ["train", "resnet18", "--epochs", "1", "--out", work.appendingPathComponent("r18.onnx").path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("[1, 28, 28]"), r.stderr)
        r = try Harness.run(bin, ["train", "lenet5", "--label-weight", "1", "--out", work.appendingPathComponent("lw.onnx").path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("give --teacher"), r.stderr)
        // Predictions on 200 test images: Metronome's engine against ONNX Runtime.
        let test = try FashionMNIST.load(.test).subset(0..<200)
        let graph = try ONNXImporter.load(URL(fileURLWithPath: model))
        let plan = try Plan.compile(graph, batch: 200)
        let ours = try Executor(plan: plan).run([Tensor(shape: [200, 1, 28, 28], scalars: test.pixels)])[0]
        let raw = work.appendingPathComponent("x.bin"), out = work.appendingPathComponent("y.bin")
        try test.pixels.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: raw)
        let jobs = work.appendingPathComponent("jobs.json")
        try JSONSerialization.data(withJSONObject: [["model": model, "input": raw.path, "shape": [200, 1, 28, 28], "output": out.path]]).write(to: jobs)
        r = try Harness.run("/usr/bin/env", ["python3", Harness.root.appendingPathComponent("scripts/ort_run.py").path, jobs.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let data = try Data(contentsOf: out)
        var values = [Float](repeating: 0, count: data.count / 4)
        _ = values.withUnsafeMutableBytes { data.copyBytes(to: $0) }
        let theirs = try Tensor(shape: [200, 10], scalars: values)
        XCTAssertLessThanOrEqual(ours.relativeError(to: theirs), 1e-5)
        func argmax(_ t: Tensor, _ i: Int) -> Int { (0..<10).max { t.scalars[i * 10 + $0] < t.scalars[i * 10 + $1] }! }
        XCTAssertEqual((0..<200).map { argmax(ours, $0) }, (0..<200).map { argmax(theirs, $0) })
        // One epoch on 2,500 images already classifies most test images (chance: 1 in 10).
        let right = (0..<200).filter { argmax(ours, $0) == Int(test.labels[$0]) }.count
        XCTAssertGreaterThan(right, 110, "well above the 20 a guess gets")
        r = try Harness.run(bin, ["accuracy", model, "--data", "fashion-mnist:test", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("\"images\":10000"), r.stdout)
        // Quantized to int8 on 256 training images, it keeps its accuracy on all 10,000 test
        // images to within a point (the goal; the README has the 10-epoch models).
        let quantized = work.appendingPathComponent("lenet-int8.onnx").path
        r = try Harness.run(bin, ["quantize", model, "--calibration", "fashion-mnist", "--out", quantized, "--per-channel"])
        XCTAssertEqual(r.status, 0, r.stderr)
        func accuracy(_ args: [String]) throws -> [String: Any] {
            let r = try Harness.run(bin, ["accuracy"] + args + ["--data", "fashion-mnist:test", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        }
        let fp32 = try accuracy([model])["top1"] as? Double ?? -1
        let comparison = try accuracy([quantized, "--precision", "int8"])
        let int8 = (comparison["reduced"] as? [String: Any])?["top1"] as? Double ?? -1
        XCTAssertGreaterThan(fp32, 0.55)
        XCTAssertEqual(int8, fp32, accuracy: 0.01, "int8 \(int8) against fp32 \(fp32)")
        // Against the same quantization computed in float, the integer kernels agree (ties aside).
        XCTAssertGreaterThan(comparison["top1Agreement"] as? Double ?? 0, 0.99)
    }

    /// Folded training (FoldedCNNs): a curriculum epoch only holds its classes; distillation
    /// pulls the folded student's per-image logits towards the teacher's; evaluation reads
    /// each input row as `fold` images.
    func testFoldedTrainingWithCurriculumAndDistillation() throws {
        let all = try Self.fashion.get()
        let train = try all.subset(0..<1024), valid = try all.subset(1024..<1280)
        var options = TrainingOptions()
        options.epochs = 3
        options.batch = 32
        options.fold = 2
        options.curriculumEvery = 1
        options.threads = 1
        let student = try fold(TrainableCNNs.lenet5(seed: 3), factor: 2).graph
        // The teacher: an unfolded LeNet trained briefly on the same images.
        var teacherOptions = TrainingOptions()
        teacherOptions.epochs = 2
        teacherOptions.batch = 32
        let teacherRun = try TrainingRun(graph: TrainableCNNs.lenet5(seed: 4), train: train, validation: nil, options: teacherOptions)
        try teacherRun.run()
        let targets = try Evaluation.logits(teacherRun.bestGraph, on: train)
        XCTAssertEqual(targets.count, 1024 * 10)
        let run = try TrainingRun(graph: student, train: train, validation: valid, options: options, teacher: targets)
        // Curriculum: max(10/10, f) = 2 classes, then one more per epoch.
        XCTAssertEqual(run.curriculum(epoch: 0)?.count, 2)
        XCTAssertEqual(run.curriculum(epoch: 1)?.count, 3)
        XCTAssertEqual(run.curriculum(epoch: 8), nil)
        let loader = try BatchLoader(train, batch: 32, seed: 0)
        let allowed = try XCTUnwrap(run.curriculum(epoch: 0))
        loader.start(epoch: 0, classes: allowed)
        for _ in 0..<loader.batchesPerEpoch {
            loader.next { _, labels, _ in
                for i in 0..<32 { XCTAssertTrue(allowed.contains(labels[i])) }
            }
        }
        loader.stop()
        // The curriculum adds classes (the loss rises with them): the loss is compared without it.
        var plain = options
        plain.curriculumEvery = nil
        let distilled = try TrainingRun(graph: student, train: train, validation: valid, options: plain, teacher: targets)
        try distilled.run()
        XCTAssertLessThan(distilled.history[2].loss, distilled.history[0].loss, "the distillation loss falls")
        try run.run()
        XCTAssertEqual(run.history.count, 3)
        // Evaluation of the folded model reads pairs of images per row.
        let a = try Evaluation.accuracy(run.bestGraph, on: valid, fold: 2)
        XCTAssertEqual(a.images, 256)
        XCTAssertThrowsError(try Evaluation.accuracy(run.bestGraph, on: valid, fold: 1))
    }
}

/// Slimmable training: one set of weights, private batch norms, every width improving.
final class SlimmableTrainingTests: XCTestCase {
    func testWidthsShareTheirWeightsAndKeepTheirBatchNorms() throws {
        let all = try TrainingTests.fashion.get()
        let train = try all.subset(0..<1024), valid = try all.subset(1024..<1280)
        var options = TrainingOptions()
        options.epochs = 2
        options.batch = 32
        let run = try SlimmableTrainingRun(graph: TrainableCNNs.resnet(width: 8, seed: 5), widths: [1, 0.5, 0.25], train: train,
                                           validation: valid, options: options, randomWidths: 1)
        XCTAssertEqual(run.widths, [0.25, 0.5, 1])
        try run.run()
        try run.recalibrate(batches: 4)
        let full = try run.graph(width: 2), half = try run.graph(width: 1)
        var shared = 0, privateNorms = 0
        for (name, t) in half.initializers {
            let f = try XCTUnwrap(full.initializers[name], name)
            if name.hasPrefix("bn") {
                // Batch norms are the width's own: not the full model's leading values.
                if t.scalars != Array(f.scalars.prefix(t.count)) { privateNorms += 1 }
                continue
            }
            // Every other weight is the leading slice of the full one on every axis.
            let offsets = SlimmableTrainingRun.prefixOffsets(t.shape, in: f.shape)
            XCTAssertEqual(t.scalars, offsets.map { f.scalars[$0] }, "'\(name)' is not a slice of the full weights")
            shared += 1
        }
        XCTAssertGreaterThan(shared, 5)
        XCTAssertGreaterThan(privateNorms, 5)
        // Every width learned (the narrow ones from the widest's predictions).
        for k in run.widths.indices {
            XCTAssertLessThan(run.history[1][k].loss, run.history[0][k].loss, "width \(run.widths[k])")
            // After recalibration, even 2 channels per layer classify well above chance (0.1).
            let a = try Evaluation.accuracy(run.graph(width: k), on: valid)
            XCTAssertGreaterThan(a.top1, 0.2, "width \(run.widths[k])")
        }
        XCTAssertThrowsError(try SlimmableTrainingRun(graph: TrainableCNNs.lenet5(), widths: [0.5], train: train, validation: nil, options: options))
    }

    func testResumingASlimmableRunGivesTheUninterruptedResult() throws {
        let all = try TrainingTests.fashion.get()
        let train = try all.subset(0..<512)
        var options = TrainingOptions()
        options.epochs = 2
        options.batch = 32
        options.threads = 1
        let graph = TrainableCNNs.resnet(width: 8, seed: 6)
        let widths = [0.25, 0.5, 0.75, 1]
        let whole = try SlimmableTrainingRun(graph: graph, widths: widths, train: train, validation: nil, options: options, randomWidths: 1)
        try whole.run()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ckpt = dir.appendingPathComponent("slim.ckpt")
        let first = try SlimmableTrainingRun(graph: graph, widths: widths, train: train, validation: nil, options: options, randomWidths: 1)
        try first.run(checkpoint: ckpt, stopAfter: 1)
        let resumed = try SlimmableTrainingRun(graph: graph, widths: widths, train: train, validation: nil, options: options, randomWidths: 1)
        try resumed.resume(from: Checkpoint.read(ckpt))
        XCTAssertEqual(resumed.completedEpochs, 1)
        try resumed.run(checkpoint: ckpt)
        for k in widths.indices {
            let a = try whole.graph(width: k), b = try resumed.graph(width: k)
            for (name, t) in a.initializers { XCTAssertEqual(t.scalars, b.initializers[name]?.scalars, "width \(widths[k]): '\(name)'") }
        }
        XCTAssertEqual(whole.history.map { $0.map(\.loss) }, resumed.history.map { $0.map(\.loss) })
        // Another set of widths is refused.
        let other = try SlimmableTrainingRun(graph: graph, widths: [0.5, 1], train: train, validation: nil, options: options)
        XCTAssertThrowsError(try other.resume(from: Checkpoint.read(ckpt)))
    }
}

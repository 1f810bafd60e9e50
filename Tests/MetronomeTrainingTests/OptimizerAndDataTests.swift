import XCTest
import Foundation
import Metronome
import MetronomeTraining

/// One optimizer step against hand computations (PyTorch's update rules), the schedules,
/// the loss, and the dataset readers' errors.
final class OptimizerAndDataTests: XCTestCase {
    func step(_ kind: Optimizer.Kind, weightDecay: Float = 0, steps: Int = 1, p: [Float], g: [Float], lr: Float) -> [Float] {
        var optimizer = Optimizer(kind, weightDecay: weightDecay)
        var params = p
        params.withUnsafeMutableBufferPointer { pp in
            g.withUnsafeBufferPointer { gg in
                for _ in 0..<steps { optimizer.step([pp.baseAddress!], gradients: [gg.baseAddress!], counts: [p.count], lr: lr) }
            }
        }
        return params
    }

    func testOneStepEqualsTheHandComputation() {
        // SGD, momentum 0.9, weight decay 0.1: d = g + 0.1·p; first step b = d; p − lr·b.
        let p: [Float] = [1, -2], g: [Float] = [0.5, 0.25]
        var r = step(.sgd(momentum: 0.9, nesterov: false), weightDecay: 0.1, p: p, g: g, lr: 0.1)
        XCTAssertEqual(r[0], 0.94, accuracy: 1e-6)
        XCTAssertEqual(r[1], -2.005, accuracy: 1e-6)
        // Two steps with the same gradient: b2 = 0.9·b1 + d2 with d2 from the updated p.
        r = step(.sgd(momentum: 0.9, nesterov: false), weightDecay: 0, steps: 2, p: p, g: g, lr: 0.1)
        let twoSteps: Float = 1 - 0.05 - 0.1 * 0.95
        XCTAssertEqual(r[0], twoSteps, accuracy: 1e-6)
        // Nesterov: p − lr·(d + μ·b), b = d at the first step.
        r = step(.sgd(momentum: 0.9, nesterov: true), p: p, g: g, lr: 0.1)
        XCTAssertEqual(r[0], 0.905, accuracy: 1e-6)
        // Adam, first step: m̂ = g, v̂ = g², so p − lr·g/(|g| + ε) = p − lr·sign(g).
        r = step(.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8), p: p, g: g, lr: 0.01)
        XCTAssertEqual(r[0], 0.99, accuracy: 1e-6)
        XCTAssertEqual(r[1], -2.01, accuracy: 1e-6)
        // Adam with L2: the decay enters the gradient (0.5 + 0.5·1 > 0, −2·0.5 + 0.25 < 0).
        r = step(.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8), weightDecay: 0.5, p: p, g: g, lr: 0.01)
        XCTAssertEqual(r[1], -1.99, accuracy: 1e-6)
        // AdamW: p·(1 − lr·λ) first, then the Adam step on g alone.
        r = step(.adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8), weightDecay: 0.5, p: p, g: g, lr: 0.01)
        XCTAssertEqual(r[0], 0.985, accuracy: 1e-6)  // 1·(1 − 0.005) − 0.01
        XCTAssertEqual(r[1], -2.0, accuracy: 1e-6)   // −2·(1 − 0.005) − 0.01
    }

    func testSchedulesAndLoss() {
        XCTAssertEqual(LearningRateSchedule.cosine(epochs: 10).rate(0.1, epoch: 0), 0.1, accuracy: 1e-7)
        XCTAssertEqual(LearningRateSchedule.cosine(epochs: 10).rate(0.1, epoch: 5), 0.05, accuracy: 1e-7)
        XCTAssertEqual(LearningRateSchedule.cosine(epochs: 10).rate(0.1, epoch: 10), 0, accuracy: 1e-7)
        XCTAssertEqual(LearningRateSchedule.step(every: 3, gamma: 0.1).rate(1, epoch: 6.5), 0.01, accuracy: 1e-7)
        // Cross-entropy of logits [0, ln 3] with label 1: −ln(3/4); gradient softmax − onehot.
        let logits: [Float] = [0, logf(3)], labels: [Int32] = [1]
        var grad = [Float](repeating: 0, count: 2)
        let (loss, correct) = Loss.softmaxCrossEntropy(logits, batch: 1, classes: 2, labels: labels, gradient: &grad)
        XCTAssertEqual(loss, -log(0.75), accuracy: 1e-6)
        XCTAssertEqual(correct, 1)
        XCTAssertEqual(grad[0], 0.25, accuracy: 1e-6)
        XCTAssertEqual(grad[1], -0.25, accuracy: 1e-6)
        // Mean squared error of [1, 3] to [0, 1]: (1 + 4) / 2; gradient 2·(y − t)/n.
        let mse = Loss.meanSquaredError([1, 3], target: [0, 1], count: 2, gradient: &grad)
        XCTAssertEqual(mse, 2.5, accuracy: 1e-9)
        XCTAssertEqual(grad, [1, 2])
        // Distillation with labels, weight 0.5: logits [0, ln 3] against the teacher's [1, 1]
        // and label 1. MSE (1 + (ln 3 − 1)²)/2 = 0.50486; cross-entropy −ln(3/4) = 0.28768;
        // loss 0.50486 + 0.5·0.28768; gradient (y − t) + 0.5·(softmax − onehot)
        // = [−1 + 0.125, ln 3 − 1 − 0.125].
        let mixed = Loss.distillation(logits, batch: 1, classes: 2, target: [1, 1], labels: labels, labelWeight: 0.5, gradient: &grad)
        let l3 = Double(logf(3))
        XCTAssertEqual(mixed.loss, (1 + (l3 - 1) * (l3 - 1)) / 2 - 0.5 * log(0.75), accuracy: 1e-6)
        XCTAssertEqual(mixed.correct, 1)
        XCTAssertEqual(grad[0], -0.875, accuracy: 1e-6)
        XCTAssertEqual(grad[1], logf(3) - 1.125, accuracy: 1e-6)
    }

    func testFashionMNISTLoads() throws {
        let train = try FashionMNIST.load(.train), test = try FashionMNIST.load(.test)
        XCTAssertEqual(train.count, 60_000)
        XCTAssertEqual(test.count, 10_000)
        XCTAssertEqual(train.shape, [1, 28, 28])
        // The first image of each split is an ankle boot (class 9), per the dataset's own files.
        XCTAssertEqual(train.labels[0], 9)
        XCTAssertEqual(test.labels[0], 9)
        // 6,000 training images per class.
        XCTAssertEqual((0..<10).map { k in train.labels.filter { $0 == k }.count }, Array(repeating: 6000, count: 10))
        // Normalised with the training set's mean and standard deviation.
        let mean = train.pixels.reduce(0.0) { $0 + Double($1) } / Double(train.pixels.count)
        XCTAssertEqual(mean, 0, accuracy: 0.01)
    }

    func testReadersRefuseBrokenFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("idx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func idx(_ dims: [Int], data: Int) -> Data {
            var d = Data([0, 0, 8, UInt8(dims.count)])
            for v in dims { d.append(contentsOf: [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)]) }
            d.append(Data(repeating: 1, count: data))
            return d
        }
        // Uncompressed copies under the gz names are inflated as zlib streams fail: write real gzip with gzip(1).
        func gz(_ name: String, _ data: Data) throws {
            let url = dir.appendingPathComponent(name.replacingOccurrences(of: ".gz", with: ""))
            try data.write(to: url)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["gzip", "-f", url.path]
            try p.run()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0)
        }
        try gz("train-images-idx3-ubyte.gz", idx([3, 28, 28], data: 3 * 784))
        try gz("train-labels-idx1-ubyte.gz", idx([2], data: 2))
        XCTAssertThrowsError(try FashionMNIST.load(.train, directory: dir.path)) { e in
            XCTAssertTrue("\(e)".contains("train-labels") && "\(e)".contains("2 labels for the 3 images"), "\(e)")
        }
        try gz("train-labels-idx1-ubyte.gz", idx([3], data: 2))
        XCTAssertThrowsError(try FashionMNIST.load(.train, directory: dir.path)) { e in
            XCTAssertTrue("\(e)".contains("truncated or corrupt"), "\(e)")
        }
        // A gzip stream cut short.
        let labels = dir.appendingPathComponent("train-labels-idx1-ubyte.gz")
        try gz("train-labels-idx1-ubyte.gz", idx([3], data: 3))
        let whole = try Data(contentsOf: labels)
        try whole.prefix(whole.count / 2).write(to: labels)
        XCTAssertThrowsError(try FashionMNIST.load(.train, directory: dir.path)) { e in
            XCTAssertTrue("\(e)".contains("train-labels"), "\(e)")
        }
        XCTAssertThrowsError(try FashionMNIST.load(.test, directory: dir.path)) { e in
            XCTAssertTrue("\(e)".contains("t10k-images") && "\(e)".contains("dataset-fashion-mnist"), "\(e)")
        }
        XCTAssertThrowsError(try LabelledImages.load("mnist")) { e in XCTAssertTrue("\(e)".contains("unknown data")) }
    }
}

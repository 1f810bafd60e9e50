import Foundation
import Metronome
import MetronomeAnalysis
import XCTest

/// The latency predictor on synthetic profiles where latency is an exact function of the
/// features (so a correct fit must recover it), the metrics against hand computations, the
/// JSON round trip, and the profile CSV reader.
final class PredictorTests: XCTestCase {
    static let machine = MachineInfo(cpuModel: "Test CPU", cpuFlags: ["avx2"], logicalCPUs: 2, onednnVersion: "2.6.3",
                                     onednnISA: "avx2", governor: "", cpuMHz: 0, kernel: "test", metronomeVersion: "test",
                                     fingerprint: "0123456789abcdef")

    /// A convolution kernel; `depthwise` makes groups = channels.
    static func conv(_ i: Int, batch: Int, channels: Int, size: Int, kernel: Int, depthwise: Bool = false) -> KernelInfo {
        KernelInfo(index: i, name: "conv_\(i)", nodes: ["conv_\(i)"], opType: "Conv", backend: "onednn", primitive: "convolution",
                   implementation: depthwise ? "brdgmm_dw:avx512_core" : kernel == 1 ? "brgconv_1x1:avx512_core" : "brgconv:avx512_core",
                   srcShape: [batch, channels, size, size], weightsShape: [channels, depthwise ? 1 : channels, kernel, kernel],
                   dstShape: [batch, channels, size, size], srcLayout: "acdb", dstLayout: "acdb", kernelShape: [kernel, kernel],
                   strides: [1, 1], dilations: [1, 1], groups: depthwise ? channels : 1, postOps: ["relu"])
    }

    /// The synthetic truth: each family has its own efficiency, and two threads run 1.7× faster.
    static func truth(_ k: KernelInfo, threads: Int) -> Double {
        let efficiency: [KernelFamily: Double] = [.convDense: 0.9, .conv1x1: 1.6, .convDepthwise: 4.0]
        return KernelFeatures.unit(k) * efficiency[KernelFamily(k)]! / (threads == 2 ? 1.7 : 1)
    }

    static let overhead = 0.004

    /// Networks of random convolutions at batch 1 and 4, 1 and 2 threads, timed by the truth.
    /// `kinds` picks the layers: 0 dense 3×3, 1 1×1, 2 depthwise 3×3.
    static func configurations(networks: Int, seed: UInt64, prefix: String = "net", kinds: [Int] = [0, 1, 2]) -> [ProfiledConfiguration] {
        var generator = SplitMix64(seed: seed)
        var result: [ProfiledConfiguration] = []
        for n in 0..<networks {
            let depth = 3 + Int(generator.next() % 6)
            let layers = (0..<depth).map { _ in
                (channels: [16, 24, 32, 48, 64, 96][Int(generator.next() % 6)], size: [7, 14, 28, 56][Int(generator.next() % 4)],
                 kind: kinds[Int(generator.next() % UInt64(kinds.count))])
            }
            for batch in [1, 4] {
                for threads in [1, 2] {
                    var model = ProfileRecord(machine: machine)
                    model.model = "\(prefix)\(n).onnx"; model.baseModel = "\(prefix)\(n % 3)"; model.amount = String(format: "%.2f", Double(n % 5) / 10)
                    model.batch = batch; model.threads = threads; model.flops = 0
                    var rows: [ProfileRecord] = []
                    var total = 0.0
                    for (i, l) in layers.enumerated() {
                        let k = conv(i, batch: batch, channels: l.channels, size: l.size, kernel: l.kind == 1 ? 1 : 3, depthwise: l.kind == 2)
                        var row = model
                        row.row = .layer; row.kernel = k; row.kernelIndex = i
                        row.layerMedianMs = truth(k, threads: threads)
                        total += row.layerMedianMs!
                        model.flops! += Int(KernelFeatures.work(k).flops)
                        rows.append(row)
                    }
                    model.medianMs = total + overhead * Double(layers.count)
                    result.append(ProfiledConfiguration(model: model, layers: rows))
                }
            }
        }
        return result
    }

    /// The weight-reuse feature by hand: FLOPs per weight is 2 × batch × output pixels for a
    /// convolution (so the batch reaches the trees), and a kernel without weights says -1.
    func testWeightReuseIsTwiceBatchTimesOutputPixels() throws {
        let column = try XCTUnwrap(KernelFeatures.names.firstIndex(of: "log_weight_reuse"))
        let k = Self.conv(0, batch: 8, channels: 512, size: 4, kernel: 3)
        let context = KernelFeatures.Context([k])
        XCTAssertEqual(context.weightBytes, 4 * 512 * 512 * 9)
        let v = KernelFeatures.vector(k, threads: 1, implementations: [k.implementation], context: context)
        XCTAssertEqual(v.count, KernelFeatures.names.count)
        XCTAssertEqual(v[column], Float(log2(2.0 * 8 * 4 * 4)), accuracy: 1e-5)
        let dw = Self.conv(0, batch: 1, channels: 32, size: 7, kernel: 3, depthwise: true)
        XCTAssertEqual(KernelFeatures.vector(dw, threads: 1, implementations: [], context: context)[column], Float(log2(2.0 * 49)), accuracy: 1e-5)
        var pool = k
        pool.primitive = "pooling"; pool.weightsShape = []
        XCTAssertEqual(KernelFeatures.vector(pool, threads: 1, implementations: [], context: context)[column], -1)
    }

    func testFitRecoversAnExactFunctionOfTheFeatures() throws {
        let train = Self.configurations(networks: 30, seed: 1)
        let test = Self.configurations(networks: 10, seed: 99, prefix: "new")
        let predictor = try LatencyPredictor.fit(train)
        XCTAssertEqual(predictor.overheadPerKernelMs, Self.overhead, accuracy: 1e-9)
        XCTAssertEqual(Set(predictor.families.keys), ["conv_dense", "conv_1x1", "conv_depthwise"])
        for c in test {
            let predicted = try predictor.milliseconds(c.kernels, threads: c.model.threads)
            XCTAssertEqual(predicted, c.model.medianMs!, accuracy: 0.02 * c.model.medianMs!, c.model.model)
            let perKernel = try predictor.kernelMilliseconds(c.kernels, threads: c.model.threads)
            for (k, p) in zip(c.kernels, perKernel) {
                XCTAssertEqual(p, Self.truth(k, threads: c.model.threads), accuracy: 0.03 * Self.truth(k, threads: c.model.threads))
            }
        }
    }

    func testJSONRoundTripPredictsTheSame() throws {
        let predictor = try LatencyPredictor.fit(Self.withMemory(Self.configurations(networks: 12, seed: 3), seed: 3))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("predictor-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try predictor.encoded().write(to: url)
        let loaded = try LatencyPredictor.load(url.path)
        XCTAssertEqual(loaded.machine, Self.machine)
        XCTAssertNotNil(loaded.runtimeMemory)
        XCTAssertEqual(loaded.runtimeMemory, predictor.runtimeMemory)
        XCTAssertEqual(loaded.version, LatencyPredictor.currentVersion)
        for c in Self.configurations(networks: 4, seed: 5) {
            XCTAssertEqual(try loaded.milliseconds(c.kernels, threads: c.model.threads),
                           try predictor.milliseconds(c.kernels, threads: c.model.threads))
        }
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        json["version"] = 99
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        XCTAssertThrowsError(try LatencyPredictor.load(url.path)) { XCTAssertTrue("\($0)".contains("format 99"), "\($0)") }
        try Data("{}".utf8).write(to: url)
        XCTAssertThrowsError(try LatencyPredictor.load(url.path)) { XCTAssertTrue("\($0)".contains("not a Metronome predictor"), "\($0)") }
    }

    /// Metrics against hand computations.
    func testMetricsByHand() {
        let m = PredictorEvaluation.Metrics(method: "p", subset: "all", measured: [10, 20, 30, 40], predicted: [10.4, 23, 27, 50])
        // Relative errors 0.04, 0.15, −0.1, 0.25.
        XCTAssertEqual(m.within5, 0.25)
        XCTAssertEqual(m.within10, 0.5)
        XCTAssertEqual(m.mape, (0.04 + 0.15 + 0.1 + 0.25) / 4, accuracy: 1e-12)
        XCTAssertEqual(m.rmspe, ((0.0016 + 0.0225 + 0.01 + 0.0625) / 4).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(m.spearman, 1, accuracy: 1e-12)
        // Ranks [1,2,3,4] against [1,3,2,4]: 1 − 6·Σd²/(n(n²−1)) = 1 − 6·2/60 = 0.8.
        let swapped = PredictorEvaluation.Metrics(method: "p", subset: "all", measured: [1, 2, 3, 4], predicted: [1, 3, 2, 4])
        XCTAssertEqual(swapped.spearman, 0.8, accuracy: 1e-12)
        // Ties get average ranks: [1, 2.5, 2.5, 4] against [1, 2, 3, 4].
        let tied = PredictorEvaluation.Metrics(method: "p", subset: "all", measured: [1, 2, 2, 4], predicted: [1, 2, 3, 4])
        XCTAssertEqual(tied.spearman, 4.5 / (4.5 * 5).squareRoot(), accuracy: 1e-12)
    }

    func testEvaluationSplitsProduceEveryMetric() throws {
        let configurations = Self.configurations(networks: 15, seed: 11)
        // The test split needs a second profile (holdout(train:test:)); run refuses it.
        XCTAssertThrowsError(try PredictorEvaluation.run(configurations, split: .test, folds: 3))
        XCTAssertThrowsError(try PredictorEvaluation.run(configurations, split: .retest, folds: 3))
        for split in PredictorEvaluation.Split.allCases where split != .test && split != .retest {
            let e = try PredictorEvaluation.run(configurations, split: split, folds: 3)
            XCTAssertEqual(e.predictions.count, configurations.count, "\(split)")
            let all = e.metrics.filter { $0.subset == "all" }
            XCTAssertEqual(Set(all.map(\.method)), ["predictor", "flops_baseline"])
            let predictor = try XCTUnwrap(all.first { $0.method == "predictor" })
            XCTAssertGreaterThanOrEqual(predictor.within10, 0.95, "\(split)")
            XCTAssertGreaterThan(predictor.spearman, 0.99)
            XCTAssertTrue(e.metrics.contains { $0.subset == "threads 2" } && e.metrics.contains { $0.subset == "batch 4" })
            if split == .family { XCTAssertEqual(e.folds, 3) }
            if split == .amount { XCTAssertEqual(e.folds, 5) }
        }
        XCTAssertThrowsError(try PredictorEvaluation.run(Array(configurations.prefix(4)), split: .random, folds: 5))
    }

    /// `alwaysTrain` joins every fold's training set and is never tested. A held-out family
    /// made of depthwise convolutions, which no other family has, is predicted from the
    /// median efficiency of all kernels without it (far off) and within 3% with sampled
    /// networks that have depthwise layers.
    func testAlwaysTrainedNetworksJoinEveryFoldAndAreNeverTested() throws {
        let dense = Self.configurations(networks: 9, seed: 21, prefix: "a", kinds: [0, 1])
        let depthwise = Self.configurations(networks: 2, seed: 22, prefix: "b", kinds: [2]).filter { $0.model.baseModel == "b0" }
        let sampled = Self.configurations(networks: 6, seed: 23, prefix: "sampled-", kinds: [0, 2])
        XCTAssertEqual(Set(sampled.map(\.family)), ["sampled"])
        func worstError(_ e: PredictorEvaluation, family: String) -> Double {
            e.predictions.filter { $0.family == family }.map { abs($0.predictedMs - $0.measuredMs) / $0.measuredMs }.max() ?? .nan
        }
        let without = try PredictorEvaluation.run(dense + depthwise, split: .family)
        XCTAssertGreaterThan(worstError(without, family: "b0"), 0.2)
        let with = try PredictorEvaluation.run(dense + depthwise, split: .family, alwaysTrain: sampled)
        XCTAssertLessThan(worstError(with, family: "b0"), 0.03)
        XCTAssertEqual(with.predictions.count, (dense + depthwise).count)
        XCTAssertFalse(with.predictions.contains { $0.family == "sampled" })
        XCTAssertEqual(with.folds, 4)
        XCTAssertThrowsError(try PredictorEvaluation.run(dense, split: .random, folds: 3, alwaysTrain: Array(dense.prefix(2)))) {
            XCTAssertTrue("\($0)".contains("both evaluated and always trained on"), "\($0)")
        }
    }

    /// Sampled architectures form one family; names that only look like them do not.
    func testSampledNetworksFormOneFamily() {
        var r = ProfileRecord(machine: Self.machine)
        for (model, base, family) in [("sampled-12-l1-0.00.onnx", "sampled-12", "sampled"), ("x.onnx", "sampled-", "sampled-"),
                                      ("y.onnx", "sampled-1a", "sampled-1a"), ("sampled-3", "", "sampled"),
                                      ("resnet18-l1-0.10.onnx", "resnet18", "resnet18")] {
            r.model = model; r.baseModel = base
            XCTAssertEqual(r.family, family, "\(model) \(base)")
        }
    }

    /// Profiles measured in several passes merge into one configuration each, with the
    /// median of the passes for the model and for every kernel.
    func testRepeatedMeasurementsMergeToTheirMedian() throws {
        let configurations = Self.configurations(networks: 2, seed: 9)
        var records: [ProfileRecord] = []
        for factor in [1.0, 1.3, 0.9] {
            for c in configurations {
                var m = c.model
                m.medianMs! *= factor
                records.append(m)
                records += c.layers.map { var l = $0; l.layerMedianMs! *= factor * factor; return l }
            }
        }
        let merged = ProfiledConfiguration.group(records)
        XCTAssertEqual(merged.count, configurations.count)
        for (m, c) in zip(merged, configurations) {
            XCTAssertEqual(m.model.medianMs!, c.model.medianMs!, accuracy: 1e-12)
            XCTAssertEqual(m.layers.count, c.layers.count)
            for (a, b) in zip(m.layers, c.layers) {
                XCTAssertEqual(a.kernelIndex, b.kernelIndex)
                XCTAssertEqual(a.layerMedianMs!, b.layerMedianMs!, accuracy: 1e-12)
            }
        }
        // Two passes: the mean of the two.
        let two = ProfiledConfiguration.group(Array(records.prefix(records.count * 2 / 3)))
        XCTAssertEqual(two[0].model.medianMs!, configurations[0].model.medianMs! * 1.15, accuracy: 1e-9)
    }

    /// A retest pairs configurations by key and kernels by index, and scores the second profile
    /// as if it predicted the first: checked against the relative differences worked by hand.
    func testRetestScoresTheSecondMeasurementAgainstTheFirst() throws {
        let first = Self.configurations(networks: 2, seed: 5)
        // Second measurement: configuration i scaled by factors[i]; its kernels by 1.2.
        let factors = [1.0, 1.04, 0.92, 1.3, 1.08, 0.97, 1.11, 0.5]
        XCTAssertEqual(first.count, factors.count)
        var a: [ProfileRecord] = [], b: [ProfileRecord] = []
        for (c, f) in zip(first, factors) {
            a += [c.model] + c.layers
            var m = c.model
            m.medianMs! *= f
            b.append(m)
            b += c.layers.map { var l = $0; l.layerMedianMs! *= 1.2; return l }
        }
        // A configuration only the first has, and a failed one in the second, are left out.
        var extra = first[0].model
        extra.model = "only-first.onnx"
        a.append(extra)
        var failed = first[1].model
        failed.status = .failed
        b.append(failed)
        let e = try PredictorEvaluation.retest(first: a, second: b)
        XCTAssertEqual(e.split, .retest)
        XCTAssertEqual(e.configurations, 8)
        let all = try XCTUnwrap(e.metrics.first { $0.method == "retest" && $0.subset == "all" })
        // |f − 1| = 0, .04, .08, .3, .08, .03, .11, .5: three within 5%, five within 10%.
        XCTAssertEqual(all.within5, 3 / 8)
        XCTAssertEqual(all.within10, 5 / 8)
        XCTAssertEqual(all.mape, (0 + 0.04 + 0.08 + 0.3 + 0.08 + 0.03 + 0.11 + 0.5) / 8, accuracy: 1e-9)
        let kernels = e.metrics.filter { $0.method == "kernels" }
        XCTAssertFalse(kernels.isEmpty)
        for k in kernels { XCTAssertEqual(k.mape, 0.2, accuracy: 1e-9, k.subset); XCTAssertEqual(k.within10, 0) }
        XCTAssertEqual(e.kernels.count, first.reduce(0) { $0 + $1.layers.count })
        XCTAssertThrowsError(try PredictorEvaluation.retest(first: a, second: [failed]))
    }

    /// The profile CSV written by `fields` reads back through `read` (and Python's csv module
    /// reads it in ProfileCLITests).
    func testProfileRecordReadsWhatItWrites() throws {
        let c = Self.withMemory(Self.configurations(networks: 1, seed: 2), seed: 3)[0]
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("profile-\(UUID().uuidString).csv")
        defer { try? FileManager.default.removeItem(at: url) }
        let text = ([ProfileRecord.columns] + ([c.model] + c.layers).map(\.fields)).map(CSV.line).joined()
        try text.write(to: url, atomically: true, encoding: .utf8)
        let back = try ProfileRecord.read(path: url.path)
        XCTAssertEqual(back.count, 1 + c.layers.count)
        XCTAssertEqual(back[1].kernel, c.layers[0].kernel)
        XCTAssertEqual(back[0].medianMs!, c.model.medianMs!, accuracy: 1e-6)
        XCTAssertEqual(back[0].compiledRuntimeBytes, Self.compiledBytes(c.kernels))
        XCTAssertGreaterThan(back[0].compiledRuntimeBytes ?? 0, 0)
        // A file written before a column existed reads it as empty, and rows appended to it
        // keep its columns.
        let older = ProfileRecord.columns.filter { $0 != "compiled_runtime_bytes" }
        let oldText = ([older] + ([c.model] + c.layers).map { $0.fields(in: older) }).map(CSV.line).joined()
        try oldText.write(to: url, atomically: true, encoding: .utf8)
        let (header, oldRows) = try ProfileRecord.readWithHeader(path: url.path)
        XCTAssertEqual(header, older)
        XCTAssertNil(oldRows[0].compiledRuntimeBytes)
        XCTAssertEqual(oldRows[0].anonymousRSSBytes, c.model.anonymousRSSBytes)
        XCTAssertEqual(oldRows[1].kernel, c.layers[0].kernel)
        try (text + "model,x,,,,,inference,0,1").write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ProfileRecord.read(path: url.path)) { XCTAssertTrue("\($0)".contains("line break"), "\($0)") }
    }

    /// The synthetic runtime memory beyond the plan: what compiling left resident (given: 90 KiB
    /// per kernel, recorded as `compiled_runtime_bytes`), plus 700 KiB + 64 KiB per extra
    /// thread + `onceKiB` (2 MiB) once per process when a depthwise kernel is present (as oneDNN's
    /// lazily generated gemm kernels are on the real machine).
    static func compiledBytes(_ kernels: [KernelInfo]) -> Int { 90 * 1024 * kernels.count }
    static func runtimeBytes(_ kernels: [KernelInfo], threads: Int, onceKiB: Int = 2048) -> Int {
        compiledBytes(kernels) + 700 * 1024 + 64 * 1024 * (threads - 1) + (kernels.contains { $0.groups > 1 } ? onceKiB * 1024 : 0)
    }

    /// `configurations` with plans of 2–200 MiB and measured memory = plan + the synthetic runtime.
    /// `noiseKiB` adds a deterministic ±noise to each measurement.
    static func withMemory(_ configurations: [ProfiledConfiguration], seed: UInt64, onceKiB: Int = 2048,
                           noiseKiB: Int = 0) -> [ProfiledConfiguration] {
        var generator = SplitMix64(seed: seed)
        return configurations.map { c in
            var c = c
            let planned = (2 + Int(generator.next() % 198)) * 1_048_576 + Int(generator.next() % 1000)
            let noise = noiseKiB == 0 ? 0 : (Int(generator.next() % UInt64(2 * noiseKiB + 1)) - noiseKiB) * 1024
            c.model.plannedBytes = planned
            c.model.compiledRuntimeBytes = compiledBytes(c.kernels)
            c.model.anonymousRSSBytes = planned + runtimeBytes(c.kernels, threads: c.model.threads, onceKiB: onceKiB) + noise
            return c
        }
    }

    /// oneDNN's sgemm is one implementation whichever primitive runs it (its buffers are set up
    /// once per process), except an inner product or matmul of one row (its gemv path).
    func testSgemmIsOneImplementationAcrossPrimitives() {
        var conv = Self.conv(0, batch: 8, channels: 16, size: 7, kernel: 3)
        conv.implementation = "x64:gemm:jit"
        var ip = conv
        ip.primitive = "inner_product"
        ip.srcShape = [8, 784]
        var row = ip
        row.srcShape = [1, 784]
        var matmul = ip
        matmul.primitive = "matmul"
        matmul.srcShape = [1, 1, 784]
        XCTAssertEqual([conv, ip, row, matmul].map(RuntimeMemory.key),
                       ["x64:gemm:jit", "x64:gemm:jit", "x64:gemm:jit/gemv", "x64:gemm:jit/gemv"])
        XCTAssertEqual(RuntimeMemory.implementations([conv, ip, row]), ["x64:gemm:jit", "x64:gemm:jit/gemv"])
        var other = conv
        other.implementation = "jit:avx2"
        XCTAssertEqual(RuntimeMemory.key(other), "convolution:jit:avx2")
    }

    func testRuntimeMemoryIsRecoveredAndCompletesThePlan() throws {
        // Half the networks without depthwise kernels, so that every fold sees both kinds.
        let train = Self.withMemory(Self.configurations(networks: 10, seed: 11, kinds: [0, 1])
                                    + Self.configurations(networks: 10, seed: 111, prefix: "dw", kinds: [0, 1, 2]), seed: 1)
        XCTAssertGreaterThan(train.filter { !$0.kernels.contains { $0.groups > 1 } }.count, 40, "networks without depthwise kernels")
        XCTAssertGreaterThan(train.filter { $0.kernels.contains { $0.groups > 1 } }.count, 20, "networks with depthwise kernels")
        let fitted = try XCTUnwrap(RuntimeMemory.fit(train))
        XCTAssertEqual(fitted.constantBytes, 700 * 1024, accuracy: 2 * 1024)
        XCTAssertEqual(fitted.bytesPerExtraThread, 64 * 1024, accuracy: 1024)
        XCTAssertEqual(fitted.onceBytesPerImplementation.count, 3)
        XCTAssertEqual(fitted.onceBytesPerImplementation["convolution:brdgmm_dw:avx512_core"] ?? 0, 2048 * 1024, accuracy: 4 * 1024)
        XCTAssertEqual(fitted.onceBytesPerImplementation["convolution:brgconv:avx512_core"] ?? -1, 0, accuracy: 2 * 1024)
        XCTAssertEqual(fitted.onceBytesPerImplementation["convolution:brgconv_1x1:avx512_core"] ?? -1, 0, accuracy: 2 * 1024)
        XCTAssertEqual(fitted.configurations, train.count)
        XCTAssertEqual(try LatencyPredictor.fit(train).runtimeMemory, fitted)
        for c in Self.withMemory(Self.configurations(networks: 5, seed: 12, prefix: "new"), seed: 2) {
            let predicted = Double(c.model.plannedBytes! + fitted.bytes(kernels: c.kernels, threads: c.model.threads,
                                                                         compiledBytes: c.model.compiledRuntimeBytes!))
            XCTAssertEqual(predicted, Double(c.model.anonymousRSSBytes!), accuracy: 0.002 * Double(c.model.anonymousRSSBytes!), c.model.model)
        }
        // Once per process: three depthwise kernels hold what one does, beyond what compiling them left.
        let dw = Self.conv(0, batch: 1, channels: 16, size: 7, kernel: 3, depthwise: true)
        XCTAssertEqual(fitted.bytes(kernels: [dw, dw, dw], threads: 1, compiledBytes: 0), fitted.bytes(kernels: [dw], threads: 1, compiledBytes: 0))
        XCTAssertEqual(fitted.bytes(kernels: [dw], threads: 1, compiledBytes: 5000), fitted.bytes(kernels: [dw], threads: 1, compiledBytes: 0) + 5000)
        // An implementation never profiled adds nothing, and is named.
        var other = Self.conv(0, batch: 1, channels: 16, size: 7, kernel: 3)
        other.implementation = "jit:avx2"
        XCTAssertEqual(fitted.bytes(kernels: [other], threads: 1, compiledBytes: 0), Int(fitted.constantBytes.rounded()))
        XCTAssertEqual(fitted.unprofiled([other, dw]), ["convolution:jit:avx2"])
        // One thread count: the thread term cannot be told apart from the constant and stays 0.
        let oneThread = train.filter { $0.model.threads == 1 }
        let single = try XCTUnwrap(RuntimeMemory.fit(oneThread))
        XCTAssertEqual(single.bytesPerExtraThread, 0)
        XCTAssertEqual(single.onceBytesPerImplementation["convolution:brdgmm_dw:avx512_core"] ?? 0, 2048 * 1024, accuracy: 4 * 1024)
        // Bytes are never negative: implementations holding nothing, measured with noise, are
        // fitted at zero or above, not traded against each other.
        for seed in UInt64(20)..<UInt64(26) {
            let noisy = Self.withMemory(Self.configurations(networks: 12, seed: seed), seed: seed, onceKiB: 0, noiseKiB: 300)
            let f = try XCTUnwrap(RuntimeMemory.fit(noisy))
            XCTAssertTrue(f.onceBytesPerImplementation.values.allSatisfy { $0 >= 0 }, "\(f.onceBytesPerImplementation)")
            XCTAssertEqual(f.onceBytesPerImplementation.count, 3)
        }
        // Profiles without memory columns, or without the compiled bytes (written before the
        // column existed), give no runtime memory, and too few rows none either.
        XCTAssertNil(try LatencyPredictor.fit(Self.configurations(networks: 6, seed: 13)).runtimeMemory)
        let old = train.map { c -> ProfiledConfiguration in var c = c; c.model.compiledRuntimeBytes = nil; return c }
        XCTAssertNil(RuntimeMemory.fit(old))
        XCTAssertNil(RuntimeMemory.fit(Array(train.prefix(2))))

        // The evaluation scores the plan alone and the plan with the runtime fitted on the other
        // folds; the plan alone misses exactly the runtime's share of the measured memory.
        let evaluation = try PredictorEvaluation.run(train, split: .random, folds: 4)
        let plan = try XCTUnwrap(evaluation.metrics.first { $0.method == "memory_plan" && $0.subset == "all" })
        let both = try XCTUnwrap(evaluation.metrics.first { $0.method == "memory_plan_runtime" && $0.subset == "all" })
        XCTAssertEqual(both.within2, 1)
        XCTAssertLessThan(both.mape, 0.002)
        let byHand = train.map { Double(Self.runtimeBytes($0.kernels, threads: $0.model.threads)) / Double($0.model.anonymousRSSBytes!) }
        XCTAssertEqual(plan.mape, byHand.reduce(0, +) / Double(byHand.count), accuracy: 1e-9)
        XCTAssertEqual(plan.within2, Double(byHand.filter { $0 <= 0.02 }.count) / Double(byHand.count), accuracy: 1e-12)
        XCTAssertLessThan(plan.within2, 1)
    }
}

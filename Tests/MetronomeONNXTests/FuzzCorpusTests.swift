import Foundation
import Metronome
import MetronomeIO
@preconcurrency import MetronomeONNX
import MetronomeRealtime
import CLITestHarness
import XCTest

/// Replays the committed fuzz corpora (fuzz/corpus/<target>/: seeds, inputs libFuzzer kept
/// for new coverage, and every crash it ever found) through the loaders in-process. This is
/// what CI runs instead of the fuzzer: a loader that traps, overflows its stack or hangs on
/// any of these files fails the suite. The entry points match fuzz/Sources/FuzzTargets.
final class FuzzCorpusTests: XCTestCase {
    static let corpus = Harness.root.appendingPathComponent("fuzz/corpus")

    /// Each loader, as the fuzzer calls it; the result says whether the input was accepted.
    static let loaders: [(String, @Sendable (Data) throws -> Void)] = [
        ("checkpoint", { _ = try TorchCheckpoint.parse($0, source: "fuzz.pt") }),
        ("onnx", { _ = try ONNXImporter.parse($0, source: "fuzz.onnx") }),
        ("npy", { _ = try NPY.decode($0, source: "fuzz.npy") }),
        ("image", { _ = try ImageDecoder.decode($0, source: "fuzz-image") }),
        ("taskset", { data in
            let set = try TaskSet.load(yaml: String(decoding: data, as: UTF8.self))
            // As the fuzz target: synthetic sets are analysed and briefly simulated too.
            guard let analysis = ScheduleAnalysis.analyzeDeclared(set) else { return }
            _ = analysis.schedulable
            let horizon = (set.tasks.map(\.offset).max() ?? 0) + 20 * (set.tasks.map(\.period).max() ?? 0)
            _ = try? Simulator.run(set, demands: set.tasks.compactMap { TaskDemand(declared: $0) },
                                   widthDemands: set.tasks.compactMap { TaskDemand.declaredPerWidth($0) },
                                   options: .init(duration: min(horizon, Simulator.defaultDuration(set).duration)))
        }),
    ]

    func files(_ target: String) throws -> [URL] {
        let dir = Self.corpus.appendingPathComponent(target)
        return try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    func testEveryCorpusFileIsLoadedOrRefusedWithAnError() throws {
        for (target, load) in Self.loaders {
            let inputs = try files(target)
            XCTAssertGreaterThanOrEqual(inputs.count, 3, "\(target): corpus missing")
            var accepted = 0, refused = 0
            let start = Date()
            for url in inputs {
                let data = try Data(contentsOf: url)
                do {
                    try load(data)
                    accepted += 1
                } catch {
                    XCTAssertFalse("\(error)".isEmpty, "\(target)/\(url.lastPathComponent): empty error message")
                    refused += 1
                }
            }
            // The seeds include valid files of each format, so some inputs must load.
            XCTAssertGreaterThan(accepted, 0, "\(target): no corpus file loads")
            print("fuzz corpus \(target): \(inputs.count) files, \(accepted) loaded, \(refused) refused, "
                  + String(format: "%.2f s", Date().timeIntervalSince(start)))
        }
    }

    /// The hostile seeds issue 8 names, and every crash the fuzzers found, are refused, each
    /// with its specific message.
    func testHostileSeedsAreRefused() throws {
        let cases: [(String, String, String)] = [
            ("checkpoint", "seed-dup-tuple2-dag", "not the legacy magic number"),
            ("checkpoint", "seed-deep-tuple1", "nested deeper than 256 levels"),
            ("checkpoint", "seed-self-list", "a list that contains itself"),
            ("checkpoint", "seed-zero_stride_huge_zip-pt", "views that repeat storage elements"),
            // Found by the fuzzers: a ConstantOfShape without outputs trapped on `outputs[0]`;
            // a progressive JPEG header of 65307x65496 pixels made libjpeg allocate its
            // coefficient buffers (gigabytes) before the size was checked; an integer Mul of an
            // empty [1, 4888, 0, …] shape value by [2] broadcast to 4888 elements and read past
            // the empty operand (regress-mul-broadcast-empty: checked below).
            ("onnx", "regress-constantofshape-no-output", "node 'no_outputs' (ConstantOfShape): has no output"),
            ("onnx", "regress-identity-no-input", "node 'no_inputs' (Identity): has no first input"),
            ("image", "regress-progressive-jpeg-65307x65496", "65307x65496 pixels (at most 67108864)"),
        ]
        for (target, name, expected) in cases {
            guard let load = Self.loaders.first(where: { $0.0 == target })?.1 else { return XCTFail(target) }
            let data = try Data(contentsOf: Self.corpus.appendingPathComponent("\(target)/\(name)"))
            XCTAssertThrowsError(try load(data), name) { XCTAssertTrue("\($0)".contains(expected), "\(name): \($0)") }
        }
    }

    /// fuzz-onnx: `Mul` of an integer shape value of shape [1, 4888, 0, 0, 0, 0, 0, 0] (no
    /// elements) by [2] broadcast the 0 against 1 as 1 and read past the empty operand. The
    /// product is empty, as NumPy broadcasting says; the model then imports or is refused,
    /// but never traps.
    func testEmptyBroadcastRegression() throws {
        let data = try Data(contentsOf: Self.corpus.appendingPathComponent("onnx/regress-mul-broadcast-empty"))
        do {
            _ = try ONNXImporter.parse(data, source: "regress")
        } catch {
            XCTAssertFalse("\(error)".contains("cannot be broadcast"), "\(error)")
        }
    }
}

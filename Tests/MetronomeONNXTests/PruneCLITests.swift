import Foundation
import Metronome
import MetronomeModels
import MetronomeONNX
import CLITestHarness
import XCTest

/// `metronome prune` on an ONNX file: the achieved fraction it prints, the written file in
/// ONNX Runtime against `metronome infer`, P = 0, and refusals.
final class PruneCLITests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try Harness.temporaryDirectory("prune-cli") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func testPruneWritesAFileThatMatchesONNXRuntime() throws {
        let bin = try Harness.metronome()
        let py = try Harness.python(modules: ["onnxruntime", "numpy"])
        try ONNXExporter.write(Zoo.mobileNetV2(width: 0.5, classes: 10, inputSize: 32, seed: 3),
                               to: URL(fileURLWithPath: path("m.onnx")))
        for (mode, extra) in [("l1", [String]()), ("random-weighted", ["--skew", "early", "--seed", "4"])] {
            let out = path("p-\(mode).onnx")
            let r = try Harness.run(bin, ["prune", path("m.onnx"), "--amount", "0.5", "--mode", mode, "--out", out] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            // "params A -> B: 49.97% removed (target 50.00%)"
            let line = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.contains("% removed") }, r.stdout)
            let percent = try XCTUnwrap(Double(line.split(separator: ":").last!.split(separator: "%")[0]
                .trimmingCharacters(in: .whitespaces)), String(line))
            XCTAssertEqual(percent, 50, accuracy: 1, mode)
            XCTAssertTrue(r.stdout.contains("MACs"), r.stdout)
            let ort = try Harness.run("/usr/bin/env", [py, Harness.root.appendingPathComponent("scripts/ort_compare_cli.py").path,
                                                        "--binary", bin, out])
            XCTAssertEqual(ort.status, 0, ort.stderr)
            let err = try XCTUnwrap(ort.stdout.components(separatedBy: "max rel err ").last
                .flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }, ort.stdout)
            XCTAssertLessThan(err, 1e-4, mode)
        }
    }

    /// At --amount 0 the file is the same bytes `metronome export` writes for the model.
    func testZeroAmountWritesTheOriginal() throws {
        let bin = try Harness.metronome()
        try ONNXExporter.write(Zoo.resNet(depth: 18, classes: 10, inputSize: 32, seed: 1), to: URL(fileURLWithPath: path("m.onnx")))
        XCTAssertEqual(try Harness.run(bin, ["prune", path("m.onnx"), "--amount", "0", "--out", path("p.onnx")]).status, 0)
        XCTAssertEqual(try Harness.run(bin, ["export", path("m.onnx"), "--out", path("e.onnx")]).status, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("p.onnx"))),
                       try Data(contentsOf: URL(fileURLWithPath: path("e.onnx"))))
    }

    func testRefusalsNameTheProblem() throws {
        let bin = try Harness.metronome()
        let out = path("p.onnx")
        XCTAssertEqual(try Harness.run(bin, ["prune", "noscope-coral", "--amount", "0.3", "--out", out]).status, 0)
        for (args, text) in [
            (["prune", "noscope-coral", "--amount", "0.3", "--out", out], "--force"),
            (["prune", "noscope-coral", "--amount", "1", "--out", path("q.onnx")], "--amount"),
            (["prune", "noscope-coral", "--amount", "0.3", "--mode", "l2", "--out", path("q.onnx")], "l2"),
            (["prune", "noscope-coral", "--amount", "0.3", "--skew", "early", "--out", path("q.onnx")], "--skew"),
            (["prune", "noscope-coral", "--amount", "0.3", "--seed", "3", "--out", path("q.onnx")], "--seed"),
            (["prune", "no-such-model", "--amount", "0.3", "--out", path("q.onnx")], "unknown model"),
        ] {
            let r = try Harness.run(bin, args)
            XCTAssertFalse(r.signaled, "\(args)")
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains(text), "stderr of \(args) lacks '\(text)': \(r.stderr)")
        }
        XCTAssertEqual(try Harness.run(bin, ["prune", "noscope-coral", "--amount", "0.3", "--out", out, "--force"]).status, 0)
    }
}

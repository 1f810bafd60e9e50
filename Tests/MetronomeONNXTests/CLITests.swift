import Foundation
import Metronome
import MetronomeIO
import MetronomeModels
import MetronomeONNX
import CLITestHarness
import XCTest

/// `metronome infer`, `export` and `classify` on good and bad input: a clear error and a
/// non-zero exit, never a crash.
final class CLITests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try Harness.temporaryDirectory("cli") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func expectFailure(_ args: [String], mentioning text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try Harness.run(try Harness.metronome(), args)
        XCTAssertFalse(r.signaled, "crashed: \(args) \(r.stderr)", file: file, line: line)
        XCTAssertNotEqual(r.status, 0, "succeeded: \(args)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(text), "stderr of \(args) lacks '\(text)': \(r.stderr)", file: file, line: line)
    }

    /// A tiny model written by the exporter, and an input for it.
    func smallModel() throws -> (String, Tensor) {
        let graph = try Zoo.mobileNetV2(width: 0.35, classes: 10, inputSize: 32)
        try ONNXExporter.write(graph, to: URL(fileURLWithPath: path("m.onnx")))
        var g = SplitMix64(seed: 1)
        return (path("m.onnx"), Tensor(shape: [2, 3, 32, 32], uniformIn: -1...1, generator: &g))
    }

    func testInferRunsAndMatchesTheEngine() throws {
        let (model, x) = try smallModel()
        try NPY.write(x, to: URL(fileURLWithPath: path("x.npy")))
        let r = try Harness.run(try Harness.metronome(), ["infer", model, "--input", path("x.npy"), "--output", path("y.npy")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let y = try NPY.read(URL(fileURLWithPath: path("y.npy")))
        let graph = try ONNXImporter.load(URL(fileURLWithPath: model))
        let plan = try Plan.compile(graph, inputShapes: ["input": [2, 3, 32, 32]])
        let expected = try Executor(plan: plan).run([x])[0]
        XCTAssertLessThanOrEqual(y.relativeError(to: expected), 1e-6)
        // Named input and output, zoo model name, --threads.
        let r2 = try Harness.run(try Harness.metronome(), ["infer", model, "--input", "input=" + path("x.npy"),
                                                           "--output", graph.outputs[0] + "=" + path("y2.npy"), "--threads", "2"])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        // Existing outputs are not replaced without --force.
        try expectFailure(["infer", model, "--input", path("x.npy"), "--output", path("y.npy")], mentioning: "--force")
    }

    func testInferRejectsBadArrays() throws {
        let (model, x) = try smallModel()
        // float64
        var f64 = Data(NPY.magic)
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3, 32, 32), }".padding(toLength: 117, withPad: " ", startingAt: 0) + "\n"
        f64.append(contentsOf: [1, 0, UInt8(header.utf8.count), 0])
        f64.append(contentsOf: Array(header.utf8))
        f64.append(Data(count: 3 * 32 * 32 * 8))
        try f64.write(to: URL(fileURLWithPath: path("f64.npy")))
        try expectFailure(["infer", model, "--input", path("f64.npy"), "--output", path("o.npy")], mentioning: "'<f8'")
        // Wrong shape for the model.
        try NPY.write(Tensor(shape: [1, 3, 16, 16]), to: URL(fileURLWithPath: path("small.npy")))
        try expectFailure(["infer", model, "--input", path("small.npy"), "--output", path("o.npy")], mentioning: "has shape [1, 3, 16, 16]")
        // Truncated data.
        let full = NPY.encode(x)
        try full.prefix(full.count - 10).write(to: URL(fileURLWithPath: path("cut.npy")))
        try expectFailure(["infer", model, "--input", path("cut.npy"), "--output", path("o.npy")], mentioning: "bytes of data")
        // Not an .npy at all.
        try Data("hello".utf8).write(to: URL(fileURLWithPath: path("text.npy")))
        try expectFailure(["infer", model, "--input", path("text.npy"), "--output", path("o.npy")], mentioning: "not a NumPy .npy file")
        // Missing file, unknown input name.
        try expectFailure(["infer", model, "--input", path("none.npy"), "--output", path("o.npy")], mentioning: "none.npy")
        try expectFailure(["infer", model, "--input", "nosuch=" + path("small.npy"), "--input", "x=" + path("small.npy"),
                           "--output", path("o.npy")], mentioning: "input")
    }

    func testInferRejectsCorruptAndTruncatedModels() throws {
        let (model, x) = try smallModel()
        try NPY.write(x, to: URL(fileURLWithPath: path("x.npy")))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: model))
        var rng = SplitMix64(seed: 5)
        for i in 0..<12 {
            let cut = path("cut\(i).onnx")
            try bytes.prefix(Int(rng.next() % UInt64(bytes.count - 1))).write(to: URL(fileURLWithPath: cut))
            let r = try Harness.run(try Harness.metronome(), ["infer", cut, "--input", path("x.npy"), "--output", path("o\(i).npy")])
            XCTAssertFalse(r.signaled, r.stderr)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("Error:"), r.stderr)
        }
        try Data((0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }).write(to: URL(fileURLWithPath: path("noise.onnx")))
        try expectFailure(["infer", path("noise.onnx"), "--input", path("x.npy"), "--output", path("o.npy")], mentioning: "ONNX")
        try expectFailure(["infer", path("missing.onnx"), "--input", path("x.npy"), "--output", path("o.npy")], mentioning: "no such file")
        try expectFailure(["export", "no-such-model", "--out", path("e.onnx")], mentioning: "unknown model")
    }

    func testExportRefusesToOverwriteWithoutForce() throws {
        let bin = try Harness.metronome()
        let out = path("r.onnx")
        XCTAssertEqual(try Harness.run(bin, ["export", "resnet18", "--out", out]).status, 0)
        try expectFailure(["export", "resnet18", "--out", out], mentioning: "--force")
        XCTAssertEqual(try Harness.run(bin, ["export", "resnet18", "--out", out, "--force"]).status, 0)
    }

    func testClassifyRejectsBadImages() throws {
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: path("a.png")))
        try expectFailure(["classify", path("a.png")], mentioning: "neither a PNG nor a JPEG")
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        png += [0, 0, 0, 13] + Array("IHDR".utf8) + [0, 0, 1, 0, 0, 0, 1, 0, 8, 2, 0, 0, 0, 0, 0, 0, 0]
        try Data(png).write(to: URL(fileURLWithPath: path("b.png")))
        try expectFailure(["classify", path("b.png")], mentioning: "invalid PNG")
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 16] + Array("JFIF".utf8)).write(to: URL(fileURLWithPath: path("c.jpg")))
        try expectFailure(["classify", path("c.jpg")], mentioning: "invalid JPEG")
        try expectFailure(["classify", path("none.jpg")], mentioning: "no such file")
    }
}

import Foundation
import Metronome
@preconcurrency import MetronomeONNX
import CLITestHarness
import XCTest

/// Model files built to break the importer: external data that escapes the model's
/// directory or is malformed, and import-time operators asked for astronomically large or
/// overflowing results. Each must be an error naming the tensor or node, never a trap.
final class HostileModelTests: XCTestCase {
    /// A model whose initializer `w` ([4] float) lives in an external file.
    func externalModel(_ entries: [String: String]) throws -> Data {
        var m = ModelMaker()
        m.input("x", [1, 4])
        var t = Onnx_TensorProto()
        t.name = "w"
        t.dims = [4]
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        t.dataLocation = .external
        t.externalData = entries.sorted { $0.key < $1.key }.map { k, v in
            var e = Onnx_StringStringEntryProto(); e.key = k; e.value = v; return e
        }
        m.graph.initializer.append(t)
        m.node("Add", ["x", "w"], ["y"])
        m.output("y")
        return try m.data()
    }

    func importError(_ data: Data, in dir: URL) -> String {
        do {
            _ = try ONNXImporter.parse(data, directory: dir, source: "model.onnx")
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    func testExternalDataStaysInsideTheModelDirectory() throws {
        let work = try Harness.temporaryDirectory("hostile-external")
        defer { try? FileManager.default.removeItem(at: work) }
        let modelDir = work.appendingPathComponent("model"), outside = work.appendingPathComponent("secret")
        try FileManager.default.createDirectory(at: modelDir, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        let values: [Float] = [1, 2, 3, 4]
        let bytes = values.withUnsafeBytes { Data($0) }
        try bytes.write(to: outside.appendingPathComponent("weights.bin"))
        try bytes.write(to: modelDir.appendingPathComponent("real.bin"))
        // A link out of the directory, a link to a directory outside, and one that stays inside.
        try FileManager.default.createSymbolicLink(atPath: modelDir.appendingPathComponent("link.bin").path,
                                                   withDestinationPath: outside.appendingPathComponent("weights.bin").path)
        try FileManager.default.createSymbolicLink(atPath: modelDir.appendingPathComponent("sub").path, withDestinationPath: "../secret")
        try FileManager.default.createSymbolicLink(atPath: modelDir.appendingPathComponent("inside.bin").path, withDestinationPath: "real.bin")

        for location in ["link.bin", "sub/weights.bin"] {
            let text = importError(try externalModel(["location": location]), in: modelDir)
            XCTAssertTrue(text.contains("tensor 'w'") && text.contains("outside the model's directory"), "\(location): \(text)")
        }
        for location in ["../secret/weights.bin", "/etc/passwd"] {
            let text = importError(try externalModel(["location": location]), in: modelDir)
            XCTAssertTrue(text.contains("must be a relative path inside the model's directory"), "\(location): \(text)")
        }
        // The link that stays inside is followed, and the values arrive: x + w with x = 0.
        let graph = try ONNXImporter.parse(try externalModel(["location": "inside.bin"]), directory: modelDir)
        XCTAssertEqual(try execute(graph, Tensor(shape: [1, 4], repeating: 0)).scalars, values)
        // Offset 8 and length 16 of [1, 2, 3, 4, 1, 2, 3, 4] (float32) are [3, 4, 1, 2].
        try (bytes + bytes).write(to: modelDir.appendingPathComponent("two.bin"))
        let shifted = try ONNXImporter.parse(try externalModel(["location": "two.bin", "offset": "8", "length": "16"]), directory: modelDir)
        XCTAssertEqual(try execute(shifted, Tensor(shape: [1, 4], repeating: 0)).scalars, [3, 4, 1, 2])
    }

    func testMalformedExternalDataFieldsAreErrors() throws {
        let work = try Harness.temporaryDirectory("hostile-fields")
        defer { try? FileManager.default.removeItem(at: work) }
        try Data(count: 16).write(to: work.appendingPathComponent("w.bin"))
        let cases: [([String: String], String)] = [
            (["location": "w.bin", "offset": "abc"], "bad external data offset 'abc'"),
            (["location": "w.bin", "offset": "-4"], "bad external data offset '-4'"),
            (["location": "w.bin", "offset": "99999999999999999999999"], "bad external data offset"),
            (["location": "w.bin", "offset": "20"], "offset 20 is past the end"),
            (["location": "w.bin", "length": "-1"], "bad external data length '-1'"),
            (["location": "w.bin", "length": "12x"], "bad external data length '12x'"),
            (["location": "w.bin", "offset": "8", "length": "16"], "length 16 at offset 8 passes its end"),
            (["location": "w.bin", "length": "8"], "raw data holds 8 bytes"),
            (["location": "missing.bin"], "cannot open external data file"),
            (["location": ""], "external data without a location"),
        ]
        for (entries, expected) in cases {
            let text = importError(try externalModel(entries), in: work)
            XCTAssertTrue(text.contains("tensor 'w'") && text.contains(expected), "\(entries): \(text)")
        }
        // A FIFO would block the reader forever; only regular files are opened.
        let fifo = work.appendingPathComponent("pipe.bin")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        let text = importError(try externalModel(["location": "pipe.bin"]), in: work)
        XCTAssertTrue(text.contains("is not a regular file"), text)
    }

    func nodeError(_ build: (inout ModelMaker) -> Void) throws -> String {
        var m = ModelMaker()
        m.input("x", [1, 4])
        build(&m)
        do {
            _ = try ONNXImporter.parse(try m.data())
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    func testImportTimeOperatorsCheckOverflowAndSize() throws {
        // ConstantOfShape of 2^40 × 2^40 elements: the product overflows 64 bits.
        var text = try nodeError { m in
            m.ints("shape", [1 << 40, 1 << 40])
            m.node("ConstantOfShape", ["shape"], ["c"], name: "huge_fill")
            m.output("c")
        }
        XCTAssertTrue(text.contains("huge_fill") && text.contains("more than the 16777216 elements"), text)
        // Range over the whole Int64 line: limit - start overflows.
        text = try nodeError { m in
            m.ints("s", [Int64.min], scalar: true); m.ints("l", [Int64.max], scalar: true); m.ints("d", [1], scalar: true)
            m.node("Range", ["s", "l", "d"], ["r"], name: "whole_line")
            m.output("r")
        }
        XCTAssertTrue(text.contains("whole_line") && text.contains("overflows 64-bit integers"), text)
        // Range of 2^40 elements: too large to evaluate, and never silently truncated.
        text = try nodeError { m in
            m.ints("s", [0], scalar: true); m.ints("l", [1 << 40], scalar: true); m.ints("d", [1], scalar: true)
            m.node("Range", ["s", "l", "d"], ["r"], name: "long_range")
            m.output("r")
        }
        XCTAssertTrue(text.contains("long_range") && text.contains("has 1099511627776 elements"), text)
        // Integer Mul overflowing 64 bits.
        text = try nodeError { m in
            m.ints("a", [Int64.max]); m.ints("b", [2])
            m.node("Mul", ["a", "b"], ["p"], name: "big_mul")
            m.node("Reshape", ["x", "p"], ["y"])
            m.output("y")
        }
        XCTAssertTrue(text.contains("big_mul") && text.contains("overflows 64-bit integers"), text)
        // Integer Concat of [3, 1] and [2, 1] along axis 1: shapes differ outside the axis.
        text = try nodeError { m in
            m.ints("a", [1, 2, 3]); m.ints("b", [4, 5]); m.ints("axes", [1])
            m.node("Unsqueeze", ["a", "axes"], ["a2"]); m.node("Unsqueeze", ["b", "axes"], ["b2"])
            m.node("Concat", ["a2", "b2"], ["c"], name: "ragged_concat", int: ["axis": 1])
            m.output("c")
        }
        XCTAssertTrue(text.contains("ragged_concat") && text.contains("differ outside axis 1"), text)
        // A float shape holding NaN or 1e30 cast to integers.
        text = try nodeError { m in
            m.floats("f", [2], [1e30, .nan])
            m.node("Cast", ["f"], ["i"], name: "nan_cast", int: ["to": Int64(Onnx_TensorProto.DataType.int64.rawValue)])
            m.node("Reshape", ["x", "i"], ["y"])
            m.output("y")
        }
        XCTAssertTrue(text.contains("nan_cast") && text.contains("not a 64-bit integer"), text)
    }

    /// Range's element count against a hand computation: Range(2, 11, 3) = [2, 5, 8],
    /// Range(10, 0, -4) = [10, 6, 2], Range(-3, 4, 2) = [-3, -1, 1, 3], added to x as floats.
    func testRangeValues() throws {
        for (s, l, d, expected) in [(2, 11, 3, [2, 5, 8]), (10, 0, -4, [10, 6, 2]), (-3, 4, 2, [-3, -1, 1, 3])] as [(Int64, Int64, Int64, [Float])] {
            var m = ModelMaker()
            m.input("x", [Int64(expected.count)])
            m.ints("s", [s], scalar: true); m.ints("l", [l], scalar: true); m.ints("d", [d], scalar: true)
            m.node("Range", ["s", "l", "d"], ["r"])
            m.node("Cast", ["r"], ["rf"], int: ["to": Int64(Onnx_TensorProto.DataType.float.rawValue)])
            m.node("Add", ["x", "rf"], ["y"])
            m.output("y")
            let graph = try ONNXImporter.parse(try m.data())
            XCTAssertEqual(try ReferenceRunner(program: Program(lowering: graph)).run([Tensor(shape: [expected.count], repeating: 0)])[0].scalars,
                           expected, "Range(\(s), \(l), \(d))")
        }
    }
}

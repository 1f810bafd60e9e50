import Foundation
import Metronome
import CLITestHarness
import XCTest

/// int8: QDQ files from ONNX Runtime's quantizer and from `metronome quantize`, run in
/// Metronome and in ONNX Runtime (tests/ort_quantized.py), and the quantize command's
/// options and errors.
final class QuantizationCLITests: XCTestCase {
    func testQuantizedModelsMatchONNXRuntime() throws {
        let bin = try Harness.metronome()
        let work = try Harness.temporaryDirectory("quantized")
        defer { try? FileManager.default.removeItem(at: work) }
        let report = work.appendingPathComponent("report.json")
        let r = try Harness.runPython("ort_quantized.py", ["--metronome", bin, "--work", work.appendingPathComponent("models").path,
                                                          "--report", report.path])
        XCTAssertEqual(r.status, 0, "script failed: \(r.stderr.suffix(2000))")
        print(r.stdout)
        guard let json = try Harness.json(report) as? [String: Any], let rows = json["rows"] as? [[String: Any]] else {
            return XCTFail("no report")
        }
        XCTAssertEqual(json["deterministic"] as? Bool, true, "quantizing twice gave different files")
        XCTAssertEqual(rows.count, 3 * (4 * 2 * 2 + 4 * 2))
        // Without VNNI the reference is ONNX Runtime's float computation of the QDQ formulas
        // (its integer kernels saturate there: tests/ort_quantized.py), and so is Metronome's
        // (full-range layers run in float there): two float sums may round a requantization tie
        // differently, one quantum carried through the later layers (0.16% measured).
        let integerReference = json["ort_integer_kernels"] as? Bool ?? true
        XCTAssertEqual(integerReference, MachineInfo.int8ProductsSaturate == false, "the script and the engine agree on VNNI")
        for row in rows {
            let label = "\(row["model"] ?? "?") \(row["variant"] ?? "?") batch \(row["batch"] ?? "?") \(row["precision"] ?? "?")"
            XCTAssertEqual(row["top1_agree"] as? Bool, true, label)
            if let quanta = row["quanta"] as? Double {
                // ONNX Runtime's file ends in a DequantizeLinear: the logits lie on its grid. The
                // int8 kernels compute what ONNX Runtime's integer kernels do; the float emulation
                // may round a tie the other way somewhere.
                XCTAssertLessThanOrEqual(quanta, row["precision"] as? String == "int8" && integerReference ? 1 : 2, label)
            } else {
                XCTAssertLessThanOrEqual(row["relerr"] as? Double ?? 1, integerReference ? 1e-3 : 1e-2, label)
                XCTAssertLessThan(row["float_relerr"] as? Double ?? 1, 0.2, "\(label): far from the float model")
            }
        }
    }

    func testQuantizeOptionsAndErrors() throws {
        let bin = try Harness.metronome()
        let work = try Harness.temporaryDirectory("quantize")
        defer { try? FileManager.default.removeItem(at: work) }
        let model = work.appendingPathComponent("lenet.onnx").path
        XCTAssertEqual(try Harness.run(bin, ["export", "lenet5", "--out", model]).status, 0)
        let py = try Harness.python(modules: ["numpy"])
        let cal = work.appendingPathComponent("cal.npy").path
        XCTAssertEqual(try Harness.run("/usr/bin/env", [py, "-c", "import numpy as np; np.save('\(cal)', np.random.default_rng(0).normal(0, 1, (8, 1, 28, 28)).astype(np.float32))"]).status, 0)
        let out = work.appendingPathComponent("q.onnx").path

        // --keep leaves the named layer in float; --json reports the layers quantized.
        let first = try Harness.run(bin, ["quantize", model, "--calibration", cal, "--out", out, "--keep", "fc_2", "--json"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any]
        let layers = (report?["layers"] as? [[String: Any]])?.compactMap { $0["node"] as? String } ?? []
        XCTAssertFalse(layers.isEmpty)
        XCTAssertFalse(layers.contains("fc_2"), "\(layers)")
        XCTAssertEqual(report?["kept"] as? [String], ["fc_2"])
        let fidelity = report?["fidelity"] as? [String: Any]
        XCTAssertEqual(fidelity?["images"] as? Int, 8)

        // Nothing is overwritten without --force.
        let again = try Harness.run(bin, ["quantize", model, "--calibration", cal, "--out", out])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("already exists"), again.stderr)
        // Bad input is named.
        let keep = try Harness.run(bin, ["quantize", model, "--calibration", cal, "--out", out, "--force", "--keep", "nope"])
        XCTAssertTrue(keep.stderr.contains("--keep nope"), keep.stderr)
        let shape = work.appendingPathComponent("bad.npy").path
        XCTAssertEqual(try Harness.run("/usr/bin/env", [py, "-c", "import numpy as np; np.save('\(shape)', np.zeros((2, 3, 28, 28), np.float32))"]).status, 0)
        let wrong = try Harness.run(bin, ["quantize", model, "--calibration", shape, "--out", out, "--force"])
        XCTAssertTrue(wrong.stderr.contains("[3, 28, 28]") && wrong.stderr.contains("[1, 28, 28]"), wrong.stderr)
        let twice = try Harness.run(bin, ["quantize", out, "--calibration", cal, "--out", work.appendingPathComponent("qq.onnx").path])
        XCTAssertTrue(twice.stderr.contains("already quantized"), twice.stderr)
        // int8 needs a quantized model; a quantized model in fp32 gets a note.
        let float8 = try Harness.run(bin, ["bench", model, "--precision", "int8", "--runs", "1"])
        XCTAssertNotEqual(float8.status, 0)
        XCTAssertTrue(float8.stderr.contains("metronome quantize"), float8.stderr)
        let note = try Harness.run(bin, ["bench", out, "--runs", "1"])
        XCTAssertEqual(note.status, 0, note.stderr)
        XCTAssertTrue(note.stderr.contains("--precision int8"), note.stderr)
        let int8 = try Harness.run(bin, ["bench", out, "--precision", "int8", "--runs", "2", "--layers"])
        XCTAssertEqual(int8.status, 0, int8.stderr)
        XCTAssertTrue(int8.stdout.contains("avx512_core_vnni") || int8.stdout.contains("int8"), int8.stdout)
        // Without VNNI, full-range weights get a note (their layers run in float there);
        // --reduce-range writes 7-bit weights (at most 64 in magnitude, reached) and no note.
        XCTAssertEqual(first.stderr.contains("--reduce-range"), MachineInfo.int8ProductsSaturate, first.stderr)
        let seven = work.appendingPathComponent("q7.onnx").path
        let reduced = try Harness.run(bin, ["quantize", model, "--calibration", cal, "--out", seven, "--reduce-range", "--per-channel"])
        XCTAssertEqual(reduced.status, 0, reduced.stderr)
        XCTAssertFalse(reduced.stderr.contains("--reduce-range"), reduced.stderr)
        let largest = try Harness.run("/usr/bin/env", [try Harness.python(modules: ["onnx", "numpy"]), "-c", """
            import sys, onnx, numpy as np
            from onnx import numpy_helper
            m = onnx.load(sys.argv[1])
            w = [numpy_helper.to_array(t) for t in m.graph.initializer if t.data_type == onnx.TensorProto.INT8]
            print(len(w), max(int(np.abs(a.astype(np.int32)).max()) for a in w))
            """, seven])
        XCTAssertEqual(largest.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ").last, "64", largest.stdout + largest.stderr)
        let runs = try Harness.run(bin, ["bench", seven, "--precision", "int8", "--runs", "1", "--layers", "--json"])
        XCTAssertEqual(runs.status, 0, runs.stderr)
        XCTAssertTrue(runs.stdout.contains("Metronome.QuantizedLinear"), "7-bit layers run on integer kernels on any CPU")
    }

    /// Crafted QDQ files: each is refused with an error that names the node and the problem.
    func testCraftedQDQFilesGetClearErrors() throws {
        let bin = try Harness.metronome()
        let work = try Harness.temporaryDirectory("qdq-crafted")
        defer { try? FileManager.default.removeItem(at: work) }
        let script = """
        import sys, numpy as np, onnx
        from onnx import helper, TensorProto, numpy_helper
        d = sys.argv[1]
        def save(name, nodes, inits, inputs=None):
            ins = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])]
            g = helper.make_graph(nodes, name, ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]), d + "/" + name + ".onnx")
        s = numpy_helper.from_array(np.array(0.1, np.float32), "s")
        z = numpy_helper.from_array(np.array(3, np.uint8), "z")
        zf = numpy_helper.from_array(np.array(3.0, np.float32), "zf")
        save("not_quantized", [helper.make_node("DequantizeLinear", ["x", "s"], ["y"], name="dq")], [s])
        save("blocked", [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q", block_size=2),
                         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq")], [s, z])
        save("float_zero_point", [helper.make_node("QuantizeLinear", ["x", "s", "zf"], ["q"], name="q"),
                                  helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq")], [s, z, zf])
        save("computed_scale", [helper.make_node("QuantizeLinear", ["x", "t", "z"], ["q"], name="q"),
                                helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq")], [s, z],
             [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]), helper.make_tensor_value_info("t", TensorProto.FLOAT, [])])
        """
        let py = try Harness.python()
        let r = try Harness.run("/usr/bin/env", [py, "-c", script, work.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        for (file, expected) in [("not_quantized", "'dq'"), ("blocked", "blocked quantization"),
                                 ("float_zero_point", "is float"), ("computed_scale", "must be a float constant")] {
            let run = try Harness.run(bin, ["summary", work.appendingPathComponent(file + ".onnx").path])
            XCTAssertNotEqual(run.status, 0, file)
            XCTAssertTrue(run.stderr.contains(expected), "\(file): \(run.stderr)")
            XCTAssertFalse(run.stderr.contains("Fatal error"), file)
        }
    }
}

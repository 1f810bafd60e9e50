import Foundation
import CLITestHarness
import XCTest

/// Single operators (element-wise math, Pow, PRelu, Sum/Max/Min/Mean, reductions, layer and
/// instance normalization, each in several attribute and opset variants), the same
/// functions fused after a convolution, and squeeze-excite and ConvNeXt blocks, built with
/// the onnx Python helper (tests/ort_operators.py): Metronome's oneDNN plan, its reference
/// interpreter and its exported model (in ONNX Runtime and re-imported) against ONNX Runtime,
/// at batch 1 and 2.
final class ONNXRuntimeOperatorTests: XCTestCase {
    func testOperatorsMatchONNXRuntime() throws {
        let bin = try Harness.metronome()
        let work = try Harness.temporaryDirectory("ort-ops")
        defer { try? FileManager.default.removeItem(at: work) }
        let report = work.appendingPathComponent("report.json")
        let r = try Harness.runPython("ort_operators.py", ["--metronome", bin, "--work", work.appendingPathComponent("cases").path,
                                                           "--report", report.path])
        XCTAssertEqual(r.status, 0, "generator failed: \(r.stderr.suffix(2000))")
        print(r.stdout)
        guard let rows = try Harness.json(report) as? [[String: Any]] else { return XCTFail("no report") }
        XCTAssertGreaterThanOrEqual(rows.count, 120, "every case at batch 1 and 2")
        let ops = Set(rows.flatMap { $0["ops"] as? [String] ?? [] })
        for op in ["Erf", "Gelu", "Sqrt", "Exp", "Log", "Abs", "Neg", "Reciprocal", "Elu", "Selu", "Softplus", "Mish",
                   "Pow", "PRelu", "Sum", "Max", "Min", "Mean", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum",
                   "ReduceL2", "LayerNormalization", "InstanceNormalization"] {
            XCTAssertTrue(ops.contains(op), "no case runs \(op)")
        }
        let cases = Set(rows.compactMap { $0["case"] as? String })
        for pattern in ["se_block_gap", "se_block_reduce_mean_opset13", "se_block_reduce_mean_opset18",
                        "convnext_block_gelu_opset20", "convnext_block_erf_opset17", "audio_cnn_1d", "video_cnn_3d"] {
            XCTAssertTrue(cases.contains(pattern), "pattern \(pattern) did not run")
        }
        for row in rows {
            let label = "\(row["case"] ?? "?") batch \(row["batch"] ?? "?")"
            for key in ["onednn_relerr", "reference_relerr", "reimported_relerr", "ort_exported_relerr"] {
                let e = row[key] as? Double ?? .infinity
                XCTAssertLessThanOrEqual(e, 1e-4, "\(label): \(key) = \(e)")
            }
        }
    }
}

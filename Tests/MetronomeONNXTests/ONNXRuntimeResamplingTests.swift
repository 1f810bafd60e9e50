import Foundation
import CLITestHarness
import XCTest

/// Resize/Upsample, Expand, Tile, DepthToSpace, SpaceToDepth, Pad reflect/edge/wrap,
/// negative-step Slice and ConvTranspose in every attribute variant, and pattern graphs that
/// use them (segmentation head, FPN, channel shuffle, ConvTranspose decoder), built with the
/// onnx Python helper (tests/ort_resampling.py): Metronome's oneDNN plan and its reference
/// kernels against ONNX Runtime at batch 1 and 2, and the exported models in ONNX Runtime
/// and back in Metronome.
final class ONNXRuntimeResamplingTests: XCTestCase {
    func testResamplingVariantsMatchONNXRuntime() throws {
        let bin = try Harness.metronome()
        let work = try Harness.temporaryDirectory("ort-resampling")
        defer { try? FileManager.default.removeItem(at: work) }
        let report = work.appendingPathComponent("report.json")
        let r = try Harness.runPython("ort_resampling.py", ["--metronome", bin, "--work", work.appendingPathComponent("models").path,
                                                           "--report", report.path])
        XCTAssertEqual(r.status, 0, "generator failed: \(r.stderr.suffix(3000))")
        print(r.stdout)
        guard let rows = try Harness.json(report) as? [[String: Any]] else { return XCTFail("no report") }
        XCTAssertGreaterThan(rows.count, 400, "variants compared")
        let models = Set(rows.compactMap { $0["model"] as? String })
        for name in ["resize_nearest_opset13", "resize_linear_opset13", "resize_sizes_opset11_b1", "upsample_opset9",
                     "resize_opset10", "resize_pytorch_sizes_opset13", "expand_tile_opset13", "depth_space_opset13", "pad_slice_opset13",
                     "conv_transpose_opset13", "segmentation_head", "fpn_upsample_add", "channel_shuffle_decoder"] {
            XCTAssertTrue(models.contains(name), "model \(name) compared")
        }
        let batches = Set(rows.compactMap { $0["batch"] as? Int })
        XCTAssertEqual(batches, [1, 2])
        var exported = 0
        for row in rows {
            let label = "\(row["model"] ?? "?") \(row["output"] ?? "?") batch \(row["batch"] ?? "?")"
            for key in ["metronome_relerr", "reference_relerr", "reimported_relerr", "ort_exported_relerr"] {
                guard let value = row[key] else {
                    if key == "metronome_relerr" || key == "reference_relerr" { XCTFail("\(label): no \(key)") }
                    continue
                }
                if key == "ort_exported_relerr" { exported += 1 }
                let e = value as? Double ?? .infinity
                XCTAssertLessThanOrEqual(e, 1e-4, "\(label): \(key) = \(e)")
            }
        }
        XCTAssertGreaterThan(exported, 300, "exported variants run in ONNX Runtime")
    }
}

import Foundation
import CLITestHarness
import XCTest

/// ResNet/MobileNet ONNX files built with the onnx Python helper (tests/ort_models.py):
/// Metronome's outputs against ONNX Runtime's, and the models Metronome exports run in
/// ONNX Runtime and back in Metronome.
final class ONNXRuntimeComparisonTests: XCTestCase {
    func testModelsFromTheONNXHelperMatchONNXRuntime() throws {
        let bin = try Harness.metronome()
        let work = try Harness.temporaryDirectory("ort")
        defer { try? FileManager.default.removeItem(at: work) }
        let report = work.appendingPathComponent("report.json")
        let r = try Harness.runPython("ort_models.py", ["--metronome", bin, "--work", work.appendingPathComponent("models").path,
                                                        "--report", report.path])
        XCTAssertEqual(r.status, 0, "generator failed: \(r.stderr.suffix(2000))")
        print(r.stdout)
        guard let rows = try Harness.json(report) as? [[String: Any]] else { return XCTFail("no report") }
        XCTAssertGreaterThanOrEqual(rows.count, 12)
        let models = Set(rows.compactMap { $0["model"] as? String })
        XCTAssertTrue(models.contains("resnet18") && models.contains("mobilenet_v2"))
        for row in rows {
            let label = "\(row["model"] ?? "?") batch \(row["batch"] ?? "?")"
            for key in ["metronome_relerr", "reimported_relerr", "ort_exported_relerr"] {
                let e = row[key] as? Double ?? .infinity
                XCTAssertLessThanOrEqual(e, 1e-4, "\(label): \(key) = \(e)")
            }
        }
    }
}

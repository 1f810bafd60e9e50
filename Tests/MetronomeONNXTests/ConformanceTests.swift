import Foundation
import Metronome
import MetronomeONNX
import CLITestHarness
import XCTest

/// The ONNX project's backend test cases (generated at test time by tests/onnx_conformance.py
/// from the installed onnx package) run through `metronome infer`.
final class ConformanceTests: XCTestCase {
    func testONNXBackendConformance() throws {
        let bin = try Harness.metronome()
        let work = try Harness.temporaryDirectory("conformance")
        defer { try? FileManager.default.removeItem(at: work) }
        let report = work.appendingPathComponent("report.json")
        let r = try Harness.runPython("onnx_conformance.py", [
            "--metronome", bin, "--work", work.appendingPathComponent("cases").path,
            "--supported", ONNXImporter.supportedOperators.joined(separator: ","),
            "--import-time", ONNXImporter.importTimeOperators.joined(separator: ","),
            "--report", report.path,
        ])
        XCTAssertEqual(r.status, 0, "generator failed: \(r.stderr.suffix(2000))")
        guard let json = try Harness.json(report) as? [String: Any], let cases = json["cases"] as? [[String: Any]] else {
            return XCTFail("no report")
        }
        func named(_ status: String) -> [[String: Any]] { cases.filter { $0["status"] as? String == status } }
        // Never a crash, never a wrong answer, never an unsupported operator that runs anyway.
        for c in named("crash") { XCTFail("crash: \(c["name"] ?? "?"): \(c["message"] ?? "")") }
        for c in named("mismatch") { XCTFail("wrong output: \(c["name"] ?? "?"): \(c["message"] ?? "")") }
        for c in named("not-refused") { XCTFail("unsupported operator not refused: \(c["name"] ?? "?"): \(c["message"] ?? "")") }
        // Every error names what went wrong.
        for c in named("error") where (c["message"] as? String ?? "").count < 10 {
            XCTFail("unclear error for \(c["name"] ?? "?"): '\(c["message"] ?? "")'")
        }
        // No regression against the cases known to pass.
        let passing = Set(named("pass").compactMap { $0["name"] as? String })
        // CONFORMANCE_PASSING_OUT=FILE writes the passing cases (to refresh the baseline).
        if let out = ProcessInfo.processInfo.environment["CONFORMANCE_PASSING_OUT"] {
            try (passing.sorted().joined(separator: "\n") + "\n").write(toFile: out, atomically: true, encoding: .utf8)
        }
        let baseline = try String(contentsOf: Harness.root.appendingPathComponent("tests/conformance_passing.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init).filter { !$0.isEmpty && !$0.hasPrefix("#") }
        XCTAssertGreaterThan(baseline.count, 200)
        for name in baseline where !passing.contains(name) { XCTFail("conformance case \(name) no longer passes") }
        let refused = named("refused")
        XCTAssertGreaterThan(refused.count, 100, "unsupported operators checked")
        print("conformance: \(passing.count) cases pass; \(refused.count) unsupported operators refused")
    }
}

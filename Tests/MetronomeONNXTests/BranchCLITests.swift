import CLITestHarness
import Foundation
import Metronome
import MetronomeIO
import XCTest

/// `metronome branch`, `infer --devices` and `stretch` on the example configs: the exported
/// network gives the same outputs branch-parallel, sequential and in ONNX Runtime, and
/// `stretch` resumes its CSV.
final class BranchCLITests: XCTestCase {
    func testExportedBranchedNetworksAgreeWithONNXRuntime() throws {
        let bin = try Harness.metronome()
        _ = try Harness.python()
        let work = try Harness.temporaryDirectory("branch")
        defer { try? FileManager.default.removeItem(at: work) }
        var generator = SplitMix64(seed: 11)
        let x = Tensor(shape: [1, 3, 224, 224], uniformIn: -1...1, generator: &generator)
        let npy = work.appendingPathComponent("x.npy"), raw = work.appendingPathComponent("x.bin")
        try NPY.write(x, to: npy)
        try x.scalars.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: raw)
        var jobs: [[String: Any]] = []
        let configs = ["R-34-CD", "EN-B0-CD", "RX-1.6-CD"]
        for name in configs {
            let config = Harness.root.appendingPathComponent("examples/branch/\(name).yaml").path
            let model = work.appendingPathComponent("\(name).onnx").path
            var r = try Harness.run(bin, ["branch", config, "--out", model])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains(".b1@dsp"), r.stdout)
            r = try Harness.run(bin, ["branch", config, "--out", model])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("already exists"), r.stderr)
            for (flags, out) in [(["--devices", "auto"], "parallel"), (["--threads", "2"], "sequential")] {
                r = try Harness.run(bin, ["infer", model, "--input", npy.path, "--output", work.appendingPathComponent("\(name)-\(out).npy").path] + flags)
                XCTAssertEqual(r.status, 0, "\(name) \(out): \(r.stderr)")
            }
            jobs.append(["model": model, "input": raw.path, "shape": x.shape, "output": work.appendingPathComponent("\(name)-ort.bin").path])
        }
        let jobFile = work.appendingPathComponent("jobs.json")
        try JSONSerialization.data(withJSONObject: jobs).write(to: jobFile)
        let r = try Harness.run("/usr/bin/env", ["python3", Harness.root.appendingPathComponent("scripts/ort_run.py").path, jobFile.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        for name in configs {
            let parallel = try NPY.read(work.appendingPathComponent("\(name)-parallel.npy"))
            let sequential = try NPY.read(work.appendingPathComponent("\(name)-sequential.npy"))
            let data = try Data(contentsOf: work.appendingPathComponent("\(name)-ort.bin"))
            var values = [Float](repeating: 0, count: data.count / 4)
            _ = values.withUnsafeMutableBytes { data.copyBytes(to: $0) }
            let ort = try Tensor(shape: [1, 1000], scalars: values)
            XCTAssertEqual(parallel.shape, [1, 1000])
            XCTAssertLessThanOrEqual(parallel.relativeError(to: sequential), 1e-5, "\(name): parallel vs sequential")
            XCTAssertLessThanOrEqual(parallel.relativeError(to: ort), 1e-5, "\(name): parallel vs ONNX Runtime")
            XCTAssertLessThanOrEqual(sequential.relativeError(to: ort), 1e-5, "\(name): sequential vs ONNX Runtime")
        }
    }

    func testSummaryShowsCostPerBranch() throws {
        let bin = try Harness.metronome()
        let r = try Harness.run(bin, ["summary", Harness.root.appendingPathComponent("examples/branch/R-50-CD.yaml").path, "--no-plan"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for part in ["stem@cpu", "s1.b0@cpu", "s1.b1@dsp", "s4.merge@cpu", "head@cpu"] {
            XCTAssertTrue(r.stdout.contains(part), "\(part) missing:\n\(r.stdout)")
        }
    }

    func testStretchWritesAndResumesResultCSV() throws {
        let bin = try Harness.metronome()
        let work = try Harness.temporaryDirectory("stretch")
        defer { try? FileManager.default.removeItem(at: work) }
        let configs = work.appendingPathComponent("configs")
        try FileManager.default.createDirectory(at: configs, withIntermediateDirectories: true)
        func config(_ widths: String, _ depths: String, devices: String) -> String {
            let strides = devices == "[cpu]" ? "[[1], [2]]" : "[[1], [2, 2]]"
            return """
            MODEL: {TYPE: mbanynet, NUM_CLASSES: 10}
            ANYNET: {STEM_TYPE: simple_stem_in, STEM_W: 8, BLOCK_TYPE: res_basic_block, DEPTHS: \(depths),
                     WIDTHS: \(widths), STRIDES: \(strides), DEVICES: \(devices)}
            TEST: {IM_SIZE: 32}
            """
        }
        try config("[[8], [16]]", "[[1], [2]]", devices: "[cpu]").write(to: configs.appendingPathComponent("T-C.yaml"), atomically: true, encoding: .utf8)
        try config("[[8], [8, 8]]", "[[1], [1, 1]]", devices: "[cpu, dsp]").write(to: configs.appendingPathComponent("T-CD.yaml"), atomically: true, encoding: .utf8)
        let csv = work.appendingPathComponent("result.csv")
        let args = ["stretch", configs.path, "--out", csv.path, "--runs", "3", "--warmup", "1", "--compare"]
        var r = try Harness.run(bin, args)
        XCTAssertEqual(r.status, 0, r.stderr)
        var rows = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(rows.first.map { Array($0.prefix(3)) }, ["cfg", "latency", "energy"])
        XCTAssertEqual(rows.dropFirst().map { $0[0] }, ["T-C", "T-CD"])
        guard rows.count == 3 else { return }
        let header = rows[0]
        func column(_ row: [String], _ name: String) -> String { header.firstIndex(of: name).map { row[$0] } ?? "no column \(name)" }
        XCTAssertEqual(column(rows[1], "mode"), "sequential")
        XCTAssertEqual(column(rows[2], "mode"), "parallel")
        for row in rows.dropFirst() {
            let latency = Double(column(row, "latency")) ?? 0, median = Double(column(row, "median")) ?? 0
            XCTAssertGreaterThan(latency, 0)
            XCTAssertGreaterThanOrEqual(median, latency, "the minimum is not above the median")
        }
        XCTAssertGreaterThan(Double(column(rows[2], "sequential_latency")) ?? 0, 0)
        // Resuming measures nothing twice; a new config and an interrupted row are measured.
        let before = try String(contentsOf: csv, encoding: .utf8)
        r = try Harness.run(bin, args)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("0 measured, 2 already there"), r.stdout)
        XCTAssertEqual(try String(contentsOf: csv, encoding: .utf8), before)
        try config("[[8], [8, 16]]", "[[1], [1, 2]]", devices: "[cpu, dsp]").write(to: configs.appendingPathComponent("U-CD.yaml"), atomically: true, encoding: .utf8)
        try (before + "T-XX,1.0").write(to: csv, atomically: true, encoding: .utf8)
        r = try Harness.run(bin, args)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("dropped an incomplete last row"), r.stdout)
        rows = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(rows.dropFirst().map { $0[0] }, ["T-C", "T-CD", "U-CD"])
        // A bad config is reported by name and does not stop the others.
        try "ANYNET: {STEM_W: 8}".write(to: configs.appendingPathComponent("A-bad.yaml"), atomically: true, encoding: .utf8)
        r = try Harness.run(bin, args)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("A-bad.yaml") && r.stderr.contains("ANYNET.DEPTHS"), r.stderr)
        // Another file at --out is not a result to resume, and is kept.
        let other = work.appendingPathComponent("other.csv")
        try "a,b\n1,2\n".write(to: other, atomically: true, encoding: .utf8)
        r = try Harness.run(bin, ["stretch", configs.path, "--out", other.path, "--runs", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--force"), r.stderr)
        XCTAssertEqual(try String(contentsOf: other, encoding: .utf8), "a,b\n1,2\n")
    }
}

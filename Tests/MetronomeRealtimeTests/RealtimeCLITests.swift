import CLITestHarness
import Foundation
import XCTest

/// `metronome analyze` and `metronome simulate` as a user runs them.
final class RealtimeCLITests: XCTestCase {
    func write(_ yaml: String) throws -> (URL, String) {
        let dir = try Harness.temporaryDirectory("rt-cli")
        let file = dir.appendingPathComponent("set.yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        return (dir, file.path)
    }

    func testAnalyzeJSONGivesBoundsAndVerdicts() throws {
        let bin = try Harness.metronome()
        let r = try Harness.run(bin, ["analyze", Harness.root.appendingPathComponent("examples/davis-np.yaml").path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let tasks = object?["tasks"] as? [[String: Any]] ?? []
        XCTAssertEqual(tasks.map { $0["name"] as? String }, ["a", "b", "c"])
        XCTAssertEqual(tasks.map { $0["bound_ms"] as? Double }, [8, 10, 15])
        XCTAssertEqual(tasks.map { $0["schedulable"] as? Bool }, [true, true, false])
        XCTAssertEqual(object?["schedulable"] as? Bool, false)

        // Not analysed: a null bound and a null verdict, with the reason.
        let (dir, path) = try write("""
            name: os
            duration: 1s
            policy: unmanaged
            cores: [0]
            tasks:
              - {name: a, wcet: 1ms, period: 10ms}
              - {name: b, wcet: 1ms, period: 10ms}
            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let os = try Harness.run(bin, ["analyze", path, "--json"])
        XCTAssertEqual(os.status, 0, os.stderr)
        XCTAssertTrue(os.stdout.contains("\"bound_ms\" : null") && os.stdout.contains("\"schedulable\" : null"), os.stdout)
    }

    func testSimulateWritesTheRunFilesAndJSON() throws {
        let bin = try Harness.metronome()
        let dir = try Harness.temporaryDirectory("sim")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let yaml = Harness.root.appendingPathComponent("examples/davis-np.yaml").path
        let r = try Harness.run(bin, ["simulate", yaml, "--json", "--out", out, "--duration", "117ms"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let tasks = object?["tasks"] as? [[String: Any]] ?? []
        XCTAssertEqual(tasks.map { $0["jobs"] as? Int }, [13, 12, 9], "releases before 117 ms")
        XCTAssertEqual(tasks.last?["max_response_ms"] as? Double, 15)
        XCTAssertGreaterThan(tasks.last?["misses"] as? Int ?? 0, 0)
        for name in ["trace.csv", "summary.json", "report.html"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/\(name)"), name)
        }
        let again = try Harness.run(bin, ["simulate", yaml, "--out", out])
        XCTAssertNotEqual(again.status, 0, "never overwrites without --force")
        XCTAssertTrue(again.stderr.contains("--force"), again.stderr)
        let uniform = try Harness.run(bin, ["simulate", yaml, "--out", out, "--force", "--exec", "uniform:0.5", "--seed", "3"])
        XCTAssertEqual(uniform.status, 0, uniform.stderr)
    }

    func testDurationFlagsTakeUnits() throws {
        let bin = try Harness.metronome()
        let yaml = Harness.root.appendingPathComponent("examples/davis-np.yaml").path
        let bare = try Harness.run(bin, ["simulate", yaml, "--duration", "3", "--json"])
        XCTAssertNotEqual(bare.status, 0)
        XCTAssertTrue(bare.stderr.contains("a number with a unit"), bare.stderr)
        let run = try Harness.run(bin, ["run", yaml, "--duration", "3s"])
        XCTAssertNotEqual(run.status, 0, "synthetic tasks cannot run")
        XCTAssertTrue(run.stderr.contains("tasks[0].model") && run.stderr.contains("synthetic"), run.stderr)
        XCTAssertFalse(run.signaled)
    }
}

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

    /// `--trace-json`: a Chrome trace with a job slice per completed job and a named track per
    /// core and per task; an existing file is refused without --force, before simulating.
    func testSimulateWritesAChromeTrace() throws {
        let bin = try Harness.metronome()
        let dir = try Harness.temporaryDirectory("trace")
        defer { try? FileManager.default.removeItem(at: dir) }
        let yaml = Harness.root.appendingPathComponent("examples/davis-np.yaml").path
        let trace = dir.appendingPathComponent("t.json").path
        let r = try Harness.run(bin, ["simulate", yaml, "--out", dir.appendingPathComponent("a").path, "--duration", "117ms",
                                      "--trace-json", trace])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace))) as? [String: Any]
        let events = object?["traceEvents"] as? [[String: Any]] ?? []
        let jobs = events.filter { $0["cat"] as? String == "job" }.count
        let csv = try String(contentsOfFile: dir.appendingPathComponent("a/trace.csv").path, encoding: .utf8)
        let completed = csv.split(separator: "\n").dropFirst().filter { $0.split(separator: ",", omittingEmptySubsequences: false)[3] != "" }
        XCTAssertEqual(jobs, completed.count, "one job slice per completed job of trace.csv")
        let names = events.filter { $0["name"] as? String == "thread_name" }.compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        XCTAssertEqual(Set(names), ["core 0", "a", "b", "c"])
        let again = try Harness.run(bin, ["simulate", yaml, "--out", dir.appendingPathComponent("b").path, "--trace-json", trace])
        XCTAssertNotEqual(again.status, 0, "never overwrites without --force")
        XCTAssertTrue(again.stderr.contains("--force") && again.stderr.contains("t.json"), again.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("b/trace.csv").path), "refused before simulating")
        let forced = try Harness.run(bin, ["simulate", yaml, "--out", dir.appendingPathComponent("b").path, "--trace-json", trace, "--force"])
        XCTAssertEqual(forced.status, 0, forced.stderr)
        // `run` refuses it too, before preparing anything (this set could not even run).
        let run = try Harness.run(bin, ["run", yaml, "--out", dir.appendingPathComponent("c").path, "--trace-json", trace])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("t.json already exists") && run.stderr.contains("--force"), run.stderr)
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

    /// Tables line up with their headers: the analysis table of a synthetic set, golden.
    func testAnalyzeTableIsAligned() throws {
        let r = try Harness.run(try Harness.metronome(), ["analyze", Harness.root.appendingPathComponent("examples/davis-np.yaml").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, """
            analysis: NP-FP busy-period RTA (Davis et al. 2007)
            task  wcet ms  npr ms  period ms  deadline ms  bound ms  verdict          note
            a        2.00    2.00       9.00         9.00      8.00  schedulable
            b        6.00    6.00      10.00        10.00     10.00  schedulable
            c        2.00    2.00      13.00        13.00     15.00  NOT schedulable  the bound exceeds the effective deadline 13ms
            the task set is NOT shown schedulable

            """)
    }

    /// `runs compare` puts two runs side by side with ratios: the same set simulated at WCET
    /// and at half-to-full WCET.
    func testRunsCompare() throws {
        let bin = try Harness.metronome()
        let dir = try Harness.temporaryDirectory("compare")
        defer { try? FileManager.default.removeItem(at: dir) }
        let yaml = Harness.root.appendingPathComponent("examples/davis-np.yaml").path
        let a = dir.appendingPathComponent("a").path, b = dir.appendingPathComponent("b").path
        XCTAssertEqual(try Harness.run(bin, ["simulate", yaml, "--out", a]).status, 0)
        XCTAssertEqual(try Harness.run(bin, ["simulate", yaml, "--out", b, "--exec", "uniform:0.5"]).status, 0)
        let r = try Harness.run(bin, ["runs", "compare", a, b, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let tasks = object?["tasks"] as? [[String: Any]] ?? []
        XCTAssertEqual(tasks.map { $0["name"] as? String }, ["a", "b", "c"])
        let c = tasks[2]
        let before = (c["before"] as? [String: Any])?["max_ms"] as? Double ?? 0
        let after = (c["after"] as? [String: Any])?["max_ms"] as? Double ?? 0
        XCTAssertEqual(before, 15)
        XCTAssertEqual(c["max_ratio"] as? Double ?? 0, after / before, accuracy: 1e-9)
        XCTAssertLessThan(after, before, "shorter jobs respond sooner here")
        let text = try Harness.run(bin, ["runs", "compare", a, b])
        XCTAssertTrue(text.stdout.contains("p99 before"), text.stdout)
        let missing = try Harness.run(bin, ["runs", "compare", a, dir.appendingPathComponent("none").path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("summary.json"), missing.stderr)
    }

    /// The run summary table, golden (a simulation is deterministic): aligned columns, verdicts
    /// that say what happened, and a closing line on whether the analysis held.
    func testSummaryTableSaysWhatHappened() throws {
        let dir = try Harness.temporaryDirectory("golden")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try Harness.run(try Harness.metronome(), ["simulate", Harness.root.appendingPathComponent("examples/davis-np.yaml").path,
                                                          "--duration", "117ms", "--out", dir.path, "--force", "--strict"])
        XCTAssertEqual(r.status, 0, "c was not called schedulable, so its misses do not break the analysis: \(r.stderr)")
        XCTAssertEqual(r.stdout.replacingOccurrences(of: dir.path, with: "DIR"), """
            simulated 117ms of releases (every job at its WCET)
            task  jobs  miss  ratio   min   p50    p90    p99    max  bound  obs/bd  jit99  util  verdict
            a       13     0  0.000  2.00  3.00   6.00   7.00   7.00   8.00   0.875  0.000  0.22  ok
            b       12     0  0.000  6.00  6.00   8.00   8.00   8.00  10.00   0.800  0.000  0.61  ok
            c        9     3  0.333  2.00  8.00  15.00  15.00  15.00  15.00   1.000  0.000  0.14  MISSED 3 (1 skipped)
            (times in ms from release; bound = analytic response-time bound: NP-FP busy-period RTA (Davis et al. 2007); obs/bd = max / bound)
            the analysis held: every task it called schedulable met its deadlines within its bound
            wrote DIR/{trace.csv,summary.json,report.html}

            """)
    }

    /// `run --strict` fails when a task the analysis called schedulable misses or exceeds its
    /// bound: here a declared WCET far below the network's real time.
    func testStrictRunFailsWhenTheAnalysisDidNotHold() throws {
        let bin = try Harness.metronome()
        let (dir, path) = try write("""
            name: optimistic
            duration: 300ms
            cores: [0]
            tasks:
              - {name: fast, model: mobilenet_v2, wcet: 10us, period: 5ms}
            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let r = try Harness.run(bin, ["run", path, "--out", out, "--strict", "--timing-runs", "2"])
        XCTAssertEqual(r.status, 3, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("the analysis did NOT hold for fast"), r.stdout)
        XCTAssertTrue(r.stdout.contains("bound exceeded ×") || r.stdout.contains("MISSED"), r.stdout)
        let lenient = try Harness.run(bin, ["run", path, "--out", out, "--force", "--timing-runs", "2", "--json"])
        XCTAssertEqual(lenient.status, 0, lenient.stderr)
        let summary = try JSONSerialization.jsonObject(with: Data(lenient.stdout.utf8)) as? [String: Any]
        XCTAssertEqual((summary?["tasks"] as? [[String: Any]])?.first?["name"] as? String, "fast", "--json prints summary.json")
    }

    /// A width the slimmable model does not have is an error naming the key.
    func testWidthsTheModelDoesNotHave() throws {
        let (dir, path) = try write("""
            name: w
            duration: 1s
            cores: [0]
            tasks:
              - {name: a, model: s-mobilenet_v2, widths: [0.6, 1.0], period: 50ms}
            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try Harness.run(try Harness.metronome(), ["analyze", path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertFalse(r.signaled)
        XCTAssertTrue(r.stderr.contains("tasks[0].widths") && r.stderr.contains("0.35"), r.stderr)
    }

    /// With widths `analyze --json` keeps its shape (the nominal mode at the top level) and adds
    /// the guaranteed mode: the adaptive task is schedulable only at its narrowest width.
    func testAnalyzeModesWithWidths() throws {
        let (dir, path) = try write("""
            name: widths
            duration: 1s
            cores: [0]
            tasks:
              - {name: hog, wcet: 5ms, layers: 5, period: 10ms, priority: 2}
              - {name: adaptive, wcet: [1ms, 2ms, 6ms], layers: 4, widths: [0.25, 0.5, 1.0], period: 10ms, priority: 1}
            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try Harness.run(try Harness.metronome(), ["analyze", path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let nominal = object?["tasks"] as? [[String: Any]] ?? []
        let guaranteed = object?["guaranteed"] as? [[String: Any]] ?? []
        XCTAssertEqual(nominal.map { $0["schedulable"] as? Bool }, [true, false], "6 ms beside 5 ms of every 10: U = 1.1")
        XCTAssertEqual(guaranteed.map { $0["schedulable"] as? Bool }, [true, true])
        // Hand computation, guaranteed mode: hog 5 + one 0.25 ms region of adaptive = 5.25; adaptive 1 + 5 = 6.
        XCTAssertEqual(guaranteed.map { $0["bound_ms"] as? Double }, [5.25, 6])
        XCTAssertEqual(object?["guaranteed_schedulable"] as? Bool, true)
    }
}

import Foundation
import Metronome
import MetronomeRealtime
import XCTest

/// Execution spans, the Chrome trace and the report's timeline on schedules worked out by
/// hand in the simulator (exact), and on a real run (consistency with the job records).
final class TraceTests: XCTestCase {
    let ms: Int64 = 1_000_000

    func simulate(_ set: TaskSet, duration: Int64) throws -> RunResult {
        try Simulator.run(set, demands: set.tasks.map { TaskDemand(declared: $0)! }, options: .init(duration: duration))
    }

    /// Comparable shape of a span: (job, kind, start ms, end ms, cores, first layer, layers, ending).
    func shape(_ s: ExecutionSpan) -> String {
        "\(s.job) \(s.kind.rawValue) \(Double(s.start) / 1e6)-\(Double(s.end) / 1e6) cores \(s.cores) layers \(s.firstLayer)+\(s.layers) \(s.ending.rawValue)"
    }

    /// One core, layer preemption: lo (8 ms in four 2 ms layers) runs from 0; hi (1 ms),
    /// released at 3, waits for lo's boundary at 4, runs 4–5; lo resumes 5–9 from layer 2.
    var preemptionSet: TaskSet {
        TaskSet(name: "preempt", duration: 1, policy: .fixedPriority, preemption: .layer, cores: [0], tasks: [
            .init(name: "hi", wcet: 1 * ms, period: 10 * ms, priority: 2, offset: 3 * ms),
            .init(name: "lo", wcet: 8 * ms, layers: 4, period: 20 * ms, priority: 1),
        ])
    }

    /// Two cores, one each, and a per-layer k = 1 lock: lo (four 2 ms layers, core 0) holds the
    /// lock from 0; hi (two 1 ms layers, core 1), released at 3, waits for it until lo's boundary
    /// at 4, where lo hands its place over (keeping its core) and waits in turn; hi runs 4–6,
    /// releases the lock, and lo runs its last two layers 6–10.
    var lockSet: TaskSet {
        TaskSet(name: "lock", duration: 1, policy: .fixedPriority, preemption: .layer, lockK: 1, cores: [0, 1], tasks: [
            .init(name: "hi", wcet: 2 * ms, layers: 2, period: 20 * ms, priority: 2, cores: [1], offset: 3 * ms),
            .init(name: "lo", wcet: 8 * ms, layers: 4, period: 20 * ms, priority: 1, cores: [0]),
        ])
    }

    func testSimulatedSpansOfAPreemptedJob() throws {
        let sim = try simulate(preemptionSet, duration: 10 * ms)
        XCTAssertEqual(sim.spans[0].map(shape), ["0 execution 4.0-5.0 cores [0] layers 0+1 completed"])
        XCTAssertEqual(sim.spans[1].map(shape), ["0 execution 0.0-4.0 cores [0] layers 0+2 preempted",
                                                 "0 execution 5.0-9.0 cores [0] layers 2+2 completed"])
        XCTAssertEqual(sim.spansTruncated, [false, false])
        XCTAssertEqual(sim.spans[1].map(\.layerEnds), [[2 * ms, 4 * ms], [7 * ms, 9 * ms]], "lo's layers end every 2 ms of running")
    }

    func testSimulatedSpansWithLockHandover() throws {
        let sim = try simulate(lockSet, duration: 20 * ms)
        XCTAssertEqual(sim.spans[0].map(shape), ["0 lock_wait 3.0-4.0 cores [1] layers 0+0 completed",
                                                 "0 execution 4.0-6.0 cores [1] layers 0+2 completed"])
        XCTAssertEqual(sim.spans[1].map(shape), ["0 execution 0.0-4.0 cores [0] layers 0+2 lock_handover",
                                                 "0 lock_wait 4.0-6.0 cores [0] layers 0+0 completed",
                                                 "0 execution 6.0-10.0 cores [0] layers 2+2 completed"])
        // The spans agree with the records' totals.
        XCTAssertEqual(sim.records[1][0].lockWait, 2 * ms)
        XCTAssertEqual(sim.records[1][0].execution, 8 * ms)
        XCTAssertEqual(sim.records[0][0].response, 3 * ms)
    }

    // MARK: - Chrome trace

    func events(_ result: RunResult) throws -> [[String: Any]] {
        let data = try ChromeTrace.render(result)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], "a JSON object")
        XCTAssertEqual(object["displayTimeUnit"] as? String, "ms")
        return try XCTUnwrap(object["traceEvents"] as? [[String: Any]], "traceEvents is a list of objects")
    }

    /// The schema every event must follow, and named tracks for every (pid, tid) used.
    func assertSchema(_ events: [[String: Any]], file: StaticString = #filePath, line: UInt = #line) {
        var named = Set<String>()
        var used = Set<String>()
        for e in events {
            guard let name = e["name"] as? String, let ph = e["ph"] as? String, let ts = e["ts"] as? Double,
                  let pid = e["pid"] as? Int, let tid = e["tid"] as? Int else {
                XCTFail("event without name, ph, ts, pid or tid: \(e)", file: file, line: line)
                continue
            }
            XCTAssertTrue(["M", "X", "i"].contains(ph), "phase \(ph)", file: file, line: line)
            XCTAssertGreaterThanOrEqual(ts, 0, file: file, line: line)
            switch ph {
            case "X":
                let dur = e["dur"] as? Double
                XCTAssertNotNil(dur, "X without dur: \(e)", file: file, line: line)
                XCTAssertGreaterThanOrEqual(dur ?? -1, 0, file: file, line: line)
                used.insert("\(pid)/\(tid)")
            case "i":
                XCTAssertEqual(e["s"] as? String, "t", "instant events are thread-scoped", file: file, line: line)
                used.insert("\(pid)/\(tid)")
            default:
                if name == "thread_name" { named.insert("\(pid)/\(tid)") }
                XCTAssertNotNil(e["args"] as? [String: Any], file: file, line: line)
            }
        }
        XCTAssertTrue(used.isSubset(of: named), "unnamed tracks: \(used.subtracting(named))", file: file, line: line)
        XCTAssertEqual(Self.improperlyNested(events), [], "complete events nest on every track", file: file, line: line)
    }

    /// Complete events that overlap another event of their track without nesting in it, which
    /// Chrome's viewers cannot draw (Perfetto reports them as import errors).
    static func improperlyNested(_ events: [[String: Any]]) -> [String] {
        var tracks: [String: [(Double, Double, String)]] = [:]
        for e in events where e["ph"] as? String == "X" {
            let ts = e["ts"] as? Double ?? 0, dur = e["dur"] as? Double ?? 0
            tracks["\(e["pid"] ?? "")/\(e["tid"] ?? "")", default: []].append((ts, ts + dur, e["name"] as? String ?? ""))
        }
        var bad: [String] = []
        let eps = 1e-3  // 1 ns, in µs
        for (track, slices) in tracks {
            var stack: [(Double, Double, String)] = []
            for s in slices.sorted(by: { ($0.0, -$0.1) < ($1.0, -$1.1) }) {
                while let top = stack.last, top.1 <= s.0 + eps { stack.removeLast() }
                if let top = stack.last, s.1 > top.1 + eps { bad.append("\(track): \(s) overlaps \(top)") }
                stack.append(s)
            }
        }
        return bad
    }

    func complete(_ events: [[String: Any]], pid: Int, tid: Int, category: String) -> [String] {
        events.filter { $0["ph"] as? String == "X" && $0["pid"] as? Int == pid && $0["tid"] as? Int == tid && $0["cat"] as? String == category }
            .map { "\($0["name"] as! String) \($0["ts"] as! Double)+\($0["dur"] as! Double)" }
    }

    func instants(_ events: [[String: Any]], pid: Int, tid: Int) -> [String] {
        events.filter { $0["ph"] as? String == "i" && $0["pid"] as? Int == pid && $0["tid"] as? Int == tid }
            .map { "\($0["name"] as! String) \($0["ts"] as! Double)" }
    }

    func testTracePerCoreSpansOfHandBuiltSchedules() throws {
        let (core, task) = (ChromeTrace.corePid, ChromeTrace.taskPid)
        let p = try events(try simulate(preemptionSet, duration: 10 * ms))
        assertSchema(p)
        // Core 0 (tid 1): lo, hi, lo again — in microseconds.
        XCTAssertEqual(complete(p, pid: core, tid: 1, category: "execution").sorted(),
                       ["hi 4000.0+1000.0", "lo 0.0+4000.0", "lo 5000.0+4000.0"])
        XCTAssertEqual(instants(p, pid: core, tid: 1), ["preempted: lo 4000.0"])
        XCTAssertEqual(instants(p, pid: task, tid: 2), ["preempted 4000.0"])
        // Job slices from release to end.
        XCTAssertEqual(complete(p, pid: task, tid: 1, category: "job"), ["hi #0 3000.0+2000.0"])
        XCTAssertEqual(complete(p, pid: task, tid: 2, category: "job"), ["lo #0 0.0+9000.0"])
        XCTAssertEqual(complete(p, pid: task, tid: 2, category: "layer"),
                       ["layer 0 0.0+2000.0", "layer 1 2000.0+2000.0", "layer 2 5000.0+2000.0", "layer 3 7000.0+2000.0"])

        let l = try events(try simulate(lockSet, duration: 20 * ms))
        assertSchema(l)
        XCTAssertEqual(complete(l, pid: core, tid: 1, category: "execution"), ["lo 0.0+4000.0", "lo 6000.0+4000.0"])
        XCTAssertEqual(complete(l, pid: core, tid: 2, category: "execution"), ["hi 4000.0+2000.0"])
        XCTAssertEqual(complete(l, pid: task, tid: 1, category: "lock"), ["lock wait 3000.0+1000.0"])
        XCTAssertEqual(complete(l, pid: task, tid: 2, category: "lock"), ["lock wait 4000.0+2000.0"])
        XCTAssertEqual(instants(l, pid: task, tid: 2), ["lock handover 4000.0"])
        XCTAssertEqual(instants(l, pid: core, tid: 1), [], "a lock hand-over keeps the core")
    }

    /// Every job of a longer simulation appears once (completed: a job slice; skipped: an
    /// instant), every miss has its instant, and the run spans sum to each job's execution.
    func testTraceHasEveryJobSkipAndMiss() throws {
        let set = TaskSet(name: "over", duration: 1, policy: .fixedPriority, preemption: .layer, cores: [0, 1], tasks: [
            .init(name: "a", wcet: 3 * ms, layers: 3, period: 10 * ms, priority: 3),
            .init(name: "b", wcet: 7 * ms, layers: 7, period: 12 * ms, deadline: 9 * ms, priority: 2),
            .init(name: "c", wcet: 14 * ms, layers: 7, period: 15 * ms, priority: 1, overrun: .skip),
            .init(name: "d", wcet: 5 * ms, layers: 5, period: 8 * ms, priority: 0, overrun: .queue),
        ])
        let sim = try simulate(set, duration: 240 * ms)
        XCTAssertGreaterThan(sim.records.joined().filter(\.skipped).count, 0, "the set skips releases")
        XCTAssertGreaterThan(sim.records.joined().filter { !$0.skipped && !$0.deadlineMet }.count, 0, "and misses deadlines")
        XCTAssertGreaterThan(sim.records.joined().map(\.preemptions).reduce(0, +), 0, "and preempts")
        let e = try events(sim)
        assertSchema(e)
        for (i, records) in sim.records.enumerated() {
            let tid = i + 1
            let jobs = e.filter { $0["cat"] as? String == "job" && $0["tid"] as? Int == tid && $0["pid"] as? Int == ChromeTrace.taskPid }
                .compactMap { ($0["args"] as? [String: Any])?["job"] as? Int }
            XCTAssertEqual(jobs, records.filter { !$0.skipped }.map(\.job), set.tasks[i].name)
            XCTAssertEqual(instants(e, pid: ChromeTrace.taskPid, tid: tid).filter { $0.hasPrefix("skipped release") }.count,
                           records.filter(\.skipped).count)
            XCTAssertEqual(instants(e, pid: ChromeTrace.taskPid, tid: tid).filter { $0.hasPrefix("deadline miss") }.count,
                           records.filter { !$0.skipped && !$0.deadlineMet }.count)
            XCTAssertEqual(instants(e, pid: ChromeTrace.taskPid, tid: tid).filter { $0.hasPrefix("preempted") }.count,
                           records.map(\.preemptions).reduce(0, +))
            for r in records where !r.skipped {
                let spans = sim.spans[i].filter { $0.job == r.job && $0.kind == .execution }
                XCTAssertEqual(spans.map(\.duration).reduce(0, +), r.execution, "\(set.tasks[i].name) #\(r.job)")
                XCTAssertEqual(spans.map(\.layers).reduce(0, +), set.tasks[i].layers!, "every layer once")
                XCTAssertTrue(spans.allSatisfy { $0.start >= r.start! && $0.end <= r.end! })
            }
        }
        // No two execution spans share a core at once (from the trace's core tracks).
        for tid in [1, 2] {
            let slices = e.filter { $0["ph"] as? String == "X" && $0["pid"] as? Int == ChromeTrace.corePid && $0["tid"] as? Int == tid }
                .map { ($0["ts"] as! Double, $0["ts"] as! Double + ($0["dur"] as! Double)) }.sorted { $0.0 < $1.0 }
            XCTAssertGreaterThan(slices.count, 0)
            for (x, y) in zip(slices, slices.dropFirst()) { XCTAssertLessThanOrEqual(x.1, y.0 + 1e-6, "core \(tid - 1)") }
        }
    }

    /// OS-scheduled spans drawn on every allowed core overlap there: the later one goes to an
    /// overlap track of each core, and goes back to the core's own track once it is free.
    func testOverlappingSpansGetOverlapTracks() throws {
        let set = TaskSet(name: "os", duration: 1, policy: .unmanaged, preemption: .job, cores: [0, 1], tasks: [
            .init(name: "a", wcet: 10 * ms, period: 100 * ms), .init(name: "b", wcet: 10 * ms, period: 100 * ms),
        ])
        func record(_ task: Int, _ job: Int, _ from: Int64, _ to: Int64) -> JobRecord {
            JobRecord(task: task, job: job, release: from, wakeup: from, start: from, end: to, lockWait: 0, preemptions: 0,
                      deadlineMet: true, outputOK: true, execution: to - from, lockAcquired: nil, lockReleased: nil)
        }
        func span(_ task: Int, _ job: Int, _ from: Int64, _ to: Int64) -> ExecutionSpan {
            ExecutionSpan(task: task, job: job, kind: .execution, start: from, end: to, cores: [0, 1], layers: 1)
        }
        // a runs 0–10 and 20–30 ms, b 5–15 ms (overlapping a's first job).
        let result = RunResult(taskSet: set, records: [[record(0, 0, 0, 10 * ms), record(0, 1, 20 * ms, 30 * ms)],
                                                       [record(1, 0, 5 * ms, 15 * ms)]],
                               elapsed: 30 * ms, realtimePriority: false, timing: [], spans: [
                                   [span(0, 0, 0, 10 * ms), span(0, 1, 20 * ms, 30 * ms)], [span(1, 0, 5 * ms, 15 * ms)],
                               ])
        let e = try events(result)
        assertSchema(e)
        let overlap = ChromeTrace.overlapStride
        for core in [0, 1] {
            XCTAssertEqual(complete(e, pid: ChromeTrace.corePid, tid: core + 1, category: "execution"), ["a 0.0+10000.0", "a 20000.0+10000.0"])
            XCTAssertEqual(complete(e, pid: ChromeTrace.corePid, tid: overlap + core + 1, category: "execution"), ["b 5000.0+10000.0"])
        }
        let names = e.filter { $0["name"] as? String == "thread_name" }.compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        XCTAssertEqual(Set(names), ["core 0", "core 1", "core 0 (overlap 1)", "core 1 (overlap 1)", "a", "b"])
    }

    func testTraceFileIsNotOverwrittenWithoutForce() throws {
        let sim = try simulate(preemptionSet, duration: 10 * ms)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("metronome-trace-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.json")
        try ChromeTrace.write(sim, to: url)
        XCTAssertThrowsError(try ChromeTrace.write(sim, to: url)) { XCTAssertTrue("\($0)".contains("--force"), "\($0)") }
        XCTAssertNoThrow(try ChromeTrace.write(sim, to: url, overwrite: true))
        // Decodes back (2.0 and 2 are the same JSON number, so compare re-encoded).
        let decoded = try JSONDecoder().decode(ChromeTrace.self, from: Data(contentsOf: url))
        XCTAssertEqual(try decoded.json(), try ChromeTrace.render(sim), "round trip")
    }

    // MARK: - report.html

    func testReportDrawsCoreLanesMarksAndBounds() throws {
        let sim = try simulate(lockSet, duration: 20 * ms)
        let analysis = ScheduleAnalysis.analyzeDeclared(lockSet)
        let summary = RunSummary(sim, analysis: analysis)
        let html = HTMLReport.render(sim, summary: summary)
        XCTAssertTrue(html.contains(">core 0</text>") && html.contains(">core 1</text>"), "a lane per core")
        // lo's spans on core 0 in ms: 0–4 and 6–10; hi's on core 1: 4–6.
        XCTAssertTrue(html.contains("<rect x=\"6.000000\" y=\"23.0\" width=\"4.000000\""), "lo's second span on core 0's lane")
        XCTAssertTrue(html.contains("<rect x=\"4.000000\" y=\"45.0\" width=\"2.000000\""), "hi's span on core 1's lane")
        XCTAssertTrue(html.contains("handed its lock place over at 4.000 ms"))
        XCTAssertTrue(html.contains("holds the lock"))
        for (t, b) in zip(lockSet.tasks, summary.tasks) {
            let bound = try XCTUnwrap(b.boundMs, "the lock set is analysed")
            XCTAssertTrue(html.contains("\(t.name): analysis bound \(String(format: "%.3f", bound)) ms"), "bound line of \(t.name)")
        }
        let p = HTMLReport.render(try simulate(preemptionSet, duration: 10 * ms),
                                  summary: RunSummary(try simulate(preemptionSet, duration: 10 * ms), analysis: nil))
        XCTAssertTrue(p.contains("lo job 0 preempted at 4.000 ms"))
        XCTAssertTrue(html.contains("<line class=\"bound\""))
        XCTAssertFalse(p.contains("<line class=\"bound\""), "no bound, no line")
        for page in [html, p] { assertOffline(page) }
    }

    /// The page opens offline: inline script and styles only, no external resource.
    func assertOffline(_ html: String, file: StaticString = #filePath, line: UInt = #line) {
        for attribute in ["src=", "href=", "@import", "url("] {
            XCTAssertFalse(html.contains(attribute), "report.html must not load anything (\(attribute))", file: file, line: line)
        }
        XCTAssertTrue(html.contains("<script>\n(function"), "the zoom script is inline", file: file, line: line)
    }
}

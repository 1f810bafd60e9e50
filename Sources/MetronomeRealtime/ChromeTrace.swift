import Foundation

/// `--trace-json`: a run (real or simulated) in the Chrome trace-event format, so that it opens
/// in Perfetto (ui.perfetto.dev, "Open trace file") or `chrome://tracing`.
///
/// Two processes hold the tracks. "cores" has one thread per core, with a complete event
/// (`ph: X`) for every stretch a job computed there: which job ran on which core when. "tasks"
/// has one thread per task: a slice per job from its release to its end (args: job index,
/// response, deadline met, preemptions, lock wait), nested inside it the job's execution spans
/// ("run", with the cores and the layers completed; nested in it a slice per layer, "layer k",
/// where the run recorded layer times) and lock waits ("lock wait"), and instant
/// events (`ph: i`) for preemptions, lock hand-overs, skipped releases and deadline misses.
/// Timestamps are microseconds from the run's common start (fractional: the records are in ns).
///
/// Chrome's viewers need the slices of one thread to nest. A queued job (`overrun: queue`)
/// released while its predecessor still runs would overlap it, so its slice starts at the
/// predecessor's end instead, and its args say so (`queued_from_us`: its real release). Under
/// `unmanaged` a span is put on every core the task may use (the OS picks among them), so spans
/// of tasks sharing cores can overlap there: such a span goes to an extra track of the core,
/// "core N (overlap k)", rather than break the nesting.
public struct ChromeTrace: Codable, Sendable, Equatable {
    /// An argument value: JSON number, string or boolean.
    public enum Arg: Codable, Sendable, Equatable {
        case int(Int)
        case double(Double)
        case string(String)
        case bool(Bool)

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .int(let v): try c.encode(v)
            case .double(let v): try c.encode(v)
            case .string(let v): try c.encode(v)
            case .bool(let v): try c.encode(v)
            }
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Bool.self) { self = .bool(v) } else if let v = try? c.decode(Int.self) {
                self = .int(v)
            } else if let v = try? c.decode(Double.self) { self = .double(v) } else { self = .string(try c.decode(String.self)) }
        }
    }

    /// One trace event. `ts` and `dur` are microseconds; `s` is an instant event's scope.
    public struct Event: Codable, Sendable, Equatable {
        public var name: String
        public var cat: String?
        public var ph: String
        public var ts: Double
        public var dur: Double?
        public var pid: Int
        public var tid: Int
        public var s: String?
        public var args: [String: Arg]?
    }

    /// The process of the per-core tracks (thread id: core + 1).
    public static let corePid = 1
    /// The process of the per-task tracks (thread id: task index + 1).
    public static let taskPid = 2
    /// Thread ids of a core's overlap tracks: overlap k of core c is k · stride + c + 1.
    public static let overlapStride = 100_000

    public var traceEvents: [Event]
    public var displayTimeUnit: String
    /// Run-wide facts: task set, policy, and which tasks' span storage filled (if any).
    public var otherData: [String: String]

    public init(_ result: RunResult) {
        let set = result.taskSet
        var events: [Event] = []
        func us(_ ns: Int64) -> Double { Double(ns) / 1000 }
        func meta(_ name: String, pid: Int, tid: Int, _ args: [String: Arg]) {
            events.append(Event(name: name, ph: "M", ts: 0, pid: pid, tid: tid, args: args))
        }
        let cores = Array(Set(set.cores + result.spans.joined().flatMap(\.cores))).sorted()
        meta("process_name", pid: Self.corePid, tid: 0, ["name": .string("cores")])
        meta("process_sort_index", pid: Self.corePid, tid: 0, ["sort_index": .int(0)])
        meta("process_name", pid: Self.taskPid, tid: 0, ["name": .string("tasks")])
        meta("process_sort_index", pid: Self.taskPid, tid: 0, ["sort_index": .int(1)])
        for c in cores {
            meta("thread_name", pid: Self.corePid, tid: c + 1, ["name": .string("core \(c)")])
            meta("thread_sort_index", pid: Self.corePid, tid: c + 1, ["sort_index": .int(c * 100)])
        }
        // Core tracks: each span on the first track of its core free at its start (the core's
        // own track unless spans overlap, see above).
        var coreTrack: [Int: [Int: Int]] = [:]  // span index in `all` -> core -> tid
        let all = result.spans.joined().filter { $0.kind == .execution }.enumerated().sorted { ($0.element.start, $0.offset) < ($1.element.start, $1.offset) }
        var trackEnds: [Int: [Int64]] = [:]
        for (k, span) in all {
            for c in span.cores {
                var ends = trackEnds[c, default: []]
                let lane = ends.firstIndex { $0 <= span.start } ?? ends.count
                if lane == ends.count {
                    ends.append(span.end)
                    if lane > 0 {
                        meta("thread_name", pid: Self.corePid, tid: lane * Self.overlapStride + c + 1, ["name": .string("core \(c) (overlap \(lane))")])
                        meta("thread_sort_index", pid: Self.corePid, tid: lane * Self.overlapStride + c + 1, ["sort_index": .int(c * 100 + lane)])
                    }
                } else {
                    ends[lane] = span.end
                }
                trackEnds[c] = ends
                coreTrack[k, default: [:]][c] = lane * Self.overlapStride + c + 1
            }
        }
        var executionIndex = 0
        for (i, task) in set.tasks.enumerated() {
            meta("thread_name", pid: Self.taskPid, tid: i + 1, ["name": .string(task.name)])
            meta("thread_sort_index", pid: Self.taskPid, tid: i + 1, ["sort_index": .int(i)])
        }
        for (i, records) in result.records.enumerated() {
            let task = set.tasks[i]
            let tid = i + 1
            var previousEnd = Int64.min
            for r in records {
                guard let start = r.start, let end = r.end, let response = r.response else {
                    events.append(Event(name: "skipped release", cat: "release", ph: "i", ts: us(r.release), pid: Self.taskPid,
                                        tid: tid, s: "t", args: ["job": .int(r.job)]))
                    continue
                }
                var args: [String: Arg] = [
                    "job": .int(r.job), "response_ms": .double(Double(response) / 1e6), "deadline_met": .bool(r.deadlineMet),
                    "preemptions": .int(r.preemptions), "lock_wait_ms": .double(Double(r.lockWait) / 1e6),
                    "start_us": .double(us(start)), "output_ok": .bool(r.outputOK),
                ]
                if let a = r.lockAcquired, let b = r.lockReleased {
                    args["lock_acquired_us"] = .double(us(a))
                    args["lock_released_us"] = .double(us(b))
                }
                let from = max(r.release, previousEnd)
                if from > r.release { args["queued_from_us"] = .double(us(r.release)) }
                events.append(Event(name: "\(task.name) #\(r.job)", cat: "job", ph: "X", ts: us(from), dur: us(end - from),
                                    pid: Self.taskPid, tid: tid, args: args))
                if !r.deadlineMet {
                    events.append(Event(name: "deadline miss", cat: "deadline", ph: "i", ts: us(r.release + task.deadline),
                                        pid: Self.taskPid, tid: tid, s: "t",
                                        args: ["job": .int(r.job), "response_ms": .double(Double(response) / 1e6)]))
                }
                previousEnd = end
            }
            for span in result.spans[i] {
                let coreList = span.cores.map(String.init).joined(separator: ",")
                switch span.kind {
                case .lockWait:
                    events.append(Event(name: "lock wait", cat: "lock", ph: "X", ts: us(span.start), dur: us(span.duration),
                                        pid: Self.taskPid, tid: tid, args: ["job": .int(span.job), "cores": .string(coreList)]))
                case .execution:
                    let tracks = coreTrack[executionIndex] ?? [:]
                    executionIndex += 1
                    let args: [String: Arg] = ["job": .int(span.job), "cores": .string(coreList), "first_layer": .int(span.firstLayer),
                                               "layers": .int(span.layers), "ending": .string(span.ending.rawValue)]
                    events.append(Event(name: "run", cat: "execution", ph: "X", ts: us(span.start), dur: us(span.duration),
                                        pid: Self.taskPid, tid: tid, args: args))
                    var from = span.start
                    for (k, end) in span.layerEnds.enumerated() {
                        events.append(Event(name: "layer \(span.firstLayer + k)", cat: "layer", ph: "X", ts: us(from),
                                            dur: us(end - from), pid: Self.taskPid, tid: tid, args: ["job": .int(span.job)]))
                        from = end
                    }
                    for c in span.cores {
                        events.append(Event(name: task.name, cat: "execution", ph: "X", ts: us(span.start), dur: us(span.duration),
                                            pid: Self.corePid, tid: tracks[c] ?? c + 1, args: args.merging(["task": .string(task.name)]) { a, _ in a }))
                    }
                    if span.ending != .completed {
                        let name = span.ending == .preempted ? "preempted" : "lock handover"
                        let cat = span.ending == .preempted ? "preemption" : "lock"
                        events.append(Event(name: name, cat: cat, ph: "i", ts: us(span.end), pid: Self.taskPid, tid: tid, s: "t",
                                            args: ["job": .int(span.job), "layer": .int(span.firstLayer + span.layers)]))
                        if span.ending == .preempted {
                            for c in span.cores {
                                events.append(Event(name: "preempted: \(task.name)", cat: cat, ph: "i", ts: us(span.end),
                                                    pid: Self.corePid, tid: tracks[c] ?? c + 1, s: "t", args: ["job": .int(span.job)]))
                            }
                        }
                    }
                }
            }
        }
        traceEvents = events
        displayTimeUnit = "ms"
        var other = ["task_set": set.name, "policy": set.policy.rawValue, "preemption": set.preemption.rawValue,
                     "lock_k": set.lockK.map(String.init) ?? "none"]
        let truncated = set.tasks.indices.filter { result.spansTruncated[$0] }.map { set.tasks[$0].name }
        if !truncated.isEmpty { other["spans_truncated"] = truncated.joined(separator: ",") }
        otherData = other
    }

    /// The trace as JSON: `{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}`.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }

    public static func render(_ result: RunResult) throws -> Data { try ChromeTrace(result).json() }

    /// Writes the trace to `url`, refusing to replace an existing file unless `overwrite`.
    public static func write(_ result: RunResult, to url: URL, overwrite: Bool = false) throws {
        if !overwrite && FileManager.default.fileExists(atPath: url.path) {
            throw TaskSetError(path: "", message: "\(url.path) already exists; choose another --trace-json or pass --force")
        }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try render(result).write(to: url)
    }
}

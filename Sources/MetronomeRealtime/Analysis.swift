import Metronome

/// The analytic result for one task.
public struct TaskBound: Sendable, Equatable {
    /// Execution-time estimate used (measured maximum × margin), ns.
    public var wcet: Int64
    /// Longest non-preemptive region (layer) estimate, ns.
    public var longestLayer: Int64
    /// Worst-case response-time bound, ns; nil when the analysis gives none.
    public var bound: Int64?
    /// Whether the bound is within the deadline; nil when no analysis applies.
    public var schedulable: Bool?
    public var note: String
}

public struct AnalysisResult: Sendable, Equatable {
    public var method: String
    public var margin: Double
    public var tasks: [TaskBound]
    /// Whether every task was shown schedulable.
    public var schedulable: Bool? {
        tasks.contains { $0.schedulable == nil } ? nil : tasks.allSatisfy { $0.schedulable == true }
    }
}

/// Schedulability analysis of a task set from measured execution times.
///
/// Scheduling units: tasks whose core sets overlap form a group on the union of their cores.
/// A group whose jobs each take all its cores behaves as a uniprocessor; a group of
/// single-thread tasks is a global multiprocessor. With a k-exclusion lock that fewer
/// than all tasks can hold at once, and every task on cores of its own, the lock is the
/// shared resource instead (k = 1: a uniprocessor; k > 1: k processors).
///
/// - Fixed priority, uniprocessor: response-time analysis with blocking by one lower-priority
///   non-preemptive region (a layer with layer preemption, a whole job without);
///   non-preemptive jobs use start-time analysis.
/// - Fixed priority, global: Bertogna–Cirinei response-time analysis, plus the same blocking.
/// - EDF, uniprocessor: processor-demand test with non-preemptive blocking (Baruah);
///   a passing task's bound is its deadline.
/// - EDF, global: the GFB density test; a passing task's bound is its deadline.
/// - FIFO, uniprocessor: one job of every task may be ahead; bound = sum of WCETs when each
///   task has at most one pending job.
/// - Unmanaged with a 1-exclusion lock: the lock is a fixed-priority uniprocessor (only its
///   holder computes); other unmanaged sets are left to the OS and not analysed.
public enum ScheduleAnalysis {
    public static func analyze(_ set: TaskSet, timing: [TimingProfile], margin: Double = 1.2) -> AnalysisResult {
        let n = set.tasks.count
        let c = timing.map { Int64((Double($0.maxJob) * margin).rounded(.up)) }
        let layer = timing.map { Int64((Double($0.maxLayer) * margin).rounded(.up)) }
        var bounds = (0..<n).map { TaskBound(wcet: c[$0], longestLayer: layer[$0], bound: nil, schedulable: nil, note: "") }
        func unsupported(_ note: String) -> AnalysisResult {
            for i in 0..<n { bounds[i].note = note }
            return AnalysisResult(method: "none: \(note)", margin: margin, tasks: bounds)
        }
        // Unmanaged tasks behind a 1-exclusion lock: only the holder computes, and the lock
        // admits waiters by priority, so the lock is a fixed-priority uniprocessor.
        let lockIsTheProcessor = set.policy == .unmanaged && set.lockK == 1
        if set.policy == .unmanaged && !lockIsTheProcessor {
            return unsupported("unmanaged sets are scheduled by the OS")
        }
        let policy: TaskSet.Policy = lockIsTheProcessor ? .fixedPriority : set.policy

        // Scheduling groups: union of overlapping core sets.
        var group = Array(0..<n)
        func root(_ i: Int) -> Int { var i = i; while group[i] != i { i = group[i] }; return i }
        for i in 0..<n { for j in 0..<i where !Set(set.cores(of: i)).isDisjoint(with: set.cores(of: j)) { group[root(i)] = root(j) } }
        var groups: [[Int]] = []
        for i in 0..<n {
            if let g = groups.firstIndex(where: { root($0[0]) == root(i) }) { groups[g].append(i) } else { groups.append([i]) }
        }
        let nonPreemptive = set.preemption == .job || set.policy == .fifo
        var units: [(tasks: [Int], processors: Int)] = []
        if lockIsTheProcessor {
            units = [(Array(0..<n), 1)]
        } else if let k = set.lockK, k < n {
            guard groups.allSatisfy({ $0.count == 1 }) else {
                return unsupported("a lock combined with tasks sharing cores is not analysed")
            }
            units = [(Array(0..<n), k)]
        } else {
            for g in groups {
                let cores = Set(g.flatMap { set.cores(of: $0) }).count
                if g.allSatisfy({ set.tasks[$0].threads == cores }) {
                    units.append((g, 1))
                } else if g.allSatisfy({ set.tasks[$0].threads == 1 }) {
                    units.append((g, cores))
                } else {
                    for i in g { bounds[i].note = "mixed thread counts in a shared core group are not analysed" }
                }
            }
        }
        var methods = Set<String>()
        let priorities = set.priorities
        for unit in units {
            let tasks = unit.tasks
            let m = unit.processors
            switch (policy, m) {
            case (.fixedPriority, 1):
                methods.insert(nonPreemptive ? "NP-FP start-time RTA" : "FP RTA with layer blocking")
                for i in tasks {
                    let hp = tasks.filter { priorities[$0] > priorities[i] || (priorities[$0] == priorities[i] && $0 < i) }
                    let lp = tasks.filter { $0 != i && !hp.contains($0) }
                    let blocking = lp.map { nonPreemptive ? c[$0] : layer[$0] }.max() ?? 0
                    let r = nonPreemptive
                        ? npFixedPriority(c: c[i], blocking: blocking, hp: hp.map { (c[$0], set.tasks[$0].period) })
                        : fixedPriority(c: c[i], blocking: blocking, hp: hp.map { (c[$0], set.tasks[$0].period) },
                                        limit: set.tasks[i].deadline * 100)
                    record(&bounds[i], r, deadline: set.tasks[i].deadline)
                }
            case (.fixedPriority, _):
                methods.insert("global FP RTA (Bertogna–Cirinei)")
                let order = tasks.sorted { (priorities[$0], -$0) > (priorities[$1], -$1) }
                var response: [Int: Int64] = [:]
                for (rank, i) in order.enumerated() {
                    let hp = order.prefix(rank)
                    let lpLayers = order.suffix(from: rank + 1).map { nonPreemptive ? c[$0] : layer[$0] }
                    let blocking = lpLayers.max() ?? 0
                    guard hp.allSatisfy({ response[$0] != nil }) else { bounds[i].note = "a higher-priority task has no bound"; continue }
                    let r = globalFixedPriority(c: c[i], blocking: blocking, m: m,
                                                hp: hp.map { (c[$0], set.tasks[$0].period, response[$0]!) },
                                                limit: set.tasks[i].deadline * 100)
                    response[i] = r
                    record(&bounds[i], r, deadline: set.tasks[i].deadline)
                }
            case (.edf, 1):
                methods.insert("EDF processor-demand test")
                let ok = edfDemand(tasks.map { (c[$0], set.tasks[$0].period, set.tasks[$0].deadline,
                                                 nonPreemptive ? c[$0] : layer[$0]) })
                for i in tasks { record(&bounds[i], ok ? set.tasks[i].deadline : nil, deadline: set.tasks[i].deadline, verdict: ok) }
            case (.edf, _):
                methods.insert("global EDF density test (GFB)")
                let density = tasks.map { Double(c[$0]) / Double(min(set.tasks[$0].deadline, set.tasks[$0].period)) }
                let ok = density.reduce(0, +) <= Double(m) - Double(m - 1) * (density.max() ?? 0) && density.allSatisfy { $0 <= 1 }
                for i in tasks { record(&bounds[i], ok ? set.tasks[i].deadline : nil, deadline: set.tasks[i].deadline, verdict: ok) }
            case (.fifo, 1):
                methods.insert("FIFO sum of WCETs")
                let total = tasks.reduce(Int64(0)) { $0 + c[$1] }
                let ok = tasks.allSatisfy { total <= set.tasks[$0].period }
                for i in tasks {
                    if ok { record(&bounds[i], total, deadline: set.tasks[i].deadline) } else {
                        record(&bounds[i], nil, deadline: set.tasks[i].deadline, verdict: false)
                        bounds[i].note = "a task may have several pending jobs"
                    }
                }
            default:
                for i in tasks { bounds[i].note = "\(set.policy.rawValue) on \(m) processors is not analysed" }
            }
        }
        return AnalysisResult(method: methods.isEmpty ? "none" : methods.sorted().joined(separator: "; "),
                              margin: margin, tasks: bounds)
    }

    static func record(_ b: inout TaskBound, _ r: Int64?, deadline: Int64, verdict: Bool? = nil) {
        b.bound = r
        b.schedulable = verdict ?? r.map { $0 <= deadline } ?? false
        if r == nil && b.note.isEmpty { b.note = "no bound: the demand exceeds the processor" }
    }

    /// R = B + C + Σ_hp ⌈R/T⌉·C_hp, iterated to a fixed point (nil beyond `limit`).
    static func fixedPriority(c: Int64, blocking: Int64, hp: [(c: Int64, t: Int64)], limit: Int64) -> Int64? {
        var r = blocking + c
        while true {
            let next = blocking + c + hp.reduce(Int64(0)) { $0 + ceilDiv(r, $1.t) * $1.c }
            if next == r { return r }
            if next > limit { return nil }
            r = next
        }
    }

    /// Non-preemptive FP: the job starts by w = B + Σ_hp (⌊w/T⌋ + 1)·C_hp and then runs C.
    static func npFixedPriority(c: Int64, blocking: Int64, hp: [(c: Int64, t: Int64)]) -> Int64? {
        let u = hp.reduce(0.0) { $0 + Double($1.c) / Double($1.t) }
        guard u < 1 else { return nil }
        var w = blocking + hp.reduce(Int64(0)) { $0 + $1.c }
        for _ in 0..<10_000 {
            let next = blocking + hp.reduce(Int64(0)) { $0 + ($1.c * (w / $1.t + 1)) }
            if next == w { return w + c }
            w = next
        }
        return nil
    }

    /// Bertogna–Cirinei: R = C + B + ⌊(1/m) Σ_hp min(W_i(R), R − C + 1)⌋.
    static func globalFixedPriority(c: Int64, blocking: Int64, m: Int, hp: [(c: Int64, t: Int64, r: Int64)],
                                    limit: Int64) -> Int64? {
        var r = c + blocking
        while true {
            var interference: Int64 = 0
            for h in hp {
                let nJobs = max(0, (r + h.r - h.c) / h.t)
                let w = nJobs * h.c + min(h.c, max(0, r + h.r - h.c - nJobs * h.t))
                interference += min(w, r - c + 1)
            }
            let next = c + blocking + interference / Int64(m)
            if next == r { return r }
            if next > limit { return nil }
            r = next
        }
    }

    /// Uniprocessor EDF with non-preemptive regions: for every absolute deadline L up to the
    /// synchronous busy period, Σ dbf(L) + max{NPR_j : D_j > L} ≤ L.
    static func edfDemand(_ tasks: [(c: Int64, t: Int64, d: Int64, npr: Int64)]) -> Bool {
        let u = tasks.reduce(0.0) { $0 + Double($1.c) / Double($1.t) }
        guard u <= 1 else { return false }
        var busy = tasks.reduce(Int64(0)) { $0 + $1.c }
        for _ in 0..<10_000 {
            let next = tasks.reduce(Int64(0)) { $0 + ceilDiv(busy, $1.t) * $1.c }
            if next == busy { break }
            busy = next
        }
        let horizon = busy + (tasks.map(\.d).max() ?? 0) + (tasks.map(\.npr).max() ?? 0)
        var points = Set<Int64>()
        for t in tasks {
            var d = t.d
            while d <= horizon && points.count < 200_000 { points.insert(d); d += t.t }
        }
        for l in points.sorted() {
            let demand = tasks.reduce(Int64(0)) { $0 + ($1.d <= l ? ((l - $1.d) / $1.t + 1) * $1.c : 0) }
            let blocking = tasks.filter { $0.d > l }.map(\.npr).max() ?? 0
            if demand + blocking > l { return false }
        }
        return true
    }

    static func ceilDiv(_ a: Int64, _ b: Int64) -> Int64 { a <= 0 ? 0 : (a + b - 1) / b }
}

import Foundation
import Metronome

/// What the analysis (and the simulator) knows of one task's execution.
public struct TaskDemand: Sendable, Equatable {
    /// Worst-case execution time, ns.
    public var wcet: Int64
    /// Longest non-preemptive region (a layer with layer preemption), ns; at most `wcet`.
    public var npr: Int64
    /// Non-preemptive regions per job (kernels of the plan, or a synthetic task's `layers`):
    /// a job can be preempted at most `regions − 1` times.
    public var regions: Int

    public init(wcet: Int64, npr: Int64, regions: Int) {
        self.wcet = max(1, wcet)
        self.npr = min(max(0, npr), self.wcet)
        self.regions = max(1, regions)
    }

    /// A task's declared demand (`wcet`, `npr` or `layers`), if it declares one; with
    /// `widths`, the widest width's.
    public init?(declared task: TaskSet.Task) {
        guard let c = task.widthWCETs?.last ?? task.wcet else { return nil }
        self.init(wcet: c, declaredBy: task)
    }

    /// One declared demand per width (narrowest first), or nil without declared wcets.
    public static func declaredPerWidth(_ task: TaskSet.Task) -> [TaskDemand]? {
        if let cs = task.widthWCETs { return cs.map { TaskDemand(wcet: $0, declaredBy: task) } }
        return TaskDemand(declared: task).map { [$0] }
    }

    init(wcet c: Int64, declaredBy task: TaskSet.Task) {
        if let q = task.npr {
            self.init(wcet: c, npr: q, regions: Int(ScheduleAnalysis.ceilDiv(c, q)))
        } else if let l = task.layers {
            self.init(wcet: c, npr: ScheduleAnalysis.ceilDiv(c, Int64(l)), regions: l)
        } else {
            self.init(wcet: c, npr: c, regions: 1)
        }
    }

    /// The demand of a measured task: maximum × margin, longest observed layer × margin.
    public init(measured t: TimingProfile, margin: Double) {
        self.init(wcet: Int64((Double(t.maxJob) * margin).rounded(.up)),
                  npr: Int64((Double(t.maxLayer) * margin).rounded(.up)), regions: t.regions)
    }
}

/// The analytic result for one task.
public struct TaskBound: Sendable, Equatable {
    /// Execution-time estimate used, ns.
    public var wcet: Int64
    /// Longest non-preemptive region used, ns.
    public var longestLayer: Int64
    /// Worst-case response-time bound, ns; nil when the analysis gives none.
    public var bound: Int64?
    /// true: shown schedulable; false: not shown schedulable (the bound exceeds the deadline,
    /// or the test fails); nil: not analysed. Never true for a set that can miss.
    public var schedulable: Bool?
    /// The method applied to this task ("" when none).
    public var method: String
    /// Why there is no bound or no verdict, or what the verdict rests on.
    public var note: String

    public init(wcet: Int64, longestLayer: Int64, bound: Int64? = nil, schedulable: Bool? = nil,
                method: String = "", note: String = "") {
        self.wcet = wcet
        self.longestLayer = longestLayer
        self.bound = bound
        self.schedulable = schedulable
        self.method = method
        self.note = note
    }
}

public struct AnalysisResult: Sendable, Equatable {
    public var method: String
    public var margin: Double
    public var tasks: [TaskBound]
    /// true when every task was shown schedulable, false when one was not, nil when some
    /// task was not analysed and none failed.
    public var schedulable: Bool? {
        if tasks.contains(where: { $0.schedulable == false }) { return false }
        return tasks.contains { $0.schedulable == nil } ? nil : true
    }
}

/// Schedulability analysis of a task set: sufficient tests that never call a set that can
/// miss a deadline schedulable. Each method, its assumptions and its source are listed in
/// the README's analysis table; ``Simulator`` refutes the analysis if it is ever wrong
/// (the property tests run it on thousands of random sets).
///
/// Scheduling units: tasks whose core sets overlap form a group. A group whose jobs each
/// take all its cores is a uniprocessor; a group of single-thread tasks with identical core
/// sets is a global multiprocessor. With a k-exclusion lock that fewer than all tasks can
/// hold and every task on cores of its own, the lock is the processor (k of them); the
/// same holds for unmanaged tasks behind a 1-exclusion lock on any cores.
///
/// A task's effective deadline is its deadline, and with `overrun: skip` also its period:
/// a response longer than the period drops the next release, which counts as a miss.
public enum ScheduleAnalysis {
    /// Analysis from measured timing (tasks that declare `wcet` use it instead).
    public static func analyze(_ set: TaskSet, timing: [TimingProfile], margin: Double = 1.2) -> AnalysisResult {
        let demands = set.tasks.indices.map { i in
            TaskDemand(declared: set.tasks[i]) ?? TaskDemand(measured: timing[i], margin: margin)
        }
        return analyze(set, demands: demands, margin: margin)
    }

    /// Analysis of a set whose tasks all declare `wcet` (no measurement). Nil otherwise.
    public static func analyzeDeclared(_ set: TaskSet) -> AnalysisResult? {
        let demands = set.tasks.compactMap { TaskDemand(declared: $0) }
        guard demands.count == set.tasks.count else { return nil }
        return analyze(set, demands: demands, margin: 1)
    }

    /// The iteration cap of every fixed point, busy period and test-point enumeration;
    /// running out gives "not analysed", never a verdict.
    static let iterationLimit = 200_000

    public static func analyze(_ set: TaskSet, demands: [TaskDemand], margin: Double = 1) -> AnalysisResult {
        let n = set.tasks.count
        let nonPreemptive = set.preemption == .job || set.policy == .fifo
        // Under non-preemptive scheduling the whole job is one region.
        let d: [TaskDemand] = demands.map { nonPreemptive ? TaskDemand(wcet: $0.wcet, npr: $0.wcet, regions: 1) : $0 }
        var bounds = (0..<n).map { TaskBound(wcet: d[$0].wcet, longestLayer: d[$0].npr) }
        let units = schedulingUnits(set)
        for unit in units {
            switch unit.kind {
            case .notAnalysed(let why):
                for i in unit.tasks { bounds[i].note = why }
            case .dedicated:
                // Alone on its cores, a job waits only for the task's own earlier jobs: the
                // busy-period analysis with nothing else (R = C when C ≤ T; a backlog otherwise).
                for i in unit.tasks {
                    let p = params(set, d, i)
                    apply(&bounds[i], fixedPriorityResponse(p, hp: [], blocking: 0, nonPreemptive: false), deadline: p.deadline,
                          method: "dedicated cores: busy-period RTA of the task alone", note: "alone on its cores")
                }
            case .processors(let m, let policy):
                let tasks = unit.tasks
                let ps = tasks.map { params(set, d, $0) }
                let outcomes: [Outcome]
                let method: String
                switch (policy, m) {
                case (.fixedPriority, 1), (.unmanaged, 1):
                    method = nonPreemptive ? "NP-FP busy-period RTA (Davis et al. 2007)"
                        : "limited-preemptive FP busy-period RTA (Yao et al. 2010; Lehoczky 1990)"
                    outcomes = uniprocessorFixedPriority(ps, nonPreemptive: nonPreemptive)
                case (.fixedPriority, _), (.unmanaged, _):
                    method = "global FP RTA (Bertogna–Cirinei 2007) with non-preemptive blocking"
                    outcomes = globalFixedPriority(ps, m: m, nonPreemptive: nonPreemptive)
                case (.edf, 1):
                    method = nonPreemptive ? "NP-EDF processor demand (Baruah 2005)"
                        : "limited-preemptive EDF processor demand (Baruah 2005)"
                    outcomes = uniprocessorEDF(ps)
                case (.edf, _):
                    method = "global EDF RTA (Bertogna–Cirinei 2007) with non-preemptive blocking"
                    outcomes = globalEDF(ps, m: m, nonPreemptive: nonPreemptive)
                case (.fifo, 1):
                    method = "FIFO: at most one job of every task ahead"
                    outcomes = uniprocessorFIFO(ps)
                default:
                    method = ""
                    outcomes = ps.map { _ in .notAnalysed("\(policy.rawValue) on \(m) processors is not analysed") }
                }
                let prefix = unit.lock ? (m == 1 ? "the lock as one processor: " : "the lock as \(m) processors: ") : ""
                for (k, i) in tasks.enumerated() {
                    apply(&bounds[i], outcomes[k], deadline: ps[k].deadline, method: prefix + method)
                }
            }
        }
        let methods = Set(bounds.map(\.method).filter { !$0.isEmpty })
        return AnalysisResult(method: methods.isEmpty ? "none" : methods.sorted().joined(separator: "; "),
                              margin: margin, tasks: bounds)
    }

    // MARK: - Units

    struct Unit {
        enum Kind {
            case processors(Int, TaskSet.Policy)
            case dedicated
            case notAnalysed(String)
        }
        var tasks: [Int]
        var kind: Kind
        var lock = false
    }

    /// Splits a set into independently analysed units (see the type's documentation).
    static func schedulingUnits(_ set: TaskSet) -> [Unit] {
        let n = set.tasks.count
        var parent = Array(0..<n)
        func root(_ i: Int) -> Int { var i = i; while parent[i] != i { i = parent[i] }; return i }
        for i in 0..<n {
            for j in 0..<i where !Set(set.cores(of: i)).isDisjoint(with: set.cores(of: j)) { parent[root(i)] = root(j) }
        }
        var groups: [[Int]] = []
        for i in 0..<n {
            if let g = groups.firstIndex(where: { root($0[0]) == root(i) }) { groups[g].append(i) } else { groups.append([i]) }
        }
        let disjoint = groups.allSatisfy { $0.count == 1 }
        if let k = set.lockK, k < n {
            // Only lock holders compute. With k = 1 under unmanaged scheduling that holds on any
            // cores; otherwise each holder must have cores of its own.
            if disjoint || (k == 1 && set.policy == .unmanaged) {
                return [Unit(tasks: Array(0..<n), kind: .processors(k, set.policy), lock: true)]
            }
            return [Unit(tasks: Array(0..<n), kind: .notAnalysed("a lock combined with tasks sharing cores is not analysed"))]
        }
        if set.policy == .unmanaged {
            return groups.map { g in
                g.count == 1 ? Unit(tasks: g, kind: .dedicated)
                    : Unit(tasks: g, kind: .notAnalysed("unmanaged tasks sharing cores are scheduled by the OS; not analysed"))
            }
        }
        return groups.map { g in
            let union = Set(g.flatMap { set.cores(of: $0) })
            if g.allSatisfy({ set.tasks[$0].threads == union.count }) {
                return Unit(tasks: g, kind: .processors(1, set.policy))
            }
            if g.allSatisfy({ set.tasks[$0].threads == 1 && Set(set.cores(of: $0)) == union }) {
                return Unit(tasks: g, kind: .processors(union.count, set.policy))
            }
            if g.allSatisfy({ set.tasks[$0].threads == 1 }) {
                return Unit(tasks: g, kind: .notAnalysed("tasks sharing some but not all cores (different core sets) are not analysed"))
            }
            return Unit(tasks: g, kind: .notAnalysed("mixed thread counts in a shared core group are not analysed"))
        }
    }

    // MARK: - Per-task parameters and outcomes

    struct Params {
        var c: Int64
        var t: Int64
        var d: Int64
        /// The deadline the verdict uses: d, and with `overrun: skip` also at most t.
        var deadline: Int64
        var npr: Int64
        var regions: Int
        var priority: Int
        var index: Int
        var queue: Bool
    }

    static func params(_ set: TaskSet, _ d: [TaskDemand], _ i: Int) -> Params {
        let t = set.tasks[i]
        let queue = t.overrun == .queue
        return Params(c: d[i].wcet, t: t.period, d: t.deadline, deadline: queue ? t.deadline : min(t.deadline, t.period),
                      npr: d[i].npr, regions: d[i].regions, priority: set.priorities[i], index: i, queue: queue)
    }

    enum Outcome: Equatable {
        /// A response-time bound (the verdict compares it with the effective deadline).
        case bound(Int64)
        /// Shown schedulable with this bound by a test that bounds responses by deadlines.
        case passes(Int64)
        /// Not shown schedulable, for the reason given.
        case fails(String)
        case notAnalysed(String)
    }

    static func apply(_ b: inout TaskBound, _ o: Outcome, deadline: Int64, method: String, note: String = "") {
        b.method = method
        switch o {
        case .bound(let r):
            b.bound = r
            b.schedulable = r <= deadline
            b.note = r <= deadline ? note : "the bound exceeds the effective deadline \(DurationText.format(deadline))"
        case .passes(let r):
            b.bound = r
            b.schedulable = true
            b.note = note
        case .fails(let why):
            b.schedulable = false
            b.note = why
        case .notAnalysed(let why):
            b.schedulable = nil
            b.note = why
        }
    }

    /// The priority order of a unit: higher priority first, ties by file order.
    static func byPriority(_ ps: [Params]) -> [Int] {
        ps.indices.sorted { (ps[$0].priority, -ps[$0].index) > (ps[$1].priority, -ps[$1].index) }
    }

    // MARK: - Fixed priority, one processor

    /// Level-i busy period and every job in it (Lehoczky 1990 for deadlines beyond periods;
    /// Davis, Burns, Bril and Lukkien 2007 for non-preemptive jobs; Yao, Buttazzo and
    /// Bertogna 2010 for fixed preemption points). With layer preemption the job's own
    /// regions are treated as preemptible, which bounds the finishing time of the q-th job
    /// by the level-i workload `B + (q+1)·C + Σhp ⌈w/T⌉·C` — safe for any last region.
    static func uniprocessorFixedPriority(_ ps: [Params], nonPreemptive: Bool) -> [Outcome] {
        let order = byPriority(ps)
        var out = Array(repeating: Outcome.notAnalysed(""), count: ps.count)
        for (rank, k) in order.enumerated() {
            let me = ps[k]
            let hp = order.prefix(rank).map { ps[$0] }
            let lp = order.suffix(from: rank + 1).map { ps[$0] }
            let blocking = lp.map(\.npr).max() ?? 0
            out[k] = fixedPriorityResponse(me, hp: hp, blocking: blocking, nonPreemptive: nonPreemptive)
        }
        return out
    }

    static func fixedPriorityResponse(_ me: Params, hp: [Params], blocking: Int64, nonPreemptive: Bool) -> Outcome {
        let u = hp.reduce(Double(me.c) / Double(me.t)) { $0 + Double($1.c) / Double($1.t) }
        if u > 1 { return .fails(String(format: "utilization of this and higher-priority tasks is %.3f > 1", u)) }
        // Level-i busy period: L = B + Σhep ⌈L/T⌉·C.
        let hep = hp + [me]
        let busy = fixedPoint(start: blocking + hep.reduce(0) { $0 + $1.c }) { l in
            hep.reduce(blocking) { sadd($0, smul(ceilDiv(l, $1.t), $1.c)) }
        }
        guard case .value(let length) = busy else { return .notAnalysed("the level-i busy period did not converge within the iteration limit") }
        let jobs = ceilDiv(length, me.t)
        guard jobs <= Int64(iterationLimit) else { return .notAnalysed("the busy period holds more than \(iterationLimit) jobs") }
        var worst: Int64 = 0
        for q in 0..<max(1, jobs) {
            let result: FixedPoint
            if nonPreemptive {
                // Start-time analysis: the q-th job starts by w and then runs C without preemption.
                let own = sadd(blocking, smul(q, me.c))
                result = fixedPoint(start: hp.reduce(own) { sadd($0, $1.c) }) { w in
                    hp.reduce(own) { sadd($0, smul(w / $1.t + 1, $1.c)) }
                }
            } else {
                let own = sadd(blocking, smul(q + 1, me.c))
                result = fixedPoint(start: own) { w in
                    hp.reduce(own) { sadd($0, smul(ceilDiv(w, $1.t), $1.c)) }
                }
            }
            switch result {
            case .value(let w): worst = max(worst, (nonPreemptive ? w + me.c : w) - q * me.t)
            case .exceeded, .diverged: return .notAnalysed("a response-time iteration did not converge within the iteration limit")
            }
        }
        return .bound(worst)
    }

    // MARK: - Fixed priority and EDF, m processors

    /// Bertogna–Cirinei workload of a task with response bound `r` in a window of length `l`.
    static func workload(_ p: Params, r: Int64, window l: Int64) -> Int64 {
        let jobs = max(0, (l + r - p.c) / p.t)
        return sadd(smul(jobs, p.c), min(p.c, max(0, l + r - p.c - smul(jobs, p.t))))
    }

    /// Time during which lower-priority regions may hold processors while task `me` waits
    /// (`lp`: the lower-priority tasks' longest regions, longest first; `hpEpisodes`: how
    /// often higher-priority jobs in the window can start waiting). Two valid bounds, the
    /// smaller taken:
    /// - Without preemption only the lower-priority jobs already running at `me`'s release
    ///   can block it, all at once: the longest of them.
    /// - A waiting episode of `me` (one at release, one after each of its preemptions, which
    ///   need a waiting higher-priority job each) sees no lower-priority job start; the
    ///   dispatcher keeps the lowest running one marked, which leaves within one region, so
    ///   an episode holds at most the sum of the m longest lower-priority regions.
    /// - Every interval with a lower-priority region running ends with it handing a core to
    ///   `me` (ending an episode) or to a waiting higher-priority job: at most
    ///   (episodes + hpEpisodes) longest regions.
    static func lowerPriorityBlocking(_ me: Params, lp: [Int64], m: Int, hpEpisodes: Int64, nonPreemptive: Bool) -> Int64 {
        guard let longest = lp.first, longest > 0 else { return 0 }
        if nonPreemptive { return longest }
        let episodes = 1 + min(Int64(me.regions - 1), hpEpisodes)
        let perEpisode = lp.prefix(m).reduce(0, +)
        return min(smul(episodes, perEpisode), smul(sadd(episodes, hpEpisodes), longest))
    }

    static func globalFixedPriority(_ ps: [Params], m: Int, nonPreemptive: Bool) -> [Outcome] {
        let order = byPriority(ps)
        var out = Array(repeating: Outcome.notAnalysed(""), count: ps.count)
        var response: [Int: Int64] = [:]
        for (rank, k) in order.enumerated() {
            let me = ps[k]
            if me.d > me.t && me.queue {
                out[k] = .notAnalysed("global analysis needs deadline ≤ period (or overrun: skip)")
                continue
            }
            let hpIdx = Array(order.prefix(rank))
            if let missing = hpIdx.first(where: { response[$0] == nil }) {
                out[k] = .notAnalysed("higher-priority task \(ps[missing].index) has no valid bound, so its carry-in is unbounded")
                continue
            }
            let hp = hpIdx.map { (ps[$0], response[$0]!) }
            let lp = order.suffix(from: rank + 1).map { ps[$0].npr }.sorted(by: >)
            let result = fixedPoint(start: me.c) { r in
                var interference: Int64 = 0
                var episodes: Int64 = 0
                for (h, rh) in hp {
                    interference = sadd(interference, min(workload(h, r: rh, window: r), r - me.c + 1))
                    episodes = sadd(episodes, smul(ceilDiv(r + rh, h.t), Int64(h.regions)))
                }
                return sadd(me.c + interference / Int64(m),
                            lowerPriorityBlocking(me, lp: lp, m: m, hpEpisodes: episodes, nonPreemptive: nonPreemptive))
            }
            switch result {
            case .value(let r):
                out[k] = .bound(r)
                // Carry-in bounds of lower-priority tasks hold only for jobs that meet their deadlines.
                if r <= me.deadline { response[k] = r }
            case .exceeded, .diverged:
                out[k] = .notAnalysed("the response-time iteration did not converge within the iteration limit")
            }
        }
        return out
    }

    /// Bertogna–Cirinei RTA for global EDF: interference of task i on task k is at most its
    /// carry-in workload, the work of its jobs with deadlines inside k's window (using i's
    /// slack D − R), and R − C + 1; bounds are refined in rounds from R = D (BC 2007, §5).
    static func globalEDF(_ ps: [Params], m: Int, nonPreemptive: Bool) -> [Outcome] {
        if let bad = ps.first(where: { $0.d > $0.t }) {
            return ps.map { _ in .notAnalysed("global EDF analysis needs deadline ≤ period (task \(bad.index) has more)") }
        }
        var r = ps.map(\.d)
        for _ in 0..<1000 {
            var changed = false
            for k in ps.indices {
                let me = ps[k]
                let others = ps.indices.filter { $0 != k }
                let lp = others.map { ps[$0].npr }.sorted(by: >)
                let result = fixedPoint(start: me.c, limit: me.d) { x in
                    var interference: Int64 = 0
                    var episodes: Int64 = 0
                    for i in others {
                        let p = ps[i]
                        let full = me.d / p.t
                        let inWindow = sadd(smul(full, p.c), min(p.c, max(0, me.d - full * p.t - (p.d - r[i]))))
                        interference = sadd(interference, min(workload(p, r: r[i], window: x), inWindow, x - me.c + 1))
                        // Jobs of i with deadlines up to k's deadline still running in k's window.
                        let span = me.d - p.d + r[i]
                        episodes = sadd(episodes, span > 0 ? smul(ceilDiv(span, p.t), Int64(p.regions)) : 0)
                    }
                    return sadd(me.c + interference / Int64(m),
                                lowerPriorityBlocking(me, lp: lp, m: m, hpEpisodes: episodes, nonPreemptive: nonPreemptive))
                }
                switch result {
                case .value(let x):
                    if x != r[k] { changed = true; r[k] = x }
                case .exceeded, .diverged:
                    let name = ps[k].index
                    return ps.indices.map { $0 == k ? .fails("the response bound exceeds the deadline")
                        : .notAnalysed("task \(name) may miss its deadline, so the carry-in bounds do not hold") }
                }
            }
            if !changed { break }
        }
        return r.map { .passes($0) }
    }

    // MARK: - EDF and FIFO, one processor

    /// Processor-demand test with non-preemptive regions (Baruah 2005): for every absolute
    /// deadline L in the longest busy period (one blocking region plus synchronous releases),
    /// Σ dbf(L) + max{NPR_j : D_j > L} ≤ L. A passing task's bound is its deadline.
    static func uniprocessorEDF(_ ps: [Params]) -> [Outcome] {
        if let bad = ps.first(where: { $0.d > $0.t && !$0.queue }) {
            return ps.map { _ in .notAnalysed("EDF with a deadline beyond the period under overrun: skip is not analysed (task \(bad.index))") }
        }
        let u = ps.reduce(0.0) { $0 + Double($1.c) / Double($1.t) }
        if u > 1 { return ps.map { _ in .fails(String(format: "utilization %.3f > 1", u)) } }
        let block = ps.map(\.npr).max() ?? 0
        let busy = fixedPoint(start: block + ps.reduce(0) { $0 + $1.c }) { l in
            ps.reduce(block) { sadd($0, smul(ceilDiv(l, $1.t), $1.c)) }
        }
        guard case .value(let horizon) = busy else {
            return ps.map { _ in .notAnalysed("the busy period did not converge within the iteration limit") }
        }
        // Deadlines in order, merged from each task's arithmetic sequence.
        var next = ps.map(\.d)
        var checked = 0
        while let l = next.min(), l <= horizon {
            checked += 1
            guard checked <= iterationLimit * 5 else {
                return ps.map { _ in .notAnalysed("more than \(iterationLimit * 5) deadlines to check") }
            }
            let demand = ps.reduce(Int64(0)) { sadd($0, $1.d <= l ? smul((l - $1.d) / $1.t + 1, $1.c) : 0) }
            let blocking = ps.filter { $0.d > l }.map(\.npr).max() ?? 0
            if demand + blocking > l {
                return ps.map { _ in .fails("processor demand \(DurationText.format(demand + blocking)) exceeds the interval \(DurationText.format(l))") }
            }
            for i in ps.indices where next[i] == l { next[i] += ps[i].t }
        }
        return ps.map { .passes($0.d) }
    }

    /// Non-preemptive FIFO by release time: when no task can have two pending jobs, a job
    /// waits at most for one job of every other task, so R ≤ Σ C. A task with `overrun: skip`
    /// never has two; one with `queue` has none only while Σ C ≤ its period.
    static func uniprocessorFIFO(_ ps: [Params]) -> [Outcome] {
        let total = ps.reduce(Int64(0)) { $0 + $1.c }
        if let q = ps.first(where: { $0.queue && total > $0.t }) {
            return ps.map { _ in .notAnalysed("task \(q.index) (overrun: queue) may build a backlog (Σ C > its period)") }
        }
        return ps.map { _ in .bound(total) }
    }

    // MARK: - Iteration

    enum FixedPoint: Equatable {
        case value(Int64)
        /// The iteration passed `limit` (it only grows, so the fixed point lies beyond it).
        case exceeded
        /// No fixed point within the iteration limit.
        case diverged
    }

    /// A point x ≥ `start` with f(x) ≤ x, for a non-decreasing `f`: the least fixed point
    /// when plain iteration converges. Every such x is itself a valid bound for the analyses
    /// here (the demand or interference by x fits in x), so when the iteration creeps (the
    /// "+1" of Bertogna–Cirinei's caps makes it grow one nanosecond at a time), the step is
    /// doubled until some x satisfies f(x) ≤ x and the gap is then narrowed by bisection.
    static func fixedPoint(start: Int64, limit: Int64 = saturation, _ f: (Int64) -> Int64) -> FixedPoint {
        var x = start
        for iteration in 0..<iterationLimit {
            if x > limit { return .exceeded }
            let y = f(x)
            if y >= saturation { return .diverged }
            if y <= x { return .value(x) }
            if iteration < 32 {
                x = y
                continue
            }
            var low = x
            var step = y - x
            var high: Int64
            while true {
                let candidate = min(sadd(low, step), limit)
                if candidate <= low { return .exceeded }
                let fc = f(candidate)
                if fc >= saturation { return .diverged }
                if fc <= candidate { high = candidate; break }
                if candidate == limit { return .exceeded }
                low = candidate
                step = sadd(step, step)
            }
            while high - low > 1 {
                let mid = low + (high - low) / 2
                if f(mid) <= mid { high = mid } else { low = mid }
            }
            return .value(high)
        }
        return .diverged
    }

    static func ceilDiv(_ a: Int64, _ b: Int64) -> Int64 { a <= 0 ? 0 : (a - 1) / b + 1 }

    /// Where sums and products stop growing: far beyond any real time span (about 73 years in
    /// ns), and small enough that adding two saturated values cannot overflow.
    static let saturation = Int64.max / 4

    static func smul(_ a: Int64, _ b: Int64) -> Int64 {
        let (p, o) = a.multipliedReportingOverflow(by: b)
        return o || p > saturation ? saturation : p
    }

    static func sadd(_ a: Int64, _ b: Int64) -> Int64 { min(saturation, a + b) }
}

import Foundation
import Metronome

/// The analysis of a task set under a memory budget with swapping.
///
/// Swap-ins are treated suspension-obliviously: the time a job waits for its weights is
/// charged as execution. The runtime's rules (``WeightSwapper``) make the waits boundable: a
/// job asks for its weights once it holds its cores and keeps them until it completes or is
/// preempted; one I/O thread serves waiting jobs in scheduling order and prefetches only when
/// no job waits; a prefetch never evicts a released job's weights. With S(b), c(b) the measured
/// bounds on one swap-in's wall and I/O-thread CPU time (``SwapTimeModel``), w_k task k's
/// weight bytes:
///
/// - ρ_k, swap-ins per job beyond its first: a job loses its weights only while preempted, and
///   only to another task's demand swap-in; so ρ_k is at most its preemptions (jobs that may
///   preempt it within its deadline, and its regions − 1) and at most those demands (on one
///   processor under fixed priorities, only its higher-priority swapped tasks': a recursion down
///   the priorities, and only those whose weights, with k's, the always-resident bytes and the
///   swapped tasks' between them in priority, exceed the budget, since every other task is
///   evicted first; otherwise every other swapped task's: a least fixed point); and 0 on one
///   processor under fixed priorities when the always-resident bytes, its weights, those of its
///   higher-priority swapped tasks and what other core groups can hold fit the budget (victims
///   are taken by lowest priority, so such a job is never the one evicted);
/// - W_k, the longest wait of one request: S(w_k) + S(4 MiB) (a less urgent transfer in progress
///   gives way between 4 MiB chunks) +
///   Σ_{j served first} (⌈W_k/T_j⌉ + 1)(1 + ρ_j) S(w_j) (fixed point; "served first" is higher
///   priority under fixed priorities, every other task otherwise);
/// - C'_k = C_k + (1 + ρ_k) W_k. A job waiting for its weights gives its cores up to any job that
///   should preempt it (checked every 0.25 ms), so its regions grow to at most 0.5 ms;
/// - where the I/O thread shares the task's cores, the task's demand and regions grow by the
///   thread's CPU time for every swap-in that can overlap its window:
///   Σ_j (⌈(D_i + D_j)/T_j⌉ + 1)(2 + ρ_j) c(w_j). Where the machine has a core outside the set,
///   the thread runs there and nothing is charged.
///
/// These demands go through the same tests as any set. They hold only when no swap-in ever
/// waits for room (``MemoryAccount/fitsRunningJobs``); otherwise the swapped tasks get no
/// verdict of schedulable.
extension ScheduleAnalysis {
    /// Tasks that share cores, with how many of their jobs can hold cores (and so weights) at once.
    public static func runningGroups(_ set: TaskSet) -> [MemoryAccount.RunningGroup] {
        schedulingUnits(set).map { unit in
            switch unit.kind {
            case .dedicated: return .init(tasks: unit.tasks, running: unit.tasks.count)
            case .processors(let m, _):
                // Behind a lock, jobs take their weights after the lock: only its k holders hold
                // them, unless a per-layer lock lets a job keep its weights between layers.
                if unit.lock && set.preemption == .layer { return .init(tasks: unit.tasks, running: unit.tasks.count) }
                return .init(tasks: unit.tasks, running: min(m, unit.tasks.count))
            case .notAnalysed: return .init(tasks: unit.tasks, running: unit.tasks.count)
            }
        }
    }

    /// How often a job waiting for its weights checks whether it should give its cores up
    /// (``WeightSwapper/acquire(_:key:stats:pollNs:whileWaiting:)``'s default), plus a margin
    /// for giving them up: the longest a wait delays a job that should preempt it.
    static let swapPollNs: Int64 = 500_000

    /// The demand a simulator gives a job of a swapped task that pays one swap-in of `swapIn` ns
    /// at its start: as the runner does it, the wait is preemptible (split into regions of at
    /// most ``swapPollNs``), not one non-preemptive stretch.
    public static func withSwapIn(_ d: TaskDemand, swapIn: Int64) -> TaskDemand {
        guard swapIn > 0 else { return d }
        let extra = Int(ceilDiv(swapIn, swapPollNs))
        return TaskDemand(wcet: d.wcet + swapIn, npr: max(d.npr, swapPollNs), regions: d.regions + extra)
    }

    /// Per swappable task, what swapping adds (ns), for reports.
    public struct SwapCharge: Codable, Sendable, Equatable {
        /// Bound on one swap-in of the task's weights, and on one request's wait.
        public var swapInNs: Int64
        public var waitNs: Int64
        /// Swap-ins a job may wait for: its own and one per reload after a preemption.
        public var requestsPerJob: Int
        enum CodingKeys: String, CodingKey {
            case swapInNs = "swap_in_ns", waitNs = "wait_ns", requestsPerJob = "requests_per_job"
        }
    }

    /// The analysis with swapping and the memory condition (see the extension's documentation).
    /// Without a budget it is ``analyze(_:demands:margin:)``.
    ///
    /// `ioCores`: where the swap I/O thread runs (nil: on any of the set's cores); tasks on other
    /// cores are not charged its CPU time.
    public static func analyze(_ set: TaskSet, demands: [TaskDemand], margin: Double = 1, memory: MemoryAccount?,
                               swap model: SwapTimeModel?, ioCores: [Int]? = nil) -> AnalysisResult {
        guard let memory, memory.budget != nil else { return analyze(set, demands: demands, margin: margin) }
        do { try memory.check() } catch {
            var r = analyze(set, demands: demands, margin: margin)
            for i in r.tasks.indices {
                r.tasks[i].schedulable = false
                r.tasks[i].note = "memory: \((error as? TaskSetError)?.message ?? "\(error)")"
            }
            return r
        }
        let swappable = set.tasks.indices.filter { memory.tasks[$0].swappableBytes > 0 }
        guard !swappable.isEmpty else { return analyze(set, demands: demands, margin: margin) }
        guard let model else {
            var r = analyze(set, demands: demands, margin: margin)
            for i in swappable {
                r.tasks[i].schedulable = nil
                r.tasks[i].note = "swapped task without a measured swap-in time: not analysed"
            }
            return r
        }
        let (inflated, charges, unbounded) = swapDemands(set, demands: demands, memory: memory, model: model, ioCores: ioCores)
        var r = analyze(set, demands: inflated, margin: margin)
        r.method += " + swap-ins as execution (suspension-oblivious)"
        for i in unbounded {
            r.tasks[i].schedulable = false
            r.tasks[i].bound = nil
            r.tasks[i].note = "the swap I/O is overloaded: no bound on a swap-in's wait"
        }
        for i in r.tasks.indices {
            if let c = charges[i] {
                let note = c.waitNs == Int64.max ? "" : String(format: "swap-in ≤ %.2f ms, wait ≤ %.2f ms, ≤ %d swap-ins/job", Double(c.swapInNs) / 1e6,
                                  Double(c.waitNs) / 1e6, c.requestsPerJob)
                r.tasks[i].note = r.tasks[i].note.isEmpty ? note : r.tasks[i].note + "; " + note
                if !memory.fitsRunningJobs && r.tasks[i].schedulable == true {
                    r.tasks[i].schedulable = false
                    r.tasks[i].note += "; memory: the weights of jobs that can hold cores at once do not fit the budget, so a swap-in may wait for room (not bounded)"
                }
            }
        }
        return r
    }

    /// The demands with swapping charged, each swappable task's charge (nil for others), and
    /// the tasks whose wait has no bound.
    static func swapDemands(_ set: TaskSet, demands: [TaskDemand], memory: MemoryAccount, model: SwapTimeModel,
                            ioCores: [Int]?) -> ([TaskDemand], [SwapCharge?], unbounded: [Int]) {
        let n = set.tasks.count
        let priorities = set.priorities
        let preemptive = set.preemption == .layer && set.policy != .fifo
        let units = schedulingUnits(set)
        var unitOf = Array(repeating: 0, count: n)
        var dedicated = Array(repeating: false, count: n)
        var uniprocessor = Array(repeating: false, count: n)
        for (u, unit) in units.enumerated() {
            for i in unit.tasks {
                unitOf[i] = u
                if case .dedicated = unit.kind { dedicated[i] = true }
                if case .processors(1, _) = unit.kind, !unit.lock { uniprocessor[i] = true }
            }
        }
        let swappable = (0..<n).filter { memory.tasks[$0].swappableBytes > 0 }
        let t = set.tasks.map(\.period), d = set.tasks.map(\.deadline)
        /// Whether a job of h may preempt a job of k (on the same cores, by the policy).
        func mayPreempt(_ h: Int, _ k: Int) -> Bool {
            guard preemptive, h != k, unitOf[h] == unitOf[k], !dedicated[k] else { return false }
            return set.policy == .fixedPriority ? priorities[h] > priorities[k] : true
        }
        /// Whether a request of j may be served before a waiting request of k.
        func servedFirst(_ j: Int, _ k: Int) -> Bool {
            set.policy == .fixedPriority ? priorities[j] > priorities[k] : true
        }
        func jobs(_ window: Int64, _ j: Int) -> Int64 { ceilDiv(window, t[j]) + 1 }
        var s = Array(repeating: Int64(0), count: n), c = Array(repeating: Int64(0), count: n)
        var preemptions = Array(repeating: Int64(0), count: n)
        for k in swappable {
            s[k] = model.bound(memory.tasks[k].swappableBytes)
            c[k] = model.cpuBound(memory.tasks[k].swappableBytes)
            for h in 0..<n where mayPreempt(h, k) { preemptions[k] += jobs(d[k], h) }
            preemptions[k] = min(preemptions[k], Int64(max(demands[k].regions - 1, 0)))
        }
        // ρ_k, swap-ins per job beyond the first: a released job's weights are evicted only for
        // another task's demand swap-in (prefetches never evict a released job), and a job
        // only loses them while preempted. On one processor under fixed priorities, the jobs
        // that run meanwhile are of higher priority, so only their demands count (a recursion
        // down the priority order); otherwise every other swapped task's demands count (a
        // fixed point). Both are capped by the job's preemptions.
        var rho = Array(repeating: Int64(0), count: n)
        let order = swappable.sorted { priorities[$0] > priorities[$1] }
        // On one processor under fixed priorities, a preempted job's weights are evicted only
        // after every other resident task's but those of higher priority (victims are taken
        // unreleased first, then by lowest priority); so when the always-resident bytes, the
        // job's weights, its higher-priority swapped tasks' and what other groups of cores can
        // hold (plus one transfer for them) fit, it never loses them.
        var neverEvicted = Array(repeating: false, count: n)
        if set.policy == .fixedPriority, let budget = memory.budget {
            for k in swappable where uniprocessor[k] {
                var bytes = memory.alwaysResident + memory.tasks[k].swappableBytes
                for j in swappable where j != k && unitOf[j] == unitOf[k] && priorities[j] > priorities[k] {
                    bytes += memory.tasks[j].swappableBytes
                }
                var elsewhere = memory
                elsewhere.runningAtOnce = memory.runningAtOnce.filter { !$0.tasks.contains(k) }
                bytes += elsewhere.concurrentWorkingSet
                let outside = swappable.filter { unitOf[$0] != unitOf[k] }.map { memory.tasks[$0].swappableBytes }.max() ?? 0
                neverEvicted[k] = bytes + outside <= budget
            }
        }
        // On one processor under fixed priorities, j's demand can evict preempted k only when
        // the always-resident bytes, k's and j's weights and those of the swapped tasks between
        // them in priority (preempted too, and evicted after k) exceed the budget; everything
        // else is evicted first.
        var canEvict = Array(repeating: Array(repeating: true, count: n), count: n)
        if set.policy == .fixedPriority, let budget = memory.budget, swappable.allSatisfy({ unitOf[$0] == unitOf[swappable[0]] }) {
            for k in swappable where uniprocessor[k] {
                for j in swappable where j != k && priorities[j] > priorities[k] {
                    var bytes = memory.alwaysResident + memory.tasks[k].swappableBytes + memory.tasks[j].swappableBytes
                    for h in swappable where h != j && h != k && priorities[h] > priorities[k] && priorities[h] < priorities[j] {
                        bytes += memory.tasks[h].swappableBytes
                    }
                    canEvict[k][j] = bytes > budget
                }
            }
        }
        for _ in 0..<64 {
            var changed = false
            for k in order where preemptions[k] > 0 && !neverEvicted[k] {
                var evicting: Int64 = 0
                for j in swappable where j != k {
                    if uniprocessor[k] && unitOf[j] == unitOf[k] && !mayPreempt(j, k) { continue }
                    if canEvict[k][j] == false { continue }
                    evicting += jobs(d[k], j) * (1 + rho[j])
                }
                let value = min(preemptions[k], evicting)
                if value != rho[k] { rho[k] = value; changed = true }
            }
            if !changed { break }
        }
        // W_k, one request's wait: its own transfer, one transfer in progress (a prefetch, say),
        // and the requests served before it meanwhile. Int64.max when not within 4 deadlines.
        var w = Array(repeating: Int64(0), count: n)
        for k in swappable {
            // A less urgent transfer in progress gives way after its current chunk.
            let blocking = swappable.count > 1 ? model.bound(WeightSwapper.chunkBytes) : 0
            var value = s[k] + blocking
            var iterations = 0
            while true {
                var next = s[k] + blocking
                for j in swappable where j != k && servedFirst(j, k) {
                    next = next &+ jobs(value, j) * (1 + rho[j]) * s[j]
                }
                iterations += 1
                if next == value { break }
                if next > d[k] * 4 || next < 0 || iterations > iterationLimit { value = Int64.max; break }
                value = next
            }
            w[k] = value
        }
        let ioShared = { (i: Int) in ioCores.map { !Set($0).isDisjoint(with: set.cores(of: i)) } ?? true }
        var out = demands
        var charges: [SwapCharge?] = Array(repeating: nil, count: n)
        var unbounded: [Int] = []
        for i in 0..<n {
            let own = swappable.contains(i) ? w[i] : 0
            // The I/O thread's CPU time, where it runs on the task's cores: every transfer
            // (prefetch, own request, reloads) of every job that can overlap the task's window.
            var io: Int64 = 0
            if ioShared(i) {
                for j in swappable { io += jobs(d[i] + d[j], j) * (2 + rho[j]) * c[j] }
            }
            if own == Int64.max {
                unbounded.append(i)
            } else {
                // The waits are the job's own (suspension-oblivious); they are preemptible, so a
                // region grows only by the runner's polling interval (and the I/O thread's CPU time).
                let waits = own.multipliedReportingOverflow(by: 1 + rho[i])
                if waits.overflow { unbounded.append(i); continue }
                out[i] = TaskDemand(wcet: demands[i].wcet + waits.partialValue + io,
                                    npr: max(demands[i].npr, own > 0 ? Self.swapPollNs : 0) + io, regions: demands[i].regions)
            }
            if swappable.contains(i) {
                charges[i] = SwapCharge(swapInNs: s[i], waitNs: w[i], requestsPerJob: Int(1 + rho[i]))
            }
        }
        return (out, charges, unbounded)
    }
}

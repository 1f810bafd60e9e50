import Metronome

/// A discrete-event simulation of a task set under Metronome's own scheduling rules: the
/// same ``DispatchTable`` as the real dispatcher, the same k-exclusion lock rule, the same
/// releases and overrun handling — with execution times chosen instead of measured.
///
/// It answers "what if" before deploying, and it refutes the analysis: when
/// ``ScheduleAnalysis`` calls a task schedulable, no simulated job of it may miss or respond
/// later than its bound (the property tests check that on thousands of random sets).
/// Scheduling overheads are zero; a job's execution is split into `regions` equal
/// non-preemptive regions (layers), each at most the task's longest region.
public enum Simulator {
    public enum Execution: Sendable, Equatable {
        /// Every job takes its WCET.
        case wcet
        /// Each job takes a seeded random fraction in [minFraction, 1] of its WCET.
        case uniform(minFraction: Double, seed: UInt64)
        /// Job n of task i takes `times[i][n % times[i].count]` ns (replaying a measured run).
        case trace([[Int64]])
    }

    public struct Options: Sendable {
        /// Releases happen while `offset + n·period < duration`; nil: three hyperperiods
        /// after the largest offset (see ``defaultDuration(_:)``).
        public var duration: Int64?
        public var execution: Execution

        public init(duration: Int64? = nil, execution: Execution = .wcet) {
            self.duration = duration
            self.execution = execution
        }
    }

    /// Simulated releases never exceed this many in all (about a second of simulation).
    public static let releaseLimit = 2_000_000

    /// Three hyperperiods after the largest offset, shortened so that the releases stay
    /// within ``releaseLimit``; `shortened` tells whether that happened.
    public static func defaultDuration(_ set: TaskSet) -> (duration: Int64, shortened: Bool) {
        let offset = set.tasks.map(\.offset).max() ?? 0
        var h: Int64 = 1
        var overflow = false
        for t in set.tasks {
            let g = gcd(h, t.period)
            let (p, o) = (h / g).multipliedReportingOverflow(by: t.period)
            if o || p > Int64.max / 8 { overflow = true; break }
            h = p
        }
        let perNs = set.tasks.reduce(0.0) { $0 + 1 / Double($1.period) }
        let cap = Int64(Double(releaseLimit) / perNs)
        if overflow || Double(h) * 3 > Double(cap) { return (offset + cap, true) }
        return (offset + 3 * h, false)
    }

    static func gcd(_ a: Int64, _ b: Int64) -> Int64 { b == 0 ? a : gcd(b, a % b) }

    /// Simulates `set` with each task's demand; throws for sets whose behaviour Metronome
    /// leaves to the OS (unmanaged tasks sharing cores without a 1-exclusion lock).
    /// `widthDemands[i]`, for a task with `widths`, holds its demand at each width (narrowest
    /// first): each job runs at the width ``WidthSelector`` picks, as in a real run.
    public static func run(_ set: TaskSet, demands: [TaskDemand], widthDemands: [[TaskDemand]]? = nil,
                           options: Options = Options()) throws -> RunResult {
        precondition(demands.count == set.tasks.count, "one demand per task")
        if let d = options.duration {
            let releases = set.tasks.reduce(0.0) { $0 + Double(max(d - $1.offset, 0)) / Double($1.period) }
            guard releases <= Double(releaseLimit) else {
                throw TaskSetError(path: "duration", message: String(format: "simulating %@ would release %.3g jobs; at most %d (shorten the duration)",
                                                                     DurationText.format(d), releases, releaseLimit))
            }
        }
        var state = try SimulationState(set: set, demands: demands, widthDemands: widthDemands, options: options)
        state.run()
        return RunResult(taskSet: set, records: state.records, elapsed: state.records.joined().compactMap(\.end).max() ?? 0,
                         realtimePriority: false,
                         timing: demands.map { TimingProfile(jobSamples: [UInt64($0.wcet)], maxLayer: UInt64($0.npr), regions: $0.regions) },
                         spans: state.spans)
    }
}

/// The simulator's world: one worker per task, the dispatch table, the lock and the clock.
struct SimulationState {
    enum Phase { case waitingCores, waitingLock, running }

    struct Job {
        var n: Int
        var release: Int64
        var sleptForRelease: Bool
        var segments: [Int64]
        var segment = 0
        var phase = Phase.waitingCores
        var segmentEnd: Int64 = 0
        var start: Int64?
        var suspendedSince: Int64?
        var suspended: Int64 = 0
        var lockWaitSince: Int64?
        var lockWait: Int64 = 0
        var holdsLock = false
        var lockAcquired: Int64?
        var lockReleased: Int64?
        var preemptions = 0
        var key: SchedulingKey
        /// Start and first region of the execution span in progress (set while running).
        var spanStart: Int64 = 0
        /// Width index, budget, execution so far (completed regions) and whether it overran.
        var width = 0
        var budget: Int64 = .max
        var executed: Int64 = 0
        var overran = false
        var execution: Int64 = 0
        var spanFirstRegion = 0
        var spanLayerEnds: [Int64] = []
    }

    let set: TaskSet
    let demands: [TaskDemand]
    /// Per task, the demand at each width (one entry for tasks without widths).
    let widthDemands: [[TaskDemand]]
    var selectors: [WidthSelector?]
    let duration: Int64
    var execution: Simulator.Execution
    var generator: SplitMix64
    var table: DispatchTable?
    let lockK: Int?
    let perLayerLock: Bool
    let priorities: [Int]
    var lockHolders = 0
    var lockWaiters: [Int] = []
    var current: [Job?]
    var backlog: [[Int]]
    var nextRelease: [Int]
    var records: [[JobRecord]]
    /// Per task: execution spans (a job computing from one dispatch to its next yield, lock
    /// hand-over or end) and lock waits longer than zero, in time order.
    var spans: [[ExecutionSpan]]
    var now: Int64 = 0

    init(set: TaskSet, demands: [TaskDemand], widthDemands: [[TaskDemand]]?, options: Simulator.Options) throws {
        let n = set.tasks.count
        if set.policy == .unmanaged {
            let disjoint = (0..<n).allSatisfy { i in
                (0..<i).allSatisfy { Set(set.cores(of: i)).isDisjoint(with: set.cores(of: $0)) }
            }
            guard disjoint || set.lockK == 1 else {
                throw TaskSetError(path: "policy", message: "unmanaged tasks sharing cores are scheduled by the OS and cannot be simulated (give each task cores of its own, or use lock: {k: 1})")
            }
        }
        self.set = set
        self.demands = demands
        let perWidth = set.tasks.indices.map { i in
            (widthDemands?[i]).flatMap { $0.count == (set.tasks[i].widths?.count ?? 1) ? $0 : nil } ?? [demands[i]]
        }
        self.widthDemands = perWidth
        // The simulator's profile of a width is its WCET: jobs at or under it show no inflation.
        selectors = perWidth.map { $0.count > 1 ? WidthSelector(wcets: $0.map(\.wcet), medians: $0.map(\.wcet)) : nil }
        duration = options.duration ?? Simulator.defaultDuration(set).duration
        execution = options.execution
        if case .uniform(_, let seed) = options.execution { generator = SplitMix64(seed: seed) } else { generator = SplitMix64(seed: 0) }
        if set.policy != .unmanaged {
            table = DispatchTable(cores: set.cores, allowed: set.tasks.indices.map { set.cores(of: $0) },
                                  threads: set.tasks.map(\.threads),
                                  preemptive: set.preemption == .layer && set.policy != .fifo)
        }
        lockK = set.lockK
        perLayerLock = set.lockK != nil && set.preemption == .layer
        priorities = set.priorities
        current = Array(repeating: nil, count: n)
        backlog = Array(repeating: [], count: n)
        nextRelease = Array(repeating: 0, count: n)
        records = Array(repeating: [], count: n)
        spans = Array(repeating: [], count: n)
    }

    /// The cores task i's job is on: its grant under a managed policy, its own cores otherwise.
    func cores(_ i: Int) -> [Int] { table?.granted(i) ?? set.cores(of: i) }

    /// Ends the execution span of task i's running job at `now`, after `job.segment` regions.
    mutating func closeSpan(_ i: Int, _ job: Job, _ ending: ExecutionSpan.Ending) {
        spans[i].append(ExecutionSpan(task: i, job: job.n, kind: .execution, start: job.spanStart, end: now, cores: cores(i),
                                      firstLayer: job.spanFirstRegion, layers: job.segment - job.spanFirstRegion,
                                      layerEnds: job.spanLayerEnds, ending: ending))
    }

    func releaseTime(_ i: Int, _ n: Int) -> Int64 { set.tasks[i].offset + Int64(n) * set.tasks[i].period }

    /// Runs until every released job has finished. At one instant, region ends come first
    /// (a job ending exactly at a release of its task does not drop it), then releases, then
    /// one dispatch: a job released at the instant cores or the lock are freed competes for
    /// them by priority, the worst case for lower-priority jobs that analyses assume.
    mutating func run() {
        while true {
            var next = Int64.max
            for i in set.tasks.indices {
                let r = releaseTime(i, nextRelease[i])
                if r < duration { next = min(next, r) }
                if let j = current[i], j.phase == .running { next = min(next, j.segmentEnd) }
            }
            guard next != Int64.max else { break }
            now = next
            for i in set.tasks.indices {
                if let j = current[i], j.phase == .running, j.segmentEnd == now { boundary(i) }
            }
            for i in set.tasks.indices where releaseTime(i, nextRelease[i]) == now && now < duration { release(i) }
            settle()
        }
    }

    // MARK: - Workers

    mutating func release(_ i: Int) {
        let n = nextRelease[i]
        nextRelease[i] += 1
        if current[i] == nil && backlog[i].isEmpty {
            start(i, n, slept: true)
        } else if set.tasks[i].overrun == .queue {
            backlog[i].append(n)
        } else {
            records[i].append(JobRecord(task: i, job: n, release: releaseTime(i, n), wakeup: nil, start: nil, end: nil,
                                        lockWait: 0, preemptions: 0, deadlineMet: false, outputOK: false, execution: 0,
                                        lockAcquired: nil, lockReleased: nil))
        }
    }

    mutating func executionTime(_ i: Int, _ n: Int, wcet c: Int64) -> Int64 {
        switch execution {
        case .wcet: return c
        case .uniform(let low, _):
            let u = Double(generator.next() >> 11) / Double(1 << 53)
            return max(1, Int64((Double(c) * (low + (1 - low) * u)).rounded()))
        case .trace(let times):
            let t = times[i]
            return t.isEmpty ? c : max(1, t[n % t.count])
        }
    }

    mutating func start(_ i: Int, _ n: Int, slept: Bool) {
        let task = set.tasks[i]
        let r = releaseTime(i, n)
        let key: SchedulingKey
        switch set.policy {
        case .edf: key = SchedulingKey(r + task.deadline, Int64(i))
        case .fifo: key = SchedulingKey(r, Int64(i))
        case .fixedPriority, .unmanaged: key = SchedulingKey(-Int64(priorities[i]), Int64(i))
        }
        // The width is chosen when the job starts computing (``resume``); until then it is
        // the widest, whose regions stand in.
        var job = Job(n: n, release: r, sleptForRelease: slept, segments: [], key: key)
        shape(&job, task: i, width: widthDemands[i].count - 1)
        current[i] = job
        if table != nil {
            table!.activate(task: i, key: key)
        } else {
            granted(i)
        }
    }

    /// A region ended: the job finishes, yields its cores, hands the lock over, or goes on.
    mutating func boundary(_ i: Int) {
        guard var job = current[i] else { return }
        job.executed += job.segments[job.segment]
        job.segment += 1
        job.spanLayerEnds.append(now)
        var abort = false
        if !job.overran && job.executed > job.budget {
            job.overran = true
            switch set.tasks[i].onOverrun {
            case .continue: break
            case .abort: abort = job.segment < job.segments.count
            case .degrade: selectors[i]?.degrade()
            }
        }
        if job.segment == job.segments.count || abort {
            closeSpan(i, job, .completed)
            if job.holdsLock {
                job.lockReleased = now
                job.holdsLock = false
                releaseLock()
            }
            table?.complete(task: i)
            let began = job.start ?? now
            records[i].append(JobRecord(
                task: i, job: job.n, release: job.release, wakeup: job.sleptForRelease ? job.release : nil,
                start: began, end: now, lockWait: job.lockWait, preemptions: job.preemptions,
                deadlineMet: !abort && now <= job.release + set.tasks[i].deadline, outputOK: !abort,
                execution: now - began - job.suspended, lockAcquired: job.lockAcquired, lockReleased: job.lockReleased,
                width: set.tasks[i].widths?[job.width], aborted: abort, overran: job.overran))
            if !abort { selectors[i]?.observe(width: job.width, execution: job.execution) }
            current[i] = nil
            if !backlog[i].isEmpty { start(i, backlog[i].removeFirst(), slept: false) }
            return
        }
        if let table, table.preemptive, table.shouldYield(i) {
            closeSpan(i, job, .preempted)
            job.preemptions += 1
            if perLayerLock && job.holdsLock {
                job.holdsLock = false
                releaseLock()
            }
            self.table!.releaseCores(i)
            job.phase = .waitingCores
            job.suspendedSince = now
            current[i] = job
            return
        }
        if perLayerLock && lockWaiters.contains(where: { current[$0]!.key < job.key }) {
            // Hand the lock over (the waiting job with the smallest key gets it) and queue again.
            closeSpan(i, job, .lockHandover)
            job.holdsLock = false
            job.phase = .waitingLock
            job.suspendedSince = now
            job.lockWaitSince = now
            current[i] = job
            releaseLock()
            lockWaiters.append(i)
            return
        }
        job.segmentEnd = now + job.segments[job.segment]
        current[i] = job
    }

    /// Grants cores, then lock places, by key.
    mutating func settle() {
        if table != nil {
            var newlyGranted: [Int] = []
            table!.schedule { newlyGranted.append($0) }
            for i in newlyGranted { granted(i) }
        }
        admitLockWaiters()
    }

    /// The job has its cores: it queues for the lock if it needs it, or runs.
    mutating func granted(_ i: Int) {
        guard var job = current[i] else { return }
        let needsLock = lockK != nil && !job.holdsLock && (perLayerLock || job.lockAcquired == nil)
        guard needsLock else {
            resume(i)
            return
        }
        job.phase = .waitingLock
        if job.suspendedSince == nil && job.start != nil { job.suspendedSince = now }
        job.lockWaitSince = now
        current[i] = job
        lockWaiters.append(i)
    }

    /// Frees one lock place; ``admitLockWaiters()`` fills it.
    mutating func releaseLock() { lockHolders -= 1 }

    /// Admits waiting jobs in key order while the lock has free places.
    mutating func admitLockWaiters() {
        guard let k = lockK else { return }
        while lockHolders < k && !lockWaiters.isEmpty {
            var best = 0
            for w in lockWaiters.indices where current[lockWaiters[w]]!.key < current[lockWaiters[best]]!.key { best = w }
            let i = lockWaiters.remove(at: best)
            lockHolders += 1
            var job = current[i]!
            job.holdsLock = true
            if job.lockAcquired == nil { job.lockAcquired = now }
            if let since = job.lockWaitSince {
                job.lockWait += now - since
                job.lockWaitSince = nil
                if now > since {
                    spans[i].append(ExecutionSpan(task: i, job: job.n, kind: .lockWait, start: since, end: now, cores: cores(i)))
                }
            }
            current[i] = job
            resume(i)
        }
    }

    /// Gives a job the regions, execution time and budget of width `w`.
    mutating func shape(_ job: inout Job, task i: Int, width w: Int) {
        let d = widthDemands[i][w]
        let l = Int64(d.regions)
        let e = max(executionTime(i, job.n, wcet: d.wcet), l)
        job.segments = (0..<l).map { e / l + ($0 < e % l ? 1 : 0) }
        job.width = w
        job.budget = set.tasks[i].budget ?? d.wcet
        job.execution = e
    }

    /// The job computes its next region.
    mutating func resume(_ i: Int) {
        guard var job = current[i] else { return }
        if job.start == nil, var selector = selectors[i] {
            // As in a real run: the widest width whose WCET fits the time left, chosen once the
            // job has its cores (and the lock).
            let w = selector.choose(timeLeft: job.release + set.tasks[i].deadline - now)
            selectors[i] = selector
            if w != job.width { shape(&job, task: i, width: w) }
        }
        if job.start == nil {
            job.start = now
            job.suspendedSince = nil
        }
        if let since = job.suspendedSince { job.suspended += now - since; job.suspendedSince = nil }
        if let since = job.lockWaitSince { job.lockWait += now - since; job.lockWaitSince = nil }
        job.phase = .running
        job.segmentEnd = now + job.segments[job.segment]
        job.spanStart = now
        job.spanFirstRegion = job.segment
        job.spanLayerEnds.removeAll(keepingCapacity: true)
        current[i] = job
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Metronome

/// Keeps a task set's model memory within its byte budget by swapping swappable tasks'
/// weights out to a file and back in, in-process (RT-Swap's idea, on CPU, by name).
///
/// - **Accounting.** Every task's always-resident bytes (arenas, scratchpads, inputs and
///   outputs, and the weights of tasks with `swap: false`) are charged when the task is added;
///   a swappable task's weights are charged while resident and from the moment their swap-in
///   starts, so the accounted bytes never exceed the budget, during transfers included.
/// - **Swap-out** is `MADV_DONTNEED` on the task's weight mappings (written to the swap file
///   once, when the task is added); **swap-in** is one read per mapping into the same addresses
///   (see ``WeightRegion``), by one I/O thread.
/// - **Who is swapped in, and when.** Demand first: a job that holds its cores and finds its
///   weights evicted asks for them, and the I/O thread serves such requests in the scheduler's
///   order (smallest key: priority, or deadline). When no job waits, it prefetches the evicted
///   task whose next release is earliest, evicting for it only tasks whose next release is later.
/// - **Eviction** picks tasks with no job holding their weights (a job holds them from the moment
///   it has its cores until it completes or is preempted), the lowest priority (largest key of
///   their next job) first, and tasks with a job released but not yet started only when nothing
///   else frees enough.
public final class WeightSwapper: @unchecked Sendable {
    /// One swap-in, for traces and reports (monotonic ns).
    public struct Transfer: Sendable, Equatable {
        public var task: Int
        public var start: UInt64
        public var end: UInt64
        public var bytes: Int
        /// Issued ahead of the job (true) or for a job waiting for it.
        public var prefetch: Bool
    }

    /// One eviction (monotonic ns).
    public struct Eviction: Sendable, Equatable {
        public var task: Int
        public var time: UInt64
        public var bytes: Int
    }

    /// How a job waiting for its weights gives its cores up to a job that should preempt it.
    public struct Preemption {
        public var shouldYield: () -> Bool
        public var yield: () -> Void
        public init(shouldYield: @escaping () -> Bool, yield: @escaping () -> Void) {
            self.shouldYield = shouldYield
            self.yield = yield
        }
    }

    /// What a job's call to ``acquire(_:key:stats:pollNs:preemption:)`` cost it.
    public struct AcquireStats {
        /// Time waiting for the weights (0 when resident).
        public var waitNs: UInt64 = 0
        /// Duration and bytes of the swap-ins that made the weights resident since the task's
        /// previous job (prefetches included).
        public var swapInNs: UInt64 = 0
        public var swapInBytes: Int = 0
        public init() {}
    }

    final class Entry {
        let regions: [WeightRegion]
        var fileOffsets: [Int] = []
        let bytes: Int
        let swappable: Bool
        var resident = true
        var loading = false
        /// Chosen as a victim; its pages are being released (outside the lock).
        var evicting = false
        var pins = 0
        var requested = false
        var requestKey = SchedulingKey(0, 0)
        /// A swap-in done for a waiting job pins the weights for it at once, so that no other
        /// request can evict them before that job wakes up (which would livelock two waiters).
        var handedPin = false
        /// The job holding the weights gave its cores up (preempted): they may still be
        /// evicted, as a last resort, for a job that has cores; it then takes them back.
        var yielded = false
        /// The next job's release (monotonic ns; 0: released now / unknown) and key.
        var nextRelease: UInt64 = 0
        var nextKey = SchedulingKey(0, 0)
        /// Swap-ins completed since the last acquire.
        var pendingNs: UInt64 = 0
        var pendingBytes = 0
        var swapIns = 0
        var swapInMaxNs: UInt64 = 0

        init(regions: [WeightRegion], swappable: Bool) {
            self.regions = regions
            bytes = regions.reduce(0) { $0 + $1.length }
            self.swappable = swappable
        }
    }

    public let budget: Int
    /// The process's resident set when the swapper was made (before the task set's models
    /// were loaded): the baseline of a run's measured resident-set delta.
    public let baselineRSS: Int
    /// The private directory the swap file was created in. Both are removed from the file
    /// system as soon as they exist (the open file lives on until the swapper closes), so
    /// nothing remains there however the process ends.
    public let directory: String
    public let model: SwapTimeModel?
    private let file: SwapFile
    private let monitor = Monitor()
    private let changed: Monitor.Condition
    private var entries: [Entry] = []
    private var accounted = 0
    public private(set) var peakAccounted = 0
    private var transfers: [Transfer] = []
    private var evictions: [Eviction] = []
    /// (monotonic ns, accounted bytes) after every change, for memory-over-time plots.
    private var timeline: [(UInt64, Int)] = []
    private let recordLimit = 1 << 16
    /// Transfers given up for a more urgent one (their bytes are read again later).
    public private(set) var abortedTransfers = 0
    /// A swap-in reads this much at a time, and can be preempted in between: the longest a
    /// waiting job can be held up by a less urgent transfer is one chunk.
    public static let chunkBytes = 4 << 20
    private var thread: pthread_t?
    private var stopping = false
    private var failure: String?
    private var closed = false
    /// The I/O thread's real-time priority (0: normal scheduling).
    private let ioPriority: Int32
    /// The cores the I/O thread runs on (nil: wherever the process may run).
    public let ioCores: [Int]?

    /// Cores of this machine outside the set's: where the I/O thread takes no time from jobs.
    /// nil when the set uses every core.
    public static func spareCores(for set: TaskSet) -> [Int]? {
        let spare = Affinity.availableCores().filter { !set.cores.contains($0) }
        return spare.isEmpty ? nil : spare
    }

    /// Creates the swap directory (a new private one inside `memory.swapDirectory`, or the
    /// system's temporary directory) and file, measures the swap-in time model when
    /// `calibrate`, and starts the I/O thread.
    public init(memory: TaskSet.Memory, calibrate: Bool, margin: Double = 1.2, ioPriority: Int32 = 55,
                ioCores: [Int]? = nil, log: (String) -> Void = { _ in }) throws {
        self.ioCores = ioCores
        budget = memory.budget
        ProcessMemory.fixMmapThreshold()
        ProcessMemory.returnFreedMemory()
        baselineRSS = ProcessMemory.residentBytes()
        let parent = memory.swapDirectory ?? (ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/var/tmp")
        var template = Array((parent as NSString).appendingPathComponent("metronome-swap-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TaskSetError(path: "memory.swap_dir", message: "cannot create a directory in '\(parent)': \(String(cString: strerror(errno)))")
        }
        directory = String(cString: made)
        do {
            file = try SwapFile(creating: (directory as NSString).appendingPathComponent("weights.swap"))
            model = calibrate ? try SwapTimeModel.calibrate(directory: directory, margin: margin) : nil
        } catch {
            rmdir(directory)
            throw TaskSetError(path: "memory.swap_dir", message: "\(error)")
        }
        // The swap file's name is already gone (``SwapFile``); with the directory empty, it goes
        // too, so a killed run leaves nothing in swap_dir.
        rmdir(directory)
        changed = monitor.condition()
        self.ioPriority = ioPriority
        transfers.reserveCapacity(recordLimit)
        evictions.reserveCapacity(recordLimit)
        timeline.reserveCapacity(recordLimit)
        if let model { log("  " + model.text) }
        guard let t = RealtimeThread.spawn({ [unowned self] in self.ioLoop() }) else {
            close()
            throw MetronomeError.backend("cannot start the swap I/O thread")
        }
        thread = t
    }

    deinit { close() }

    /// Stops the I/O thread; the swap file's space is released with its descriptors. Idempotent.
    public func close() {
        let first: Bool = monitor.withLock {
            if closed { return false }
            closed = true
            stopping = true
            changed.broadcast()
            return true
        }
        guard first else { return }
        if let thread { RealtimeThread.join(thread) }
    }

    /// Bytes in the swap file (every swapped task's weights, written once).
    public var swapFileBytes: Int { file.sizeBytes }

    /// Adds task `task` (tasks are added in index order): charges its always-resident bytes and,
    /// when swappable, writes its weights to the swap file and evicts them.
    public func add(task: Int, regions: [WeightRegion], swappable: Bool, otherBytes: Int) throws {
        precondition(task == entries.count, "tasks are added in order")
        let e = Entry(regions: regions, swappable: swappable)
        if swappable {
            e.fileOffsets = try regions.map { try $0.write(to: file) }
            for r in regions { try r.evict() }
            e.resident = false
        }
        monitor.withLock {
            entries.append(e)
            charge(otherBytes + (swappable ? 0 : e.bytes))
        }
    }

    /// Bytes accounted now.
    public var accountedBytes: Int { monitor.withLock { accounted } }

    /// Whether task `task`'s weights are resident now.
    public func isResident(_ task: Int) -> Bool { monitor.withLock { entries[task].resident && !entries[task].loading } }

    /// Makes task `task`'s weights resident (waiting for the I/O thread if needed) and holds
    /// them until ``release(_:)``. Allocation-free when they are resident.
    ///
    /// While it waits, `preemption.shouldYield` (if given) is asked about every `pollNs`, and
    /// when it says so the job's request is withdrawn and `preemption.yield` gives its cores
    /// to the job that should preempt it (and returns once they are back), both without the
    /// swapper's lock held: a wait for weights never blocks other work. The request is
    /// withdrawn meanwhile so that weights read in during the yield are not held for a job
    /// without cores (a job holding cores could otherwise wait for them forever).
    public func acquire(_ task: Int, key: SchedulingKey, stats: inout AcquireStats,
                        pollNs: UInt64 = 250_000, preemption: Preemption? = nil) throws {
        monitor.lock()
        defer { monitor.unlock() }
        let e = entries[task]
        if !e.swappable { e.pins += 1; return }
        if !(e.resident && !e.loading) {
            let t0 = MonotonicClock.now()
            e.requested = true
            e.requestKey = key
            changed.broadcast()
            while !(e.resident && !e.loading) && failure == nil && !stopping {
                if let preemption {
                    changed.wait(timeoutNs: pollNs)
                    if e.resident && !e.loading { break }
                    monitor.unlock()
                    let yielding = preemption.shouldYield()
                    monitor.lock()
                    if yielding {
                        e.yielded = true
                        changed.broadcast()
                        monitor.unlock()
                        preemption.yield()
                        monitor.lock()
                        e.yielded = false
                    }
                } else {
                    changed.wait()
                }
                // Evicted again while this job was preempted: ask again.
                if !e.resident && !e.loading && !e.requested && !e.handedPin {
                    e.requested = true
                    changed.broadcast()
                }
            }
            e.requested = false
            stats.waitNs += MonotonicClock.now() - t0
            if let failure { throw MetronomeError.io(failure) }
            if stopping && !e.resident { throw MetronomeError.io("the swap I/O thread stopped") }
        }
        if e.handedPin { e.handedPin = false } else { e.pins += 1 }
        stats.swapInNs += e.pendingNs
        stats.swapInBytes += e.pendingBytes
        e.pendingNs = 0
        e.pendingBytes = 0
    }

    /// Acquires only if no wait on other jobs is needed: returns false (holding nothing) when
    /// the weights are evicted and cannot be made resident by evicting unheld tasks.
    public func tryAcquire(_ task: Int) throws -> Bool {
        let fits: Bool = monitor.withLock {
            let e = entries[task]
            if !e.swappable || e.resident { return true }
            let free = budget - accounted + entries.indices.reduce(0) { s, j in
                s + (evictable(j, for: task, prefetch: false) ? entries[j].bytes : 0)
            }
            return free >= e.bytes
        }
        guard fits else { return false }
        var stats = AcquireStats()
        try acquire(task, key: SchedulingKey(Int64.min, Int64(task)), stats: &stats)
        return true
    }

    /// The job holding task `task`'s weights is preempted: they stay, but may be evicted (as a
    /// last resort) for a job that has cores. ``resume(_:key:stats:pollNs:preemption:)`` takes
    /// them back.
    public func suspend(_ task: Int) {
        monitor.withLock {
            entries[task].yielded = true
            changed.broadcast()
        }
    }

    /// The preempted job has its cores again: keeps its weights if they stayed, else waits for them
    /// as ``acquire(_:key:stats:pollNs:preemption:)`` does.
    public func resume(_ task: Int, key: SchedulingKey, stats: inout AcquireStats, pollNs: UInt64 = 250_000,
                       preemption: Preemption? = nil) throws {
        let kept: Bool = monitor.withLock {
            let e = entries[task]
            e.yielded = false
            return !e.swappable || (e.pins > 0 && e.resident)
        }
        if !kept { try acquire(task, key: key, stats: &stats, pollNs: pollNs, preemption: preemption) }
    }

    /// Lets the weights of task `task` be evicted again (a job completed or was preempted).
    public func release(_ task: Int) {
        monitor.withLock {
            entries[task].pins -= 1
            if entries[task].pins == 0 { changed.broadcast() }
        }
    }

    /// Tells the I/O thread when task `task` releases its next job and that job's key, so that
    /// it can prefetch (and choose victims) ahead of time.
    public func expect(_ task: Int, release: UInt64, key: SchedulingKey) {
        monitor.withLock {
            entries[task].nextRelease = release
            entries[task].nextKey = key
            changed.broadcast()
        }
    }

    /// Swaps the largest swapped task other than `except` out and in, over and over, on the
    /// I/O thread's cores, until `stop()` says so: what timing runs see beside them, so that
    /// measured execution times include what swapping does to other cores (TLB shootdowns of
    /// evictions, memory traffic of reads). The task's weights stay charged throughout, so the
    /// budget holds. Does nothing when no such task can be made resident without waiting.
    func exercise(except: Int, stop: @escaping () -> Bool) throws {
        let candidates = entries.indices.filter { $0 != except && entries[$0].swappable }
            .sorted { entries[$0].bytes > entries[$1].bytes }
        guard let j = try candidates.first(where: { try tryAcquire($0) }) else { return }
        defer { release(j) }
        if let ioCores { Affinity.pinCurrentThread(to: ioCores) }
        let e = entries[j]
        while !stop() {
            for (r, offset) in zip(e.regions, e.fileOffsets) {
                try r.evict()
                try r.load(from: file, at: offset)
            }
        }
    }

    // MARK: The I/O thread

    private func charge(_ bytes: Int) {
        accounted += bytes
        peakAccounted = max(peakAccounted, accounted)
        if timeline.count < recordLimit { timeline.append((MonotonicClock.now(), accounted)) }
    }

    private func ioLoop() {
        if let ioCores { Affinity.pinCurrentThread(to: ioCores) }
        if ioPriority > 0 { _ = RealtimeThread.makeFIFO(priority: ioPriority) }
        monitor.lock()
        defer { monitor.unlock() }
        while !stopping {
            if let (i, prefetch, victims) = nextTransfer() {
                let e = entries[i]
                e.loading = true
                // Pages are released outside the lock (madvise on a large region takes
                // milliseconds), then their bytes are uncharged and the new ones charged.
                monitor.unlock()
                var evictionError: Error?
                for j in victims {
                    for r in entries[j].regions {
                        do { try r.evict() } catch { evictionError = error }
                    }
                }
                let now = MonotonicClock.now()
                monitor.lock()
                for j in victims {
                    entries[j].evicting = false
                    charge(-entries[j].bytes)
                    if evictions.count < recordLimit { evictions.append(Eviction(task: j, time: now, bytes: entries[j].bytes)) }
                }
                if let evictionError {
                    e.loading = false
                    failure = "eviction failed: \(evictionError)"
                    changed.broadcast()
                    return
                }
                charge(e.bytes)
                monitor.unlock()
                let t0 = MonotonicClock.now()
                var error: Error?
                var aborted = false
                // In chunks: between two, a waiting job with a smaller key than this transfer's
                // (any waiting job, for a prefetch) preempts it; the bytes read so far are dropped.
                let key = prefetch ? nil : Optional(e.requestKey)
                outer: for (r, offset) in zip(e.regions, e.fileOffsets) {
                    var done = 0
                    while done < r.length {
                        let n = min(Self.chunkBytes, r.length - done)
                        do { try file.read(into: r.base + done, bytes: n, at: offset + done) } catch let err { error = err; break outer }
                        done += n
                        if done < r.length || r !== e.regions.last {
                            let preempt: Bool = monitor.withLock {
                                entries.indices.contains { j in
                                    j != i && entries[j].requested && !entries[j].resident && !entries[j].loading && !entries[j].evicting
                                        && (key == nil || entries[j].requestKey < key!)
                                }
                            }
                            if preempt { aborted = true; break outer }
                        }
                    }
                }
                let t1 = MonotonicClock.now()
                monitor.lock()
                e.loading = false
                if aborted {
                    for r in e.regions { try? r.evict() }
                    charge(-e.bytes)
                    abortedTransfers += 1
                    changed.broadcast()
                    continue
                }
                if let error {
                    failure = "swap-in of task \(i) failed: \(error)"
                    charge(-e.bytes)
                    changed.broadcast()
                    return
                }
                e.resident = true
                if e.requested {
                    e.requested = false
                    e.handedPin = true
                    e.pins += 1
                }
                e.pendingNs += t1 - t0
                e.pendingBytes += e.bytes
                e.swapIns += 1
                e.swapInMaxNs = max(e.swapInMaxNs, t1 - t0)
                if transfers.count < recordLimit {
                    transfers.append(Transfer(task: i, start: t0, end: t1, bytes: e.bytes, prefetch: prefetch))
                }
                changed.broadcast()
            } else {
                changed.wait()
            }
        }
    }

    /// The next swap-in to start, with room already made for it (the lock is held): the waiting
    /// job with the smallest key, else the earliest next release among evicted tasks.
    private func nextTransfer() -> (Int, Bool, [Int])? {
        var demand: Int?
        for (i, e) in entries.enumerated() where e.requested && !e.resident && !e.loading && !e.evicting {
            if demand == nil || e.requestKey < entries[demand!].requestKey { demand = i }
        }
        if let d = demand {
            // A waiting job is served first; if there is no room, wait for a job to finish.
            return makeRoom(for: d, prefetch: false).map { (d, false, $0) }
        }
        var candidate: Int?
        for (i, e) in entries.enumerated() where e.swappable && !e.resident && !e.loading && !e.evicting && e.nextRelease > 0 {
            if candidate == nil || e.nextRelease < entries[candidate!].nextRelease { candidate = i }
        }
        if let c = candidate, let victims = makeRoom(for: c, prefetch: true) { return (c, true, victims) }
        return nil
    }

    /// Whether task `j`'s weights may be evicted to bring in `task`'s (the lock is held).
    private func evictable(_ j: Int, for task: Int, prefetch: Bool) -> Bool {
        let v = entries[j]
        guard j != task, v.swappable, v.resident, !v.loading, !v.evicting else { return false }
        // Held by a job: only by a demand, and only while that job is preempted.
        if v.pins > 0 && (prefetch || !v.yielded) { return false }
        // A prefetch only displaces tasks needed later than the one it brings in.
        return !prefetch || v.nextRelease > entries[task].nextRelease
    }

    /// Chooses unheld tasks to evict so that `task`'s weights fit, and marks them evicted (the
    /// caller releases their pages and uncharges them); nil (choosing nothing) when they cannot
    /// be made to fit now.
    private func makeRoom(for task: Int, prefetch: Bool) -> [Int]? {
        let need = accounted + entries[task].bytes - budget
        if need <= 0 { return [] }
        let now = MonotonicClock.now()
        var victims = entries.indices.filter { evictable($0, for: task, prefetch: prefetch) }
        // Not yet released (or released later) first, then released but not held, then held by
        // a preempted job; within each, the lowest priority (largest key) first.
        func rank(_ j: Int) -> Int { entries[j].pins > 0 ? 2 : (entries[j].nextRelease <= now ? 1 : 0) }
        victims.sort { a, b in
            if rank(a) != rank(b) { return rank(a) < rank(b) }
            if entries[a].nextKey != entries[b].nextKey { return entries[a].nextKey > entries[b].nextKey }
            return entries[a].nextRelease > entries[b].nextRelease
        }
        var freed = 0
        var chosen = 0
        for j in victims where freed < need {
            freed += entries[j].bytes
            chosen += 1
        }
        guard freed >= need else { return nil }
        for j in victims.prefix(chosen) {
            let v = entries[j]
            v.resident = false
            v.evicting = true
            if v.pins > 0 {
                // Taken from a preempted job: it asks again when it has its cores back.
                v.pins = 0
                if v.handedPin { v.handedPin = false; v.requested = true }
            }
        }
        return Array(victims.prefix(chosen))
    }

    // MARK: Results

    /// What happened, for the run's result: transfers, evictions and the accounted bytes over
    /// time (monotonic ns), and per task its swap-in count and longest swap-in.
    public struct Log: Sendable {
        public var transfers: [Transfer]
        public var evictions: [Eviction]
        public var timeline: [(time: UInt64, bytes: Int)]
        public var swapIns: [Int]
        public var swapInMaxNs: [UInt64]
        public var peakAccounted: Int
    }

    public func log() -> Log {
        monitor.withLock {
            Log(transfers: transfers, evictions: evictions, timeline: timeline.map { (time: $0.0, bytes: $0.1) },
                swapIns: entries.map(\.swapIns), swapInMaxNs: entries.map(\.swapInMaxNs), peakAccounted: peakAccounted)
        }
    }

    /// Forgets what was recorded (transfers, evictions, counts), keeping the state: called at
    /// the start of a run so that its log covers the run only.
    public func resetLog() {
        monitor.withLock {
            transfers.removeAll(keepingCapacity: true)
            evictions.removeAll(keepingCapacity: true)
            timeline.removeAll(keepingCapacity: true)
            timeline.append((MonotonicClock.now(), accounted))
            peakAccounted = accounted
            for e in entries {
                e.swapIns = 0
                e.swapInMaxNs = 0
                e.pendingNs = 0
                e.pendingBytes = 0
            }
        }
    }
}

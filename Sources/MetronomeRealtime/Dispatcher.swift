/// Which job gets which cores: the dispatch rule itself, without threads or locks, so that
/// the real ``Dispatcher`` and the ``Simulator`` make exactly the same decisions.
///
/// Every task has at most one job in the table at a time. A job asks for `threads` cores
/// within its allowed set; the highest-priority waiting jobs are granted first, and a job
/// that cannot be granted reserves its allowed cores so that lower-priority jobs do not
/// take them (no priority inversion through the dispatcher). With preemption, the
/// lowest-priority running jobs holding cores a waiting higher-priority job needs are
/// marked to yield at their next layer boundary.
///
/// All bookkeeping lives in arrays sized at creation, so dispatching never allocates.
struct DispatchTable {
    struct Slot {
        var allowed: [Int]
        var threads: Int
        var active = false
        var key = SchedulingKey(0, 0)
        var granted: [Int]
        var isGranted = false
        var preempt = false
    }

    private(set) var slots: [Slot]
    private var free: [Bool]
    private var reserved: [Bool]
    private var order: [Int]
    let preemptive: Bool

    /// `allowed[i]` and `threads[i]` describe task i.
    init(cores: [Int], allowed: [[Int]], threads: [Int], preemptive: Bool) {
        let size = (cores + allowed.joined()).max().map { $0 + 1 } ?? 1
        free = Array(repeating: false, count: size)
        for c in cores { free[c] = true }
        reserved = Array(repeating: false, count: size)
        slots = zip(allowed, threads).map { a, t in
            var granted: [Int] = []
            granted.reserveCapacity(t)
            return Slot(allowed: a.sorted(), threads: t, granted: granted)
        }
        order = []
        order.reserveCapacity(allowed.count)
        self.preemptive = preemptive
    }

    /// A job of `task` enters with `key`; call ``schedule(granted:)`` next.
    mutating func activate(task: Int, key: SchedulingKey) {
        slots[task].active = true
        slots[task].key = key
        slots[task].isGranted = false
    }

    /// The job gives its cores back and waits to be granted again (a yield at a boundary).
    mutating func releaseCores(_ task: Int) {
        if slots[task].isGranted { for c in slots[task].granted { free[c] = true } }
        slots[task].isGranted = false
        slots[task].preempt = false
    }

    /// The job finished: frees its cores and leaves the table.
    mutating func complete(task: Int) {
        releaseCores(task)
        slots[task].active = false
    }

    func isGranted(_ task: Int) -> Bool { slots[task].isGranted }
    func shouldYield(_ task: Int) -> Bool { slots[task].preempt }
    func granted(_ task: Int) -> [Int] { slots[task].granted }

    private func before(_ a: Int, _ b: Int) -> Bool { (slots[a].key, a) < (slots[b].key, b) }

    /// Grants cores in priority order, calling `granted` for each newly granted task, and
    /// recomputes the preemption requests.
    mutating func schedule(granted: (Int) -> Void) {
        order.removeAll(keepingCapacity: true)
        for t in slots.indices {
            slots[t].preempt = false
            if slots[t].active && !slots[t].isGranted {
                // Insertion keeps `order` sorted by priority.
                var j = order.count
                order.append(t)
                while j > 0 && before(t, order[j - 1]) { order[j] = order[j - 1]; j -= 1 }
                order[j] = t
            }
        }
        for c in reserved.indices { reserved[c] = false }
        for t in order {
            var available = 0
            for c in slots[t].allowed where free[c] && !reserved[c] { available += 1 }
            if available >= slots[t].threads {
                slots[t].granted.removeAll(keepingCapacity: true)
                for c in slots[t].allowed where free[c] && !reserved[c] && slots[t].granted.count < slots[t].threads {
                    slots[t].granted.append(c)
                    free[c] = false
                }
                slots[t].isGranted = true
                granted(t)
                continue
            }
            for c in slots[t].allowed { reserved[c] = true }
            guard preemptive else { continue }
            var needed = slots[t].threads - available
            while needed > 0 {
                // The lowest-priority running job below t that holds cores t may use.
                var victim = -1
                for v in slots.indices where slots[v].isGranted && !slots[v].preempt && before(t, v) {
                    guard slots[v].granted.contains(where: { slots[t].allowed.contains($0) }) else { continue }
                    if victim < 0 || before(victim, v) { victim = v }
                }
                guard victim >= 0 else { break }
                slots[victim].preempt = true
                for c in slots[victim].granted where slots[t].allowed.contains(c) { needed -= 1 }
            }
        }
    }
}

/// Assigns processor cores to ready jobs by priority — Metronome's own, deterministic
/// global scheduler (partitioned when tasks' core sets are disjoint): a ``DispatchTable``
/// behind a monitor, with one condition per task for the worker threads to wait on.
final class Dispatcher: @unchecked Sendable {
    private let monitor = Monitor()
    private var conditions: [Monitor.Condition] = []
    private var table: DispatchTable
    let preemptive: Bool

    /// `allowed[i]` and `threads[i]` describe task i.
    init(cores: [Int], allowed: [[Int]], threads: [Int], preemptive: Bool) {
        table = DispatchTable(cores: cores, allowed: allowed, threads: threads, preemptive: preemptive)
        self.preemptive = preemptive
        conditions = allowed.indices.map { _ in monitor.condition() }
    }

    /// Blocks until task `task`'s job is granted cores; returns them.
    func acquire(task: Int, key: SchedulingKey) -> [Int] {
        monitor.lock()
        defer { monitor.unlock() }
        table.activate(task: task, key: key)
        schedule()
        return waitForGrant(task)
    }

    /// Whether a higher-priority job wants this task's cores (checked at layer boundaries).
    func shouldYield(task: Int) -> Bool {
        monitor.withLock { table.shouldYield(task) }
    }

    /// Gives the task's cores back and waits to be granted again (possibly other cores).
    func yield(task: Int) -> [Int] {
        monitor.lock()
        defer { monitor.unlock() }
        table.releaseCores(task)
        schedule()
        return waitForGrant(task)
    }

    /// The task's job finished: frees its cores.
    func complete(task: Int) {
        monitor.lock()
        defer { monitor.unlock() }
        table.complete(task: task)
        schedule()
    }

    private func schedule() {
        let conditions = self.conditions
        table.schedule { conditions[$0].signal() }
    }

    private func waitForGrant(_ task: Int) -> [Int] {
        while !table.isGranted(task) { conditions[task].wait() }
        return table.granted(task)
    }
}

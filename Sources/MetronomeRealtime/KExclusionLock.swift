import Metronome

/// A k-exclusion lock: at most `k` holders at once; waiters are admitted in priority order
/// (smallest key first, ties by arrival), unlike the FIFO kernel-module lock it replaces.
///
/// Holders are not priority-boosted: the pthread mutex guarding the lock's bookkeeping uses
/// priority inheritance for its few-instruction critical sections, but a thread that *holds*
/// one of the k slots keeps its own scheduling priority while higher-priority threads wait for
/// a slot. (Boosting holders is not well defined for k > 1 — which of the k holders would
/// inherit? — and under Metronome's managed policies every job already executes at the same
/// SCHED_FIFO priority, with the dispatcher deciding who computes.)
public final class KExclusionLock: @unchecked Sendable {
    public let k: Int
    private let monitor = Monitor()
    private let changed: Monitor.Condition
    private var holders = 0
    private var waiting: [(key: SchedulingKey, ticket: Int)] = []
    private var nextTicket = 0

    /// `expectedWaiters` reserves room in the wait queue, so that acquiring with at most that
    /// many threads waiting never allocates (a real-time run passes its task count).
    public init(k: Int, expectedWaiters: Int = 16) {
        self.k = max(1, k)
        changed = monitor.condition()
        waiting.reserveCapacity(max(1, expectedWaiters))
    }

    /// Threads blocked in ``acquire(key:)`` right now (not yet admitted).
    public var waiters: Int { monitor.withLock { waiting.count } }

    /// Current holders.
    public var holderCount: Int { monitor.withLock { holders } }

    /// Blocks until admitted; returns the nanoseconds spent waiting.
    @discardableResult
    public func acquire(key: SchedulingKey) -> UInt64 {
        let t0 = MonotonicClock.now()
        monitor.lock()
        waitForAdmission(key)
        monitor.unlock()
        // Another waiter may also fit when k > 1.
        changed.broadcast()
        return MonotonicClock.now() - t0
    }

    /// A holder's preemption point (a layer boundary): keeps the lock unless a job with a
    /// smaller key waits, and otherwise hands its place over and waits to be admitted again,
    /// in key order. Returns the nanoseconds spent waiting (0 when it kept the lock).
    @discardableResult
    public func pass(key: SchedulingKey) -> UInt64 {
        monitor.lock()
        guard waiting.contains(where: { $0.key < key }) else {
            monitor.unlock()
            return 0
        }
        let t0 = MonotonicClock.now()
        holders -= 1
        changed.broadcast()
        waitForAdmission(key)
        monitor.unlock()
        changed.broadcast()
        return MonotonicClock.now() - t0
    }

    /// Queues `key` and waits until it is the smallest waiting key and a place is free.
    /// Caller holds the monitor.
    private func waitForAdmission(_ key: SchedulingKey) {
        let ticket = nextTicket
        nextTicket += 1
        waiting.append((key, ticket))
        while !(holders < k && waiting.min(by: { ($0.key, $0.ticket) < ($1.key, $1.ticket) })?.ticket == ticket) {
            changed.wait()
        }
        // In place: keeps the reserved capacity.
        waiting.removeAll { $0.ticket == ticket }
        holders += 1
    }

    public func release() {
        monitor.withLock { holders -= 1 }
        changed.broadcast()
    }
}

/// Orders jobs for dispatch and locking: smaller keys run first.
public struct SchedulingKey: Comparable, Sendable {
    public var primary: Int64
    public var secondary: Int64

    public init(_ primary: Int64, _ secondary: Int64) {
        self.primary = primary
        self.secondary = secondary
    }

    public static func < (a: SchedulingKey, b: SchedulingKey) -> Bool {
        (a.primary, a.secondary) < (b.primary, b.secondary)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Metronome

/// A pthread mutex with condition variables, heap-allocated so its address never moves.
final class Monitor: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    /// Priority inheritance: a low-priority thread holding the lock (the coordinator at the
    /// barrier, say) is boosted while real-time workers wait for it.
    init() {
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_setprotocol(&attr, Int32(PTHREAD_PRIO_INHERIT))
        pthread_mutex_init(mutex, &attr)
        pthread_mutexattr_destroy(&attr)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    @inline(__always)
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }

    /// A condition variable bound to this monitor's mutex.
    final class Condition: @unchecked Sendable {
        private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        private let monitor: Monitor

        init(_ monitor: Monitor) {
            self.monitor = monitor
            pthread_cond_init(cond, nil)
        }

        deinit {
            pthread_cond_destroy(cond)
            cond.deallocate()
        }

        /// Waits; the monitor must be locked by the caller.
        func wait() { pthread_cond_wait(cond, monitor.mutex) }
        /// Waits at most `ns` nanoseconds; the monitor must be locked by the caller.
        func wait(timeoutNs ns: UInt64) {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let total = UInt64(now.tv_nsec) + ns
            var deadline = timespec(tv_sec: now.tv_sec + Int(total / 1_000_000_000), tv_nsec: Int(total % 1_000_000_000))
            pthread_cond_timedwait(cond, monitor.mutex, &deadline)
        }
        func signal() { pthread_cond_signal(cond) }
        func broadcast() { pthread_cond_broadcast(cond) }
    }

    func condition() -> Condition { Condition(self) }
}

/// Real-time thread facilities of Linux.
public enum RealtimeThread {
    /// Sleeps until the absolute monotonic time `ns` (no drift: the wake-up time does not
    /// depend on when the sleep began).
    public static func sleep(untilMonotonic ns: UInt64) {
        var ts = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
    }

    /// Switches the calling thread to SCHED_FIFO at `priority` (1–99); false if not permitted.
    @discardableResult
    public static func makeFIFO(priority: Int32) -> Bool {
        var param = sched_param()
        param.sched_priority = max(1, min(99, priority))
        return pthread_setschedparam(pthread_self(), SCHED_FIFO, &param) == 0
    }

    /// Starts `body` on a new joinable thread.
    static func spawn(_ body: @escaping @Sendable () -> Void) -> pthread_t? {
        final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { raw in
            let b = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            b.body()
            return nil
        }, box)
        guard status == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            return nil
        }
        return thread
    }

    static func join(_ thread: pthread_t) { pthread_join(thread, nil) }
}

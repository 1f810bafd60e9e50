import Dispatch
import Synchronization

/// A signal from one thread to another that wakes the waiter within a microsecond or two
/// when it arrives soon, and sleeps otherwise.
///
/// Branch-parallel runs hand work to a lane's thread and back once per segment, tens of
/// times per inference; a semaphore alone costs tens of microseconds per wake-up, which
/// on a 5 ms network is several percent. The waiter spins for up to `spin` nanoseconds,
/// then announces that it sleeps; the poster wakes it only then. (The sleeping flag and
/// the counter are sequentially consistent, so a post can never be missed.)
final class Handoff: @unchecked Sendable {
    private let posted = Atomic<Int>(0)
    private let sleeping = Atomic<Bool>(false)
    private let semaphore = DispatchSemaphore(value: 0)
    /// Posts the waiter has taken (only the waiting thread touches it).
    private var taken = 0

    func post() {
        posted.add(1, ordering: .sequentiallyConsistent)
        if sleeping.exchange(false, ordering: .sequentiallyConsistent) { semaphore.signal() }
    }

    /// Waits for the next post (each post is taken once).
    func wait(spin: UInt64 = 50_000) {
        taken += 1
        func arrived() -> Bool { posted.load(ordering: .sequentiallyConsistent) >= taken }
        if arrived() { return }
        let start = MonotonicClock.now()
        var i = 0
        while !arrived() {
            i &+= 1
            if i & 63 == 0 && MonotonicClock.now() &- start > spin {
                sleeping.store(true, ordering: .sequentiallyConsistent)
                if arrived() {
                    // The poster may already have seen the flag and signalled: take that signal.
                    if !sleeping.exchange(false, ordering: .sequentiallyConsistent) { semaphore.wait() }
                    return
                }
                semaphore.wait()
                return
            }
        }
    }
}

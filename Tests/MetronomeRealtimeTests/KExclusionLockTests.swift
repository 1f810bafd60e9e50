import Foundation
import MetronomeRealtime
import XCTest

/// The lock's admission order, observed with real threads queued one at a time.
final class KExclusionLockTests: XCTestCase {
    /// Indices in the order threads were admitted.
    final class Admissions: @unchecked Sendable {
        private let lock = NSLock()
        private var order: [Int] = []
        func append(_ i: Int) { lock.lock(); order.append(i); lock.unlock() }
        var snapshot: [Int] { lock.lock(); defer { lock.unlock() }; return order }
    }

    /// Blocks threads until opened.
    final class Gate: @unchecked Sendable {
        private let condition = NSCondition()
        private var isOpen = false
        func wait() { condition.lock(); while !isOpen { condition.wait() }; condition.unlock() }
        func open() { condition.lock(); isOpen = true; condition.broadcast(); condition.unlock() }
    }

    /// Polls `condition` until it holds or 10 s pass.
    func waitUntil(_ what: String, _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(10)
        while !condition() {
            if Date() > deadline { XCTFail("timed out waiting until \(what)"); return }
            usleep(200)
        }
    }

    func testWaitersAreAdmittedByKeyThenArrivalNotFIFO() {
        let lock = KExclusionLock(k: 1)
        lock.acquire(key: SchedulingKey(-1_000, 0))
        // Arrival order is the array order; equal keys (indices 0 and 4, 1 and 3 in primary)
        // check the tie-break by arrival.
        let keys = [SchedulingKey(5, 0), SchedulingKey(1, 2), SchedulingKey(3, 1), SchedulingKey(1, 0),
                    SchedulingKey(5, 0), SchedulingKey(2, 9), SchedulingKey(-7, 4), SchedulingKey(3, 1)]
        let admitted = Admissions()
        for (i, key) in keys.enumerated() {
            Thread {
                lock.acquire(key: key)
                admitted.append(i)
                lock.release()
            }.start()
            // Queue one thread at a time so that arrival order is known.
            waitUntil("thread \(i) waits") { lock.waiters == i + 1 }
        }
        XCTAssertEqual(admitted.snapshot, [], "nobody enters while the lock is held")
        lock.release()
        waitUntil("every thread was admitted") { admitted.snapshot.count == keys.count }
        // Expected: by key, ties by arrival (a stable sort of the arrival order).
        let expected = keys.indices.sorted { (keys[$0], $0) < (keys[$1], $1) }
        XCTAssertEqual(expected, [6, 3, 1, 5, 2, 7, 0, 4])
        XCTAssertEqual(admitted.snapshot, expected)
        waitUntil("the lock is free") { lock.holderCount == 0 }
    }

    func testKHoldersAtOnceAndTheSmallestKeyGetsAFreedSlot() {
        let lock = KExclusionLock(k: 2)
        lock.acquire(key: SchedulingKey(0, 0))
        lock.acquire(key: SchedulingKey(0, 1))
        XCTAssertEqual(lock.holderCount, 2)
        let admitted = Admissions()
        let keys = [SchedulingKey(9, 0), SchedulingKey(4, 0), SchedulingKey(6, 0)]
        let gate = Gate()
        for (i, key) in keys.enumerated() {
            Thread {
                lock.acquire(key: key)
                admitted.append(i)
                gate.wait()  // hold until the test lets everyone go
                lock.release()
            }.start()
            waitUntil("thread \(i) waits") { lock.waiters == i + 1 }
        }
        lock.release()
        waitUntil("one thread is admitted") { admitted.snapshot.count == 1 }
        usleep(20_000)
        XCTAssertEqual(admitted.snapshot, [1], "the freed slot goes to the smallest key, and only one enters")
        XCTAssertEqual(lock.holderCount, 2)
        lock.release()
        waitUntil("a second thread is admitted") { admitted.snapshot.count == 2 }
        XCTAssertEqual(admitted.snapshot, [1, 2])
        gate.open()
        waitUntil("all were admitted and left") { admitted.snapshot.count == 3 && lock.holderCount == 0 }
        XCTAssertEqual(admitted.snapshot, [1, 2, 0])
    }

    /// A layer boundary under the lock: the holder keeps it while only lower-priority jobs wait,
    /// and hands it to a waiting higher-priority job otherwise, then queues behind it.
    func testPassKeepsTheLockUnlessAHigherPriorityJobWaits() {
        let lock = KExclusionLock(k: 1)
        let me = SchedulingKey(5, 0)
        lock.acquire(key: me)
        let admitted = Admissions()
        Thread { lock.acquire(key: SchedulingKey(9, 1)); admitted.append(9); lock.release() }.start()
        waitUntil("the low-priority job waits") { lock.waiters == 1 }
        XCTAssertEqual(lock.pass(key: me), 0, "no higher-priority waiter: kept without waiting")
        XCTAssertEqual(lock.holderCount, 1)
        Thread { lock.acquire(key: SchedulingKey(1, 2)); admitted.append(1); usleep(2000); lock.release() }.start()
        waitUntil("the high-priority job waits") { lock.waiters == 2 }
        let waited = lock.pass(key: me)
        admitted.append(5)
        XCTAssertGreaterThan(waited, 0)
        XCTAssertEqual(admitted.snapshot, [1, 5], "the high-priority job ran in between; the low one still waits")
        lock.release()
        waitUntil("the low-priority job ran") { admitted.snapshot.count == 3 }
        XCTAssertEqual(admitted.snapshot, [1, 5, 9])
    }
}

import CAllocationCounter
import Foundation
import Metronome
import MetronomeRealtime
import XCTest

/// "A job allocates nothing of its own": counts the worker thread's heap allocations (every
/// malloc-family call of the process goes through Tests/CAllocationCounter) between the
/// runner's ``JobObserver`` callbacks, which bracket a job's whole path: dispatcher, lock,
/// inference, output check, priority changes and the appended record.
///
/// oneDNN itself allocates a few small blocks in every `dnnl_primitive_execute` (it builds its
/// argument maps per call; about seven per primitive), which Metronome cannot avoid. So each
/// job must allocate exactly what a bare ``Executor`` run of the same plan allocates on a warm
/// thread — the runtime adds nothing — and that count is reported.
final class JobAllocationTests: XCTestCase {
    /// Allocation counts per (task, job), in storage allocated before the run, so recording
    /// them allocates nothing either.
    final class Counts: @unchecked Sendable {
        let jobs: Int
        let start: UnsafeMutablePointer<UInt64>
        let delta: UnsafeMutablePointer<UInt64>
        let tasks: Int
        static let unobserved = UInt64.max

        init(tasks: Int, jobs: Int) {
            self.tasks = tasks
            self.jobs = jobs
            start = .allocate(capacity: tasks * jobs)
            start.initialize(repeating: 0, count: tasks * jobs)
            delta = .allocate(capacity: tasks * jobs)
            delta.initialize(repeating: Self.unobserved, count: tasks * jobs)
        }

        deinit {
            start.deallocate()
            delta.deallocate()
        }

        var observer: JobObserver {
            JobObserver(begin: { t, j in self.start[t * self.jobs + j] = metronome_test_thread_allocations() },
                        end: { t, j in self.delta[t * self.jobs + j] = metronome_test_thread_allocations() - self.start[t * self.jobs + j] })
        }

        func of(task: Int) -> [UInt64] { (0..<jobs).map { delta[task * jobs + $0] } }
    }

    func testCounterSeesAllocationsOfThisThreadOnly() {
        let before = metronome_test_thread_allocations()
        let data = Data(count: 1 << 16)
        XCTAssertEqual(data.count, 1 << 16)
        XCTAssertGreaterThan(metronome_test_thread_allocations() - before, 0, "the counter must see a heap allocation")
        // Another thread's allocations are not counted here.
        let go = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let other = Thread {
            go.wait()
            XCTAssertEqual(Data(count: 1 << 16).count, 1 << 16)
            done.signal()
        }
        other.start()
        let mark = metronome_test_thread_allocations()
        go.signal()
        done.wait()
        XCTAssertEqual(metronome_test_thread_allocations() - mark, 0)
    }

    /// Allocations of one bare run of `plan` on this (warmed-up) thread: oneDNN's own.
    func engineAllocations(_ plan: Plan) throws -> UInt64 {
        XCTAssertEqual(plan.referenceKernelCount, 0, "only oneDNN primitives and copies")
        let executor = try Executor(plan: plan)
        var generator = SplitMix64(seed: 5)
        let buffers = PlanBuffers(plan: plan, generator: &generator)
        let boundary: (Int) throws -> Void = { _ in }
        for _ in 0..<3 { try executor.run(inputs: buffers.inputPointers, outputs: buffers.outputPointers) }
        var counts: [UInt64] = []
        counts.reserveCapacity(5)
        for _ in 0..<5 {
            let before = metronome_test_thread_allocations()
            try executor.run(inputs: buffers.inputPointers, outputs: buffers.outputPointers, boundary: boundary)
            counts.append(metronome_test_thread_allocations() - before)
        }
        XCTAssertEqual(Set(counts).count, 1, "a warm engine run allocates the same every time: \(counts)")
        return counts.min()!
    }

    /// Runs `set` with the observer; returns per-task allocation counts per job and the records.
    func measure(_ set: TaskSet) throws -> ([[UInt64]], RunResult, [UInt64], [PreparedTask]) {
        let prepared = try RealtimeRunner.prepare(set, loader: RunnerTests.loader, timingRuns: 2)
        let engine = try prepared.map { try engineAllocations($0.plan) }
        let counts = Counts(tasks: set.tasks.count, jobs: set.jobs!)
        let result = try RealtimeRunner.run(set, prepared: prepared, observer: counts.observer)
        return (set.tasks.indices.map(counts.of), result, engine, prepared)
    }

    func assertNoAllocations(_ set: TaskSet, file: StaticString = #filePath, line: UInt = #line) throws {
        let (counts, result, engine, prepared) = try measure(set)
        // The spans recorded on the job path (preemptions, lock hand-overs) are complete too.
        RunnerTests.assertSpansMatchRecords(result, prepared, file: file, line: line)
        for (i, perJob) in counts.enumerated() {
            print("\(set.name)/\(set.tasks[i].name): oneDNN allocates \(engine[i]) blocks per job; jobs: \(perJob)")
            let completed = Set(result.records[i].filter { !$0.skipped }.map(\.job))
            XCTAssertGreaterThan(completed.count, 0, file: file, line: line)
            for (job, n) in perJob.enumerated() where completed.contains(job) {
                XCTAssertNotEqual(n, Counts.unobserved, "task \(i) job \(job) was not observed", file: file, line: line)
                XCTAssertEqual(n, engine[i], "task \(set.tasks[i].name) job \(job): \(n) allocations, a bare engine run makes \(engine[i])",
                               file: file, line: line)
            }
            XCTAssertTrue(result.records[i].filter { !$0.skipped }.allSatisfy(\.outputOK), file: file, line: line)
        }
    }

    /// Managed: two tasks share a core under fixed priorities with layer preemption and a
    /// per-layer k = 1 lock, so jobs go through dispatch, yielding and the lock on every layer.
    func testManagedJobsWithPreemptionAndLockAddNoAllocations() throws {
        let core = Affinity.availableCores()[0]
        let set = TaskSet(name: "alloc", jobs: 30, policy: .fixedPriority, preemption: .layer, lockK: 1, cores: [core], tasks: [
            .init(name: "high", model: "small", period: 3_000_000, priority: 2),
            .init(name: "low", model: "medium", period: 7_000_000, priority: 1, overrun: .queue),
        ])
        try assertNoAllocations(set)
    }

    /// Unmanaged (the OS schedules) with a whole-job k = 1 lock, and EDF across two cores.
    func testUnmanagedAndEDFJobsAddNoAllocations() throws {
        let cores = Array(Affinity.availableCores().prefix(2))
        try assertNoAllocations(TaskSet(name: "alloc-unmanaged", jobs: 20, policy: .unmanaged, preemption: .job, lockK: 1,
                                        cores: cores, tasks: [
                                            .init(name: "a", model: "small", period: 3_000_000),
                                            .init(name: "b", model: "medium", period: 5_000_000, overrun: .queue),
                                        ]))
        try assertNoAllocations(TaskSet(name: "alloc-edf", jobs: 20, policy: .edf, preemption: .layer, cores: cores, tasks: [
            .init(name: "a", model: "small", period: 3_000_000),
            .init(name: "b", model: "medium", period: 5_000_000, overrun: .queue),
            .init(name: "c", model: "small", period: 4_000_000),
        ]))
    }
}

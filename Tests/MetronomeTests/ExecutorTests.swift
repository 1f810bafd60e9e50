import XCTest
import Foundation
import Metronome
import MetronomeModels

final class ExecutorTests: XCTestCase {

    static func resnet() throws -> Program { try Program(lowering: Zoo.resNet(depth: 18, inputSize: 32), batch: 1) }
    static func mobilenet() throws -> Program { try Program(lowering: Zoo.mobileNetV2(inputSize: 32), batch: 2) }

    func testExecutorReuseGivesIdenticalResults() throws {
        let program = try Self.resnet()
        let plan = try Plan.compile(program)
        let executor = try Executor(plan: plan)
        let a = TestSupport.inputs(for: program, seed: 1)
        let b = TestSupport.inputs(for: program, seed: 2)
        let first = try executor.run(a)
        assertClose(first, try TestSupport.reference(program, a), "first run")
        for i in 0..<3 {
            XCTAssertEqual(try executor.run(a), first, "run \(i) on the same input")
        }
        // A different input in between must not leave state behind.
        let other = try executor.run(b)
        XCTAssertNotEqual(other, first)
        XCTAssertEqual(try executor.run(a), first)
        XCTAssertEqual(try executor.run(b), other)
        // A second executor of the same plan agrees exactly.
        XCTAssertEqual(try Executor(plan: plan).run(a), first)
    }

    /// The pointer-based API writes caller-owned buffers and reads inputs from caller memory.
    func testRunOnCallerBuffers() throws {
        let program = try Self.mobilenet()
        let plan = try Plan.compile(program)
        let executor = try Executor(plan: plan)
        let input = TestSupport.inputs(for: program, seed: 3)[0]
        let expected = try executor.run([input])[0]
        var output = [Float](repeating: .nan, count: expected.count)
        try input.scalars.withUnsafeBufferPointer { x in
            try output.withUnsafeMutableBufferPointer { y in
                for _ in 0..<2 { try executor.run(inputs: [x.baseAddress!], outputs: [y.baseAddress!]) }
            }
        }
        XCTAssertEqual(output, expected.scalars)
        XCTAssertThrowsError(try executor.run(inputs: [], outputs: []))
    }

    func testTwoPlansRunConcurrently() throws {
        let programs = [try Self.resnet(), try Self.mobilenet()]
        let plans = try programs.map { try Plan.compile($0) }
        let inputs = programs.enumerated().map { TestSupport.inputs(for: $0.element, seed: UInt64(10 + $0.offset)) }
        let sequential = try plans.indices.map { try Executor(plan: plans[$0]).run(inputs[$0]) }
        for i in plans.indices {
            assertClose(sequential[i], try TestSupport.reference(programs[i], inputs[i]), "plan \(i)")
        }

        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var outputs: [Int: [[Tensor]]] = [:]
            var errors: [String] = []
        }
        let results = Results()
        let rounds = 4
        // Two threads, each with its own executor of a different plan, plus a third and fourth
        // thread sharing the first plan (each with its own executor).
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            let which = t % 2
            do {
                let executor = try Executor(plan: plans[which])
                var mine: [[Tensor]] = []
                for _ in 0..<rounds { mine.append(try executor.run(inputs[which])) }
                results.lock.lock(); results.outputs[t] = mine; results.lock.unlock()
            } catch {
                results.lock.lock(); results.errors.append("\(error)"); results.lock.unlock()
            }
        }
        XCTAssertEqual(results.errors, [])
        for t in 0..<4 {
            let mine = results.outputs[t] ?? []
            XCTAssertEqual(mine.count, rounds, "thread \(t)")
            for (r, out) in mine.enumerated() {
                XCTAssertEqual(out, sequential[t % 2], "thread \(t) round \(r)")
            }
        }
    }

    /// Runs `body` on a fresh thread (so that pinning never affects the test runner's own threads).
    func onFreshThread(_ body: @escaping @Sendable () -> Void) {
        let done = expectation(description: "thread finished")
        let thread = Thread {
            body()
            done.fulfill()
        }
        thread.stackSize = 8 << 20
        thread.start()
        wait(for: [done], timeout: 120)
    }

    func testPinnedExecutorGivesCorrectResults() throws {
        let program = try Self.resnet()
        let input = TestSupport.inputs(for: program, seed: 4)
        let expected = try TestSupport.reference(program, input)
        let plans = [try Plan.compile(program), try Plan.compile(program, options: CompileOptions(threads: 2))]
        let cores = Affinity.availableCores()
        XCTAssertFalse(cores.isEmpty)
        XCTAssertTrue(cores.contains(0))
        final class Box: @unchecked Sendable { var outputs: [[Tensor]] = []; var errors: [String] = [] }
        // Each executor on its own fresh thread: one thread pinned to core 0, a two-thread team
        // over all cores, and a two-thread team sharing core 0.
        let configurations: [(Int, [Int])] = [(0, [0]), (1, cores), (1, [0])]
        var runs: [Box] = []
        for (planIndex, coreList) in configurations {
            let box = Box()
            onFreshThread {
                do {
                    let executor = try Executor(plan: plans[planIndex], cores: coreList)
                    box.outputs.append(try executor.run(input))
                    box.outputs.append(try executor.run(input))
                } catch {
                    box.errors.append("\(error)")
                }
            }
            runs.append(box)
        }
        for (i, box) in runs.enumerated() {
            XCTAssertEqual(box.errors, [], "configuration \(i)")
            XCTAssertEqual(box.outputs.count, 2, "configuration \(i)")
            for out in box.outputs { assertClose(out, expected, "pinned configuration \(i)") }
            if box.outputs.count == 2 { XCTAssertEqual(box.outputs[0], box.outputs[1], "configuration \(i)") }
        }
        XCTAssertEqual(try Executor(plan: plans[0], cores: [0]).cores, [0])
        XCTAssertNil(try Executor(plan: plans[0]).cores)
    }

    /// BUG: `Affinity.availableCores()` (and so `Affinity.validate`, which every
    /// `Executor(plan:cores:)` calls) reads the *calling thread's* affinity mask
    /// (`sched_getaffinity(0, …)`, Affinity.swift line 11), not the process's, although it is documented as "the cores
    /// this process may run on". Running a pinned executor pins the calling thread itself (it is
    /// the OpenMP team's master), so afterwards that thread sees only the pinned cores as
    /// "available", and creating an executor for any other core on that thread throws
    /// "core 1 is not available on this machine (available: 0)".
    func testPinnedRunDoesNotShrinkAvailableCores() throws {
        let cores = Affinity.availableCores()
        try XCTSkipIf(cores.count < 2, "needs at least two cores")
        let program = try Program(lowering: Zoo.mobileNetV2(inputSize: 32), batch: 1)
        let plan = try Plan.compile(program)
        let input = TestSupport.inputs(for: program, seed: 6)
        final class Box: @unchecked Sendable { var after: [Int] = []; var errors: [String] = [] }
        let box = Box()
        onFreshThread {
            do {
                _ = try Executor(plan: plan, cores: [cores[0]]).run(input)
                box.after = Affinity.availableCores()
                _ = try Executor(plan: plan, cores: [cores[1]]).run(input)
            } catch {
                box.errors.append("\(error)")
            }
        }
        XCTAssertEqual(box.after, cores, "available cores after a pinned run on this thread")
        XCTAssertEqual(box.errors, [], "an executor for another core on the same thread")
    }

    func testLatencyStatistics() throws {
        var rng = SplitMix64(seed: 5)
        let tenShuffled = (1...10).map(Double.init).shuffled(using: &rng)
        let s = try LatencyStatistics(tenShuffled)
        XCTAssertEqual(s.count, 10)
        XCTAssertEqual(s.minimum, 1)
        XCTAssertEqual(s.maximum, 10)
        XCTAssertEqual(s.median, 5.5)
        XCTAssertEqual(s.p90, 9)
        XCTAssertEqual(s.p99, 10)
        XCTAssertEqual(s.mean, 5.5)

        let hundred = try LatencyStatistics((1...100).reversed().map(Double.init))
        XCTAssertEqual(hundred.median, 50.5)
        XCTAssertEqual(hundred.p90, 90)
        XCTAssertEqual(hundred.p99, 99)
        XCTAssertEqual(hundred.mean, 50.5)

        // Nearest rank on a non-round count: p90 of 7 samples is the 7th (ceil 6.3), p99 the 7th.
        let seven = try LatencyStatistics([7, 1, 6, 2, 5, 3, 4])
        XCTAssertEqual(seven.median, 4)
        XCTAssertEqual(seven.p90, 7)
        XCTAssertEqual(seven.p99, 7)
        // 20 samples: p90 is the 18th value, p99 the 20th.
        let twenty = try LatencyStatistics((1...20).map { Double($0 * 10) })
        XCTAssertEqual(twenty.p90, 180)
        XCTAssertEqual(twenty.p99, 200)
        XCTAssertEqual(twenty.median, 105)

        let one = try LatencyStatistics([3.5])
        XCTAssertEqual([one.minimum, one.median, one.p90, one.p99, one.maximum, one.mean], [3.5, 3.5, 3.5, 3.5, 3.5, 3.5])
        let outlier = try LatencyStatistics(Array(repeating: 1, count: 99) + [1000])
        XCTAssertEqual(outlier.p99, 1)
        XCTAssertEqual(outlier.maximum, 1000)
        XCTAssertEqual(outlier.median, 1)
        XCTAssertThrowsError(try LatencyStatistics([]))

        // Codable round trip (reports are written as JSON).
        let data = try JSONEncoder().encode(s)
        XCTAssertEqual(try JSONDecoder().decode(LatencyStatistics.self, from: data), s)
    }

    func testMonotonicClockNeverGoesBackwards() {
        var last = MonotonicClock.now()
        for _ in 0..<1000 {
            let now = MonotonicClock.now()
            XCTAssertGreaterThanOrEqual(now, last)
            last = now
        }
    }

    func testPlanReportsItsShapeAndSizes() throws {
        let program = try Self.mobilenet()
        let plan = try Plan.compile(program)
        XCTAssertEqual(plan.inputNames, ["input"])
        XCTAssertEqual(plan.outputNames.count, 1)
        XCTAssertEqual(plan.threads, 1)
        XCTAssertGreaterThan(plan.weightBytes, 0)
        XCTAssertGreaterThan(plan.arenaBytes, 0)
        XCTAssertGreaterThan(plan.kernelCount, plan.oneDNNKernelCount)  // plus the output copy
        XCTAssertEqual(plan.referenceKernelCount, 0, "every mobilenet step has a oneDNN kernel")
        let reference = try Plan.compile(program, options: CompileOptions(backend: .reference))
        XCTAssertEqual(reference.oneDNNKernelCount, 0)
        XCTAssertEqual(reference.referenceKernelCount, reference.program.steps.count)
    }
}

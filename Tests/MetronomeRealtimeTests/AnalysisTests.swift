import Metronome
import MetronomeRealtime
import XCTest

final class AnalysisTests: XCTestCase {
    let ms: Int64 = 1_000_000

    func profile(_ c: Int64, layer: Int64 = 0) -> TimingProfile {
        TimingProfile(jobSamples: [UInt64(c)], maxLayer: UInt64(layer))
    }

    func set(_ policy: TaskSet.Policy, preemption: TaskSet.Preemption = .layer, _ specs: [(Int64, Int?)]) -> TaskSet {
        TaskSet(name: "a", duration: 1_000_000_000, policy: policy, preemption: preemption, cores: [0],
                tasks: specs.enumerated().map { .init(name: "t\($0.offset)", model: "m", period: $0.element.0 * ms,
                                                      priority: $0.element.1) })
    }

    /// The textbook example: C = (1, 2, 3), T = (4, 6, 12) gives R = (1, 3, 10).
    func testFixedPriorityResponseTimes() {
        let s = set(.fixedPriority, [(4, 3), (6, 2), (12, 1)])
        let r = ScheduleAnalysis.analyze(s, timing: [profile(1 * ms), profile(2 * ms), profile(3 * ms)], margin: 1)
        XCTAssertEqual(r.tasks.map(\.bound), [1 * ms, 3 * ms, 10 * ms])
        XCTAssertEqual(r.schedulable, true)
    }

    func testLayerBlockingAddsOneLowerPriorityLayer() {
        let s = set(.fixedPriority, [(4, 3), (6, 2), (12, 1)])
        let r = ScheduleAnalysis.analyze(s, timing: [profile(1 * ms), profile(2 * ms), profile(3 * ms, layer: ms / 2)], margin: 1)
        XCTAssertEqual(r.tasks[0].bound, 1 * ms + ms / 2)
    }

    func testNonPreemptiveBlockingByAWholeJob() {
        let s = set(.fixedPriority, preemption: .job, [(10, 2), (20, 1)])
        let r = ScheduleAnalysis.analyze(s, timing: [profile(2 * ms), profile(7 * ms)], margin: 1)
        XCTAssertEqual(r.tasks[0].bound, 9 * ms, "waits for the whole lower-priority job")
        XCTAssertEqual(r.tasks[1].bound, 9 * ms)
    }

    func testOverloadIsUnschedulable() {
        let s = set(.fixedPriority, [(4, 2), (6, 1)])
        let r = ScheduleAnalysis.analyze(s, timing: [profile(3 * ms), profile(3 * ms)], margin: 1)
        XCTAssertEqual(r.tasks[1].schedulable, false)
        XCTAssertEqual(r.schedulable, false)
    }

    func testEDFDemandBound() {
        let ok = ScheduleAnalysis.analyze(set(.edf, [(4, nil), (6, nil), (12, nil)]),
                                          timing: [profile(1 * ms), profile(2 * ms), profile(4 * ms)], margin: 1)
        XCTAssertEqual(ok.schedulable, true, "U = 0.25 + 0.33 + 0.33 ≤ 1")
        XCTAssertEqual(ok.tasks[2].bound, 12 * ms)
        let bad = ScheduleAnalysis.analyze(set(.edf, [(4, nil), (6, nil)]), timing: [profile(2 * ms), profile(4 * ms)], margin: 1)
        XCTAssertEqual(bad.schedulable, false)
    }

    func testMarginScalesTheEstimate() {
        let r = ScheduleAnalysis.analyze(set(.fixedPriority, [(10, 1)]), timing: [profile(2 * ms)], margin: 1.5)
        XCTAssertEqual(r.tasks[0].wcet, 3 * ms)
        XCTAssertEqual(r.tasks[0].bound, 3 * ms)
    }

    /// Unmanaged tasks sharing cores are left to the OS: no bound. A task alone on its cores
    /// responds in its execution time.
    func testUnmanagedSetsSharingCoresHaveNoBound() {
        let r = ScheduleAnalysis.analyze(set(.unmanaged, [(10, 1), (20, 2)]), timing: [profile(2 * ms), profile(3 * ms)])
        XCTAssertNil(r.tasks[0].bound)
        XCTAssertNil(r.schedulable)
        let alone = ScheduleAnalysis.analyze(set(.unmanaged, [(10, 1)]), timing: [profile(2 * ms)], margin: 1)
        XCTAssertEqual(alone.tasks[0].bound, 2 * ms)
        XCTAssertEqual(alone.schedulable, true)
    }

    func testGlobalFixedPriorityOnTwoCores() {
        let s = TaskSet(name: "g", duration: 1_000_000_000, policy: .fixedPriority, cores: [0, 1], tasks: [
            .init(name: "a", model: "m", period: 10 * ms, priority: 3),
            .init(name: "b", model: "m", period: 10 * ms, priority: 2),
            .init(name: "c", model: "m", period: 10 * ms, priority: 1),
        ])
        let r = ScheduleAnalysis.analyze(s, timing: [profile(4 * ms), profile(4 * ms), profile(4 * ms)], margin: 1)
        XCTAssertEqual(r.tasks[0].bound, 4 * ms)
        XCTAssertEqual(r.tasks[1].bound, 4 * ms, "two processors: the second task is not delayed")
        XCTAssertEqual(r.tasks[2].schedulable, true)
        XCTAssertGreaterThanOrEqual(r.tasks[2].bound!, 4 * ms)
    }
}

final class LockAnalysisTests: XCTestCase {
    /// Unmanaged tasks behind a 1-exclusion lock with per-job holding: non-preemptive fixed
    /// priority over the lock.
    func testExclusiveLockIsAnalysedAsOneProcessor() {
        let ms: Int64 = 1_000_000
        let set = TaskSet(name: "x", duration: 1_000_000_000, policy: .unmanaged, preemption: .job, lockK: 1,
                          cores: [0, 1], tasks: [
                              .init(name: "small", model: "m", period: 10 * ms, priority: 3),
                              .init(name: "large", model: "m", period: 80 * ms, priority: 1),
                          ])
        let p = [TimingProfile(jobSamples: [UInt64(2 * ms)], maxLayer: 0),
                 TimingProfile(jobSamples: [UInt64(30 * ms)], maxLayer: 0)]
        let r = ScheduleAnalysis.analyze(set, timing: p, margin: 1)
        XCTAssertEqual(r.tasks[0].bound, 32 * ms, "small can wait for a whole large job")
        XCTAssertEqual(r.tasks[0].schedulable, false)
        var two = set
        two.lockK = 2
        XCTAssertNil(ScheduleAnalysis.analyze(two, timing: p).tasks[0].bound)
    }
}

import Foundation
import Metronome
import MetronomeRealtime
import XCTest

final class WidthSelectionTests: XCTestCase {
    let ms: Int64 = 1_000_000

    /// Widths with WCETs 2, 4, 8 ms (medians 1.5, 3, 6): the widest that fits the time left.
    func testPicksTheWidestWidthThatFits() {
        var s = WidthSelector(wcets: [2 * ms, 4 * ms, 8 * ms], medians: [3 * ms / 2, 3 * ms, 6 * ms])
        XCTAssertEqual(s.choose(timeLeft: 10 * ms), 2)
        XCTAssertEqual(s.choose(timeLeft: 5 * ms), 1, "8 ms does not fit 5, 4 does")
        XCTAssertEqual(s.choose(timeLeft: 1 * ms), 0, "nothing fits: the narrowest")
        // Interference: jobs ran at twice their median; 4 ms × ~1.6 no longer fits 6 ms.
        s = WidthSelector(wcets: [2 * ms, 4 * ms, 8 * ms], medians: [3 * ms / 2, 3 * ms, 6 * ms])
        for _ in 0..<5 { s.observe(width: 2, execution: 12 * ms) }
        XCTAssertGreaterThan(s.inflation, 1.6)
        XCTAssertEqual(s.choose(timeLeft: 6 * ms), 0)
    }

    /// Down at once, up one width after three jobs in a row with room to spare.
    func testHysteresis() {
        var s = WidthSelector(wcets: [2 * ms, 4 * ms, 8 * ms], medians: [2 * ms, 4 * ms, 8 * ms])
        XCTAssertEqual(s.choose(timeLeft: 3 * ms), 0)
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 0, "one roomy job is not enough")
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 0)
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 1, "the third in a row raises one width")
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 1)
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 1)
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 2)
        XCTAssertEqual(s.choose(timeLeft: 4 * ms + 1), 1, "down at once")
        // A roomy job breaks the streak when the next one is tight.
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 1)
        XCTAssertEqual(s.choose(timeLeft: 8 * ms), 1, "8 ms fits but not with 10% to spare")
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 1)
        XCTAssertEqual(s.choose(timeLeft: 20 * ms), 1)
        s.degrade()
        XCTAssertEqual(s.current, 0)
    }

    func testWidthKeysAndErrors() throws {
        let base = "name: s\nduration: 1s\ncores: [0]\ntasks:\n  - name: a\n    period: 10ms\n"
        let set = try TaskSet.load(yaml: base + "    wcet: [1ms, 2ms, 4ms]\n    widths: [0.35, 0.5, 1.0]\n    budget: 3ms\n    on_overrun: degrade\n")
        XCTAssertEqual(set.tasks[0].widths, [0.35, 0.5, 1.0])
        XCTAssertEqual(set.tasks[0].widthWCETs, [ms, 2 * ms, 4 * ms])
        XCTAssertEqual(set.tasks[0].budget, 3 * ms)
        XCTAssertEqual(set.tasks[0].onOverrun, .degrade)
        XCTAssertEqual(TaskDemand.declaredPerWidth(set.tasks[0])?.map(\.wcet), [ms, 2 * ms, 4 * ms])
        for (extra, path) in [
            ("    wcet: [1ms, 2ms]\n    widths: [0.5, 1.0, 0.75]\n", "tasks[0].widths"),
            ("    wcet: [1ms, 2ms]\n    widths: [0.5, 1.5]\n", "tasks[0].widths"),
            ("    wcet: [1ms, 2ms, 3ms]\n    widths: [0.5, 1.0]\n", "tasks[0].wcet"),
            ("    wcet: 2ms\n    widths: [0.5, 1.0]\n", "tasks[0].wcet"),
            ("    wcet: [1ms, 2ms]\n", "tasks[0].wcet"),
            ("    wcet: 2ms\n    on_overrun: degrade\n", "tasks[0].on_overrun"),
            ("    wcet: 2ms\n    on_overrun: retry\n", "tasks[0].on_overrun"),
            ("    wcet: 2ms\n    budget: 0ms\n", "tasks[0].budget"),
            ("    model: m\n    width: 0.5\n    widths: [0.5, 1.0]\n", "tasks[0].width"),
        ] {
            XCTAssertThrowsError(try TaskSet.load(yaml: base + extra), path) { error in
                XCTAssertEqual((error as? TaskSetError)?.path, path, "\(error)")
            }
        }
    }
}

/// Width selection, budgets and overrun handling in the simulator and in real runs.
final class OverloadHandlingTests: XCTestCase {
    let ms: Int64 = 1_000_000

    func simulate(_ set: TaskSet, execution: Simulator.Execution = .wcet, duration: Int64? = nil) throws -> RunResult {
        try Simulator.run(set, demands: set.tasks.map { TaskDemand(declared: $0)! },
                          widthDemands: set.tasks.map { TaskDemand.declaredPerWidth($0)! },
                          options: .init(duration: duration, execution: execution))
    }

    /// A high-priority task takes 5 of every 10 ms; the adaptive task (WCET 1, 2, 6 ms at widths
    /// 0.25, 0.5, 1.0) starts with 5 ms left: 0.5 is the widest that fits, every time.
    func testSimulatedSelectionPicksTheWidestFeasibleWidth() throws {
        let set = TaskSet(name: "w", duration: 1, policy: .fixedPriority, preemption: .layer, cores: [0], tasks: [
            .init(name: "hog", wcet: 5 * ms, layers: 5, period: 10 * ms, priority: 2),
            .init(name: "adaptive", layers: 4, widths: [0.25, 0.5, 1.0], widthWCETs: [ms, 2 * ms, 6 * ms],
                  period: 10 * ms, priority: 1),
        ])
        let sim = try simulate(set, duration: 100 * ms)
        XCTAssertEqual(sim.records[1].map(\.width), Array(repeating: 0.5, count: 10))
        XCTAssertEqual(sim.records[1].filter { !$0.deadlineMet }.count, 0)
        // Without the hog the full width fits.
        var alone = set
        alone.tasks.removeFirst()
        XCTAssertEqual(try simulate(alone, duration: 100 * ms).records[0].map(\.width), Array(repeating: 1.0, count: 10))
    }

    /// Budgets at layer boundaries: `abort` ends an overrunning job at the next boundary without
    /// output; `degrade` finishes it and steps the following jobs one width narrower.
    func testSimulatedAbortAndDegrade() throws {
        let times = [Array(repeating: 9 * ms, count: 20)]  // every job runs 9 ms, whatever its WCET
        var set = TaskSet(name: "o", duration: 1, policy: .fixedPriority, preemption: .layer, cores: [0], tasks: [
            .init(name: "t", wcet: 3 * ms, layers: 3, onOverrun: .abort, period: 20 * ms),
        ])
        let aborted = try simulate(set, execution: .trace(times), duration: 100 * ms)
        XCTAssertTrue(aborted.records[0].allSatisfy { $0.aborted && !$0.deadlineMet && !$0.outputOK })
        // Three 3 ms regions: the budget (3 ms) is passed after the second region, so the job ends at 6 ms.
        XCTAssertEqual(aborted.records[0][0].end, 6 * ms)
        set.tasks[0] = .init(name: "t", layers: 3, widths: [0.25, 0.5, 1.0], widthWCETs: [ms, 2 * ms, 3 * ms],
                             onOverrun: .degrade, period: 20 * ms)
        let degraded = try simulate(set, execution: .trace(times), duration: 100 * ms)
        XCTAssertEqual(degraded.records[0].map(\.width), [1.0, 0.5, 0.25, 0.25, 0.25])
        XCTAssertTrue(degraded.records[0].allSatisfy { $0.overran && !$0.aborted && $0.deadlineMet })
    }

    /// Real runs: an execution budget far below the network's time with `abort` ends every job
    /// at its first layer boundary; with `degrade` and widths, the jobs run narrower and narrower.
    func testRealAbortAndDegradeAtLayerBoundaries() throws {
        let core = Affinity.availableCores()[0]
        var set = TaskSet(name: "abort", jobs: 5, policy: .fixedPriority, preemption: .layer, cores: [core], tasks: [
            .init(name: "t", model: "long", budget: 100_000, onOverrun: .abort, period: 100 * ms),
        ])
        let prepared = try RealtimeRunner.prepare(set, loader: Self.loader, timingRuns: 2)
        let run = try RealtimeRunner.run(set, prepared: prepared)
        XCTAssertTrue(run.records[0].allSatisfy { $0.aborted && !$0.outputOK && !$0.deadlineMet })
        let full = Int64(prepared[0].timing.jobSamples.min()!)
        XCTAssertTrue(run.records[0].allSatisfy { $0.execution < full / 2 }, "ended early: \(run.records[0].map(\.execution)) vs \(full)")
        XCTAssertEqual(RunSummary(run, analysis: nil).tasks[0].aborted, 5)

        set.name = "degrade"
        set.tasks[0] = .init(name: "t", model: "long", widths: [0.25, 0.5, 1.0], budget: 100_000, onOverrun: .degrade,
                             period: 100 * ms)
        let variants = try RealtimeRunner.prepare(set, loader: Self.loader, timingRuns: 2)
        XCTAssertEqual(variants[0].variantCount, 3)
        // The first job must fit at full width, so it is the budget that degrades it: on a
        // slower CPU (AVX2, ~70 ms a job) the full width's WCET can pass 100 ms, so the period
        // is at least twice that WCET.
        let fullWCET = TaskDemand(measured: variants[0].variant(2).timing, margin: 1.2).wcet
        set.tasks[0].period = max(100 * ms, 2 * fullWCET)
        set.tasks[0].deadline = set.tasks[0].period  // an implicit deadline was fixed when the task was made
        let degraded = try RealtimeRunner.run(set, prepared: variants)
        XCTAssertEqual(degraded.records[0].map(\.width), [1.0, 0.5, 0.25, 0.25, 0.25])
        XCTAssertTrue(degraded.records[0].allSatisfy { $0.overran && $0.outputOK && !$0.aborted })
        let summary = RunSummary(degraded, analysis: nil)
        XCTAssertEqual(summary.tasks[0].meanWidth ?? 0, 0.45, accuracy: 1e-9)
        XCTAssertTrue(summary.table().contains("mean width 0.45"), summary.table())
    }

    /// The runner tests' chain networks, slimmed by the task's width (channels × width).
    static let loader: RealtimeRunner.ModelLoader = { task in
        guard task.model == "long" else { throw MetronomeError.invalidArgument("unknown test model") }
        let channels = max(8, Int((64 * (task.width ?? 1)).rounded()))
        return RunnerTests.chain(channels: channels, size: 56, layers: 24, seed: 3)
    }
}

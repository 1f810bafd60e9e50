import XCTest
import Metronome
import MetronomeModels
import MetronomeRealtime

/// `branches: parallel` tasks: the branched model runs branch-parallel inside its jobs, every
/// job's outputs match the reference interpreter's, and misuse names the key.
final class BranchTaskTests: XCTestCase {
    static let config = """
        MODEL: {TYPE: mbanynet, NUM_CLASSES: 10}
        ANYNET: {STEM_TYPE: simple_stem_in, STEM_W: 16, BLOCK_TYPE: res_bottleneck_block,
                 DEPTHS: [[1, 1], [2, 1]], WIDTHS: [[16, 16], [32, 24]], STRIDES: [[1, 1], [2, 2]],
                 BOT_MULS: 0.5, GROUP_WS: [[8, 8], [8, 8]], DEVICES: [cpu, dsp]}
        TEST: {IM_SIZE: 48}
        """

    static let loader: RealtimeRunner.ModelLoader = { task in
        switch task.model {
        case "branched": return MultiBranchNetwork.build(try MultiBranchConfig.load(yaml: config, name: "branched"))
        default: return try RunnerTests.loader(task)
        }
    }

    func testParallelBranchesRunCheckedInJobs() throws {
        let cores = Affinity.availableCores()
        let two = cores.count >= 2 ? Array(cores.prefix(2)) : [cores[0], cores[0]]
        let tasks = [TaskSet.Task(name: "b", model: "branched", period: 20_000_000, priority: 10, threads: 2, branches: .parallel),
                     TaskSet.Task(name: "s", model: "small", period: 10_000_000, priority: 20)]
        let set = TaskSet(name: "branches", duration: 400_000_000, cores: Array(Set(two)).sorted(), tasks: tasks)
        let prepared = try RealtimeRunner.prepare(set, loader: Self.loader, timingRuns: 2, timing: .isolated)
        let schedule = try XCTUnwrap(prepared[0].plan.schedule, "the branched task's plan runs its branches in parallel")
        XCTAssertEqual(schedule.parallelSegments.count, 2)
        XCTAssertEqual(Set(schedule.devices.groups.map(\.device)), ["cpu", "dsp"])
        XCTAssertNil(prepared[1].plan.schedule)
        let result = try RealtimeRunner.run(set, prepared: prepared)
        let jobs = result.records[0].filter { !$0.skipped }
        XCTAssertGreaterThan(jobs.count, 5)
        XCTAssertTrue(jobs.allSatisfy(\.outputOK), "a branch-parallel job's outputs differ from the reference")
    }

    func testMisuseNamesTheKey() throws {
        func path(_ task: TaskSet.Task) -> String? {
            let set = TaskSet(name: "x", jobs: 1, cores: [Affinity.availableCores()[0]], tasks: [task])
            do {
                _ = try RealtimeRunner.prepare(set, loader: Self.loader, timingRuns: 1, timing: .isolated)
                return nil
            } catch let e as TaskSetError {
                return e.path
            } catch {
                return "unexpected \(error)"
            }
        }
        XCTAssertEqual(path(TaskSet.Task(name: "b", model: "branched", period: 20_000_000, threads: 1, branches: .parallel)), "tasks[0].threads")
        XCTAssertEqual(path(TaskSet.Task(name: "b", model: "small", period: 20_000_000, branches: .parallel)), "tasks[0].branches")
        XCTAssertThrowsError(try TaskSet.load(yaml: "name: x\njobs: 1\ntasks:\n  - {name: a, model: m, period: 1s, branches: both}\n")) {
            XCTAssertEqual(($0 as? TaskSetError)?.path, "tasks[0].branches")
        }
        XCTAssertThrowsError(try TaskSet.load(yaml: "name: x\njobs: 1\ntasks:\n  - {name: a, wcet: 1ms, period: 1s, branches: parallel}\n")) {
            XCTAssertEqual(($0 as? TaskSetError)?.path, "tasks[0].branches")
        }
        XCTAssertEqual(try TaskSet.load(yaml: "name: x\njobs: 1\ntasks:\n  - {name: a, model: m, period: 1s, branches: parallel, threads: 1}\n").tasks[0].branches, .parallel)
    }
}

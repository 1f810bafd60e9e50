import CLITestHarness
import Foundation
import Metronome
import MetronomeModels
import MetronomeRealtime
import MetronomeTransforms
import XCTest

/// The memory budget with weight swapping: real evictions (pages leave the process), exact
/// accounting, the budget held during runs, the I/O thread's order, the keys' errors and the
/// swap directory's hygiene.
final class MemoryBudgetTests: XCTestCase {
    static let mib = 1 << 20

    /// A task set on one core whose tasks use `RunnerTests`' chain models.
    static func set(budget: Int?, swapDir: String? = nil, _ tasks: [TaskSet.Task], duration: Int64 = 1_500_000_000) -> TaskSet {
        TaskSet(name: "memory", duration: duration, cores: [Affinity.availableCores()[0]], tasks: tasks,
                memory: budget.map { TaskSet.Memory(budget: $0, swapDirectory: swapDir) })
    }

    func compile(_ graph: Graph) throws -> (Program, Plan) {
        let program = try Program(lowering: graph, batch: 1)
        return (program, try Plan.compile(program, options: CompileOptions(threads: 1)))
    }

    /// Evicting releases the weights' pages for real (mincore sees none resident, and running
    /// the plan now gives different outputs); reading them back restores outputs bit for bit,
    /// and those match the reference interpreter.
    func testSwapOutThenInLeavesOutputsBitIdentical() throws {
        let graph = RunnerTests.chain(channels: 32, size: 28, layers: 5, seed: 11)
        let (program, plan) = try compile(graph)
        let executor = try Executor(plan: plan)
        var g = SplitMix64(seed: 3)
        let buffers = PlanBuffers(plan: plan, generator: &g)
        func outputs() throws -> [Float] {
            try executor.run(inputs: buffers.inputPointers, outputs: buffers.outputPointers)
            return Array(buffers.outputs[0])
        }
        let before = try outputs()
        let region = plan.weightRegion
        XCTAssertGreaterThanOrEqual(region.length, plan.weightBytes)
        XCTAssertEqual(region.length % WeightRegion.pageSize, 0)
        XCTAssertEqual(region.residentBytes(), region.length)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("metronome-swap-test-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try SwapFile(creating: dir.appendingPathComponent("w.swap").path)
        let offset = try region.write(to: file)
        try region.evict()
        XCTAssertEqual(region.residentBytes(), 0, "MADV_DONTNEED released every page")
        XCTAssertNotEqual(try outputs(), before, "with the weights gone the outputs change, so the check below can fail")
        try region.evict()
        try region.load(from: file, at: offset)
        XCTAssertEqual(region.residentBytes(), region.length)
        let after = try outputs()
        XCTAssertEqual(after.map(\.bitPattern), before.map(\.bitPattern), "bit-identical after swap-in")
        let input = try Tensor(shape: program.shape(program.inputs[0]), scalars: Array(buffers.inputs[0].prefix(program.values[program.inputs[0]].count)))
        let reference = try ReferenceRunner(program: program).run([input])[0].scalars
        let scale = reference.map(abs).max() ?? 1
        let diff = zip(after, reference).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(diff, 1e-4 * max(scale, 1e-6), "agrees with the reference interpreter")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("w.swap").path), "unlinked once open")
        let user = dir.appendingPathComponent("user.bin")
        try Data("mine".utf8).write(to: user)
        XCTAssertThrowsError(try SwapFile(creating: user.path), "never replaces an existing file")
        XCTAssertEqual(try Data(contentsOf: user), Data("mine".utf8))
    }

    /// The account is the plans' own byte counts: weights as mapped (page-rounded segments of
    /// the compiled weights), arena, scratchpad, and the buffers the task preloads; the swapper
    /// charges exactly the always-resident bytes once swapped tasks are evicted.
    func testAccountingEqualsThePlansByteSums() throws {
        let set = Self.set(budget: 512 * Self.mib, [
            TaskSet.Task(name: "a", model: "medium", period: 200_000_000, inputs: 2, swap: true),
            TaskSet.Task(name: "b", model: "small", period: 100_000_000, inputs: 3),
        ])
        let swapper = try WeightSwapper(memory: set.memory!, calibrate: false, ioPriority: 0)
        defer { swapper.close() }
        let prepared = try RealtimeRunner.prepare(set, loader: RunnerTests.loader, timingRuns: 1, timing: .isolated, swapper: swapper)
        let account = MemoryAccount(set, prepared: prepared)
        for (i, p) in prepared.enumerated() {
            let t = account.tasks[i]
            let segments = p.plan.weightRegion.segments
            XCTAssertEqual(t.weights, segments.reduce(0) { $0 + $1.span })
            XCTAssertGreaterThanOrEqual(t.weights, p.plan.weightBytes)
            XCTAssertLessThan(t.weights, p.plan.weightBytes + segments.count * (WeightRegion.pageSize + 64 * 4))
            XCTAssertEqual(t.arena, p.plan.arenaBytes)
            XCTAssertEqual(t.scratchpad, p.plan.scratchpadBytes)
            let inputFloats = p.plan.program.inputs.reduce(0) { $0 + p.plan.program.values[$1].count }
            let outputFloats = p.plan.program.outputs.reduce(0) { $0 + p.plan.program.values[$1].count }
            XCTAssertEqual(t.io, 4 * (inputFloats * set.tasks[i].inputs + outputFloats * (1 + set.tasks[i].inputs)))
        }
        XCTAssertEqual(account.alwaysResident, account.tasks[0].arena + account.tasks[0].scratchpad + account.tasks[0].io + account.tasks[1].total)
        // After preparation (the last timing run of the swapped task may have left it resident).
        let charged = swapper.accountedBytes
        XCTAssertTrue(charged == account.alwaysResident || charged == account.alwaysResident + account.tasks[0].weights, "\(charged)")
        XCTAssertEqual(prepared[0].plan.weightRegion.residentBytes() == 0, !swapper.isResident(0))
    }

    /// A budget below the always-resident bytes plus the largest swapped task's weights is
    /// refused before anything runs, naming the key and giving the numbers.
    func testTooSmallBudgetIsRefusedWithNumbers() throws {
        let set = Self.set(budget: 64 * 1024, [
            TaskSet.Task(name: "a", model: "medium", period: 200_000_000, swap: true),
            TaskSet.Task(name: "b", model: "small", period: 100_000_000),
        ])
        let swapper = try WeightSwapper(memory: set.memory!, calibrate: false, ioPriority: 0)
        defer { swapper.close() }
        XCTAssertThrowsError(try RealtimeRunner.prepare(set, loader: RunnerTests.loader, timingRuns: 1, swapper: swapper)) { error in
            let e = error as? TaskSetError
            XCTAssertEqual(e?.path, "memory.budget")
            XCTAssertTrue(e?.message.contains("65536 bytes") == true, e?.message ?? "\(error)")
            XCTAssertTrue(e?.message.contains("always resident") == true, e?.message ?? "")
        }
    }

    /// A short run of three swapped tasks whose weights do not fit together: swaps happen, every
    /// accounted sample stays within the budget, and every job's outputs match the reference
    /// interpreter (so no job ran on evicted weights).
    func testBudgetIsNeverExceededDuringARun() throws {
        let tasks = [
            TaskSet.Task(name: "hi", model: "small", period: 20_000_000),
            TaskSet.Task(name: "l1", model: "long", period: 150_000_000, swap: true),
            TaskSet.Task(name: "l2", model: "long", period: 200_000_000, swap: true),
            TaskSet.Task(name: "m", model: "medium", period: 100_000_000, swap: true),
        ]
        // Room for one long model's weights (and a medium one) besides everything always resident.
        let probeSet = Self.set(budget: 1 << 40, tasks)
        let account = MemoryAccount(probeSet, prepared: try RealtimeRunner.prepare(probeSet, loader: RunnerTests.loader, timingRuns: 1, timing: .isolated))
        let long = account.tasks[1].weights, medium = account.tasks[3].weights
        let budget = account.alwaysResident + long + medium + 4096
        let set = Self.set(budget: budget, tasks)
        let swapper = try WeightSwapper(memory: set.memory!, calibrate: false, ioPriority: 0)
        defer { swapper.close() }
        let prepared = try RealtimeRunner.prepare(set, loader: RunnerTests.loader, timingRuns: 2, timing: .isolated, swapper: swapper)
        let result = try RealtimeRunner.run(set, prepared: prepared, swapper: swapper)
        let memory = try XCTUnwrap(result.memory)
        XCTAssertGreaterThan(memory.swapIns[1] + memory.swapIns[2], 0, "the long models were swapped in")
        XCTAssertFalse(memory.accounted.isEmpty)
        for sample in memory.accounted { XCTAssertLessThanOrEqual(sample.bytes, budget, "at \(sample.time) ns") }
        XCTAssertLessThanOrEqual(memory.peakAccounted, budget)
        XCTAssertEqual(memory.accounted.map(\.bytes).max(), memory.peakAccounted)
        for records in result.records {
            for r in records where !r.skipped { XCTAssertTrue(r.outputOK, "task \(r.task) job \(r.job) computed on its own weights") }
        }
        // Swap-ins the trace attributes to jobs are the swapper's transfers (some of the last may
        // have come after the last job of their task).
        let jobs = Array(result.records.joined())
        XCTAssertLessThanOrEqual(jobs.map(\.swapInBytes).reduce(0, +), memory.transfers.map(\.bytes).reduce(0, +))
        XCTAssertGreaterThan(jobs.map(\.swapInBytes).reduce(0, +), 0)
        for r in jobs where r.swapInBytes > 0 { XCTAssertGreaterThan(r.swapIn, 0) }
        XCTAssertTrue(TraceCSV.render(result).hasPrefix(TraceCSV.header))
        XCTAssertTrue(TraceCSV.header.contains(",swap_in_ns,swap_in_bytes,swap_wait_ns,"))
        let summary = RunSummary(result, analysis: nil)
        XCTAssertEqual(summary.memory?.budgetBytes, budget)
        XCTAssertEqual(summary.tasks[1].swapIns, memory.swapIns[1])
    }

    /// With no room, waiting requests are served in scheduling order: the smaller key first,
    /// whatever the order they arrived in.
    func testSwapInsAreServedInPriorityOrder() throws {
        let plans = try (0..<3).map { try compile(RunnerTests.chain(channels: 32, size: 16, layers: 4, seed: UInt64(20 + $0))).1 }
        let w = plans[0].weightRegion.length
        let swapper = try WeightSwapper(memory: TaskSet.Memory(budget: w + w / 2), calibrate: false, ioPriority: 0)
        defer { swapper.close() }
        for (i, p) in plans.enumerated() { try swapper.add(task: i, regions: [p.weightRegion], swappable: true, otherBytes: 0) }
        var stats = WeightSwapper.AcquireStats()
        try swapper.acquire(0, key: SchedulingKey(0, 0), stats: &stats)
        // Task 1 (key 5) asks first, task 2 (key 1) second; neither fits while task 0 is held.
        let group = DispatchGroup()
        for (task, key) in [(1, Int64(5)), (2, Int64(1))] {
            DispatchQueue.global().async(group: group) {
                var s = WeightSwapper.AcquireStats()
                try? swapper.acquire(task, key: SchedulingKey(key, Int64(task)), stats: &s)
                usleep(20_000)
                swapper.release(task)
            }
            usleep(50_000)
        }
        XCTAssertFalse(swapper.isResident(1))
        XCTAssertFalse(swapper.isResident(2))
        swapper.release(0)
        XCTAssertEqual(group.wait(timeout: .now() + 10), .success)
        let order = swapper.log().transfers.map(\.task)
        XCTAssertEqual(Array(order.suffix(2)), [2, 1], "the smaller key is swapped in first")
        XCTAssertLessThanOrEqual(swapper.log().peakAccounted, w + w / 2)
    }

    func testBadMemoryKeysNameTheKey() throws {
        func path(_ yaml: String) -> String? {
            do { _ = try TaskSet.load(yaml: yaml); return nil } catch { return (error as? TaskSetError)?.path ?? "\(error)" }
        }
        let task = "tasks:\n  - {name: a, model: resnet18, period: 1s, swap: true}\n"
        XCTAssertEqual(path("name: x\njobs: 1\nmemory: {budget: -5MiB}\n" + task), "memory.budget")
        XCTAssertEqual(path("name: x\njobs: 1\nmemory: {budget: lots}\n" + task), "memory.budget")
        XCTAssertEqual(path("name: x\njobs: 1\nmemory: {swap_dir: /tmp}\n" + task), "memory.budget")
        XCTAssertEqual(path("name: x\njobs: 1\nmemory: {budget: 1GiB, bogus: 1}\n" + task), "memory.bogus")
        XCTAssertEqual(path("name: x\njobs: 1\nmemory: {budget: 1GiB, swap_dir: /no/such/dir}\n" + task), "memory.swap_dir")
        XCTAssertEqual(path("name: x\njobs: 1\n" + task), "tasks[0].swap")
        XCTAssertEqual(path("name: x\njobs: 1\nmemory: {budget: 1GiB}\ntasks:\n  - {name: a, model: resnet18, period: 1s, swap: maybe}\n"), "tasks[0].swap")
        XCTAssertEqual(path("name: x\njobs: 1\nmemory: {budget: 1GiB}\ntasks:\n  - {name: a, wcet: 1ms, period: 1s, swap: true}\n"), "tasks[0].swap")
        XCTAssertEqual(path("name: x\njobs: 1\nmemory: {budget: 1GiB}\ntasks:\n  - {name: a, model: resnet18, weights: 1MiB, period: 1s}\n"), "tasks[0].weights")
        XCTAssertNil(path("name: x\njobs: 1\nmemory: {budget: 1GiB}\ntasks:\n  - {name: a, wcet: 1ms, weights: 10MiB, period: 1s, swap: true}\n"))
        // A swap directory where nothing can be created.
        XCTAssertThrowsError(try WeightSwapper(memory: TaskSet.Memory(budget: 1 << 30, swapDirectory: "/proc"), calibrate: false)) {
            XCTAssertEqual(($0 as? TaskSetError)?.path, "memory.swap_dir")
        }
        // A swapped task whose model does not exist: the model's key.
        let set = Self.set(budget: 1 << 30, [TaskSet.Task(name: "a", model: "no-such-model", period: 100_000_000, swap: true)])
        XCTAssertThrowsError(try RealtimeRunner.prepare(set, loader: RunnerTests.loader, timingRuns: 1)) {
            XCTAssertEqual(($0 as? TaskSetError)?.path, "tasks[0].model")
        }
    }

    /// The swapper works in a private directory of its own inside `swap_dir`, leaves the user's
    /// files alone (even one named like its swap file), and leaves nothing behind: its file and
    /// directory are unlinked as soon as they are made, while the open file holds the weights.
    func testSwapDirectoryIsPrivateAndRemoved() throws {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("metronome-user-\(getpid())")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: parent) }
        let mine = parent.appendingPathComponent("weights.swap")
        try Data("user data".utf8).write(to: mine)
        let plan = try compile(RunnerTests.chain(channels: 16, size: 16, layers: 2, seed: 5)).1
        let swapper = try WeightSwapper(memory: TaskSet.Memory(budget: 1 << 30, swapDirectory: parent.path), calibrate: true, ioPriority: 0)
        XCTAssertTrue(swapper.directory.hasPrefix(parent.path + "/metronome-swap-"))
        try swapper.add(task: 0, regions: [plan.weightRegion], swappable: true, otherBytes: 0)
        XCTAssertEqual(swapper.swapFileBytes, plan.weightRegion.length, "the weights were written")
        XCTAssertFalse(FileManager.default.fileExists(atPath: swapper.directory), "nothing visible, even while running")
        // And they come back from the unlinked file.
        var stats = WeightSwapper.AcquireStats()
        try swapper.acquire(0, key: SchedulingKey(0, 0), stats: &stats)
        XCTAssertEqual(plan.weightRegion.residentBytes(), plan.weightRegion.length)
        swapper.release(0)
        let model = try XCTUnwrap(swapper.model)
        XCTAssertGreaterThan(model.bytesPerSecond, 0)
        XCTAssertGreaterThanOrEqual(model.worstRatio, 1)
        swapper.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: swapper.directory))
        XCTAssertEqual(try String(contentsOf: mine, encoding: .utf8), "user data")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: parent.path), ["weights.swap"])
    }

    /// The swap-in model's fit on hand-made points: t = 1 ms + bytes / 1 GB/s exactly, then one
    /// slow point that the worst ratio must cover.
    func testSwapTimeFitCoversEveryObservation() {
        let model = SwapTimeModel(latencyNs: 1e6, bytesPerSecond: 1e9)
        XCTAssertEqual(model.bound(1_000_000), 2_000_000)
        XCTAssertEqual(model.bound(0), 0)
        let exact = [(x: 1e6, t: 2e6), (x: 4e6, t: 5e6), (x: 16e6, t: 17e6)]
        let fit = SwapTimeModel.fit(exact)
        XCTAssertEqual(fit.a, 1e6, accuracy: 1)
        XCTAssertEqual(fit.b, 1, accuracy: 1e-9) // bytes per ns
        XCTAssertEqual(fit.worst, 1, accuracy: 1e-9)
        let slow = SwapTimeModel.fit(exact + [(x: 4e6, t: 9e6)])
        for p in exact + [(x: 4e6, t: 9e6)] {
            XCTAssertLessThanOrEqual(p.t, (slow.a + p.x / slow.b) * slow.worst * (1 + 1e-9))
        }
    }

    /// The swap-aware analysis by hand on one processor under fixed priorities: two swapped
    /// tasks with S = 10 ms each, and a resident high-priority task.
    func testSwapChargesByHand() {
        let ms: Int64 = 1_000_000
        let set = TaskSet(name: "h", jobs: 1, cores: [0], tasks: [
            TaskSet.Task(name: "cam", wcet: 2 * ms, period: 20 * ms, priority: 3),
            TaskSet.Task(name: "a", wcet: 10 * ms, period: 200 * ms, priority: 2, swap: true, weightBytes: 9_000_000),
            TaskSet.Task(name: "b", wcet: 20 * ms, period: 400 * ms, priority: 1, swap: true, weightBytes: 9_000_000),
        ], memory: TaskSet.Memory(budget: 30_000_000))
        // S = 10 ms for 9 MB; the I/O thread's CPU time 0.1 ms + bytes / 4 GB/s.
        let model = SwapTimeModel(latencyNs: 1e6, bytesPerSecond: 1e9, cpuLatencyNs: 1e5, cpuBytesPerSecond: 4e9)
        let account = MemoryAccount(budget: 30_000_000, tasks: set.tasks.map { TaskMemory(weights: $0.weightBytes ?? 1_000_000, swappable: $0.swap) },
                                    runningAtOnce: ScheduleAnalysis.runningGroups(set))
        XCTAssertTrue(account.fitsRunningJobs) // 1 MB + 9 MB (one job holds the core)
        XCTAssertEqual(account.residentAtOnce, 10_000_000)
        let demands = set.tasks.map { TaskDemand(wcet: $0.wcet!, npr: ms, regions: 10) }
        let r = ScheduleAnalysis.analyze(set, demands: demands, memory: account, swap: model, ioCores: [1])
        // A transfer gives way after a 4 MiB chunk: S(4 MiB) = 1 ms + 4.194304 ms.
        // W_a = S_a + S(chunk) = 15.194304 ms (b is not served before a);
        // W_b = S_b + S(chunk) + (⌈W/200⌉+1)·S_a = 35.194304 ms. No reloads: a's preemptors
        // are not swapped, and b's weights are never the victim (1 + 9 + 9 MB fit in 30 MB).
        let chunk: Int64 = 5_194_304
        XCTAssertEqual(r.tasks[1].wcet, 10 * ms + 10 * ms + chunk)
        XCTAssertEqual(r.tasks[2].wcet, 20 * ms + 10 * ms + chunk + 2 * 10 * ms)
        XCTAssertEqual(r.tasks[0].wcet, 2 * ms, "the resident task on other cores than the I/O thread pays nothing")
        XCTAssertEqual(r.schedulable, true)
        // With the I/O thread on the same core, everyone pays its CPU time (here the whole transfer).
        let shared = ScheduleAnalysis.analyze(set, demands: demands, memory: account, swap: model, ioCores: [0])
        XCTAssertGreaterThan(shared.tasks[0].wcet, 2 * ms)
        // Below the always-resident bytes plus one swapped task: nothing is.
        var tight = account
        tight.budget = 5_000_000
        XCTAssertTrue(ScheduleAnalysis.analyze(set, demands: demands, memory: tight, swap: model).tasks.allSatisfy { $0.schedulable == false })
    }

    /// Random swapped sets on one processor: whenever the swap-aware analysis calls a task
    /// schedulable, the simulator, charging every job of a swapped task one swap-in at its start
    /// (preemptible, as the runner's wait is), never sees it miss.
    func testSwapAnalysisAgainstTheSimulator() throws {
        var g = SplitMix64(seed: 99)
        let ms: Int64 = 1_000_000
        let model = SwapTimeModel(latencyNs: 5e5, bytesPerSecond: 1e9)
        var schedulable = 0
        for _ in 0..<1000 {
            let n = 2 + Int(g.next() % 4)
            var tasks: [TaskSet.Task] = []
            for i in 0..<n {
                let t = AnalysisSoundnessTests.pick([20, 40, 60, 120, 240], &g) * ms
                let c = max(ms / 10, Int64(AnalysisSoundnessTests.unit(&g) * 0.25 * Double(t)))
                let swap = i > 0 && g.next() % 2 == 0
                tasks.append(TaskSet.Task(name: "t\(i)", wcet: c, layers: 1 + Int(g.next() % 4), period: t, swap: swap,
                                          weightBytes: swap ? Int(1 + g.next() % 8) * 1_000_000 : nil))
            }
            let budget = 20_000_000
            let set = TaskSet(name: "r", jobs: 1, cores: [0], tasks: tasks, memory: TaskSet.Memory(budget: budget))
            let account = MemoryAccount(budget: budget, tasks: tasks.map { TaskMemory(weights: $0.weightBytes ?? 0, swappable: $0.swap) },
                                        runningAtOnce: ScheduleAnalysis.runningGroups(set))
            let demands = tasks.map { TaskDemand(declared: $0)! }
            let analysis = ScheduleAnalysis.analyze(set, demands: demands, memory: account, swap: model, ioCores: nil)
            let charged = zip(tasks, demands).map { t, d in
                ScheduleAnalysis.withSwapIn(d, swapIn: t.swap ? model.bound(t.weightBytes!) : 0)
            }
            let sim = try Simulator.run(set, demands: charged, options: .init(duration: 3 * 240 * ms))
            for (i, b) in analysis.tasks.enumerated() where b.schedulable == true {
                schedulable += 1
                XCTAssertTrue(sim.records[i].allSatisfy(\.deadlineMet), "task \(i) of \(tasks)")
            }
        }
        XCTAssertGreaterThan(schedulable, 100, "the test exercises schedulable verdicts")
    }
}

/// The memory budget through the CLI, as a user meets it.
final class MemoryBudgetCLITests: XCTestCase {
    func testAnalyzeAndSimulateASyntheticSetWithABudget() throws {
        let bin = try Harness.metronome()
        let dir = try Harness.temporaryDirectory("memory-cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("set.yaml")
        try """
            name: mem
            duration: 2s
            cores: [0]
            memory: {budget: 120MB, swap_dir: \(dir.path)}
            tasks:
              - {name: cam, wcet: 5ms, layers: 10, period: 50ms, weights: 14MB}
              - {name: big, wcet: 40ms, layers: 40, period: 1s, swap: true, weights: 100MB}
              - {name: mid, wcet: 20ms, layers: 20, period: 500ms, swap: true, weights: 50MB}
            """.write(to: file, atomically: true, encoding: .utf8)
        let r = try Harness.run(bin, ["analyze", file.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let memory = try XCTUnwrap(object["memory"] as? [String: Any])
        XCTAssertEqual(memory["budget_bytes"] as? Int, 120_000_000)
        XCTAssertNotNil((object["swap_model"] as? [String: Any])?["b_bytes_per_s"])
        XCTAssertTrue((object["method"] as? String)?.contains("swap-ins as execution") == true)
        // The calibration's scratch files are gone; only the task set remains in the directory.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["set.yaml"])
        // Too small a budget: refused, naming the key, with the numbers.
        try String(contentsOf: file, encoding: .utf8).replacingOccurrences(of: "120MB", with: "90MB")
            .write(to: file, atomically: true, encoding: .utf8)
        let small = try Harness.run(bin, ["analyze", file.path])
        XCTAssertEqual(small.status, 0, small.stderr)
        XCTAssertTrue(small.stdout.contains("memory.budget") || small.stdout.contains("too small"), small.stdout)
        XCTAssertTrue(small.stdout.contains("NOT schedulable"), small.stdout)
        let sim = try Harness.run(bin, ["simulate", file.path, "--out", dir.appendingPathComponent("sim").path])
        XCTAssertEqual(sim.status, 0, sim.stderr)
        XCTAssertTrue(sim.stdout.contains("swap-in before every job"), sim.stdout)
    }

    func testEnforceCgroupNeedsABudget() throws {
        let bin = try Harness.metronome()
        let r = try Harness.run(bin, ["run", Harness.root.appendingPathComponent("examples/demo.yaml").path, "--enforce-cgroup", "--duration", "1s"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--enforce-cgroup needs a memory budget"), r.stderr)
    }

    func testSwapStudyWritesItsFilesAndRefusesToOverwrite() throws {
        let bin = try Harness.metronome()
        let dir = try Harness.temporaryDirectory("swap-study")
        defer { try? FileManager.default.removeItem(at: dir) }
        let csv = dir.appendingPathComponent("s.csv").path, svg = dir.appendingPathComponent("s.svg").path
        let args = ["swap-study", "--sets", "20", "--budgets", "0.8,1.0", "--swap-latency", "0.5", "--swap-bandwidth", "2", "--csv", csv, "--svg", svg]
        let r = try Harness.run(bin, args)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        // At 100% of the model bytes every set fits without swapping, so that column equals the
        // no-budget column there.
        let full = lines[2].split(separator: ",")
        XCTAssertEqual(full[1], full[3])
        XCTAssertTrue(try String(contentsOfFile: svg, encoding: .utf8).hasPrefix("<svg"))
        let again = try Harness.run(bin, args)
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("--force"), again.stderr)
    }
}

/// The `precision:` key of a task: its plan computes in bf16, its memory account follows
/// (half the weight bytes), and its jobs are checked against the reference interpreter to
/// the tolerance its plan showed when prepared.
final class TaskPrecisionTests: XCTestCase {
    func testBF16TaskRunsCheckedAndAccounted() throws {
        let tasks = [TaskSet.Task(name: "a", model: "medium", period: 50_000_000, precision: .bf16),
                     TaskSet.Task(name: "b", model: "medium", period: 50_000_000)]
        let set = TaskSet(name: "p", duration: 500_000_000, cores: [Affinity.availableCores()[0]], tasks: tasks,
                          memory: TaskSet.Memory(budget: 1 << 30))
        guard MachineInfo.bf16Kernels else {
            // No AVX-512: the task set is refused before anything runs, naming the task.
            XCTAssertThrowsError(try RealtimeRunner.prepare(set, loader: RunnerTests.loader, timingRuns: 2, timing: .isolated)) {
                XCTAssertTrue("\($0)".contains("tasks[0]") && "\($0)".contains("it needs AVX-512"), "\($0)")
            }
            return
        }
        let prepared = try RealtimeRunner.prepare(set, loader: RunnerTests.loader, timingRuns: 2, timing: .isolated)
        XCTAssertGreaterThan(prepared[0].tolerance, PreparedTask.outputTolerance, "bf16 differs from the fp32 reference")
        XCTAssertLessThan(prepared[0].tolerance, 0.2)
        XCTAssertEqual(prepared[1].tolerance, PreparedTask.outputTolerance)
        let account = MemoryAccount(set, prepared: prepared)
        XCTAssertLessThan(account.tasks[0].weights, account.tasks[1].weights * 3 / 4, "bf16 weights take about half the bytes")
        let result = try RealtimeRunner.run(set, prepared: prepared)
        for records in result.records { XCTAssertTrue(records.filter { !$0.skipped }.allSatisfy(\.outputOK)) }
        XCTAssertThrowsError(try TaskSet.load(yaml: "name: x\njobs: 1\ntasks:\n  - {name: a, model: m, period: 1s, precision: fp16}\n")) {
            XCTAssertEqual(($0 as? TaskSetError)?.path, "tasks[0].precision")
        }
        XCTAssertThrowsError(try TaskSet.load(yaml: "name: x\njobs: 1\ntasks:\n  - {name: a, wcet: 1ms, period: 1s, precision: bf16}\n")) {
            XCTAssertEqual(($0 as? TaskSetError)?.path, "tasks[0].precision")
        }
    }

    /// `precision: int8` runs a quantized (QDQ) model on integer kernels: checked against the
    /// reference interpreter's QDQ formulas, accounted with its 8-bit weights; a float model
    /// is refused with the way out.
    func testInt8TaskRunsCheckedAndAccounted() throws {
        let float = TrainableCNNs.lenet5(seed: 3)
        // 7-bit weights: integer kernels on every CPU, VNNI or not (full-range layers run in
        // float without VNNI, and would hold float weights).
        var options = Quantizer.Options()
        options.reduceRange = true
        let quantizer = Quantizer(options: options)
        let calibration = try Tensor(shape: [4, 1, 28, 28], scalars: (0..<(4 * 28 * 28)).map { Float(sin(Double($0))) })
        let stats = try Calibrator(graph: float, tensors: quantizer.calibratedTensors(float)).statistics([calibration], method: .minmax)
        let quantized = try quantizer.quantize(float, statistics: stats).0
        let loader: RealtimeRunner.ModelLoader = { task in task.model == "quantized" ? quantized : float }
        let tasks = [TaskSet.Task(name: "q", model: "quantized", period: 50_000_000, precision: .int8),
                     TaskSet.Task(name: "f", model: "float", period: 50_000_000)]
        let set = TaskSet(name: "p", duration: 300_000_000, cores: [Affinity.availableCores()[0]], tasks: tasks,
                          memory: TaskSet.Memory(budget: 1 << 30))
        let prepared = try RealtimeRunner.prepare(set, loader: loader, timingRuns: 2, timing: .isolated)
        XCTAssertLessThan(prepared[0].tolerance, 1e-2)
        let account = MemoryAccount(set, prepared: prepared)
        XCTAssertLessThan(account.tasks[0].weights, account.tasks[1].weights / 3, "int8 weights take about a quarter of the bytes")
        let result = try RealtimeRunner.run(set, prepared: prepared)
        for records in result.records { XCTAssertTrue(records.filter { !$0.skipped }.allSatisfy(\.outputOK)) }
        let wrong = TaskSet(name: "p", duration: 100_000_000, cores: [Affinity.availableCores()[0]],
                            tasks: [TaskSet.Task(name: "f", model: "float", period: 50_000_000, precision: .int8)])
        XCTAssertThrowsError(try RealtimeRunner.prepare(wrong, loader: loader, timingRuns: 1, timing: .isolated)) { e in
            XCTAssertTrue("\(e)".contains("metronome quantize") && "\(e)".contains("tasks[0]"), "\(e)")
        }
    }
}

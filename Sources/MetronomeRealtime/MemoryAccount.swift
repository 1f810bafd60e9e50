import Foundation
import Metronome

/// The bytes one task keeps, from its compiled plans (every width's): exactly what the
/// engine allocates for it, so the budget is checked on known numbers, not estimates.
public struct TaskMemory: Codable, Sendable, Equatable {
    /// Weights in their compiled layouts, as mapped (page-rounded per layer segment).
    public var weights: Int
    /// Activation arenas and oneDNN scratchpads of the task's executors.
    public var arena: Int
    public var scratchpad: Int
    /// Preloaded inputs, outputs and the reference outputs jobs are checked against.
    public var io: Int
    /// Whether the weights may be evicted between jobs (`swap: true`).
    public var swappable: Bool

    public init(weights: Int, arena: Int = 0, scratchpad: Int = 0, io: Int = 0, swappable: Bool) {
        self.weights = weights
        self.arena = arena
        self.scratchpad = scratchpad
        self.io = io
        self.swappable = swappable
    }

    /// Bytes resident for the whole run.
    public var alwaysResident: Int { arena + scratchpad + io + (swappable ? 0 : weights) }
    /// Bytes that come and go with swapping.
    public var swappableBytes: Int { swappable ? weights : 0 }
    public var total: Int { weights + arena + scratchpad + io }

    enum CodingKeys: String, CodingKey {
        case weights = "weights_bytes", arena = "arena_bytes", scratchpad = "scratchpad_bytes", io = "io_bytes", swappable
    }

    /// A prepared task's bytes (all its widths' plans and buffers).
    init(_ task: PreparedTask) {
        var m = TaskMemory(weights: 0, swappable: task.spec.swap)
        for w in 0..<task.variantCount {
            let v = task.variant(w)
            m.weights += v.plan.weightRegion.length
            m.arena += v.plan.arenaBytes
            m.scratchpad += v.plan.scratchpadBytes
            let inputs = v.plan.program.inputs.reduce(0) { $0 + v.plan.program.values[$1].count }
            let outputs = v.plan.program.outputs.reduce(0) { $0 + v.plan.program.values[$1].count }
            m.io += 4 * (inputs * v.spec.inputs + outputs * (1 + v.spec.inputs))
        }
        self = m
    }
}

/// A task set's memory against its budget: what is always resident, what swaps, and
/// whether the set can run (``check()``) and run without waiting for memory
/// (``concurrentWorkingSet``).
public struct MemoryAccount: Codable, Sendable, Equatable {
    public var budget: Int?
    public var tasks: [TaskMemory]
    /// Per scheduling unit of the analysis, how many jobs can hold cores at once (see
    /// ``ScheduleAnalysis``): only those jobs' weights must be resident together.
    public var runningAtOnce: [RunningGroup]

    /// Tasks that share cores, and how many of their jobs can hold cores (and so need their
    /// weights) at the same time.
    public struct RunningGroup: Codable, Sendable, Equatable {
        public var tasks: [Int]
        public var running: Int
        public init(tasks: [Int], running: Int) {
            self.tasks = tasks
            self.running = running
        }
    }

    public init(budget: Int?, tasks: [TaskMemory], runningAtOnce: [RunningGroup]) {
        self.budget = budget
        self.tasks = tasks
        self.runningAtOnce = runningAtOnce
    }

    /// The account of prepared tasks under the set's budget.
    public init(_ set: TaskSet, prepared: [PreparedTask]) {
        self.init(budget: set.memory?.budget, tasks: prepared.map(TaskMemory.init), runningAtOnce: ScheduleAnalysis.runningGroups(set))
    }

    enum CodingKeys: String, CodingKey {
        case budget = "budget_bytes", tasks
        case runningAtOnce = "running_at_once"
    }

    public var alwaysResident: Int { tasks.reduce(0) { $0 + $1.alwaysResident } }
    public var total: Int { tasks.reduce(0) { $0 + $1.total } }
    public var largestSwappable: Int { tasks.map(\.swappableBytes).max() ?? 0 }

    /// The most swappable bytes that jobs holding cores at the same time can need: in every
    /// group of tasks that share cores, the weights of as many of its swappable tasks as can run
    /// at once (the largest ones).
    public var concurrentWorkingSet: Int {
        runningAtOnce.reduce(0) { sum, group in
            let sizes = group.tasks.map { tasks[$0].swappableBytes }.filter { $0 > 0 }.sorted(by: >)
            return sum + sizes.prefix(group.running).reduce(0, +)
        }
    }

    /// Whether the set can run at all: the always-resident bytes plus the largest swappable
    /// task's weights fit the budget. Throws an error with the numbers (naming `memory.budget`).
    public func check() throws {
        guard let budget else { return }
        let need = alwaysResident + largestSwappable
        guard need <= budget else {
            var parts = ["\(ByteCountText.format(alwaysResident)) always resident"]
            if largestSwappable > 0 { parts.append("\(ByteCountText.format(largestSwappable)) for the largest swappable task's weights") }
            throw TaskSetError(path: "memory.budget", message: "\(ByteCountText.format(budget)) (\(budget) bytes) is too small: the set needs at least \(ByteCountText.format(need)) (\(need) bytes): \(parts.joined(separator: " + ")); mark more tasks `swap: true` or raise the budget")
        }
    }

    /// The most bytes that must be resident at once: everything always resident and the
    /// weights of the jobs holding cores. Nothing else needs room: a job asks for its weights
    /// only once it holds its cores; a prefetch uses free room only (it never evicts a released
    /// job's weights); and a transfer in progress gives way, between chunks, to any waiting job
    /// with a smaller key — which includes every job that preempted the one it is for.
    public var residentAtOnce: Int { alwaysResident + concurrentWorkingSet }

    /// Whether no swap-in ever waits for room (``residentAtOnce`` fits). When it fails the set
    /// still runs, but a swap-in may wait for other jobs to finish, which the analysis does not
    /// bound.
    public var fitsRunningJobs: Bool {
        guard let budget else { return true }
        return residentAtOnce <= budget
    }

    /// A few lines for logs and `analyze`.
    public func text(names: [String]) -> String {
        var lines: [String] = []
        let b = budget.map { "\(ByteCountText.format($0))" } ?? "none"
        lines.append("memory: budget \(b); always resident \(ByteCountText.format(alwaysResident)); swappable weights \(ByteCountText.format(tasks.reduce(0) { $0 + $1.swappableBytes })); total if all resident \(ByteCountText.format(total))")
        for (name, t) in zip(names, tasks) {
            lines.append("  \(name): weights \(ByteCountText.format(t.weights))\(t.swappable ? " (swappable)" : ""), arena \(ByteCountText.format(t.arena)), scratchpad \(ByteCountText.format(t.scratchpad)), io \(ByteCountText.format(t.io))")
        }
        if budget != nil {
            lines.append("  resident at once at most: \(ByteCountText.format(residentAtOnce)) (always-resident bytes and the weights of jobs holding cores: \(fitsRunningJobs ? "fit" : "do NOT fit; swap-ins may wait for room, and swapped tasks are not shown schedulable"))")
        }
        return lines.joined(separator: "\n")
    }
}

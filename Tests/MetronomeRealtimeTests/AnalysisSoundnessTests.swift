import Foundation
import Metronome
import MetronomeRealtime
import XCTest

/// The analysis against the simulator on random task sets: whenever a task is called
/// schedulable, no simulated job of it misses its deadline or responds later than its bound,
/// at WCET with synchronous releases, with random offsets, and with random execution times
/// below the WCET (the anomalies non-preemptive and global scheduling are known for).
/// `METRONOME_PROPERTY_SETS` sets the number of random sets per method (default 10,000).
final class AnalysisSoundnessTests: XCTestCase {
    static let setsPerMethod = ProcessInfo.processInfo.environment["METRONOME_PROPERTY_SETS"].flatMap(Int.init) ?? 10_000
    static let ms: Int64 = 1_000_000
    /// Periods whose hyperperiod divides 120 ms, so three hyperperiods stay short.
    static let periods: [Int64] = [4, 5, 6, 8, 10, 12, 15, 20, 24, 30, 40, 60]

    struct Family: Sendable {
        var name: String
        var processors: Int
        /// Builds one random set and its demands.
        var make: @Sendable (inout SplitMix64) -> (TaskSet, [TaskDemand])
    }

    /// UUniFast: n utilizations summing to `total`, each at most `cap` (redrawn otherwise;
    /// callers keep `total` well below n·cap).
    static func uunifast(_ n: Int, total: Double, cap: Double = 0.95, _ g: inout SplitMix64) -> [Double] {
        while true {
            var sum = total
            var u: [Double] = []
            for i in 1..<n {
                let next = sum * pow(unit(&g), 1 / Double(n - i))
                u.append(sum - next)
                sum = next
            }
            u.append(sum)
            if u.allSatisfy({ $0 <= cap }) { return u }
        }
    }

    static func unit(_ g: inout SplitMix64) -> Double { Double(g.next() >> 11) / Double(1 << 53) }
    static func pick<T>(_ a: [T], _ g: inout SplitMix64) -> T { a[Int(g.next() % UInt64(a.count))] }

    /// Random tasks: periods from ``periods``, utilizations by UUniFast, deadlines mostly equal
    /// to periods, sometimes shorter, sometimes longer (with overrun skip or queue), 1–6 regions.
    static func randomTasks(_ n: Int, utilization: Double, cap: Double = 0.95, cores: (Int) -> [Int], allowLongDeadlines: Bool,
                            _ g: inout SplitMix64) -> ([TaskSet.Task], [TaskDemand]) {
        let u = uunifast(n, total: min(utilization, Double(n) * cap * 0.7), cap: cap, &g)
        var tasks: [TaskSet.Task] = []
        var demands: [TaskDemand] = []
        for i in 0..<n {
            let t = pick(periods, &g) * ms
            let c = max(1000, Int64(u[i] * Double(t)))
            var d = t
            let r = unit(&g)
            if r < 0.25 { d = c + Int64(unit(&g) * Double(t - c)) } else if r < 0.4 && allowLongDeadlines { d = t + Int64(unit(&g) * Double(t)) }
            let regions = 1 + Int(g.next() % 6)
            let priority = g.next() % 3 == 0 ? Int(g.next() % 100) : nil
            tasks.append(TaskSet.Task(name: "t\(i)", wcet: c, layers: regions, period: t, deadline: d,
                                      priority: priority, cores: cores(i),
                                      overrun: g.next() % 2 == 0 ? .skip : .queue))
            demands.append(TaskDemand(declared: tasks[i])!)
        }
        // Explicit priorities for all or none (rate-monotonic), as the loader allows either.
        if tasks.contains(where: { $0.priority == nil }) { for i in tasks.indices { tasks[i].priority = nil } }
        return (tasks, demands)
    }

    static func family(_ name: String, processors m: Int, policy: TaskSet.Policy, preemption: TaskSet.Preemption?,
                       lock: Int? = nil, ownCores: Bool = false, maxUtilization: Double, cap: Double = 0.95) -> Family {
        Family(name: name, processors: m) { g in
            let n = 2 + Int(g.next() % 4)
            let mode = preemption ?? (g.next() % 2 == 0 ? .layer : .job)
            let all = Array(0..<(ownCores ? n : m))
            let (tasks, demands) = randomTasks(n, utilization: 0.1 + unit(&g) * (maxUtilization - 0.1), cap: cap,
                                               cores: { ownCores ? [$0] : all }, allowLongDeadlines: true, &g)
            return (TaskSet(name: name, duration: 1, policy: policy, preemption: mode, lockK: lock, cores: all, tasks: tasks), demands)
        }
    }

    static let families: [Family] = [
        family("FP, one processor, layer preemption", processors: 1, policy: .fixedPriority, preemption: .layer, maxUtilization: 1.05),
        family("NP-FP, one processor", processors: 1, policy: .fixedPriority, preemption: .job, maxUtilization: 1.05),
        family("EDF, one processor, with NPRs", processors: 1, policy: .edf, preemption: nil, maxUtilization: 1.05),
        family("FIFO, one processor", processors: 1, policy: .fifo, preemption: .job, maxUtilization: 0.9),
        family("global FP, two processors", processors: 2, policy: .fixedPriority, preemption: nil, maxUtilization: 1.6),
        family("global EDF, two processors", processors: 2, policy: .edf, preemption: nil, maxUtilization: 1.6),
        family("lock as processor (unmanaged, k = 1)", processors: 1, policy: .unmanaged, preemption: nil, lock: 1, maxUtilization: 1.05),
        family("lock as two processors (FP, k = 2, own cores)", processors: 2, policy: .fixedPriority, preemption: nil,
               lock: 2, ownCores: true, maxUtilization: 1.6),
        family("unmanaged, each task on its own core", processors: 1, policy: .unmanaged, preemption: nil,
               ownCores: true, maxUtilization: 4, cap: 1.5),
    ]

    struct Counterexample: CustomStringConvertible {
        var set: TaskSet
        var demands: [TaskDemand]
        var task: Int
        var detail: String
        var description: String {
            let tasks = set.tasks.indices.map { i in
                let t = set.tasks[i]
                return "(C \(demands[i].wcet), regions \(demands[i].regions), T \(t.period), D \(t.deadline), prio \(set.priorities[i]), \(t.overrun))"
            }
            return "\(set.policy.rawValue)/\(set.preemption.rawValue)/lock \(set.lockK.map(String.init) ?? "-"): task \(task) \(detail); tasks \(tasks.joined(separator: " "))"
        }
    }

    /// Checks one set in three simulations; returns a counterexample, if any.
    static func check(_ set: TaskSet, _ demands: [TaskDemand], _ g: inout SplitMix64) throws -> Counterexample? {
        let analysis = ScheduleAnalysis.analyze(set, demands: demands)
        let claimed = analysis.tasks.indices.filter { analysis.tasks[$0].schedulable == true }
        guard !claimed.isEmpty else { return nil }
        var offsetSet = set
        for i in offsetSet.tasks.indices { offsetSet.tasks[i].offset = Int64(unit(&g) * Double(set.tasks[i].period)) }
        let runs: [(TaskSet, Simulator.Execution)] = [
            (set, .wcet), (offsetSet, .wcet), (set, .uniform(minFraction: 0.3, seed: g.next())),
        ]
        for (s, exec) in runs {
            let result = try Simulator.run(s, demands: demands, options: .init(execution: exec))
            for i in claimed {
                let bound = analysis.tasks[i].bound ?? Int64.max
                for r in result.records[i] {
                    if !r.deadlineMet || (r.response ?? Int64.max) > bound {
                        return Counterexample(set: s, demands: demands, task: i,
                                              detail: "job \(r.job) response \(r.response.map(String.init) ?? "skipped") vs bound \(bound), deadline met \(r.deadlineMet), exec \(exec)")
                    }
                }
            }
        }
        return nil
    }

    func testAnalysisNeverCallsAFailingSetSchedulable() throws {
        var report: [String] = []
        for (f, family) in Self.families.enumerated() {
            var g = SplitMix64(seed: 0x5EED + UInt64(f))
            var counterexamples: [Counterexample] = []
            var claimedTasks = 0, tasks = 0, allSchedulable = 0
            for _ in 0..<Self.setsPerMethod {
                let (set, demands) = family.make(&g)
                let analysis = ScheduleAnalysis.analyze(set, demands: demands)
                tasks += set.tasks.count
                claimedTasks += analysis.tasks.filter { $0.schedulable == true }.count
                if analysis.schedulable == true { allSchedulable += 1 }
                if let c = try Self.check(set, demands, &g) { counterexamples.append(c) }
            }
            report.append("\(family.name): \(Self.setsPerMethod) sets, \(allSchedulable) wholly schedulable, \(claimedTasks)/\(tasks) tasks called schedulable, \(counterexamples.count) counterexamples")
            XCTAssertEqual(counterexamples.count, 0, "\(family.name): \(counterexamples.prefix(3).map(\.description).joined(separator: "\n"))")
            // The test means something only if the analysis says "schedulable" often.
            XCTAssertGreaterThan(allSchedulable, Self.setsPerMethod / 20, "\(family.name): too few schedulable sets to test")
        }
        print(report.joined(separator: "\n"))
    }
}

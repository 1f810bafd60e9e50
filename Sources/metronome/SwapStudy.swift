import ArgumentParser
import Foundation
import Metronome
import MetronomeRealtime

/// `metronome swap-study`: RT-Swap's metric on generated task sets — the share that is
/// schedulable under a memory budget with swapping against the share without it (a set that
/// does not fit is refused), at budgets of 50–90% of the sets' model bytes.
struct SwapStudy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swap-study",
        abstract: "Schedulability with and without weight swapping on generated task sets.",
        discussion: """
            Generates random fixed-priority task sets on one core (periods 100 ms–4 s, utilisation \
            by UUniFast, each task a zoo network's measured weight and arena bytes and a WCET drawn \
            for its utilisation) and analyses each at budgets that are a fraction of the set's model \
            bytes: without swapping (the set is refused when it does not fit, else the plain analysis) \
            and with swapping (the swap-aware analysis), swapping the fewest tasks that make the set fit, \
            longest periods first. Swap-in times come \
            from a measurement in the temporary directory (or --swap-latency and --swap-bandwidth). \
            Writes a CSV and an SVG plot.
            """
    )

    @Option(help: "Task sets per budget fraction.") var sets = 500
    @Option(help: "Budget fractions of the set's model bytes, comma-separated.") var budgets = "0.5,0.6,0.7,0.8,0.9"
    @Option(help: "Tasks per set, as MIN-MAX.") var tasks = "3-8"
    @Option(help: "Total utilisation of a set (before swapping).") var utilization = 0.4
    @Option(help: "Seed.") var seed: UInt64 = 1
    @Option(help: "Swap-in latency a in ms (with --swap-bandwidth: skip the measurement).") var swapLatency: Double?
    @Option(help: "Swap-in bandwidth b in GB/s.") var swapBandwidth: Double?
    @Option(help: "The CSV to write.") var csv = "docs/swap-schedulability.csv"
    @Option(help: "The SVG to write.") var svg = "docs/swap-schedulability.svg"
    @Flag(help: "Overwrite existing output files.") var force = false

    /// Weight and other bytes per network (measured from their compiled plans at batch 1).
    static let networks: [(name: String, weights: Int, other: Int)] = [
        ("mobilenet_v2", 14_262_272, 8_458_240), ("resnet18", 46_866_432, 6_414_336),
        ("resnet50", 103_100_416, 7_618_560), ("efficientnet-lite0", 19_812_352, 9_000_000),
    ]

    func validate() throws {
        guard sets >= 1 else { throw ValidationError("--sets must be at least 1") }
        guard utilization > 0 && utilization < 1 else { throw ValidationError("--utilization must be in (0, 1)") }
        _ = try fractions()
        _ = try taskRange()
        if (swapLatency == nil) != (swapBandwidth == nil) { throw ValidationError("give --swap-latency and --swap-bandwidth together") }
        if let b = swapBandwidth, b <= 0 { throw ValidationError("--swap-bandwidth must be positive") }
        if let a = swapLatency, a < 0 { throw ValidationError("--swap-latency must not be negative") }
    }

    func fractions() throws -> [Double] {
        let f = try ArgumentLists.doubles(budgets, option: "--budgets")
        guard f.allSatisfy({ $0 > 0 && $0 <= 1 }) else { throw ValidationError("--budgets: every fraction must be in (0, 1]") }
        return f
    }

    func taskRange() throws -> ClosedRange<Int> {
        let p = tasks.split(separator: "-").compactMap { Int($0) }
        guard p.count == 2, p[0] >= 1, p[1] >= p[0], p[1] <= 50 else { throw ValidationError("--tasks must be MIN-MAX, e.g. 3-8 (at most 50)") }
        return p[0]...p[1]
    }

    func run() throws {
        try checkWritable(csv, force: force)
        try checkWritable(svg, force: force)
        let model: SwapTimeModel
        if let a = swapLatency, let b = swapBandwidth {
            model = SwapTimeModel(latencyNs: a * 1e6, bytesPerSecond: b * 1e9, cpuLatencyNs: 0, cpuBytesPerSecond: .infinity)
        } else {
            let swapper = try WeightSwapper(memory: TaskSet.Memory(budget: 1), calibrate: true, ioPriority: 0)
            model = swapper.model!
            swapper.close()
        }
        print(model.text)
        let ms: Int64 = 1_000_000
        let periods: [Int64] = [100, 200, 250, 400, 500, 800, 1000, 2000, 4000].map { $0 * ms }
        var g = SplitMix64(seed: seed)
        func unit() -> Double { Double(g.next() >> 11) / Double(1 << 53) }
        let range = try taskRange()
        var rows: [(fraction: Double, baseline: Double, swap: Double, free: Double)] = []
        var bar = ProgressBar(total: try fractions().count)
        for fraction in try fractions() {
            var okBase = 0, okSwap = 0, okFree = 0
            for _ in 0..<sets {
                let n = range.lowerBound + Int(g.next() % UInt64(range.count))
                // UUniFast.
                var u: [Double] = []
                var sum = utilization
                for i in 1..<n {
                    let next = sum * pow(unit(), 1 / Double(n - i))
                    u.append(sum - next)
                    sum = next
                }
                u.append(sum)
                var list: [TaskSet.Task] = []
                var memory: [TaskMemory] = []
                for i in 0..<n {
                    let net = Self.networks[Int(g.next() % UInt64(Self.networks.count))]
                    let t = periods[Int(g.next() % UInt64(periods.count))]
                    let c = max(ms / 10, Int64(u[i] * Double(t)))
                    list.append(TaskSet.Task(name: "t\(i)", wcet: c, layers: 50, period: t, swap: true, weightBytes: net.weights))
                    memory.append(TaskMemory(weights: net.weights, arena: net.other, swappable: true))
                }
                let total = memory.reduce(0) { $0 + $1.total }
                let budget = Int(Double(total) * fraction)
                let set = TaskSet(name: "study", jobs: 1, cores: [0], tasks: list, memory: TaskSet.Memory(budget: budget))
                let demands = list.map { TaskDemand(declared: $0)! }
                // Without swapping: everything resident, so the set fits only when the budget
                // holds all of it.
                let plain = ScheduleAnalysis.analyze(set, demands: demands).schedulable == true
                if plain { okFree += 1 }
                if total <= budget && plain { okBase += 1 }
                // With swapping: the fewest tasks swapped, longest periods (lowest priorities) first,
                // until the always-resident bytes and the largest swapped weights fit.
                var swapped = set
                var account = MemoryAccount(budget: budget, tasks: memory.map { var m = $0; m.swappable = false; return m },
                                            runningAtOnce: ScheduleAnalysis.runningGroups(set))
                for i in list.indices.sorted(by: { list[$0].period > list[$1].period }) where !account.fitsRunningJobs {
                    account.tasks[i].swappable = true
                }
                for i in list.indices { swapped.tasks[i].swap = account.tasks[i].swappable }
                if account.fitsRunningJobs,
                   ScheduleAnalysis.analyze(swapped, demands: demands, memory: account, swap: model, ioCores: [1]).schedulable == true {
                    okSwap += 1
                }
            }
            rows.append((fraction, Double(okBase) / Double(sets), Double(okSwap) / Double(sets), Double(okFree) / Double(sets)))
            bar.advance(String(format: "%d sets at %.0f%% of their model bytes", sets, fraction * 100))
        }
        var text = "budget_fraction,schedulable_without_swap,schedulable_with_swap,schedulable_without_budget,sets\n"
        for r in rows { text += String(format: "%.2f,%.4f,%.4f,%.4f,%d\n", r.fraction, r.baseline, r.swap, r.free, sets) }
        try text.write(toFile: csv, atomically: true, encoding: .utf8)
        try plot(rows, model: model).write(toFile: svg, atomically: true, encoding: .utf8)
        var table = TextTable([.right("budget / model bytes"), .right("without swap"), .right("with swap"), .right("no budget at all")])
        for r in rows {
            table.append([String(format: "%.0f%%", r.fraction * 100), String(format: "%.1f%%", r.baseline * 100), String(format: "%.1f%%", r.swap * 100),
                          String(format: "%.1f%%", r.free * 100)])
        }
        print(table.render())
        print("wrote \(csv) and \(svg)")
    }

    func plot(_ rows: [(fraction: Double, baseline: Double, swap: Double, free: Double)], model: SwapTimeModel) -> String {
        let (w, h, left, bottom) = (560.0, 340.0, 60.0, 50.0)
        let lo = rows.map(\.fraction).min() ?? 0, hi = max(rows.map(\.fraction).max() ?? 1, lo + 0.01)
        func x(_ f: Double) -> Double { left + (f - lo) / (hi - lo) * (w - left - 30) }
        func y(_ r: Double) -> Double { h - bottom - r * (h - bottom - 30) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
        s += String(format: "<text x=\"%.0f\" y=\"18\" text-anchor=\"middle\">Schedulable task sets (%d per point, U = %.2f, one core)</text>", w / 2, sets, utilization)
        for k in 0...4 {
            let r = Double(k) / 4
            s += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f%%</text>",
                        left, w - 30, y(r), y(r), left - 6, y(r) + 4, r * 100)
        }
        for r in rows {
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f%%</text>", x(r.fraction), h - bottom + 18, r.fraction * 100)
        }
        s += String(format: "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">memory budget / the set's model bytes</text>", (w + left) / 2, h - 12)
        for (values, color, label) in [(rows.map(\.baseline), "#888", "without swapping (refused when over budget)"),
                                        (rows.map(\.swap), "#1f77b4", "with swapping (swap-aware analysis)"),
                                        (rows.map(\.free), "#2ca02c", "no budget (every set fits): the ceiling")] {
            let d = zip(rows, values).enumerated().map { k, p in String(format: "%@%.1f,%.1f", k == 0 ? "M" : "L", x(p.0.fraction), y(p.1)) }.joined()
            s += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>"
            for (r, v) in zip(rows, values) { s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>", x(r.fraction), y(v), color) }
            let ly = label.hasPrefix("with ") ? 40.0 : label.hasPrefix("without") ? 58.0 : 76.0
            s += String(format: "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"%@\" stroke-width=\"2\"/><text x=\"%.0f\" y=\"%.0f\">%@</text>",
                        left + 10, left + 30, ly, ly, color, left + 36, ly + 4, label)
        }
        s += String(format: "<text x=\"%.0f\" y=\"94\" fill=\"#555\">swap-in %.2f ms + bytes / %.2f GB/s (bound ×%.2f)</text>", left + 10,
                    model.latencyNs / 1e6, model.bytesPerSecond / 1e9, model.worstRatio * model.margin)
        return s + "</svg>\n"
    }
}

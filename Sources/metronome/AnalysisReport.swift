import Foundation
import Metronome
import MetronomeRealtime

/// What `metronome analyze` prints: a Codable value (`--json`) with its text renderer.
struct AnalysisReport: Codable {
    struct Task: Codable {
        var name: String
        var wcetMs: Double
        var nprMs: Double
        var periodMs: Double
        var deadlineMs: Double
        var boundMs: Double?
        var schedulable: Bool?
        var method: String
        var note: String

        enum CodingKeys: String, CodingKey {
            case name, schedulable, method, note
            case wcetMs = "wcet_ms", nprMs = "npr_ms", periodMs = "period_ms", deadlineMs = "deadline_ms", boundMs = "bound_ms"
        }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(wcetMs, forKey: .wcetMs)
            try c.encode(nprMs, forKey: .nprMs)
            try c.encode(periodMs, forKey: .periodMs)
            try c.encode(deadlineMs, forKey: .deadlineMs)
            // Explicit nulls: "no bound" and "not analysed" are answers, not missing keys.
            try c.encode(boundMs, forKey: .boundMs)
            try c.encode(schedulable, forKey: .schedulable)
            try c.encode(method, forKey: .method)
            try c.encode(note, forKey: .note)
        }
    }

    var name: String
    var method: String
    var margin: Double
    var schedulable: Bool?
    var tasks: [Task]
    /// With widths: the same analysis with every task at its narrowest width (the top level
    /// is the nominal mode, every task at its widest).
    var guaranteed: [Task]?
    var guaranteedSchedulable: Bool?
    /// With a memory budget: the set's bytes and the measured swap-in time model.
    var memory: MemoryAccount?
    var swapModel: SwapTimeModel?

    init(set: TaskSet, analysis: AnalysisResult) {
        name = set.name
        method = analysis.method
        margin = analysis.margin
        schedulable = analysis.schedulable
        let ms = { (ns: Int64) in Double(ns) / 1e6 }
        tasks = set.tasks.indices.map { i in
            let b = analysis.tasks[i]
            return Task(name: set.tasks[i].name, wcetMs: ms(b.wcet), nprMs: ms(b.longestLayer), periodMs: ms(set.tasks[i].period),
                        deadlineMs: ms(set.tasks[i].deadline), boundMs: b.bound.map(ms), schedulable: b.schedulable,
                        method: b.method, note: b.note)
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(method, forKey: .method)
        try c.encode(margin, forKey: .margin)
        try c.encode(schedulable, forKey: .schedulable)
        try c.encode(tasks, forKey: .tasks)
        if let guaranteed {
            try c.encode(guaranteed, forKey: .guaranteed)
            try c.encode(guaranteedSchedulable, forKey: .guaranteedSchedulable)
        }
        try c.encodeIfPresent(memory, forKey: .memory)
        try c.encodeIfPresent(swapModel, forKey: .swapModel)
    }

    enum CodingKeys: String, CodingKey {
        case name, method, margin, schedulable, tasks, guaranteed, memory
        case swapModel = "swap_model"
        case guaranteedSchedulable = "guaranteed_schedulable"
    }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    static func verdict(_ v: Bool?) -> String { v.map { $0 ? "schedulable" : "NOT schedulable" } ?? "not analysed" }

    func text() -> String {
        var table = TextTable([.left("task"), .right("wcet ms"), .right("npr ms"), .right("period ms"), .right("deadline ms"),
                               .right("bound ms"), .left("verdict"), .left("note")])
        let f = { (v: Double) in String(format: "%.2f", v) }
        for t in tasks {
            table.append([t.name, f(t.wcetMs), f(t.nprMs), f(t.periodMs), f(t.deadlineMs), t.boundMs.map(f) ?? "-",
                          Self.verdict(t.schedulable), t.note])
        }
        var lines = ["analysis: \(method)" + (margin != 1 ? "; WCET = measured max × \(margin)" : ""), table.render()]
        switch schedulable {
        case true?: lines.append("the task set is schedulable")
        case false?: lines.append("the task set is NOT shown schedulable")
        case nil: lines.append("the task set is not fully analysed")
        }
        return lines.joined(separator: "\n")
    }
}

import ArgumentParser
import Foundation
import Metronome
import MetronomeRealtime

/// `metronome runs`: questions about recorded runs (directories written by `run` or `simulate`).
struct Runs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Look into recorded runs.",
        subcommands: [Compare.self]
    )

    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Two runs' summaries side by side, with ratios.",
            discussion: """
                Reads summary.json from each directory (written by `metronome run` or `metronome \
                simulate`) and prints, per task (matched by name), the p50, p99 and maximum response \
                times of both runs with the ratio after/before, and both runs' misses. Tasks in only \
                one run are listed with dashes for the other.
                """
        )

        @Argument(help: "The run before (a directory with summary.json).") var before: String
        @Argument(help: "The run after.") var after: String
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() throws {
            let comparison = RunComparison(before: try Self.load(before), after: try Self.load(after))
            print(json ? try comparison.json() : comparison.text())
        }

        static func load(_ directory: String) throws -> RunSummary {
            let url = URL(fileURLWithPath: directory).appendingPathComponent("summary.json")
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ValidationError("\(url.path) does not exist; give a directory written by `metronome run` or `metronome simulate`")
            }
            do {
                return try JSONDecoder().decode(RunSummary.self, from: Data(contentsOf: url))
            } catch {
                throw ValidationError("\(url.path) is not a run summary: \(error)")
            }
        }
    }
}

/// Two runs' per-task statistics side by side: a Codable value (`--json`) with its text renderer.
struct RunComparison: Codable {
    struct Side: Codable {
        var jobs: Int
        var misses: Int
        var p50Ms: Double?
        var p99Ms: Double?
        var maxMs: Double?

        enum CodingKeys: String, CodingKey { case jobs, misses, p50Ms = "p50_ms", p99Ms = "p99_ms", maxMs = "max_ms" }

        init(_ t: TaskSummary) {
            jobs = t.jobs
            misses = t.misses
            p50Ms = t.responseMs?.p50
            p99Ms = t.responseMs?.p99
            maxMs = t.responseMs?.max
        }
    }

    struct Task: Codable {
        var name: String
        var before: Side?
        var after: Side?
        /// after / before, nil where either side has no value.
        var p50Ratio: Double?
        var p99Ratio: Double?
        var maxRatio: Double?

        enum CodingKeys: String, CodingKey {
            case name, before, after, p50Ratio = "p50_ratio", p99Ratio = "p99_ratio", maxRatio = "max_ratio"
        }
    }

    var before: String
    var after: String
    var tasks: [Task]

    init(before b: RunSummary, after a: RunSummary) {
        before = b.name
        after = a.name
        var names = b.tasks.map(\.name)
        for t in a.tasks where !names.contains(t.name) { names.append(t.name) }
        func ratio(_ x: Double?, _ y: Double?) -> Double? {
            guard let x, let y, x > 0 else { return nil }
            return y / x
        }
        tasks = names.map { name in
            let x = b.tasks.first { $0.name == name }.map(Side.init)
            let y = a.tasks.first { $0.name == name }.map(Side.init)
            return Task(name: name, before: x, after: y, p50Ratio: ratio(x?.p50Ms, y?.p50Ms),
                        p99Ratio: ratio(x?.p99Ms, y?.p99Ms), maxRatio: ratio(x?.maxMs, y?.maxMs))
        }
    }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    func text() -> String {
        var table = TextTable([.left("task"), .right("p50 before"), .right("p50 after"), .right("×"),
                               .right("p99 before"), .right("p99 after"), .right("×"),
                               .right("max before"), .right("max after"), .right("×"),
                               .right("misses before"), .right("misses after")])
        let ms = { (v: Double?) in v.map { String(format: "%.2f", $0) } ?? "-" }
        let x = { (v: Double?) in v.map { String(format: "%.2f", $0) } ?? "-" }
        for t in tasks {
            table.append([t.name, ms(t.before?.p50Ms), ms(t.after?.p50Ms), x(t.p50Ratio),
                          ms(t.before?.p99Ms), ms(t.after?.p99Ms), x(t.p99Ratio),
                          ms(t.before?.maxMs), ms(t.after?.maxMs), x(t.maxRatio),
                          t.before.map { "\($0.misses)/\($0.jobs)" } ?? "-", t.after.map { "\($0.misses)/\($0.jobs)" } ?? "-"])
        }
        return "before: \(before)   after: \(after)   (response times in ms; × = after / before)\n" + table.render()
    }
}

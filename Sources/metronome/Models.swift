import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis
import MetronomeModels

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the built-in model zoo.",
        discussion: """
            Builds each model to count its learnable parameters as PyTorch does (convolution, \
            fully connected and batch-norm weights and biases; not batch-norm running statistics) \
            and its multiply-accumulates for one image at the model's input size (the counting \
            rules of `metronome summary`). Not listed: sampled-N (N = 0, 1, …), sampled CNN \
            architectures that train the latency predictor (`metronome dataset --models \
            sampled:N`); every command that takes a zoo name accepts them.
            """)

    @Flag(help: "Print one JSON object per model instead of a table.") var json = false

    func run() throws {
        var table = TextTable([.left("MODEL"), .right("PARAMS"), .right("GMACS"), .left("INPUT"), .left("WEIGHTS / DESCRIPTION")])
        for e in Zoo.entries {
            var params: Int? = nil
            var macs: Int? = nil
            var note = e.weights
            do {
                let graph = try e.build()
                params = Zoo.learnableParameterCount(graph)
                macs = try CostModel.analyze(graph, batch: 1, plan: false).macs
            } catch {
                note += " — not available: \(error)"
            }
            let shape = e.inputShape.map { $0 < 0 ? "N" : "\($0)" }.joined(separator: "x")
            if json {
                var object: [String: Any] = ["model": e.name, "summary": e.summary, "input": e.inputShape,
                                             "classes": e.classes, "weights": e.weights]
                if let params { object["params"] = params }
                if let macs { object["macs"] = macs }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                table.append([e.name, params.map(Self.grouped) ?? "?", macs.map { String(format: "%.3f", Double($0) / 1e9) } ?? "?",
                              shape, "\(note); \(e.summary)"])
            }
        }
        if !json { print(table.render()) }
    }

    static func grouped(_ n: Int) -> String {
        var s = String(n)
        var i = s.count - 3
        while i > 0 { s.insert(",", at: s.index(s.startIndex, offsetBy: i)); i -= 3 }
        return s
    }
}

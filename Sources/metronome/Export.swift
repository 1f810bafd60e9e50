import ArgumentParser
import Foundation
import Metronome
import MetronomeONNX

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model as an ONNX file (opset 17).")

    @Argument(help: "A zoo model name or an .onnx file.") var model: String
    @Option(help: "Output .onnx path.") var out: String
    @Flag(help: "Replace the output file if it exists.") var force = false

    func run() throws {
        let graph = try ModelSource.load(model)
        try ONNXExporter.write(graph, to: URL(fileURLWithPath: out), overwrite: force)
        print("wrote \(out): \(graph.nodes.count) nodes, \(graph.parameterCount) parameters")
    }
}

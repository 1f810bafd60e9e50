import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-layer cost of a model: MACs, FLOPs, parameters, bytes, arithmetic intensity.",
        discussion: """
            Lowers MODEL at the given batch and input size and counts, for every layer before \
            fusion: MACs (conv/Gemm/MatMul) and FLOPs side by side (FLOPs = 2 x MACs for \
            conv/Gemm; bias, batch norm, activations, element-wise ops and pooling are counted \
            and totalled separately), learnable parameters, weight bytes, activation bytes and \
            arithmetic intensity (FLOPs / bytes moved, where each layer reads its inputs and \
            weights and writes its outputs once, at --element-size bytes per element). \
            Totals include the peak activation memory without reuse and the engine's planned \
            arena (compiled with oneDNN, float32). The counting rules are in docs/analysis.md.
            """)

    @Argument(help: "A zoo model name (see `metronome models`) or an .onnx file.") var model: String
    @Option(help: "Images per inference.") var batch = 1
    @Option(name: .customLong("input-size"), help: "Input height x width, e.g. 160x160 (default: the model's).")
    var inputSize: String?
    @Option(name: .customLong("element-size"), help: "Bytes per element in the byte model (4 = float32, 2 = float16).")
    var elementSize = 4
    @Flag(name: .customLong("no-plan"), help: "Skip compiling the model (no planned arena in the report).")
    var noPlan = false
    @Flag(help: "Print one JSON object instead of the table.") var json = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard elementSize >= 1 else { throw ValidationError("--element-size must be at least 1") }
        if let inputSize { _ = try ArgumentLists.size(inputSize) }
    }

    func run() throws {
        var graph = try ModelSource.load(model)
        if let inputSize {
            let (h, w) = try ArgumentLists.size(inputSize)
            graph = try CostModel.resizingInputs(graph, height: h, width: w)
        }
        let report: CostReport
        do {
            report = try CostModel.analyze(graph, batch: batch, elementSize: elementSize, plan: !noPlan)
        } catch let error as MetronomeError where inputSize != nil {
            throw MetronomeError.invalidArgument("\(model) does not work at input size \(inputSize ?? ""): \(error)")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        Self.printTable(report)
    }

    static func printTable(_ r: CostReport) {
        var table = TextTable([.right("#"), .left("layer"), .left("op"), .left("output"), .right("MACs"), .right("FLOPs"),
                               .right("params"), .right("out bytes"), .right("FLOP/B")])
        for (i, l) in r.layers.enumerated() {
            table.append([String(i), l.name, l.opType, l.outputShapes.map(Units.shape).joined(separator: ","),
                          l.macs > 0 ? Units.count(l.macs) : "-", Units.count(l.flops), l.params > 0 ? Units.count(l.params) : "-",
                          Units.bytes(l.outputBytes), String(format: "%.2f", l.arithmeticIntensity)])
        }
        print(table.render())
        let inputs = r.inputShapes.sorted { $0.key < $1.key }.map { "\($0.key) \(Units.shape($0.value))" }.joined(separator: ", ")
        print("")
        print("\(r.model): batch \(r.batch), \(inputs), \(r.elementSize)-byte elements, \(r.layers.count) layers")
        let c = r.flopsByCategory
        func part(_ key: String, _ label: String) -> String? {
            guard let v = c[key], v > 0 else { return nil }
            return "\(label) \(Units.count(v))"
        }
        let parts = [part("conv_gemm", "conv/gemm (2xMACs)"), part("bias", "bias"), part("batchnorm", "batchnorm"),
                     part("activation", "activation"), part("elementwise", "elementwise"), part("pooling", "pooling"),
                     part("softmax", "softmax")].compactMap { $0 }
        print("  MACs                  \(Units.count(r.macs))")
        print("  FLOPs                 \(Units.count(r.flops))  (\(parts.joined(separator: ", ")))")
        print("  params                \(Units.count(r.params))")
        print("  weight bytes          \(Units.bytes(r.weightBytes))")
        print("  activations           \(Units.bytes(r.peakActivationBytes)) without reuse, \(Units.bytes(r.peakLiveActivationBytes)) peak live")
        if let arena = r.plannedArenaBytes {
            let io = r.plannedIOBytes.map { " + \(Units.bytes($0)) caller inputs/outputs" } ?? ""
            let w = r.plannedWeightBytes.map { "; plan weights \(Units.bytes($0))" } ?? ""
            print("  engine memory plan    arena \(Units.bytes(arena))\(io)\(w) (float32)")
        }
        print("  bytes moved           \(Units.bytes(r.bytesMoved))")
        print("  arithmetic intensity  \(String(format: "%.2f", r.arithmeticIntensity)) FLOP/byte (all layers); "
              + "\(String(format: "%.2f", r.convGemmArithmeticIntensity)) (conv+FC only, FoldedCNNs ai.py model)")
        if let parts = r.branches { printBranches(parts, total: r) }
    }

    /// MACs and parameters per part of a multi-branch network (from the node-name placements).
    static func printBranches(_ parts: [BranchCost], total r: CostReport) {
        var table = TextTable([.left("part"), .left("device"), .right("layers"), .right("MACs"), .right("% MACs"), .right("params")])
        for p in parts {
            table.append([p.part, p.device, String(p.layers), Units.count(p.macs),
                          String(format: "%.1f", 100 * Double(p.macs) / Double(max(r.macs, 1))), Units.count(p.params)])
        }
        print("")
        print("Per branch (stage s, branch b, on a device; merges concatenate the branches of a stage):")
        print(table.render())
    }
}

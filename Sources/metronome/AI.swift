import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis

struct AI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ai",
        abstract: "Arithmetic intensity of a model, its folded and its compound-scaled versions.",
        discussion: """
            For the original at batch B, each fold f at floor(B/f) folded inputs, and each \
            compound-scaled version (width x (1/1.1)^phi, resolution x (1/1.15)^phi) at batch \
            B, prints FLOPs per image and arithmetic intensity under two byte models: all \
            layers (each reads its inputs and weights and writes its output once), and \
            FoldedCNNs' ai.py model (conv and fully connected layers only).
            """)

    @Argument(help: "A zoo model name or an .onnx file.") var model: String
    @Option(help: "Fold factors, comma-separated.") var fold = "2,3,4"
    @Option(help: "Compound-scaling exponents phi, comma-separated (0 for none).") var phi = "1"
    @Option(help: "Images per inference B.") var batch = 1024
    @Option(name: .customLong("element-size"), help: "Bytes per element (2 = float16 as in ai.py, 4 = float32).")
    var elementSize = 2
    @Option(help: "Seed of the resized layers' weights.") var seed: UInt64 = 0
    @Flag(help: "Print JSON instead of the table.") var json = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard elementSize >= 1 else { throw ValidationError("--element-size must be at least 1") }
        let folds = try ArgumentLists.ints(fold, option: "--fold")
        guard folds.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--fold values must be at least 1") }
        guard try ArgumentLists.doubles(phi, option: "--phi").allSatisfy({ $0 >= 0 }) else {
            throw ValidationError("--phi values must not be negative")
        }
    }

    func run() throws {
        let graph = try ModelSource.load(model)
        let rows = try IntensityStudy.run(graph, batch: batch, folds: ArgumentLists.ints(fold, option: "--fold"),
                                          phis: ArgumentLists.doubles(phi, option: "--phi"),
                                          elementSize: elementSize, seed: seed)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try encoder.encode(rows), as: UTF8.self))
            return
        }
        print("\(graph.name): batch \(batch), \(elementSize)-byte elements")
        var table = TextTable([.left("variant"), .left("input"), .right("inputs"), .right("MFLOP/img"), .right("act KiB/img"),
                               .right("params"), .right("AI all"), .right("AI conv+FC"), .right("vs orig")])
        let base = rows.first?.convGemmArithmeticIntensity ?? 1
        for r in rows {
            table.append([r.variant, Units.shape(Array(r.inputShape.dropFirst())), String(r.inputs),
                          String(format: "%.2f", r.flopsPerImage / 1e6), String(format: "%.1f", r.activationBytesPerImage / 1024),
                          Units.count(r.params), String(format: "%.1f", r.arithmeticIntensity),
                          String(format: "%.1f", r.convGemmArithmeticIntensity), String(format: "%.2fx", r.convGemmArithmeticIntensity / base)])
        }
        print(table.render())
    }
}

import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis
import MetronomeONNX
import MetronomeTransforms

struct Fold: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a folded model (FoldedCNNs) as ONNX.",
        discussion: """
            The folded model takes FACTOR images stacked along channels ([N/f, f*C, H, W]; \
            image j of a group fills channels j*C..(j+1)*C-1) and returns f*K outputs (image \
            j's logits are columns j*K..(j+1)*K-1). Every intermediate width W becomes \
            floor(sqrt(f) * W); depth, kernels, strides and spatial sizes stay. Resized layers \
            get fresh seeded weights: a folded model must be trained before it is accurate.
            """)

    @Argument(help: "A zoo model name or an .onnx file.") var model: String
    @Option(help: "Images folded into one input (f).") var factor: Int
    @Option(help: "Output .onnx path.") var out: String
    @Option(help: "Seed of the resized layers' weights.") var seed: UInt64 = 0
    @Option(help: "Round folded widths up to a multiple of this (1 = the paper's rule).") var align = 1
    @Flag(help: "Replace the output file if it exists.") var force = false

    func validate() throws {
        guard factor >= 1 else { throw ValidationError("--factor must be at least 1") }
        guard align >= 1 else { throw ValidationError("--align must be at least 1") }
        try checkWritable(out, force: force)
    }

    func run() throws {
        let original = try ModelSource.load(model)
        let folded = try fold(original, factor: factor, seed: seed, channelMultiple: align)
        try ONNXExporter.write(folded.graph, to: URL(fileURLWithPath: out), overwrite: force)
        let before = try CostModel.analyze(original, plan: false)
        let after = try CostModel.analyze(folded.graph, plan: false)
        print("wrote \(out): \(folded.graph.name)")
        for (a, b) in zip(original.inputs, folded.graph.inputs) {
            print("  input  \(a.name): \(Units.shape(a.shape)) -> \(Units.shape(b.shape))")
        }
        for (name, k) in folded.outputChannels.sorted(by: { $0.key < $1.key }) {
            print("  output \(name): \(k) per image -> \(k * factor) per folded input")
        }
        let f = Double(factor)
        print("  MACs per image   \(Units.count(before.macs)) -> \(Units.count(Double(after.macs) / f)) (\(String(format: "%.3f", Double(after.macs) / f / Double(before.macs)))x)")
        print("  params           \(Units.count(before.params)) -> \(Units.count(after.params))")
        print("  activation bytes per image  \(Units.bytes(before.peakActivationBytes)) -> \(Units.bytes(Int(Double(after.peakActivationBytes) / f)))")
    }
}

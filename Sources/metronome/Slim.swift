import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis
import MetronomeModels
import MetronomeONNX
import MetronomeTransforms

struct Slim: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a width-slimmed model (Slimmable Networks) as ONNX.",
        discussion: """
            Keeps the leading make_divisible(C x WIDTH) channels of every conv and fully \
            connected layer, consistently through residual adds, depthwise convolutions and \
            concatenations; input channels and the class count do not change. For the \
            slimmable zoo families (s-mobilenet_v2 at 0.35/0.5/0.75/1.0, s-resnet50 at \
            0.25/0.5/0.75/1.0) WIDTH must be one of the family's widths, and that width's \
            private batch norms are used.
            """)

    @Argument(help: "A zoo model name, a slimmable family (s-mobilenet_v2, s-resnet50) or an .onnx file.")
    var model: String
    @Option(help: "Width multiplier in (0, 1].") var width: Double
    @Option(help: "Output .onnx path.") var out: String
    @Option(help: "Round channel counts to multiples of this.") var divisor = 8
    @Option(name: .customLong("keep"), help: "A node whose output channels stay at full width (repeatable).")
    var keep: [String] = []
    @Flag(help: "Replace the output file if it exists.") var force = false

    func validate() throws {
        guard width > 0 && width <= 1 else { throw ValidationError("--width must be in (0, 1], got \(width)") }
        guard divisor >= 1 else { throw ValidationError("--divisor must be at least 1") }
        try checkWritable(out, force: force)
    }

    func run() throws {
        let original: Graph, slimmed: Graph
        var memoryNote: String? = nil
        if let family = SlimmableZoo.family(named: model) {
            guard keep.isEmpty, divisor == 8 else {
                throw MetronomeError.invalidArgument("\(model) is a slimmable family with fixed widths; --keep and --divisor do not apply")
            }
            let m = try family.model()
            original = m.base
            slimmed = try m.instantiate(width: width)
            let mem = try m.memory
            memoryNote = "  all \(m.widths.count) widths loaded together: \(Units.bytes(mem.sharedWeightBytes)) shared weights + "
                + "\(Units.bytes(mem.batchNormBytes)) private batch norms = \(Units.bytes(mem.totalBytes)) "
                + "(\(Units.bytes(mem.separateModelsBytes)) as separate models)"
        } else {
            original = try ModelSource.load(model)
            slimmed = try slim(original, width: width,
                               options: SlimOptions(divisor: divisor, fullWidthNodes: Set(keep)))
        }
        try ONNXExporter.write(slimmed, to: URL(fileURLWithPath: out), overwrite: force)
        let before = try CostModel.analyze(original, plan: false)
        let after = try CostModel.analyze(slimmed, plan: false)
        var changed = 0
        for (a, b) in zip(before.layers, after.layers) where a.outputShapes != b.outputShapes { changed += 1 }
        print("wrote \(out): \(slimmed.name) at width \(width)")
        print("  MACs   \(Units.count(before.macs)) -> \(Units.count(after.macs)) (\(String(format: "%.3f", Double(after.macs) / Double(before.macs)))x)")
        print("  params \(Units.count(before.params)) -> \(Units.count(after.params)) (\(String(format: "%.3f", Double(after.params) / Double(before.params)))x)")
        print("  \(changed) of \(before.layers.count) layers changed width")
        if let memoryNote { print(memoryNote) }
    }
}

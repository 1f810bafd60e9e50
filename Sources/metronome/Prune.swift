import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis
import MetronomeONNX
import MetronomeTransforms

extension PruneMode: ExpressibleByArgument {}
extension PruneSkew: ExpressibleByArgument {}

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove whole filters of convolutions and fully connected layers, and write the model as ONNX.",
        discussion: """
            Ranks every output channel of every conv and Gemm globally (by its filter's L1 norm, \
            or by seeded random scores) and removes the lowest-scored ones until AMOUNT of the \
            learnable parameters are gone, keeping at least 2 channels per layer. Channels coupled \
            by residual adds, depthwise convolutions, concatenations, batch norms and \
            flatten->Gemm are scored and removed together, with the channel analysis that \
            `slim` uses; the input channels and class count do not change. random-weighted \
            scales the random scores by depth: --skew late removes more from late layers, \
            --skew early more from early layers. --amount 0 writes the original model.
            """)

    @Argument(help: "A zoo model name or an .onnx file.")
    var model: String
    @Option(help: "Fraction of the parameters to remove, in [0, 1).") var amount: Double
    @Option(help: "Channel scores: l1, random or random-weighted.") var mode: PruneMode = .l1
    @Option(help: "For random-weighted: which layers lose more channels (early, late, uniform). (default: late)")
    var skew: PruneSkew?
    @Option(help: "Seed of the random scores (random modes only). (default: 0)") var seed: UInt64?
    @Option(help: "Output .onnx path.") var out: String
    @Flag(help: "Replace the output file if it exists.") var force = false

    func validate() throws {
        guard amount >= 0 && amount < 1 else { throw ValidationError("--amount must be in [0, 1), got \(amount)") }
        if skew != nil && mode != .randomWeighted {
            throw ValidationError("--skew applies only to --mode random-weighted, not \(mode.rawValue)")
        }
        if seed != nil && mode == .l1 { throw ValidationError("--seed applies only to the random modes; l1 has no random scores") }
        try checkWritable(out, force: force)
    }

    func run() throws {
        let original = try ModelSource.load(model)
        let result = try prune(original, amount: amount, options: PruneOptions(mode: mode, skew: skew ?? .late, seed: seed ?? 0))
        try ONNXExporter.write(result.graph, to: URL(fileURLWithPath: out), overwrite: force)
        let before = try CostModel.analyze(original, plan: false)
        let after = try CostModel.analyze(result.graph, plan: false)
        let achieved = 1 - Double(after.params) / Double(before.params)
        let pruned = result.groups.filter { $0.kept.count < $0.channels }.count
        print("wrote \(out): \(result.graph.name), mode \(mode.rawValue)\(mode == .randomWeighted ? " (skew \((skew ?? .late).rawValue))" : "")")
        print("  params \(Units.count(before.params)) -> \(Units.count(after.params)): "
            + String(format: "%.2f%% removed (target %.2f%%)", achieved * 100, amount * 100))
        print("  MACs   \(Units.count(before.macs)) -> \(Units.count(after.macs)) (\(String(format: "%.3f", Double(after.macs) / Double(before.macs)))x)")
        print("  \(pruned) of \(result.groups.count) prunable channel groups lost filters")
    }
}

import ArgumentParser
import Foundation
import Metronome
import MetronomeAnalysis
import MetronomeModels
import MetronomeONNX

struct Branch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build the multi-branch network a NN-Stretch (pycls mbanynet) config describes, as ONNX.",
        discussion: """
            CONFIG is a pycls YAML file (MODEL.TYPE anynet or mbanynet): ANYNET's per-stage lists \
            (DEPTHS, WIDTHS, STRIDES, GROUP_WS, BOT_MULS, KERNELS) hold one entry per branch; \
            branch j runs on DEVICES[j]; the branches of a stage read the same input and are \
            concatenated at its end (MB_VER 2), or projected so the merge has ORIGINAL_WIDTHS \
            channels (MB_VER 1). Weights are seeded. Every node name starts with its placement \
            (stem@cpu/, s2.b1@dsp/, s2.merge@cpu/, head@cpu/), which `bench`, `infer` and \
            `stretch` read with --devices to run branches in parallel on core groups. Any \
            command that takes a MODEL also takes the .yaml directly.
            """)

    @Argument(help: "A multi-branch config (.yaml).") var config: String
    @Option(help: "Output .onnx path.") var out: String
    @Option(help: "Seed of the weights.") var seed: UInt64 = 0
    @Flag(help: "Replace the output file if it exists.") var force = false

    func validate() throws {
        guard out.hasSuffix(".onnx") else { throw ValidationError("--out must name an .onnx file, got \(out)") }
        try checkWritable(out, force: force)
    }

    func run() throws {
        let c = try MultiBranchConfig.load(path: config)
        for note in c.notes { FileHandle.standardError.write(Data("note: \(config): \(note)\n".utf8)) }
        let graph = MultiBranchNetwork.build(c, seed: seed)
        let report = try CostModel.analyze(graph, batch: 1, plan: false)
        try ONNXExporter.write(graph, to: URL(fileURLWithPath: out), overwrite: force)
        let branches = c.stages.map { String($0.branches.count) }.joined(separator: "/")
        print("wrote \(out): \(c.name), \(c.stages.count) stages (branches \(branches)), MB_VER \(c.version), input \(c.imageSize)x\(c.imageSize), \(c.classes) classes")
        print("  MACs \(Units.count(report.macs)), params \(Units.count(report.params)); devices \(BranchPlacement.devices(of: graph.nodes.map(\.name)).joined(separator: ", "))")
        if let parts = report.branches { Summary.printBranches(parts, total: report) }
    }
}

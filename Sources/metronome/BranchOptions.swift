import ArgumentParser
import Foundation
import Metronome

/// `--devices` for commands that run multi-branch networks branch-parallel.
struct BranchOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Run a multi-branch network's branches in parallel: device=cores pairs, e.g. cpu=0,dsp=1 or cpu=0-1,gpu=2+3; 'auto' gives one core to each device the network names, in order.",
        valueName: "devices"))
    var devices: String?

    /// The device groups for `graph`, or nil to run its kernels one after another.
    func deviceCores(for graph: Graph) throws -> DeviceCores? {
        guard let devices else { return nil }
        let names = BranchPlacement.devices(of: graph.nodes.map(\.name))
        guard !names.isEmpty else {
            throw ValidationError("--devices: \(graph.name) has no branch placements in its node names (build it with `metronome branch`)")
        }
        let cores = devices == "auto" ? try DeviceCores.oneCoreEach(names) : try DeviceCores.parse(devices)
        try cores.validate(for: names)
        if !cores.sharedCores.isEmpty {
            FileHandle.standardError.write(Data("warning: --devices gives core(s) \(cores.sharedCores) to more than one device; their branches will share them\n".utf8))
        }
        return cores
    }
}

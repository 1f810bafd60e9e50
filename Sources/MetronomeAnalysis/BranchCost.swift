import Metronome

/// MACs, FLOPs and parameters of one part of a multi-branch network (stem, a stage's
/// branch, a merge, the head), from its layers' ``BranchPlacement`` name prefixes.
public struct BranchCost: Sendable, Equatable, Codable {
    /// The placement prefix, e.g. `s2.b1@dsp`.
    public var part: String
    public var stage: Int?
    public var branch: Int?
    public var device: String
    public var layers: Int
    public var macs: Int
    public var flops: Int
    public var params: Int

    /// The parts of `report`'s layers in order of first appearance; empty when no layer
    /// carries a placement (an ordinary network).
    public static func parts(of report: CostReport) -> [BranchCost] {
        var parts: [BranchCost] = []
        var index: [String: Int] = [:]
        for layer in report.layers {
            guard let p = BranchPlacement.parse(layer.name) else { continue }
            let key = p.description
            if index[key] == nil {
                index[key] = parts.count
                parts.append(BranchCost(part: key, stage: p.stage, branch: p.branch, device: p.device, layers: 0, macs: 0, flops: 0, params: 0))
            }
            let i = index[key]!
            parts[i].layers += 1
            parts[i].macs += layer.macs
            parts[i].flops += layer.flops
            parts[i].params += layer.params
        }
        return parts
    }
}

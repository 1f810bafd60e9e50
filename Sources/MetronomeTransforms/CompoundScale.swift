import Foundation
import Metronome

/// EfficientNet-style compound scaling as the FoldedCNNs paper uses it for its "shrink the
/// model instead" baseline (`models/efficientnet_game.py`): every intermediate width W becomes
/// ⌊W · (1/1.1)^φ⌋ and the input resolution H×W becomes ⌊H / 1.15^φ⌋ × ⌊W / 1.15^φ⌋. Input
/// channels and the class count stay.
///
/// Depth is not scaled: the reference code drops trailing convolutions, which has no general
/// meaning for an arbitrary graph. Resized layers get fresh random weights from `seed`,
/// filter norms taken from the original (the scaled network must be trained); biases and
/// batch-norm statistics are tiled.
public struct CompoundScaling: Sendable, Equatable {
    public var phi: Double
    public var widthBase: Double
    public var resolutionBase: Double

    public init(phi: Double, widthBase: Double = 1.1, resolutionBase: Double = 1.15) {
        self.phi = phi
        self.widthBase = widthBase
        self.resolutionBase = resolutionBase
    }

    public var widthMultiplier: Double { pow(1 / widthBase, phi) }

    /// The scaled width of a layer of `channels` channels.
    public func channels(_ channels: Int) -> Int {
        max(1, Int((Double(channels) * widthMultiplier).rounded(.down)))
    }

    /// The scaled length of a spatial dimension.
    public func resolution(_ size: Int) -> Int {
        max(1, Int((Double(size) / pow(resolutionBase, phi)).rounded(.down)))
    }
}

/// Applies ``CompoundScaling`` to a graph whose inputs are `[N, C, H, W]` images.
public func compoundScale(_ graph: Graph, _ scaling: CompoundScaling, seed: UInt64 = 0) throws -> Graph {
    guard scaling.phi >= 0, scaling.widthBase > 0, scaling.resolutionBase > 0 else {
        throw MetronomeError.invalidArgument("compound scaling needs φ ≥ 0 and positive bases")
    }
    let analysis = try ChannelAnalysis(graph: graph, fixedInputsAndOutputs: true)
    let program = analysis.program
    var scaledInputs: [ValueInfo] = []
    for input in graph.inputs {
        guard input.shape.count == 4 else {
            throw MetronomeError.invalidGraph("input '\(input.name)' has shape \(input.shape); compound scaling needs [N, C, H, W]")
        }
        var s = input.shape
        guard s[2] > 0, s[3] > 0 else {
            throw MetronomeError.invalidGraph("input '\(input.name)' has symbolic spatial dimensions \(input.shape)")
        }
        s[2] = scaling.resolution(s[2])
        s[3] = scaling.resolution(s[3])
        scaledInputs.append(ValueInfo(name: input.name, shape: s))
    }
    let probe = SpatialProbe(graph: graph, inputs: scaledInputs)
    let solver = ChannelSolver(
        analysis: analysis,
        inner: { try probe.inner(program.values[$0].name) },
        rule: { role, c, _ in
            if case .free = role { return Array(0..<scaling.channels(c)) }
            return Array(0..<c)
        })
    var rewriter = GraphRewriter(solver: solver, policy: .fresh(seed: seed))
    let byName = Dictionary(uniqueKeysWithValues: scaledInputs.map { ($0.name, $0.shape) })
    var result = try rewriter.run { info, _ in byName[info.name] ?? info.shape }
    result.name = "\(graph.name)-phi\(formatWidth(scaling.phi))"
    try validate(result, inputShapes: [:])
    return result
}

/// Spatial sizes of values at a new input resolution, found by lowering the part of the
/// original graph that computes each value (spatial sizes do not depend on channel counts).
struct SpatialProbe {
    let graph: Graph
    let inputs: [ValueInfo]

    func inner(_ value: String) throws -> Int {
        var needed: Set<String> = [value]
        var nodes: [Node] = []
        for node in graph.nodes.reversed() where node.outputs.contains(where: needed.contains) {
            nodes.append(node)
            needed.formUnion(node.inputs)
        }
        var g = graph
        g.nodes = nodes.reversed()
        g.outputs = [value]
        g.inputs = inputs
        let symbolic = inputs.contains { $0.shape.first.map { $0 < 0 } ?? false }
        let p = try Program(lowering: g, batch: symbolic ? 1 : nil)
        guard let id = p.outputs.first else { throw MetronomeError.invalidGraph("cannot find value '\(value)'") }
        return p.shape(id)[2...].reduce(1, *)
    }
}

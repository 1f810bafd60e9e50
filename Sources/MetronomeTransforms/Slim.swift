#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Metronome

/// Settings of ``slim(_:width:options:)``.
public struct SlimOptions: Sendable, Equatable {
    /// Channel counts are rounded to multiples of this, as MobileNet's `make_divisible` does.
    public var divisor: Int
    /// Nodes whose outputs keep their full width, such as S-MobileNetV2's 1280-channel last
    /// convolution (the slimmable-networks reference code never slims it).
    public var fullWidthNodes: Set<String>
    /// Concrete shapes for graph inputs with symbolic non-batch dimensions.
    public var inputShapes: [String: [Int]]
    /// Inverted-residual expansions (a 1×1 conv from C to t·C channels feeding a depthwise
    /// conv) keep t × the slimmed input width instead of make_divisible(t·C·width), as
    /// MobileNetV2 and the slimmable-networks code compute hidden widths.
    public var expansionFollowsInput: Bool

    public init(divisor: Int = 8, fullWidthNodes: Set<String> = [], inputShapes: [String: [Int]] = [:],
                expansionFollowsInput: Bool = false) {
        self.divisor = divisor
        self.fullWidthNodes = fullWidthNodes
        self.inputShapes = inputShapes
        self.expansionFollowsInput = expansionFollowsInput
    }
}

/// MobileNet's `make_divisible`: `value` rounded to the nearest multiple of `divisor`, at least
/// `divisor`, and never more than 10% below `value`.
public func makeDivisible(_ value: Double, divisor: Int = 8) -> Int {
    var v = max(divisor, Int(value + Double(divisor) / 2) / divisor * divisor)
    if Double(v) < 0.9 * value { v += divisor }
    return v
}

/// The channel count a slimmed layer keeps out of `channels` at `width`: every channel at
/// width 1, otherwise `make_divisible(channels · width)`, capped at `channels`.
public func slimmedChannels(_ channels: Int, width: Double, divisor: Int = 8) -> Int {
    width >= 1 ? channels : min(channels, makeDivisible(Double(channels) * width, divisor: divisor))
}

/// Width slimming (Yu et al., *Slimmable Neural Networks*, ICLR 2019): every convolution and
/// fully connected layer keeps the leading `slimmedChannels(C, width)` of its C output
/// channels, and the consumers keep the matching input slices.
///
/// Channel counts stay consistent across residual adds, depthwise convolutions (whose groups
/// follow their input), batch norms, activations, pooling and concatenations (whose parts are
/// slimmed separately). Graph inputs and outputs keep their channels, so the image channels
/// and the class count never change. Operators that depend on an exact channel count
/// (transposes, reshapes other than flattens, splits or slices along channels, grouped
/// convolutions) keep the channels they touch at full width. At width 1 the result holds the
/// original weights unchanged.
public func slim(_ graph: Graph, width: Double, options: SlimOptions = SlimOptions()) throws -> Graph {
    guard width > 0 && width <= 1 else {
        throw MetronomeError.invalidArgument("slimming width must be in (0, 1], got \(width)")
    }
    guard options.divisor >= 1 else {
        throw MetronomeError.invalidArgument("channel divisor must be at least 1, got \(options.divisor)")
    }
    let analysis = try ChannelAnalysis(graph: graph, inputShapes: options.inputShapes,
                                       pinnedNodes: options.fullWidthNodes, fixedInputsAndOutputs: true)
    let program = analysis.program
    let expansions = options.expansionFollowsInput ? inverseResidualExpansions(analysis) : [:]
    let solver = ChannelSolver(
        analysis: analysis,
        inner: { program.shape($0)[2...].reduce(1, *) },
        rule: { role, c, v in
            guard case .free = role else { return Array(0..<c) }
            if let (x, t) = expansions[analysis.root(v)] {
                let cx = analysis.channels(x)
                if case .free = analysis.role(x) { return Array(0..<(t * slimmedChannels(cx, width: width, divisor: options.divisor))) }
                return Array(0..<(t * cx))
            }
            return Array(0..<slimmedChannels(c, width: width, divisor: options.divisor))
        })
    var rewriter = GraphRewriter(solver: solver, policy: .slice)
    var result = try rewriter.run { info, _ in info.shape }
    if width < 1 { result.name = "\(graph.name)-w\(formatWidth(width))" }
    try validate(result, inputShapes: options.inputShapes)
    return result
}

/// Channel classes produced by an expansion conv (groups 1, t·C outputs from C inputs, t > 1)
/// whose output feeds a depthwise conv: class root → (the expansion's input, t).
///
/// This matches one architecture pattern (MobileNetV2's inverted residual) across several
/// convolutions, as a graph pass would, so it looks at the convolution payload directly
/// instead of asking operators.
func inverseResidualExpansions(_ analysis: ChannelAnalysis) -> [ValueID: (ValueID, Int)] {
    let p = analysis.program
    var depthwiseInputs = Set<ValueID>()
    for step in p.steps {
        if case .conv(let a) = step.op, a.groups > 1, a.groups == p.shape(step.inputs[0])[1] {
            depthwiseInputs.insert(analysis.root(step.inputs[0]))
        }
    }
    var result: [ValueID: (ValueID, Int)] = [:]
    for step in p.steps {
        guard case .conv(let a) = step.op, a.groups == 1 else { continue }
        let x = step.inputs[0], y = step.outputs[0]
        let (c, m) = (analysis.channels(x), analysis.channels(y))
        guard m > c, m % c == 0, depthwiseInputs.contains(analysis.root(y)) else { continue }
        result[analysis.root(y)] = (x, m / c)
    }
    return result
}

/// A width as written in names: `0.35`, `0.5`, `1.0`.
func formatWidth(_ w: Double) -> String {
    w == w.rounded() ? String(format: "%.1f", w) : String(describing: (w * 1000).rounded() / 1000)
}

/// Lowers a transformed graph once so that a transform never returns a graph the engine rejects.
func validate(_ graph: Graph, inputShapes: [String: [Int]]) throws {
    let symbolicBatch = graph.inputs.contains { $0.shape.first.map { $0 < 0 } ?? false }
    var shapes: [String: [Int]] = [:]
    for (k, v) in inputShapes {
        if let declared = graph.inputs.first(where: { $0.name == k })?.shape, declared.count == v.count {
            shapes[k] = zip(declared, v).map { $0 < 0 ? $1 : $0 }
        }
    }
    do {
        _ = try Program(lowering: graph, inputShapes: shapes, batch: symbolicBatch ? 1 : nil)
    } catch {
        throw MetronomeError.invalidGraph("the transformed graph '\(graph.name)' does not lower: \(error)")
    }
}

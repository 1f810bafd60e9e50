import Foundation
import Metronome

/// The folded width of an intermediate layer of `channels` channels: ⌊√f · channels⌋, as the
/// FoldedCNNs models compute it (`int(c * fold ** 0.5)`).
public func foldedChannels(_ channels: Int, factor: Int) -> Int {
    max(1, Int((Double(channels) * Double(factor).squareRoot()).rounded(.down)))
}

/// ``foldedChannels(_:factor:)`` rounded up to a multiple of `multiple` (1 keeps the paper's rule).
public func foldedChannels(_ channels: Int, factor: Int, multiple: Int) -> Int {
    let c = foldedChannels(channels, factor: factor)
    return multiple > 1 ? (c + multiple - 1) / multiple * multiple : c
}

/// A graph folded by ``fold(_:factor:seed:inputShapes:)``, with the layout contract needed to
/// feed it images and read per-image results.
public struct FoldedGraph: Sendable {
    /// The folded network: `f·C` input channels, `f·K` output channels.
    public var graph: Graph
    public var factor: Int
    /// Channels of one image for each graph input (C), by input name.
    public var inputChannels: [String: Int]
    /// Channels of one image's result for each graph output (K), by output name.
    public var outputChannels: [String: Int]

    /// Stacks groups of `factor` images along channels: `[N, C, …]` → `[N/f, f·C, …]`, image
    /// `j` of group `g` filling channels `j·C ..< (j+1)·C` of folded input `g`.
    public func pack(_ images: Tensor) throws -> Tensor { try FoldLayout.pack(images, factor: factor) }

    /// Splits folded results back per image: `[N/f, f·K, …]` → `[N, K, …]`.
    public func unpack(_ outputs: Tensor) throws -> Tensor { try FoldLayout.unpack(outputs, factor: factor) }
}

/// The FoldedCNNs input and output layout. In row-major NCHW, image `j` of group `g` already
/// sits where channels `j·C …` of folded input `g` must go, so both directions keep the
/// elements in place and only change the shape.
public enum FoldLayout {
    public static func pack(_ images: Tensor, factor: Int) throws -> Tensor {
        guard factor >= 1 else { throw MetronomeError.invalidArgument("fold factor must be at least 1, got \(factor)") }
        guard images.rank >= 2 else {
            throw MetronomeError.invalidArgument("images must be [N, C, …], got shape \(images.shape)")
        }
        let n = images.shape[0]
        guard n % factor == 0 else {
            throw MetronomeError.invalidArgument(
                "\(n) images cannot be folded by \(factor); pass a multiple of \(factor) (FoldedCNNs drops the remainder)")
        }
        var shape = images.shape
        shape[0] = n / factor
        shape[1] *= factor
        return try Tensor(shape: shape, scalars: images.scalars)
    }

    /// Stacks separate images, each `[C, …]` (no batch dimension), and folds them.
    public static func pack(_ images: [Tensor], factor: Int) throws -> Tensor {
        guard let first = images.first else { throw MetronomeError.invalidArgument("no images to fold") }
        var scalars: [Float] = []
        scalars.reserveCapacity(first.count * images.count)
        for (i, t) in images.enumerated() {
            guard t.shape == first.shape else {
                throw MetronomeError.invalidArgument("image \(i) has shape \(t.shape) but image 0 has \(first.shape)")
            }
            scalars += t.scalars
        }
        return try pack(Tensor(shape: [images.count] + first.shape, scalars: scalars), factor: factor)
    }

    public static func unpack(_ outputs: Tensor, factor: Int) throws -> Tensor {
        guard factor >= 1 else { throw MetronomeError.invalidArgument("fold factor must be at least 1, got \(factor)") }
        guard outputs.rank >= 2, outputs.shape[1] % factor == 0 else {
            throw MetronomeError.invalidArgument(
                "folded outputs must be [N/f, f·K, …] with f = \(factor), got shape \(outputs.shape)")
        }
        var shape = outputs.shape
        shape[0] *= factor
        shape[1] /= factor
        return try Tensor(shape: shape, scalars: outputs.scalars)
    }
}

/// FoldedCNNs (Hoffman et al., ICML 2021): turns a CNN into one that classifies `factor`
/// images per input, stacked along channels.
///
/// The graph input takes `f·C` channels (and `N/f` inputs where the batch is concrete), the
/// outputs give `f·K` values per input, and every intermediate width W becomes ⌊√f·W⌋
/// (``foldedChannels(_:factor:)``), which keeps FLOPs per image about constant while cutting
/// activation bytes per image by about 1/√f. Depth, kernels, strides and spatial sizes do not
/// change. Channel counts stay consistent through residual adds, depthwise convolutions,
/// batch norms and concatenations as in ``slim(_:width:options:)``; layers whose channels an
/// operator pins keep their width. A softmax over the output logits is applied per image.
///
/// A folded network must be trained (FoldedCNNs uses distillation from the original), so
/// resized weights are fresh random draws from `seed`, each new filter scaled to the norm of
/// the original filter it stands in for; biases and batch-norm statistics are tiled from the
/// original, so that activations keep their ranges.
///
/// `channelMultiple` > 1 rounds every intermediate width up to a multiple of it, a CPU-minded
/// variant (SIMD kernels work on channel blocks of 8 or 16) that departs from the paper.
public func fold(_ graph: Graph, factor: Int, seed: UInt64 = 0, inputShapes: [String: [Int]] = [:],
                 channelMultiple: Int = 1) throws -> FoldedGraph {
    guard factor >= 1 else { throw MetronomeError.invalidArgument("fold factor must be at least 1, got \(factor)") }
    guard channelMultiple >= 1 else {
        throw MetronomeError.invalidArgument("channel multiple must be at least 1, got \(channelMultiple)")
    }
    let analysis = try ChannelAnalysis(graph: graph, inputShapes: inputShapes, fixedInputsAndOutputs: false)
    let program = analysis.program
    for v in program.inputs + program.outputs where program.shape(v).count < 2 {
        throw MetronomeError.invalidGraph(
            "'\(program.values[v].name)' has shape \(program.shape(v)); folding needs [N, C, …] inputs and outputs")
    }
    for v in program.inputs where analysis.isOutputClass(v) {
        throw MetronomeError.invalidGraph("input '\(program.values[v].name)' reaches an output with unchanged channels; nothing to fold")
    }
    for v in program.inputs + program.outputs {
        if case .pinned(let reason) = analysis.role(v) {
            throw MetronomeError.invalidGraph(
                "cannot fold '\(program.values[v].name)': its channels must stay \(analysis.channels(v)) because of \(reason)")
        }
    }
    let solver = ChannelSolver(
        analysis: analysis,
        inner: { program.shape($0)[2...].reduce(1, *) },
        rule: { role, c, _ in
            switch role {
            case .input, .output: return Array(0..<(c * factor))
            case .free: return Array(0..<foldedChannels(c, factor: factor, multiple: channelMultiple))
            case .pinned: return Array(0..<c)
            }
        })
    var rewriter = GraphRewriter(solver: solver, policy: .fresh(seed: seed))
    rewriter.foldFactor = factor
    var result = try rewriter.run { info, count in
        var shape = info.shape
        if shape.count >= 2 { shape[1] = count }
        if let n = shape.first, n > 0 {
            guard n % factor == 0 else {
                throw MetronomeError.invalidArgument(
                    "input '\(info.name)' has a fixed batch of \(n), which is not a multiple of fold factor \(factor)")
            }
            shape[0] = n / factor
        }
        return shape
    }
    if factor > 1 { result.name = "\(graph.name)-fold\(factor)" + (channelMultiple > 1 ? "-align\(channelMultiple)" : "") }
    var folded: [String: [Int]] = [:]
    for (name, shape) in inputShapes where shape.count >= 2 {
        var s = shape
        s[1] *= factor
        if s[0] > 0 && s[0] % factor == 0 { s[0] /= factor }
        folded[name] = s
    }
    try validate(result, inputShapes: folded)
    var inChannels: [String: Int] = [:], outChannels: [String: Int] = [:]
    for v in program.inputs { inChannels[program.values[v].name] = analysis.channels(v) }
    for v in program.outputs { outChannels[program.values[v].name] = analysis.channels(v) }
    return FoldedGraph(graph: result, factor: factor, inputChannels: inChannels, outputChannels: outChannels)
}

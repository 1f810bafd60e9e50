import Metronome

/// How ``prune(_:amount:options:)`` scores channels; the lowest scores are removed first.
public enum PruneMode: String, Sendable, CaseIterable {
    /// The L1 norm of each filter (summed over the coupled layers that share the channel).
    case l1
    /// Seeded uniform random scores: the baseline magnitude pruning is compared against.
    case random
    /// Seeded random scores scaled by a weight that depends on the layer's depth (``PruneSkew``).
    case randomWeighted = "random-weighted"
}

/// Which layers `random-weighted` pruning takes the larger share of channels from.
public enum PruneSkew: String, Sendable, CaseIterable {
    /// Early layers lose more channels: their random scores are scaled by 0.25 at the first
    /// layer rising linearly to 1 at the last.
    case early
    /// Late layers lose more channels: scores are scaled by 1 at the first layer falling to 0.25.
    case late
    /// Every layer's scores keep weight 1 (the same as ``PruneMode/random``).
    case uniform
}

/// Settings of ``prune(_:amount:options:)``.
public struct PruneOptions: Sendable, Equatable {
    public var mode: PruneMode
    public var skew: PruneSkew
    /// Seed of the random scores (unused by `l1`).
    public var seed: UInt64
    /// Channels every prunable group keeps at least.
    public var minimumChannels: Int
    /// Concrete shapes for graph inputs with symbolic non-batch dimensions.
    public var inputShapes: [String: [Int]]

    public init(mode: PruneMode = .l1, skew: PruneSkew = .late, seed: UInt64 = 0, minimumChannels: Int = 2,
                inputShapes: [String: [Int]] = [:]) {
        self.mode = mode
        self.skew = skew
        self.seed = seed
        self.minimumChannels = minimumChannels
        self.inputShapes = inputShapes
    }
}

/// One set of coupled channels that pruning chose from: every conv and Gemm whose outputs share
/// it (the convolutions feeding one residual chain are one group).
public struct PrunedGroup: Sendable, Equatable {
    /// The nodes whose output filters are this group's channels, in graph order.
    public var producers: [String]
    /// Channels before pruning.
    public var channels: Int
    /// The kept channel indices, ascending.
    public var kept: [Int]
}

/// A pruned graph with the parameter counts the removal was steered by.
public struct PruneResult: Sendable {
    public var graph: Graph
    /// Learnable parameters (counted as ``CostModel`` counts them) before and after pruning.
    public var paramsBefore: Int
    public var paramsAfter: Int
    public var groups: [PrunedGroup]
    /// The fraction of parameters removed.
    public var removedFraction: Double { paramsBefore == 0 ? 0 : 1 - Double(paramsAfter) / Double(paramsBefore) }
}

/// Structured filter pruning: removes whole output channels of convolutions and fully
/// connected layers, ranked globally by score (lowest first), until the removed fraction of
/// learnable parameters reaches `amount`.
///
/// The channels come from the same ``ChannelAnalysis`` that width slimming uses; slimming keeps
/// the leading k channels of each coupled group, pruning keeps a chosen set. A group (for
/// example all convolutions feeding one residual chain) is scored and pruned as a unit, and its
/// consumers (batch norms, depthwise convolutions, concatenations, flatten→Gemm) keep the
/// matching slices, so the graph stays consistent. Graph inputs and outputs, and channels tied
/// to them such as the classifier's outputs, keep their shapes. Every group keeps at least
/// `minimumChannels`.
///
/// Channels go in rank order while they fit under `amount`; one that would overshoot is skipped
/// for the next-ranked ones, so a coarse channel (one that feeds a large flatten→Gemm, several
/// percent of a small model) does not overshoot the target. When every remaining channel
/// overshoots, the cheapest one is removed if that lands closer to `amount` than stopping, so
/// the achieved fraction is within half the cheapest channel's cost of `amount`. At `amount` 0 the result is the
/// original graph with its tensors unchanged.
public func prune(_ graph: Graph, amount: Double, options: PruneOptions = PruneOptions()) throws -> PruneResult {
    guard amount >= 0 && amount < 1 else {
        throw MetronomeError.invalidArgument("pruning amount must be in [0, 1), got \(amount)")
    }
    guard options.minimumChannels >= 1 else {
        throw MetronomeError.invalidArgument("minimum channels per layer must be at least 1, got \(options.minimumChannels)")
    }
    let analysis = try ChannelAnalysis(graph: graph, inputShapes: options.inputShapes, fixedInputsAndOutputs: true)
    let p = analysis.program

    // Groups: free, chosen (not derived) channel classes produced by a conv, Gemm or MatMul.
    var groupOfRoot: [ValueID: Int] = [:]
    var producers: [[(name: String, weight: ValueID, axis: Int)]] = []
    for step in p.steps {
        let out = step.outputs[0]
        // The weight whose output axis ranks this producer's channels, as the operator
        // describes it (a plain or depthwise convolution, a Gemm or MatMul with a constant matrix).
        let weightAxis = try step.channelResize(in: p).inputs
            .compactMap { v, axes -> (ValueID, Int)? in
                if case .weight(let o, _, _) = axes { return (v, o) }
                return nil
            }.first
        guard let (w, axis) = weightAxis, case .free = analysis.role(out), analysis.derivedMembers(out).isEmpty,
              analysis.channels(out) > options.minimumChannels else { continue }
        let r = analysis.root(out)
        let g: Int
        if let existing = groupOfRoot[r] { g = existing } else {
            g = producers.count
            groupOfRoot[r] = g
            producers.append([])
        }
        producers[g].append((step.name, w, axis))
    }
    let groupCount = producers.count
    let channels = producers.map { p.shape($0[0].weight)[$0[0].axis] }

    // Scores, one per channel of each group.
    var scores: [[Double]] = []
    var rng = SplitMix64(seed: options.seed)
    for g in 0..<groupCount {
        switch options.mode {
        case .l1:
            var s = [Double](repeating: 0, count: channels[g])
            for m in producers[g] {
                guard let w = p.constants[m.weight] else {
                    throw MetronomeError.node(node: m.name, op: "Conv/Gemm", message: "weight has no constant value to score")
                }
                for (j, v) in w.filterL1Norms(axis: m.axis).enumerated() { s[j] += v }
            }
            scores.append(s)
        case .random, .randomWeighted:
            let t = groupCount > 1 ? Double(g) / Double(groupCount - 1) : 0
            let weight: Double
            switch (options.mode, options.skew) {
            case (.randomWeighted, .early): weight = 0.25 + 0.75 * t
            case (.randomWeighted, .late): weight = 1 - 0.75 * t
            default: weight = 1
            }
            scores.append((0..<channels[g]).map { _ in weight * Double(rng.next() >> 11) / Double(1 << 53) })
        }
    }

    let model = ParameterModel(analysis: analysis, groupOfRoot: groupOfRoot, groupCount: groupCount)
    var kept = channels
    let total = model.total(kept)
    let target = amount * Double(total)
    var removed = 0
    var isRemoved = channels.map { [Bool](repeating: false, count: $0) }
    if amount > 0 {
        var order: [(score: Double, group: Int, channel: Int)] = []
        for g in 0..<groupCount { for c in 0..<channels[g] { order.append((scores[g][c], g, c)) } }
        order.sort { ($0.score, $0.group, $0.channel) < ($1.score, $1.group, $1.channel) }
        // In rank order, every channel that still fits under the target goes.
        for (_, g, c) in order where Double(removed) < target && kept[g] > options.minimumChannels {
            let cost = model.removalCost(group: g, kept: kept)
            guard Double(removed + cost) <= target else { continue }
            removed += cost
            kept[g] -= 1
            isRemoved[g][c] = true
        }
        // Every channel left overshoots; the cheapest one (lowest-ranked within its group)
        // crosses the target if that lands closer to it than stopping short.
        let crossing = (0..<groupCount).filter { kept[$0] > options.minimumChannels }
            .map { (group: $0, cost: model.removalCost(group: $0, kept: kept)) }
            .min { ($0.cost, $0.group) < ($1.cost, $1.group) }
        if let (g, cost) = crossing, Double(removed) < target,
           Double(removed + cost) - target < target - Double(removed),
           let c = order.first(where: { $0.group == g && !isRemoved[g][$0.channel] })?.channel {
            removed += cost
            kept[g] -= 1
            isRemoved[g][c] = true
        }
        // Unreachable targets are an error rather than a quietly smaller model.
        if target - Double(removed) > 0.01 * Double(total) {
            throw MetronomeError.invalidArgument(String(
                format: "cannot remove %.1f%% of the parameters of '%@': keeping %d channels per layer removes at most %.1f%%",
                amount * 100, graph.name, options.minimumChannels, Double(removed) / Double(max(total, 1)) * 100))
        }
    }

    var keptSets: [ValueID: [Int]] = [:]
    for (r, g) in groupOfRoot { keptSets[r] = (0..<channels[g]).filter { !isRemoved[g][$0] } }
    let solver = ChannelSolver(
        analysis: analysis,
        inner: { p.shape($0)[2...].reduce(1, *) },
        rule: { _, c, v in keptSets[analysis.root(v)] ?? Array(0..<c) })
    var rewriter = GraphRewriter(solver: solver, policy: .slice)
    var result = try rewriter.run { info, _ in info.shape }
    if amount > 0 { result.name = "\(graph.name)-pruned\(formatWidth(amount))" }
    try validate(result, inputShapes: options.inputShapes)
    let groups = (0..<groupCount).map { g in
        PrunedGroup(producers: producers[g].map(\.name), channels: channels[g],
                    kept: (0..<channels[g]).filter { !isRemoved[g][$0] })
    }
    return PruneResult(graph: result, paramsBefore: total, paramsAfter: total - removed, groups: groups)
}

import Metronome

/// A channel count that is affine in the kept channel counts of the prunable groups:
/// `constant + Σ coefficient · kept[group]`. Concatenations add counts, flattens and depthwise
/// multipliers scale them, so every value's channel count has this form.
struct ChannelCount: Equatable {
    var constant: Int
    var coefficients: [Int: Int]

    static func fixed(_ n: Int) -> ChannelCount { ChannelCount(constant: n, coefficients: [:]) }
    static func group(_ g: Int) -> ChannelCount { ChannelCount(constant: 0, coefficients: [g: 1]) }

    func value(_ kept: [Int]) -> Int {
        coefficients.reduce(constant) { $0 + $1.value * kept[$1.key] }
    }

    static func + (a: ChannelCount, b: ChannelCount) -> ChannelCount {
        ChannelCount(constant: a.constant + b.constant, coefficients: a.coefficients.merging(b.coefficients, uniquingKeysWith: +))
    }

    static func * (k: Int, a: ChannelCount) -> ChannelCount {
        ChannelCount(constant: k * a.constant, coefficients: a.coefficients.mapValues { k * $0 })
    }
}

/// The learnable-parameter count of a graph as a function of how many channels each prunable
/// group keeps, so that pruning knows what removing one channel costs without rewriting the
/// graph. It counts what the cost model counts (conv and Gemm weights and biases, batch-norm
/// scale and shift, constant operands of element-wise operators, each constant once) and
/// resizes each tensor the way ``GraphRewriter`` does: a tensor's size is a product of at most
/// two channel counts (output and input channels) and a fixed factor (kernel size).
struct ParameterModel {
    struct Term {
        let factor: Int
        let a: ChannelCount
        let b: ChannelCount?
        func value(_ kept: [Int]) -> Int { factor * a.value(kept) * (b?.value(kept) ?? 1) }
        var groups: Set<Int> { Set(a.coefficients.keys).union(b.map { Array($0.coefficients.keys) } ?? []) }
    }

    private(set) var terms: [Term] = []
    /// For each group, the terms whose size depends on it.
    private(set) var termsOfGroup: [[Int]]

    /// `groupOfRoot` maps the root of each prunable channel class to its group index.
    init(analysis: ChannelAnalysis, groupOfRoot: [ValueID: Int], groupCount: Int) {
        let p = analysis.program
        var memo: [ValueID: ChannelCount] = [:]
        func count(_ v: ValueID) -> ChannelCount {
            let r = analysis.root(v)
            if let c = memo[r] { return c }
            var result = ChannelCount.fixed(analysis.channels(v))
            if let g = groupOfRoot[r] {
                result = .group(g)
            } else if case .pinned = analysis.role(v) {
            } else if let (_, d) = analysis.derivedMembers(v).first {
                // The solver checks that every derived member agrees; the first one stands for all.
                switch d {
                case .concat(let parts): result = parts.map(count).reduce(.fixed(0), +)
                case .flatten(let x): result = p.shape(x)[2...].reduce(1, *) * count(x)
                case .depthwise(let x, let k): result = k * count(x)
                }
            }
            memo[r] = result
            return result
        }
        var seen = Set<ValueID>()
        for step in p.steps {
            // The constants the cost model counts as parameters (a batch norm's running
            // statistics are not), sized the way the operator says they follow channels.
            let consts = (try? step.cost(in: p).parameterInputs) ?? step.inputs.filter(p.isConstant)
            let resize = (try? step.channelResize(in: p)) ?? ChannelResize()
            for c in consts where seen.insert(c).inserted {
                let n = p.values[c].count, s = p.shape(c)
                let x = step.inputs[0], out = step.outputs[0]
                var term = Term(factor: n, a: .fixed(1), b: nil)
                switch resize.inputs[c] {
                case .weight(let outAxis, let inAxis, _):
                    let fixedPart = n / (s[outAxis] * (inAxis.map { s[$0] } ?? 1))
                    term = Term(factor: fixedPart, a: count(out), b: inAxis.map { _ in count(x) })
                case .perChannel(let axis):
                    term = Term(factor: n / s[axis], a: count(out), b: nil)
                case nil:
                    break
                }
                terms.append(term)
            }
        }
        termsOfGroup = Array(repeating: [], count: groupCount)
        for (i, t) in terms.enumerated() { for g in t.groups { termsOfGroup[g].append(i) } }
    }

    /// The parameter count with `kept[g]` channels in group g.
    func total(_ kept: [Int]) -> Int { terms.reduce(0) { $0 + $1.value(kept) } }

    /// Parameters removed by dropping one more channel from group `g`.
    func removalCost(group g: Int, kept: [Int]) -> Int {
        var fewer = kept
        fewer[g] -= 1
        return termsOfGroup[g].reduce(0) { $0 + terms[$1].value(kept) - terms[$1].value(fewer) }
    }
}

import Metronome

/// Resolves every value's channel set under a rule for choosing free channel counts.
struct ChannelSolver {
    /// Channel sets for classes that are not derived: the kept (or new) channel indices.
    typealias Rule = (_ role: ChannelRole, _ channels: Int, _ value: ValueID) throws -> [Int]

    var analysis: ChannelAnalysis
    let rule: Rule
    /// The new spatial element count (product of dimensions after the channel) of a value.
    let inner: (ValueID) throws -> Int
    private var memo: [ValueID: [Int]] = [:]
    private var inProgress: Set<ValueID> = []

    init(analysis: ChannelAnalysis, inner: @escaping (ValueID) throws -> Int, rule: @escaping Rule) {
        self.analysis = analysis
        self.inner = inner
        self.rule = rule
    }

    /// The channel set of value `v` in the transformed graph.
    mutating func set(_ v: ValueID) throws -> [Int] {
        let r = analysis.root(v)
        if let s = memo[r] { return s }
        guard !inProgress.contains(r) else {
            throw MetronomeError.invalidGraph("channel counts of '\(analysis.program.values[v].name)' depend on themselves")
        }
        inProgress.insert(r)
        defer { inProgress.remove(r) }
        let members = analysis.derivedMembers(v)
        let role = analysis.role(v)
        var result: [Int]
        if members.isEmpty || { if case .pinned = role { return true }; return false }() {
            result = try rule(role, analysis.channels(v), v)
        } else {
            var candidate: [Int]? = nil
            for (member, d) in members {
                let s = try derive(d)
                if let c = candidate, c != s {
                    throw MetronomeError.invalidGraph(
                        "'\(analysis.program.values[member].name)' and another value must have equal channels, but derive different ones")
                }
                candidate = s
            }
            result = candidate ?? []
            if role == .input || role == .output {
                let expected = try rule(role, analysis.channels(v), v)
                guard expected == result else {
                    throw MetronomeError.invalidGraph(
                        "'\(analysis.program.values[v].name)' is a graph \(role == .input ? "input" : "output") built by a concat, flatten or depthwise multiplier, whose channels cannot follow the transform")
                }
            }
        }
        memo[r] = result
        return result
    }

    private mutating func derive(_ d: ChannelDerivation) throws -> [Int] {
        switch d {
        case .concat(let parts):
            var out: [Int] = []
            var offset = 0
            for p in parts {
                out += try set(p).map { $0 + offset }
                offset += analysis.channels(p)
            }
            return out
        case .flatten(let x):
            let n = try inner(x)
            return try set(x).flatMap { c in (0..<n).map { c * n + $0 } }
        case .depthwise(let x, let k):
            return try set(x).flatMap { c in (0..<k).map { c * k + $0 } }
        }
    }
}

import Metronome

/// Why a set of values must keep one channel count.
enum ChannelRole: Equatable {
    /// Channels chosen freely by the transform (the output of a conv or Gemm).
    case free
    /// Tied to a graph input (image channels).
    case input
    /// Tied to a graph output (class logits).
    case output
    /// Cannot change: an operator that depends on the exact channel count reads or writes it.
    case pinned(String)
}

/// How a channel set is obtained from other channel sets rather than chosen.
enum ChannelDerivation {
    /// Concatenation along the channel axis of the listed values, in order.
    case concat([ValueID])
    /// A flatten of a value whose channels are the outer dimension (NCHW flatten at axis 1).
    case flatten(ValueID)
    /// A depthwise convolution with `multiplier` output channels per input channel.
    case depthwise(ValueID, multiplier: Int)
}

/// The channel structure of a lowered program: which values must share one channel count
/// (through residual adds, activations, batch norms, depthwise convolutions), which are
/// chosen by a conv or Gemm, and which are derived (concatenations, flattens).
///
/// Channel sets are lists of indices into the original channel dimension, so that slimming
/// can gather weight slices; transforms that widen a network (fold, compound scaling) use
/// only their counts.
struct ChannelAnalysis {
    let graph: Graph
    let program: Program
    private var parent: [Int]
    private var derivations: [ValueID: ChannelDerivation] = [:]
    private var pins: [ValueID: String] = [:]
    /// Flattens from the channel axis seen in the current step: (input, output).
    private var pendingFlattens: [(ValueID, ValueID)] = []

    /// `fixedInputsAndOutputs` keeps graph inputs and outputs at their channel counts (slimming);
    /// otherwise they follow the transform's input and output rules (folding).
    init(graph: Graph, inputShapes: [String: [Int]] = [:], pinnedNodes: Set<String> = [],
         fixedInputsAndOutputs: Bool) throws {
        self.graph = graph
        let symbolicBatch = graph.inputs.contains { $0.shape.first.map { $0 < 0 } ?? false }
        program = try Program(lowering: graph, inputShapes: inputShapes, batch: symbolicBatch ? 1 : nil)
        // Lowering keeps one step per node, in order; the rewriter relies on it.
        guard program.steps.count == graph.nodes.count else {
            throw MetronomeError.invalidGraph("lowering changed the number of nodes; cannot map steps to nodes")
        }
        parent = Array(program.values.indices)
        let unknown = pinnedNodes.subtracting(graph.nodes.map(\.name))
        if let name = unknown.sorted().first {
            throw MetronomeError.invalidArgument("no node named '\(name)' to keep at full width")
        }
        for step in program.steps { try analyze(step, pinned: pinnedNodes.contains(step.name)) }
        for v in program.values.indices where !program.isConstant(v) && program.shape(v).count < 2 {
            pin(v, "value '\(program.values[v].name)' has no channel axis")
        }
        if fixedInputsAndOutputs {
            for v in program.inputs { pin(v, "graph input '\(program.values[v].name)'") }
            for v in program.outputs { pin(v, "graph output '\(program.values[v].name)'") }
        }
        propagatePins()
    }

    // MARK: Union-find

    mutating func find(_ v: ValueID) -> ValueID {
        var r = v
        while parent[r] != r { r = parent[r] }
        var x = v
        while parent[x] != r { let next = parent[x]; parent[x] = r; x = next }
        return r
    }

    func root(_ v: ValueID) -> ValueID {
        var r = v
        while parent[r] != r { r = parent[r] }
        return r
    }

    mutating func union(_ a: ValueID, _ b: ValueID) {
        let (ra, rb) = (find(a), find(b))
        guard ra != rb else { return }
        parent[ra] = rb
        // Pins live on roots; keep a pin made before the classes merged.
        if let reason = pins.removeValue(forKey: ra), pins[rb] == nil { pins[rb] = reason }
    }

    mutating func pin(_ v: ValueID, _ reason: String) {
        let r = find(v)
        if pins[r] == nil { pins[r] = reason }
    }

    func channels(_ v: ValueID) -> Int { program.shape(v)[1] }

    /// The channel axis of `operand` once broadcast against a value of rank `rank`, or nil.
    func alignedChannelAxis(_ operand: [Int], rank: Int) -> Int? {
        ChannelBehaviour.alignedChannelAxis(operand, rank: rank)
    }

    // MARK: Structure

    private mutating func analyze(_ step: Step, pinned: Bool) throws {
        let p = program
        let data = step.inputs.filter { !p.isConstant($0) }
        func pinAll(_ reason: String) {
            for v in data + step.outputs where p.shape(v).count >= 2 { pin(v, reason) }
        }
        func passThrough() {
            guard let x = step.inputs.first, !p.isConstant(x) else { pinAll("\(step.opType) of a constant"); return }
            for o in step.outputs { union(x, o) }
        }
        let out = step.outputs[0]
        // The operator says how it moves channels; this switch is over that small
        // vocabulary, not over operators.
        switch try step.channelBehaviour(in: p) {
        case .passThrough:
            passThrough()
        case .same(let values):
            for v in values { union(v, out) }
        case .free:
            break
        case .depthwise(let k):
            derivations[out] = .depthwise(step.inputs[0], multiplier: k)
        case .concat:
            derivations[out] = .concat(step.inputs)
        case .flatten:
            pendingFlattens.append((step.inputs[0], out))
        case .pinned(let reason):
            pinAll(reason)
        }
        for (x, y) in pendingFlattens {
            let s = p.shape(x)
            if s.count == 2 || s[2...].allSatisfy({ $0 == 1 }) {
                union(x, y)  // channels stay the feature axis one to one
            } else {
                derivations[y] = .flatten(x)
            }
        }
        pendingFlattens.removeAll()
        if pinned { for o in step.outputs { pin(o, "node '\(step.name)' is kept at full width") } }
    }

    /// A derived value whose class cannot change pins its sources too.
    private mutating func propagatePins() {
        var changed = true
        while changed {
            changed = false
            for (v, d) in derivations where pins[find(v)] != nil {
                let sources: [ValueID]
                switch d {
                case .concat(let vs): sources = vs
                case .flatten(let x), .depthwise(let x, _): sources = [x]
                }
                for s in sources where pins[find(s)] == nil {
                    pin(s, "feeds \(program.values[v].name), which keeps its channels")
                    changed = true
                }
            }
        }
    }

    // MARK: Classes

    /// The role of the class of `v`.
    func role(_ v: ValueID) -> ChannelRole {
        let r = root(v)
        if let reason = pins[r] { return .pinned(reason) }
        if program.inputs.contains(where: { root($0) == r }) { return .input }
        if program.outputs.contains(where: { root($0) == r }) { return .output }
        return .free
    }

    /// Values of the class of `v` that are derived, with their derivations.
    func derivedMembers(_ v: ValueID) -> [(ValueID, ChannelDerivation)] {
        let r = root(v)
        return derivations.filter { root($0.key) == r }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    func isInputClass(_ v: ValueID) -> Bool { program.inputs.contains { root($0) == root(v) } }
    func isOutputClass(_ v: ValueID) -> Bool { program.outputs.contains { root($0) == root(v) } }
}

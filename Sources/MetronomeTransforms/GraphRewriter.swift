import Metronome

/// How a width-changing transform obtains the weights of resized layers.
enum WeightPolicy {
    /// Keep the slices of the original weights that the channel sets name (slimming).
    case slice
    /// Draw new He-uniform weights for layers whose weight shape changes, seeded per node and
    /// rescaled so that new filter j has the norm of original filter j mod M; per-channel
    /// vectors (biases, batch-norm statistics, constant operands) are tiled from the original,
    /// so activations stay in the ranges those were trained for (folding, compound scaling).
    case fresh(seed: UInt64)
}

extension Tensor {
    /// The elements at `indices` along `axis`; the tensor itself (sharing its storage) when
    /// `indices` names every entry in order.
    func gathering(_ indices: [Int], axis: Int) -> Tensor {
        if indices.count == shape[axis] && indices.enumerated().allSatisfy({ $0.offset == $0.element }) { return self }
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
        let n = shape[axis]
        var out = shape
        out[axis] = indices.count
        var values = [Float](repeating: 0, count: outer * indices.count * inner)
        scalars.withUnsafeBufferPointer { src in
            values.withUnsafeMutableBufferPointer { dst in
                for o in 0..<outer {
                    for (j, i) in indices.enumerated() {
                        let s = (o * n + i) * inner, d = (o * indices.count + j) * inner
                        for k in 0..<inner { dst[d + k] = src[s + k] }
                    }
                }
            }
        }
        var t = Tensor(shape: out)
        t.scalars = values
        return t
    }

    /// The L2 norm of each slice along `axis` (of each filter, for a weight's output axis).
    func filterNorms(axis: Int) -> [Float] {
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *), n = shape[axis]
        var sums = [Double](repeating: 0, count: n)
        for o in 0..<outer { for j in 0..<n { for k in 0..<inner {
            let v = Double(scalars[(o * n + j) * inner + k])
            sums[j] += v * v
        } } }
        return sums.map { Float($0.squareRoot()) }
    }

    /// The L1 norm of each slice along `axis`: the magnitude criterion of filter pruning
    /// (Li et al., *Pruning Filters for Efficient ConvNets*), which ranks filters by it.
    func filterL1Norms(axis: Int) -> [Double] {
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *), n = shape[axis]
        var sums = [Double](repeating: 0, count: n)
        for o in 0..<outer { for j in 0..<n { for k in 0..<inner {
            sums[j] += Double(abs(scalars[(o * n + j) * inner + k]))
        } } }
        return sums
    }

    /// Multiplies every slice j along `axis` by `factor(j)`.
    mutating func scaleFilters(axis: Int, _ factor: (Int) -> Float) {
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *), n = shape[axis]
        for j in 0..<n {
            let f = factor(j)
            for o in 0..<outer { for k in 0..<inner { scalars[(o * n + j) * inner + k] *= f } }
        }
    }

    /// `count` entries along `axis`, entry j copied from entry j mod n of the original.
    func tiling(to count: Int, axis: Int) -> Tensor {
        gathering((0..<count).map { $0 % shape[axis] }, axis: axis)
    }
}

/// Rebuilds a graph after its channel sets have been decided: resized weights, adjusted
/// `group` attributes and flatten shapes, new input shapes. Node and value names are kept,
/// so per-layer reports and weight overrides (slimmable batch norms) still find them.
struct GraphRewriter {
    var solver: ChannelSolver
    let policy: WeightPolicy
    var graph: Graph
    private var assigned: [String: Tensor] = [:]
    private var analysis: ChannelAnalysis { solver.analysis }
    private var program: Program { solver.analysis.program }

    /// Images per folded input, when folding: a softmax over the logits of a graph output then
    /// runs per image (over each group of K values), not over all f·K.
    var foldFactor: Int? = nil

    init(solver: ChannelSolver, policy: WeightPolicy) {
        self.solver = solver
        self.policy = policy
        let g = solver.analysis.graph
        graph = Graph(name: g.name, inputs: g.inputs, outputs: g.outputs, nodes: [], initializers: [:],
                      integerConstants: g.integerConstants)
    }

    /// Rewrites every node; `inputShape` gives each graph input's new shape from its channel count.
    mutating func run(inputShape: (ValueInfo, Int) throws -> [Int]) throws -> Graph {
        for (i, input) in analysis.graph.inputs.enumerated() {
            let id = program.inputs[i]
            let count = program.shape(id).count >= 2 ? try solver.set(id).count : -1
            graph.inputs[i].shape = try inputShape(input, count)
        }
        for (i, (node, step)) in zip(analysis.graph.nodes, program.steps).enumerated() {
            let rewritten = try rewrite(node, step, index: i)
            graph.nodes += try splitSoftmax(rewritten, step)
        }
        // Initializers no node reads (and integer constants nobody reads) are dropped.
        let read = Set(graph.nodes.flatMap(\.inputs))
        graph.integerConstants = graph.integerConstants.filter { read.contains($0.key) }
        return graph
    }

    private func name(_ v: ValueID) -> String { program.values[v].name }

    /// Stores `tensor` under the initializer name that node input `slot` uses, renaming when
    /// another node already stored a different tensor under that name (a shared weight that
    /// two layers resize differently).
    private mutating func store(_ tensor: Tensor, for node: inout Node, slot: Int) {
        var n = node.inputs[slot]
        if let existing = assigned[n], existing != tensor {
            var k = 1
            while graph.initializers["\(n)__\(k)"] != nil { k += 1 }
            n = "\(n)__\(k)"
            node.inputs[slot] = n
        }
        assigned[n] = tensor
        graph.initializers[n] = tensor
    }

    /// The node input slot holding value `v` (constants are looked up by name).
    private func slot(of v: ValueID, in node: Node) -> Int? {
        node.inputs.firstIndex(of: name(v))
    }

    /// A per-channel tensor resized along `axis` to the channel set `set`.
    private func remap(_ t: Tensor, axis: Int, set: [Int]) -> Tensor {
        switch policy {
        case .slice: return t.gathering(set, axis: axis)
        case .fresh: return t.shape[axis] == set.count ? t : t.tiling(to: set.count, axis: axis)
        }
    }

    /// A weight whose axes `outAxis` and `inAxis` are resized; `fanIn` per output for fresh weights.
    private func resizeWeight(_ w: Tensor, outAxis: Int, outSet: [Int], inAxis: Int?, inSet: [Int],
                              perInput: Int, node index: Int) -> Tensor {
        switch policy {
        case .slice:
            var t = w.gathering(outSet, axis: outAxis)
            if let inAxis { t = t.gathering(inSet, axis: inAxis) }
            return t
        case .fresh(let seed):
            var shape = w.shape
            shape[outAxis] = outSet.count
            if let inAxis { shape[inAxis] = inSet.count }
            if shape == w.shape { return w }
            var rng = SplitMix64(seed: seed &+ UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15)
            let fanIn = max(1, (inAxis == nil ? 1 : inSet.count) * perInput)
            let bound = (6 / Float(fanIn)).squareRoot()
            var t = Tensor(shape: shape, uniformIn: -bound...bound, generator: &rng)
            // Each new filter gets the norm of the original filter it stands in for (output j
            // for j mod M), so pre-activations keep the scale the tiled batch-norm statistics
            // and biases were trained for.
            let target = w.filterNorms(axis: outAxis)
            let drawn = t.filterNorms(axis: outAxis)
            t.scaleFilters(axis: outAxis) { j in drawn[j] > 0 ? target[j % target.count] / drawn[j] : 0 }
            return t
        }
    }

    /// A softmax across the channels of an output class becomes reshape [0, f, K] → softmax
    /// over K → reshape [0, f·K], so each image's probabilities are normalized on their own.
    /// (A folding-specific pattern on one operator, matched here like a graph pass.)
    private mutating func splitSoftmax(_ node: Node, _ step: Step) throws -> [Node] {
        guard let f = foldFactor, f > 1, case .softmax(let axis) = step.op, axis == 1,
              analysis.isOutputClass(step.inputs[0]) else { return [node] }
        let x = step.inputs[0]
        guard program.shape(x).count == 2 else {
            throw MetronomeError.node(node: step.name, op: step.opType,
                                      message: "a softmax over the channels of a \(program.shape(x).count)-D output cannot be folded; fold the logits and apply it per image")
        }
        let k = analysis.channels(x)
        let grouped = "\(node.name).fold_grouped", normalized = "\(node.name).fold_softmax"
        let inShape = "\(node.name).fold_shape_in", outShape = "\(node.name).fold_shape_out"
        graph.integerConstants[inShape] = [0, f, k]
        graph.integerConstants[outShape] = [0, f * k]
        return [
            Node(name: grouped, opType: "Reshape", inputs: [node.inputs[0], inShape], outputs: [grouped]),
            Node(name: node.name, opType: "Softmax", inputs: [grouped], outputs: [normalized],
                 attributes: ["axis": .int(2)]),
            Node(name: normalized, opType: "Reshape", inputs: [normalized, outShape], outputs: node.outputs),
        ]
    }

    private mutating func rewrite(_ original: Node, _ step: Step, index: Int) throws -> Node {
        var node = original
        let p = program
        func constant(_ v: ValueID) -> Tensor? { p.constants[v] }
        func keep(_ v: ValueID) {
            if let t = constant(v), let s = slot(of: v, in: node) { store(t, for: &node, slot: s) }
        }
        // The operator says which constants follow which channels; this rewriter only
        // applies that, input by input in order (so shared weights are renamed consistently).
        let resize = try step.channelResize(in: p)
        if let reason = resize.fixed {
            let (x, out) = (step.inputs[0], step.outputs[0])
            guard try solver.set(x).count == analysis.channels(x), try solver.set(out).count == analysis.channels(out) else {
                throw MetronomeError.node(node: step.name, op: step.opType, message: reason)
            }
        }
        for v in step.inputs {
            guard let axes = resize.inputs[v], let t = constant(v), let s = slot(of: v, in: node) else { keep(v); continue }
            let so = try solver.set(step.outputs[0])
            switch axes {
            case .weight(let outAxis, let inAxis, let perInput):
                let sx = inAxis == nil ? [] : try solver.set(step.inputs[0])
                store(resizeWeight(t, outAxis: outAxis, outSet: so, inAxis: inAxis, inSet: sx, perInput: perInput, node: index),
                      for: &node, slot: s)
            case .perChannel(let axis):
                store(remap(t, axis: axis, set: so), for: &node, slot: s)
            }
        }
        if let key = resize.channelCountAttribute {
            node.attributes[key] = .int(try solver.set(step.inputs[0]).count)
        }
        if resize.flattensChannels && node.inputs.count > 1 {
            // The feature count changes with the channels; [0, -1] keeps the batch and infers it.
            var k = 0
            while graph.integerConstants["\(node.name).flatten_shape\(k == 0 ? "" : "_\(k)")"] != nil { k += 1 }
            let n = "\(node.name).flatten_shape\(k == 0 ? "" : "_\(k)")"
            graph.integerConstants[n] = [0, -1]
            node.inputs[1] = n
        }
        // Initializers read as attributes-by-input (Clip bounds, Pad values) are not step inputs.
        for input in node.inputs where !input.isEmpty && graph.initializers[input] == nil {
            if let t = analysis.graph.initializers[input], assigned[input] == nil {
                graph.initializers[input] = t
                assigned[input] = t
            }
        }
        return node
    }
}

/// Graph-level rewrites applied before compilation. Each pass preserves the program's
/// outputs (up to float rounding) and is tested against the reference interpreter.
///
/// A pass is about one pattern of operators (an identity, a batch norm after its producer,
/// a residual add, an activation after its producer), so it matches that pattern's own
/// payload; what the other step of the pattern accepts it asks that step's operator
/// (``Operator/absorbsBatchNorm(_:in:)``, ``Operator/acceptsResidualAdd(_:)``,
/// ``Operator/acceptsFusedActivation(_:)``) instead of naming operators.
public struct OptimizationOptions: Sendable, Equatable {
    public var eliminateIdentities = true
    public var foldBatchNorm = true
    public var fuseResidualAdd = true
    public var fuseActivations = true
    /// Dequantize quantized (QDQ) weights once, at compile time.
    public var foldQuantizedWeights = true
    /// The int8 path: quantized convolutions and inner products on the integers of a QDQ
    /// model (``Precision/int8`` sets it). Otherwise quantized weights are dequantized once.
    public var quantizedKernels = false
    /// The largest weight magnitude the integer kernels compute exactly, or nil for any int8
    /// weight. Before VNNI, oneDNN multiplies 8-bit data by 8-bit weights with `vpmaddubsw`,
    /// which adds two neighbouring products in 16 bits and saturates: 255 × 127 × 2 does not
    /// fit, 255 × 64 × 2 does. A quantized layer with a larger weight stays in float (its
    /// weights dequantized once), so the result is right on every CPU. The compiler sets 64 on
    /// CPUs without VNNI (``MachineInfo/int8ProductsSaturate``).
    public var integerWeightLimit: Float? = nil

    public init() {}

    /// No rewriting at all: the program runs exactly as lowered.
    public static var none: OptimizationOptions {
        var o = OptimizationOptions()
        o.eliminateIdentities = false; o.foldBatchNorm = false
        o.fuseResidualAdd = false; o.fuseActivations = false; o.foldQuantizedWeights = false
        return o
    }
}

extension Program {
    public func optimized(_ options: OptimizationOptions = OptimizationOptions()) -> Program {
        var p = self
        if options.eliminateIdentities { p.eliminateIdentities() }
        if options.foldQuantizedWeights { p.foldDequantizedConstants(options.quantizedKernels ? [.int32] : Set(QuantizedType.allCases)) }
        if options.foldBatchNorm { p.foldBatchNorms() }
        if options.fuseResidualAdd { p.fuseResidualAdds() }
        if options.fuseActivations { p.fuseActivations() }
        if options.quantizedKernels {
            p.formQuantizedKernels(weightLimit: options.integerWeightLimit)
            if options.foldQuantizedWeights { p.foldDequantizedConstants() }
        }
        return p
    }

    /// The index of the step producing each value.
    func producers() -> [ValueID: Int] {
        var result: [ValueID: Int] = [:]
        for (i, s) in steps.enumerated() { for o in s.outputs { result[o] = i } }
        return result
    }

    /// Whether `value` (an output of step `producer`) is read only by step `consumer`
    /// and is not a program output, so the two steps may be merged.
    func isPrivate(_ value: ValueID, to consumer: Int, consumers: [ValueID: [Int]]) -> Bool {
        !outputs.contains(value) && consumers[value] == [consumer]
    }

    /// Replaces every read of `old` by `new`.
    mutating func replaceUses(of old: ValueID, with new: ValueID) {
        for i in steps.indices {
            steps[i].inputs = steps[i].inputs.map { $0 == old ? new : $0 }
            steps[i].postOps = steps[i].postOps.map { if case .add(old) = $0 { return .add(new) }; return $0 }
        }
        outputs = outputs.map { $0 == old ? new : $0 }
    }

    /// Identity and Dropout become renames, except where an input would directly be an output.
    mutating func eliminateIdentities() {
        var removed = Set<Int>()
        // Reads each step as it is now: renaming one identity's uses rewrites later identities too.
        for i in steps.indices where steps[i].op == .identity {
            let (src, dst) = (steps[i].inputs[0], steps[i].outputs[0])
            if outputs.contains(dst) && (inputs.contains(src) || outputs.contains(src)) { continue }
            removed.insert(i)
            replaceUses(of: dst, with: src)
        }
        steps = steps.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// Folds `BatchNormalization(Conv(x))` into the convolution's weights and bias, and the
    /// same for a Gemm with `transB = 1`, `alpha = beta = 1` feeding a 2-D batch norm.
    mutating func foldBatchNorms() {
        var removed = Set<Int>()
        let prod = producers()
        let cons = consumers()
        for (i, bn) in steps.enumerated() {
            guard case .batchNorm(let eps) = bn.op, bn.postOps.isEmpty,
                  let pi = prod[bn.inputs[0]], isPrivate(bn.inputs[0], to: i, consumers: cons),
                  bn.inputs[1...].allSatisfy({ constants[$0] != nil }) else { continue }
            let producer = steps[pi]
            // Only an operator that says it absorbs a batch norm (a convolution, a fully
            // connected Gemm) can. Anything else (a Concat, a Relu of a pre-activation block,
            // a pooling) leaves it as its own step, which the compiler runs with the reference
            // kernel. The operator is asked before the weight input is read: a one-input
            // producer has no `inputs[1]`.
            guard let absorber = try? OperatorRegistry.of(producer), absorber.absorbsBatchNorm(producer, in: self) else {
                continue
            }
            guard producer.inputs.count >= 2, producer.postOps.isEmpty, let w = constants[producer.inputs[1]],
                  producer.inputs.count < 3 || constants[producer.inputs[2]] != nil else { continue }
            // The bias must hold exactly one value per output channel (a Gemm's C may be a
            // matrix or a broadcast scalar, which folding cannot rescale per channel).
            if producer.inputs.count > 2, let b = constants[producer.inputs[2]],
               b.count != w.shape[0] || b.shape.last != w.shape[0] { continue }
            let scale = constants[bn.inputs[1]]!.scalars, shift = constants[bn.inputs[2]]!.scalars
            let mean = constants[bn.inputs[3]]!.scalars, variance = constants[bn.inputs[4]]!.scalars
            var weight = constants[producer.inputs[1]]!
            let outChannels = weight.shape[0]
            let perChannel = weight.count / outChannels
            var bias = producer.inputs.count > 2 ? constants[producer.inputs[2]]!.scalars
                                                : [Float](repeating: 0, count: outChannels)
            for c in 0..<outChannels {
                let k = scale[c] / (variance[c] + eps).squareRoot()
                for j in 0..<perChannel { weight.scalars[c * perChannel + j] *= k }
                bias[c] = (bias[c] - mean[c]) * k + shift[c]
            }
            let wid = addConstant(name: values[producer.inputs[1]].name + ".bn_folded", weight)
            let bid = addConstant(name: producer.name + ".bias.bn_folded", Tensor(shape: [outChannels], repeating: 0))
            constants[bid]?.scalars = bias
            steps[pi].inputs = [producer.inputs[0], wid, bid]
            steps[pi].outputs = bn.outputs
            steps[pi].fusedNodes += [bn.name] + bn.fusedNodes
            removed.insert(i)
        }
        steps = steps.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        dropUnusedConstants()
    }

    /// Turns `Add(Conv(x), r)` into a convolution with a residual-add post-op (for every
    /// producer whose operator accepts one), choosing the
    /// operand computed last so that the other one is ready when the convolution runs.
    mutating func fuseResidualAdds() {
        var removed = Set<Int>()
        var prod = producers()
        var cons = consumers()
        for (i, add) in steps.enumerated() {
            guard add.op == .binary(.add), add.postOps.isEmpty else { continue }
            let (a, b) = (add.inputs[0], add.inputs[1])
            guard shape(a) == shape(b), shape(a) == shape(add.outputs[0]),
                  constants[a] == nil, constants[b] == nil, a != b else { continue }
            let candidates = [(a, b), (b, a)].filter { prod[$0.0] != nil }
                .sorted { prod[$0.0]! > prod[$1.0]! }
            guard let (main, residual) = candidates.first, let pi = prod[main],
                  !removed.contains(pi), isPrivate(main, to: i, consumers: cons) else { continue }
            guard let op = try? OperatorRegistry.of(steps[pi]), op.acceptsResidualAdd(steps[pi]) else { continue }
            steps[pi].postOps.append(.add(residual))
            steps[pi].outputs = add.outputs
            steps[pi].fusedNodes += [add.name] + add.fusedNodes
            cons[residual, default: []].append(pi)
            prod[add.outputs[0]] = pi
            removed.insert(i)
        }
        steps = steps.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// Appends element-wise activations to the step producing their input when its operator
    /// accepts them as post-ops (convolution, Gemm, binary). The activation's own operator
    /// says whether it is one (``Operator/fusedActivation(_:in:)``): Erf, for one, has no
    /// oneDNN post-op and stays a step of its own.
    mutating func fuseActivations() {
        var removed = Set<Int>()
        var prod = producers()
        let cons = consumers()
        for (i, act) in steps.enumerated() {
            guard let actOp = try? OperatorRegistry.of(act), let f = actOp.fusedActivation(act, in: self),
                  act.postOps.isEmpty, let pi = prod[act.inputs[0]],
                  isPrivate(act.inputs[0], to: i, consumers: cons) else { continue }
            guard let op = try? OperatorRegistry.of(steps[pi]), op.acceptsFusedActivation(steps[pi]),
                  !f.repeatsOneDNNAlgorithm(after: steps[pi].postOps) else { continue }
            steps[pi].postOps.append(.eltwise(f))
            steps[pi].outputs = act.outputs
            steps[pi].fusedNodes += [act.name] + act.fusedNodes
            prod[act.outputs[0]] = pi
            removed.insert(i)
        }
        steps = steps.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    mutating func dropUnusedConstants() {
        var used = Set<ValueID>()
        for s in steps { used.formUnion(s.inputs) }
        used.formUnion(outputs)  // a constant can be a program output (an imported folded subgraph)
        for id in Array(constants.keys) where !used.contains(id) { constants[id] = nil }
    }
}

/// Passes for quantized (QDQ) programs. Both keep the program's meaning exactly: a quantized
/// value holds integers in float32, and each rewrite computes the same formulas.
extension Program {
    /// The QuantizeLinear/DequantizeLinear attributes of step `i`, when it is one.
    func quantizationStep(_ i: Int) -> QuantizeLinearOperator.Attributes? {
        QuantizeLinearOperator.attributes(steps[i].op)
    }

    /// Whether the program has QuantizeLinear or DequantizeLinear steps (a QDQ model).
    public var isQuantized: Bool { steps.indices.contains { quantizationStep($0) != nil } }

    /// DequantizeLinear of a constant (quantized weights) becomes the dequantized float
    /// constant, so float kernels see ordinary weights; `types` limits it to some integer
    /// types (the int8 path folds int32 biases first and keeps 8-bit weights for its kernels).
    mutating func foldDequantizedConstants(_ types: Set<QuantizedType> = Set(QuantizedType.allCases)) {
        var removed = Set<Int>()
        for i in steps.indices {
            guard let a = quantizationStep(i), a.dequantize, types.contains(a.map.type), steps[i].postOps.isEmpty,
                  let t = constants[steps[i].inputs[0]], !outputs.contains(steps[i].outputs[0]) else { continue }
            var out = t
            a.map.forEach(t.shape) { j, c in out.scalars[j] = a.map.dequantize(t.scalars[j], channel: c) }
            constants[steps[i].outputs[0]] = out
            removed.insert(i)
        }
        guard !removed.isEmpty else { return }
        steps = steps.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        dropUnusedConstants()
    }

    /// The int8 path (``Precision/int8``), after the float fusions:
    /// - `Conv/Gemm/MatMul(DequantizeLinear(x), DequantizeLinear(W), b)` with 8-bit data, a
    ///   per-tensor data map and symmetric int8 weights (per tensor or per output channel)
    ///   becomes one ``QuantizedLinearOperator`` step on the integers, unless a weight's
    ///   magnitude exceeds `weightLimit` (see ``OptimizationOptions/integerWeightLimit``);
    /// - its result, when only a QuantizeLinear reads it and its post-ops are activations, is
    ///   requantized by the step itself;
    /// - `QuantizeLinear(MaxPool(DequantizeLinear(q)))` with the same map both sides becomes
    ///   MaxPool on the integers (the maximum commutes with a monotonic map);
    /// - DequantizeLinear steps nothing reads any more are dropped.
    mutating func formQuantizedKernels(weightLimit: Float? = nil) {
        let prod = producers()
        for i in steps.indices {
            if let q = quantizedLinear(i, prod, weightLimit: weightLimit) { steps[i] = q }
        }
        requantizeResults()
        poolOnIntegers()
        dropUnreadQuantizationSteps()
        dropUnusedConstants()
    }

    /// The quantized form of step `i`, or nil when it does not match.
    mutating func quantizedLinear(_ i: Int, _ prod: [ValueID: Int], weightLimit: Float? = nil) -> Step? {
        let s = steps[i]
        guard s.inputs.count >= 2, let xi = prod[s.inputs[0]], let x = quantizationStep(xi), x.dequantize,
              x.map.isPerTensor, x.map.type != .int32, constants[steps[xi].inputs[0]] == nil,
              let wi = prod[s.inputs[1]], let w = quantizationStep(wi), w.dequantize, w.map.type == .int8,
              w.map.isSymmetric, steps[wi].postOps.isEmpty, let wq = constants[steps[wi].inputs[0]] else { return nil }
        if s.inputs.count > 2 && constants[s.inputs[2]] == nil { return nil }
        if let weightLimit, wq.scalars.contains(where: { abs($0) > weightLimit }) { return nil }
        let kind: QuantizedLinearOperator.Attributes.Kind
        var weights = wq
        switch s.op {
        case .conv(let c):
            guard c.kernel.count == 2, w.map.axis == nil || w.map.axis == 0 else { return nil }
            kind = .conv(c)
        case .gemm(let alpha, let beta, let transA, let transB):
            guard !transA, alpha == 1, beta == 1 || s.inputs.count < 3, wq.rank == 2, shape(s.inputs[0]).count == 2 else { return nil }
            guard w.map.axis == nil || w.map.axis == (transB ? 0 : 1) else { return nil }
            if !transB { weights = Self.transposed(wq) }
            if s.inputs.count > 2, let b = constants[s.inputs[2]], b.count != weights.shape[0] || b.shape.last != weights.shape[0] {
                return nil
            }
            kind = .innerProduct
        case .matMul:
            guard wq.rank == 2, shape(s.inputs[0]).count == 2, w.map.axis == nil || w.map.axis == 1 else { return nil }
            weights = Self.transposed(wq)
            kind = .innerProduct
        default:
            return nil
        }
        let attributes = QuantizedLinearOperator.Attributes(kind: kind, input: x.map, weightScales: w.map.scales,
                                                            activations: [], output: nil)
        let wid = weights == wq ? steps[wi].inputs[0] : addConstant(name: values[steps[wi].inputs[0]].name + ".nk", weights)
        var q = Step(name: s.name, opType: QuantizedLinearOperator.opType, op: .custom(CustomAttributes(attributes)),
                     inputs: [steps[xi].inputs[0], wid] + s.inputs.dropFirst(2), outputs: s.outputs, postOps: s.postOps)
        q.fusedNodes = [steps[xi].name, steps[wi].name] + s.fusedNodes
        return q
    }

    static func transposed(_ t: Tensor) -> Tensor {
        let (r, c) = (t.shape[0], t.shape[1])
        var out = Tensor(shape: [c, r], repeating: 0)
        for i in 0..<r { for j in 0..<c { out.scalars[j * r + i] = t.scalars[i * c + j] } }
        return out
    }

    /// A quantized layer whose only reader is a QuantizeLinear requantizes its own result.
    mutating func requantizeResults() {
        var removed = Set<Int>()
        let cons = consumers()
        for i in steps.indices where steps[i].opType == QuantizedLinearOperator.opType {
            guard var a = QuantizedLinearOperator.attributes(steps[i].op), a.output == nil,
                  let j = cons[steps[i].outputs[0]]?.first, isPrivate(steps[i].outputs[0], to: j, consumers: cons),
                  let q = quantizationStep(j), !q.dequantize, q.map.isPerTensor, steps[j].postOps.isEmpty else { continue }
            var activations: [Eltwise] = []
            for post in steps[i].postOps {
                guard case .eltwise(let f) = post else { activations = []; break }
                activations.append(f)
            }
            guard activations.count == steps[i].postOps.count else { continue }
            a.activations = activations
            a.output = q.map
            steps[i].op = .custom(CustomAttributes(a))
            steps[i].postOps = []
            steps[i].outputs = steps[j].outputs
            steps[i].fusedNodes.append(steps[j].name)
            removed.insert(j)
        }
        steps = steps.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// `QuantizeLinear(MaxPool(DequantizeLinear(q)))` with one map: MaxPool on `q`.
    mutating func poolOnIntegers() {
        var removed = Set<Int>()
        let prod = producers(), cons = consumers()
        for i in steps.indices {
            guard case .maxPool = steps[i].op, steps[i].postOps.isEmpty, let di = prod[steps[i].inputs[0]],
                  let d = quantizationStep(di), d.dequantize, d.map.isPerTensor, d.map.type != .int32,
                  let j = cons[steps[i].outputs[0]]?.first, isPrivate(steps[i].outputs[0], to: j, consumers: cons),
                  let q = quantizationStep(j), !q.dequantize, q.map.sameMap(as: d.map), steps[j].postOps.isEmpty else { continue }
            steps[i].inputs = [steps[di].inputs[0]]
            steps[i].outputs = steps[j].outputs
            steps[i].fusedNodes += [steps[di].name, steps[j].name]
            removed.insert(j)
        }
        steps = steps.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// Drops quantization steps whose results nothing reads (their readers were rewritten).
    mutating func dropUnreadQuantizationSteps() {
        while true {
            let cons = consumers()
            let dead = Set(steps.indices.filter { i in
                quantizationStep(i) != nil && steps[i].outputs.allSatisfy { cons[$0] == nil && !outputs.contains($0) }
            })
            guard !dead.isEmpty else { return }
            steps = steps.enumerated().filter { !dead.contains($0.offset) }.map(\.element)
        }
    }
}

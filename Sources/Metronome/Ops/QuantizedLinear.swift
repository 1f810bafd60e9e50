/// A convolution or fully connected layer on quantized data: the int8 compile path
/// (``Precision/int8``, Passes+Quantization.swift) makes one from
/// `DequantizeLinear(x) → Conv/Gemm(DequantizeLinear(W), b) [→ activations → QuantizeLinear]`.
/// Inputs: the quantized data (integers), the quantized weights (integers; `[N, K]` for an
/// inner product) and an optional real-valued bias. The output is real-valued, or requantized
/// by ``Attributes/output`` after the activations. oneDNN runs it with its integer (VNNI)
/// kernels; the reference kernel dequantizes, computes in float, and requantizes, as the QDQ
/// graph it replaces does.
struct QuantizedLinearOperator: Operator {
    /// The step type the int8 pass writes. No ONNX node has it: the importer never makes one.
    static let opType = "Metronome.QuantizedLinear"

    struct Attributes: Hashable, Sendable {
        enum Kind: Hashable, Sendable {
            case conv(ConvAttributes)
            case innerProduct
        }
        var kind: Kind
        /// The map of the data input (one scale and zero point, 8-bit).
        var input: Quantization
        /// One weight scale per output channel, or one for all (symmetric int8 weights).
        var weightScales: [Float]
        /// Element-wise functions applied to the real-valued result before requantizing.
        var activations: [Eltwise]
        /// The requantization of the result; nil for a float32 result (which may then carry
        /// residual adds as post-ops).
        var output: Quantization?

        func weightScale(_ channel: Int) -> Float { weightScales.count == 1 ? weightScales[0] : weightScales[channel] }
    }

    var onnxNames: [String] { [Self.opType] }

    func parse(_ p: inout NodeParser) throws -> (Op, [String]) {
        throw p.fail("is an internal step of the int8 compile path, not an ONNX operator")
    }

    static func attributes(_ op: Op) -> Attributes? {
        guard case .custom(let c) = op else { return nil }
        return c.as(Attributes.self)
    }

    /// Built by the pass from already inferred shapes; the output shape is the float layer's.
    func inferShapes(_ op: Op, inputs: [[Int]], _ c: ShapeContext) throws -> (Op, [[Int]]) {
        throw c.fail("is an internal step of the int8 compile path and is never lowered from a graph")
    }

    func reference(_ step: Step, _ x: [UnsafePointer<Float>], _ xs: [[Int]],
                   _ y: [UnsafeMutablePointer<Float>], _ ys: [[Int]]) throws {
        guard let a = Self.attributes(step.op) else { throw unexpected(step.op, step.name, step.opType) }
        let n = xs[0].reduce(1, *), wn = xs[1].reduce(1, *)
        let input = (0..<n).map { a.input.dequantize(x[0][$0]) }
        let outChannels = xs[1][0], perChannel = wn / max(outChannels, 1)
        let weight = (0..<wn).map { x[1][$0] * a.weightScale($0 / perChannel) }
        let bias = x.count > 2 ? x[2] : nil
        try input.withUnsafeBufferPointer { xp in
            try weight.withUnsafeBufferPointer { wp in
                switch a.kind {
                case .conv(let c):
                    ReferenceKernels.conv(xp.baseAddress!, xs[0], weight: wp.baseAddress!, xs[1], bias: bias, c, out: y[0], ys[0])
                case .innerProduct:
                    let (rows, k) = (xs[0][0], xs[0][1])
                    for r in 0..<rows {
                        for o in 0..<outChannels {
                            var s: Float = bias?[o] ?? 0
                            for j in 0..<k { s += xp[r * k + j] * wp[o * k + j] }
                            y[0][r * outChannels + o] = s
                        }
                    }
                }
            }
        }
        let count = ys[0].reduce(1, *)
        for f in a.activations { for i in 0..<count { y[0][i] = f.apply(y[0][i]) } }
        if let out = a.output { for i in 0..<count { y[0][i] = out.quantize(y[0][i]) } }
    }

    func lowerToOneDNN(_ step: Step, into b: inout PlanBuilder) throws -> Bool {
        guard let a = Self.attributes(step.op) else { return false }
        return try b.quantizedLinear(step, a)
    }

    /// A float result may take residual adds and activations like the layer it replaces.
    func acceptsFusedActivation(_ step: Step) -> Bool { Self.attributes(step.op)?.output == nil }
    func acceptsResidualAdd(_ step: Step) -> Bool { Self.attributes(step.op)?.output == nil }

    /// The layer's MACs, counted as for the float layer.
    func cost(_ step: Step, in p: Program) -> OperatorCost {
        guard let a = Self.attributes(step.op) else { return OperatorCost(category: .convolution) }
        let out = p.values[step.outputs[0]].count
        let w = p.shape(step.inputs[1])
        let perOutput: Int
        switch a.kind {
        case .conv(let c): perOutput = w[1] * c.kernel.reduce(1, *)
        case .innerProduct: perOutput = w[1]
        }
        let macs = out * perOutput
        let bias = step.inputs.count > 2 ? out : 0
        return OperatorCost(category: .convolution, macs: macs, flops: 2 * macs + bias, biasFlops: bias,
                            kernelElements: p.values[step.inputs[1]].count)
    }

    func channelBehaviour(_ step: Step, in p: Program) -> ChannelBehaviour {
        .pinned("quantized layer '\(step.name)'")
    }

    func window(_ step: Step, in program: Program) -> KernelWindow? {
        guard let a = Self.attributes(step.op), case .conv(let c) = a.kind else { return nil }
        return KernelWindow(kernel: c.kernel, strides: c.strides, dilations: c.dilations, groups: c.groups)
    }

}

import XCTest
import Metronome
import MetronomeModels

/// Every operator, compiled (oneDNN with and without passes, and reference kernels through
/// the planner) against the reference interpreter on the unoptimized program; plus a few
/// hand-computed checks of the reference kernels themselves.
final class OperatorTests: XCTestCase {

    // MARK: Helpers

    /// A graph with one input of `shape`. When `preConv` is set, a 1×1 convolution (C → C) sits
    /// between the input and `body`, so the operator under test reads oneDNN's blocked layout.
    static func graph(_ name: String, input shape: [Int], preConv: Bool = false, seed: UInt64 = 7,
                      body: (inout GraphBuilder, String) -> [String]) -> Graph {
        var b = GraphBuilder(name: name, seed: seed)
        var x = b.input("x", shape: shape)
        if preConv {
            x = b.conv(x, in: shape[1], out: shape[1], kernel: 1, bias: true)
        }
        for out in body(&b, x) { b.output(out) }
        return b.graph
    }

    /// Checks a single-input operator both on the raw input and after a convolution.
    func checkUnary(_ op: String, input shape: [Int], attributes: [String: Attribute] = [:],
                    extraInputs: (inout GraphBuilder) -> [String] = { _ in [] },
                    inputRange: ClosedRange<Float> = -1...1, outputs: Int = 1, label: String = "",
                    file: StaticString = #filePath, line: UInt = #line) throws {
        for preConv in [false, true] {
            let g = Self.graph(op, input: shape, preConv: preConv) { b, x in
                let extra = extraInputs(&b)
                return b.node(op, [x] + extra, attributes: attributes, outputs: outputs)
            }
            try checkAgainstReference(g, seed: 11, inputRange: inputRange,
                                      "\(op) \(shape) \(attributes) preConv=\(preConv) \(label)", file: file, line: line)
        }
    }

    // MARK: Convolution

    struct ConvCase: CustomStringConvertible {
        var n: Int, c: Int, m: Int, h: Int, w: Int
        var kernel: [Int], stride: [Int] = [1, 1], dilation: [Int] = [1, 1]
        var pads: [Int], groups: Int = 1, bias: Bool = false

        var description: String {
            "Conv n\(n) c\(c)→m\(m) \(h)x\(w) k\(kernel) s\(stride) d\(dilation) pads\(pads) g\(groups) bias=\(bias)"
        }

        func graph(seed: UInt64) -> Graph {
            var b = GraphBuilder(name: "conv", seed: seed)
            let x = b.input("x", shape: [n, c, h, w])
            let y = b.conv(x, in: c, out: m, kernel: kernel, stride: stride, padding: pads,
                           dilation: dilation, groups: groups, bias: bias)
            b.output(y)
            return b.graph
        }
    }

    static let fixedConvCases: [ConvCase] = [
        ConvCase(n: 1, c: 3, m: 8, h: 7, w: 7, kernel: [3, 3], pads: [1, 1, 1, 1], bias: true),
        ConvCase(n: 3, c: 4, m: 6, h: 13, w: 13, kernel: [5, 5], stride: [2, 2], pads: [2, 2, 2, 2], groups: 2),
        ConvCase(n: 1, c: 8, m: 8, h: 17, w: 17, kernel: [3, 3], stride: [2, 2], pads: [0, 1, 1, 0], groups: 8, bias: true),
        ConvCase(n: 1, c: 8, m: 16, h: 9, w: 9, kernel: [3, 3], dilation: [2, 2], pads: [2, 2, 2, 2], groups: 4),
        ConvCase(n: 3, c: 5, m: 7, h: 11, w: 13, kernel: [1, 1], stride: [2, 2], pads: [0, 0, 0, 0], bias: true),
        ConvCase(n: 1, c: 6, m: 6, h: 13, w: 7, kernel: [3, 3], pads: [1, 0, 0, 1], groups: 6),
        ConvCase(n: 1, c: 4, m: 8, h: 7, w: 9, kernel: [3, 5], stride: [1, 2], pads: [1, 2, 1, 2], groups: 2),
        ConvCase(n: 1, c: 16, m: 16, h: 14, w: 14, kernel: [5, 5], stride: [2, 2], pads: [2, 2, 2, 2], groups: 16, bias: true),
        ConvCase(n: 1, c: 3, m: 4, h: 17, w: 17, kernel: [5, 5], stride: [2, 2], dilation: [2, 2], pads: [4, 4, 4, 4]),
        ConvCase(n: 1, c: 2, m: 4, h: 5, w: 5, kernel: [3, 3], pads: [0, 0, 0, 0], bias: true),
        ConvCase(n: 3, c: 4, m: 8, h: 7, w: 7, kernel: [3, 3], pads: [1, 1, 1, 1], groups: 4, bias: true),
        ConvCase(n: 3, c: 32, m: 48, h: 7, w: 7, kernel: [3, 3], pads: [1, 1, 1, 1], bias: true),
        ConvCase(n: 1, c: 24, m: 24, h: 13, w: 13, kernel: [3, 3], stride: [2, 2], dilation: [2, 2], pads: [0, 2, 2, 0], groups: 24),
        ConvCase(n: 1, c: 7, m: 5, h: 7, w: 7, kernel: [3, 3], stride: [2, 2], pads: [0, 0, 1, 1]),
        // Padding larger than the kernel, stride 3, and 1×1 inputs and outputs.
        ConvCase(n: 1, c: 8, m: 8, h: 5, w: 5, kernel: [1, 1], pads: [2, 2, 2, 2], bias: true),
        ConvCase(n: 1, c: 3, m: 5, h: 6, w: 6, kernel: [3, 3], stride: [2, 2], pads: [3, 0, 0, 3]),
        ConvCase(n: 1, c: 4, m: 4, h: 11, w: 11, kernel: [3, 3], stride: [3, 3], pads: [1, 1, 1, 1]),
        ConvCase(n: 2, c: 16, m: 32, h: 1, w: 1, kernel: [1, 1], pads: [0, 0, 0, 0], bias: true),
        ConvCase(n: 1, c: 16, m: 16, h: 3, w: 3, kernel: [3, 3], pads: [0, 0, 0, 0]),
        ConvCase(n: 1, c: 32, m: 32, h: 1, w: 1, kernel: [3, 3], pads: [1, 1, 1, 1], groups: 32, bias: true),
    ]

    /// A random convolution configuration, drawn so that the padded input covers the kernel.
    static func randomConvCase(_ rng: inout SplitMix64) -> ConvCase {
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        let kind = pick(["g1", "g2", "g4", "dw"])
        var c: Int, m: Int, groups: Int
        switch kind {
        case "dw":
            c = pick([1, 3, 8, 13, 16]); groups = c; m = c * pick([1, 1, 2])
        default:
            groups = kind == "g1" ? 1 : (kind == "g2" ? 2 : 4)
            c = groups * pick([1, 2, 3, 4]); m = groups * pick([1, 2, 3, 4])
        }
        let k = pick([1, 3, 5])
        let kernel = [k, pick([k, k, 3])]
        let stride = [pick([1, 2]), pick([1, 2])]
        let dilation = pick([1, 1, 1, 2])
        let pads: [Int]
        if pick([true, false]) {
            let p = (kernel[0] - 1) * dilation / 2
            pads = [p, (kernel[1] - 1) * dilation / 2, p, (kernel[1] - 1) * dilation / 2]
        } else {
            pads = (0..<4).map { i in Int(rng.next() % UInt64(kernel[i % 2])) }
        }
        let extent = kernel.map { ($0 - 1) * dilation + 1 }
        let h = max(pick([5, 7, 9, 13, 17]), extent[0]), w = max(pick([5, 7, 11, 13, 17]), extent[1])
        return ConvCase(n: pick([1, 1, 3]), c: c, m: m, h: h, w: w, kernel: kernel, stride: stride,
                        dilation: [dilation, dilation], pads: pads, groups: groups, bias: pick([true, false]))
    }

    func testConvolutionFixedConfigurations() throws {
        for (i, c) in Self.fixedConvCases.enumerated() {
            try checkAgainstReference(c.graph(seed: UInt64(i)), seed: UInt64(100 + i), "\(c)")
        }
    }

    func testConvolutionRandomConfigurations() throws {
        var rng = SplitMix64(seed: 2024)
        for i in 0..<40 {
            let c = Self.randomConvCase(&rng)
            try checkAgainstReference(c.graph(seed: UInt64(i)), seed: UInt64(500 + i),
                                      configurations: [TestSupport.configurations[0]], "random #\(i): \(c)")
        }
    }

    /// Conv with the kernel shape taken from the weight and no optional attributes at all.
    func testConvolutionDefaultsFromWeight() throws {
        var b = GraphBuilder(name: "conv-defaults", seed: 3)
        let x = b.input("x", shape: [1, 3, 9, 9])
        let w = b.constant(b.randomTensor([4, 3, 3, 3], fanIn: 27))
        b.output(b.node("Conv", [x, w])[0])
        let out = try checkAgainstReference(b.graph, "conv without attributes")
        XCTAssertEqual(out[0].shape, [1, 4, 7, 7])
    }

    // MARK: Normalization and activations

    func testBatchNormalizationStandalone() throws {
        // After an Add of two inputs (nothing to fold into).
        var b = GraphBuilder(name: "bn-after-add", seed: 5)
        let x = b.input("x", shape: [2, 6, 7, 5])
        let y = b.input("y", shape: [2, 6, 7, 5])
        b.output(b.batchNorm(b.add(x, y), channels: 6, epsilon: 1e-3))
        try checkAgainstReference(b.graph, "BN after Add")

        // Directly on the input, on a 2-D input, and after a conv whose output is also used elsewhere.
        try checkAgainstReference(Self.graph("bn-input", input: [3, 5, 4, 4]) { b, x in [b.batchNorm(x, channels: 5)] },
                                  "BN on input")
        try checkAgainstReference(Self.graph("bn-2d", input: [4, 10]) { b, x in [b.batchNorm(x, channels: 10)] },
                                  "BN on 2-D input")
        var c = GraphBuilder(name: "bn-shared", seed: 6)
        let ci = c.input("x", shape: [1, 4, 6, 6])
        let conv = c.conv(ci, in: 4, out: 8, kernel: 3)
        c.output(c.batchNorm(conv, channels: 8))
        c.output(c.relu(conv))
        try checkAgainstReference(c.graph, "BN after conv with a second consumer")
    }

    static let activations: [(String, [String: Attribute])] = [
        ("Relu", [:]), ("Sigmoid", [:]), ("Silu", [:]), ("Swish", [:]), ("HardSwish", [:]), ("Tanh", [:]),
        ("HardSigmoid", [:]), ("HardSigmoid", ["alpha": .float(0.3), "beta": .float(0.4)]),
        ("LeakyRelu", [:]), ("LeakyRelu", ["alpha": .float(0.25)]),
    ]

    func testActivations() throws {
        for (op, attrs) in Self.activations {
            try checkUnary(op, input: [2, 5, 7, 3], attributes: attrs, inputRange: -8...8)
            try checkUnary(op, input: [1, 16, 5, 5], attributes: attrs, inputRange: -8...8)
        }
    }

    /// Activations fused after a convolution, after a binary operator and after a Gemm.
    func testActivationsAsFusedPostOps() throws {
        for (op, attrs) in Self.activations {
            var b = GraphBuilder(name: "fused-\(op)", seed: 9)
            let x = b.input("x", shape: [1, 6, 7, 7])
            let y = b.input("y", shape: [1, 8, 7, 7])
            let conv = b.conv(x, in: 6, out: 8, kernel: 3, bias: true)
            let scaled = b.node("Mul", [conv, b.constant(Tensor(shape: [1], repeating: 4))])[0]
            let act1 = b.node(op, [scaled], attributes: attrs)[0]
            let act2 = b.node(op, [b.add(act1, y)], attributes: attrs)[0]
            let flat = b.flatten(b.globalAveragePool(act2))
            let fc = b.linear(flat, in: 8, out: 5)
            b.output(b.node(op, [fc], attributes: attrs)[0])
            try checkAgainstReference(b.graph, inputRange: -3...3, "\(op) \(attrs) as post-op")
        }
    }

    func testClip() throws {
        func bounds(_ lo: Float?, _ hi: Float?) -> (inout GraphBuilder) -> [String] {
            { b in
                [lo.map { b.constant(Tensor(shape: [], repeating: $0), prefix: "min") } ?? "",
                 hi.map { b.constant(Tensor(shape: [], repeating: $0), prefix: "max") } ?? ""]
            }
        }
        try checkUnary("Clip", input: [2, 5, 6, 6], extraInputs: bounds(0, 6), inputRange: -10...10, label: "relu6")
        try checkUnary("Clip", input: [2, 5, 6, 6], extraInputs: bounds(-0.5, 0.25), label: "[-0.5, 0.25]")
        try checkUnary("Clip", input: [2, 5, 6, 6], extraInputs: bounds(-0.3, nil), label: "min only")
        try checkUnary("Clip", input: [2, 5, 6, 6], extraInputs: bounds(nil, 0.3), label: "max only")
        try checkUnary("Clip", input: [1, 16, 5, 5], extraInputs: bounds(0, nil), label: "min 0 (relu)")
        try checkUnary("Clip", input: [2, 5, 6, 6], attributes: ["min": .float(-0.2), "max": .float(0.7)],
                       label: "opset 6 attributes")
        // Bounds as [1]-shaped tensors, as some exporters write them.
        try checkUnary("Clip", input: [1, 16, 5, 5], extraInputs: { b in
            [b.constant(Tensor(shape: [1], repeating: -1)), b.constant(Tensor(shape: [1], repeating: 1))]
        }, inputRange: -3...3, label: "[1]-shaped bounds")
    }

    // MARK: Pooling

    static func pool(_ op: String, kernel: [Int], strides: [Int], pads: [Int], ceil: Bool = false,
                     includePad: Bool? = nil, dilations: [Int]? = nil) -> [String: Attribute] {
        var a: [String: Attribute] = ["kernel_shape": .ints(kernel), "strides": .ints(strides), "pads": .ints(pads),
                                      "ceil_mode": .int(ceil ? 1 : 0)]
        if let includePad { a["count_include_pad"] = .int(includePad ? 1 : 0) }
        if let dilations { a["dilations"] = .ints(dilations) }
        return a
    }

    func testMaxPool() throws {
        let cases: [[String: Attribute]] = [
            Self.pool("MaxPool", kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
            Self.pool("MaxPool", kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0]),
            Self.pool("MaxPool", kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0], ceil: true),
            Self.pool("MaxPool", kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil: true),
            Self.pool("MaxPool", kernel: [3, 3], strides: [1, 1], pads: [0, 1, 2, 0]),
            Self.pool("MaxPool", kernel: [3, 2], strides: [2, 1], pads: [1, 0, 0, 1], ceil: true),
            Self.pool("MaxPool", kernel: [2, 2], strides: [1, 1], pads: [1, 1, 1, 1], dilations: [2, 2]),
            Self.pool("MaxPool", kernel: [2, 2], strides: [2, 2], pads: [1, 0, 0, 1], ceil: true, dilations: [2, 2]),
            Self.pool("MaxPool", kernel: [2, 2], strides: [3, 3], pads: [0, 0, 0, 0]),
        ]
        for attrs in cases {
            try checkUnary("MaxPool", input: [2, 3, 7, 7], attributes: attrs)
            try checkUnary("MaxPool", input: [1, 16, 9, 8], attributes: attrs)
        }
    }

    func testAveragePool() throws {
        for include in [false, true] {
            let cases: [[String: Attribute]] = [
                Self.pool("AveragePool", kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], includePad: include),
                Self.pool("AveragePool", kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], includePad: include),
                Self.pool("AveragePool", kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0], includePad: include),
                Self.pool("AveragePool", kernel: [3, 3], strides: [2, 2], pads: [0, 1, 1, 0], includePad: include),
                Self.pool("AveragePool", kernel: [2, 3], strides: [1, 2], pads: [1, 0, 0, 2], includePad: include),
                Self.pool("AveragePool", kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0], ceil: true, includePad: include),
                Self.pool("AveragePool", kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil: true, includePad: include),
            ]
            for attrs in cases {
                try checkUnary("AveragePool", input: [2, 3, 7, 7], attributes: attrs)
                try checkUnary("AveragePool", input: [1, 16, 8, 9], attributes: attrs)
            }
        }
        // The ONNX default for count_include_pad is 0.
        try checkUnary("AveragePool", input: [1, 3, 5, 5],
                       attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])])
    }

    func testGlobalAveragePool() throws {
        try checkUnary("GlobalAveragePool", input: [2, 5, 7, 3])
        try checkUnary("GlobalAveragePool", input: [3, 16, 6, 6])
        try checkUnary("GlobalAveragePool", input: [1, 4, 1, 1])
    }

    // MARK: Binary operators

    func testBinaryBroadcasting() throws {
        let full = [2, 4, 5, 7]
        let others: [[Int]] = [[1, 4, 1, 1], [4, 1, 1], [1], [], full, [2, 4, 1, 1], [7], [1, 1, 5, 7], [2, 1, 5, 1]]
        for kind in BinaryKind.allCases {
            // Division stays away from zero.
            let range: ClosedRange<Float> = kind == .div ? 0.5...2 : -1...1
            for other in others {
                for constant in [true, false] {
                    for swapped in [false, true] {
                        var b = GraphBuilder(name: "binary", seed: 13)
                        let x = b.input("x", shape: full)
                        let y = constant
                            ? b.constant(Tensor(shape: other, uniformIn: range, generator: &b.generator))
                            : b.input("y", shape: other)
                        b.output(b.node(kind.rawValue, swapped ? [y, x] : [x, y])[0])
                        try checkAgainstReference(b.graph, inputRange: range,
                                                  "\(kind) \(full) with \(other) constant=\(constant) swapped=\(swapped)")
                    }
                }
            }
        }
    }

    /// Broadcast operands against a convolution's blocked output, and a computed [N,C,1,1]
    /// operand (squeeze-and-excite style scaling).
    func testBinaryOnBlockedLayouts() throws {
        for channels in [5, 16, 24] {
            for kind in BinaryKind.allCases {
                let range: ClosedRange<Float> = kind == .div ? 0.5...2 : -1...1
                var b = GraphBuilder(name: "binary-blocked", seed: 17)
                let x = b.input("x", shape: [2, 3, 6, 6])
                let conv = b.conv(x, in: 3, out: channels, kernel: 3, bias: true)
                let c1 = b.constant(Tensor(shape: [1, channels, 1, 1], uniformIn: range, generator: &b.generator))
                let c2 = b.constant(Tensor(shape: [channels, 1, 1], uniformIn: range, generator: &b.generator))
                let y1 = b.node(kind.rawValue, [conv, c1])[0]
                let y2 = b.node(kind.rawValue, [y1, c2])[0]
                let gate = b.node("Sigmoid", [b.globalAveragePool(conv)])[0]  // [2, C, 1, 1], in (0, 1)
                let gated = b.node(kind.rawValue, [y2, b.node("Add", [gate, b.constant(Tensor(shape: [1], repeating: 0.5))])[0]])[0]
                let other = b.conv(x, in: 3, out: channels, kernel: 1)
                let both = b.node(kind.rawValue, [gated, kind == .div ? b.node("Sigmoid", [other])[0] : other])[0]
                b.output(both)
                try checkAgainstReference(b.graph, "\(kind) on blocked layout, C=\(channels)")
            }
        }
    }

    /// Operands broadcast along the channels (a scalar, a spatial map, a row) against a
    /// convolution's blocked output whose channel count is not a multiple of the block (8 on
    /// AVX2, 16 on AVX-512): oneDNN 2.6's AVX2 kernel got these wrong when the operand was
    /// given the blocked layout too.
    func testChannelBroadcastOperandOnBlockedLayouts() throws {
        for channels in [5, 12, 20] {
            for kind in BinaryKind.allCases {
                for other in [[1], [1, 1, 1, 1], [1, 1, 6, 6], [6], [1, 1, 1, 6], [2, 1, 6, 1]] {
                    let range: ClosedRange<Float> = kind == .div ? 0.5...2 : -1...1
                    var b = GraphBuilder(name: "broadcast-blocked", seed: 19)
                    let x = b.input("x", shape: [2, 3, 6, 6])
                    let conv = b.conv(x, in: 3, out: channels, kernel: 3, bias: true)
                    let k = b.constant(Tensor(shape: other, uniformIn: range, generator: &b.generator))
                    b.output(b.node(kind.rawValue, [conv, k])[0])
                    try checkAgainstReference(b.graph, "\(kind) by \(other) on blocked layout, C=\(channels)")
                }
            }
        }
    }

    // MARK: Data movement

    func testConcat() throws {
        var b = GraphBuilder(name: "concat", seed: 19)
        let x = b.input("x", shape: [2, 3, 5, 5])
        let y = b.input("y", shape: [2, 5, 5, 5])
        b.output(b.node("Concat", [x, y], attributes: ["axis": .int(1)])[0])
        try checkAgainstReference(b.graph, "inputs 3+5")

        // After convolutions (blocked layouts) with channel counts that are and are not block multiples.
        for (c1, c2, c3) in [(3, 5, 8), (16, 16, 32), (8, 16, 5)] {
            var g = GraphBuilder(name: "concat-conv", seed: 23)
            let x = g.input("x", shape: [1, 4, 6, 6])
            let a = g.conv(x, in: 4, out: c1, kernel: 3)
            let bb = g.conv(x, in: 4, out: c2, kernel: 1)
            let c = g.relu(g.conv(x, in: 4, out: c3, kernel: 3, bias: true))
            let cat = g.node("Concat", [a, bb, c], attributes: ["axis": .int(1)])[0]
            g.output(g.conv(cat, in: c1 + c2 + c3, out: 4, kernel: 1))
            try checkAgainstReference(g.graph, "convs \(c1)+\(c2)+\(c3)")
        }

        // Other axes, a negative axis and a constant operand.
        for axis in [0, 2, -1] {
            var g = GraphBuilder(name: "concat-axis", seed: 29)
            let x = g.input("x", shape: [2, 3, 4, 5])
            var shape = [2, 3, 4, 5]
            shape[axis < 0 ? axis + 4 : axis] = 2
            let k = g.constant(Tensor(shape: shape, uniformIn: -1...1, generator: &g.generator))
            g.output(g.node("Concat", [x, k, x], attributes: ["axis": .int(axis)])[0])
            try checkAgainstReference(g.graph, "axis \(axis)")
        }
    }

    func testSplit() throws {
        try checkUnary("Split", input: [2, 8, 5, 5], attributes: ["axis": .int(1)], outputs: 2, label: "equal halves")
        try checkUnary("Split", input: [2, 7, 5, 5], attributes: ["axis": .int(1)], outputs: 3, label: "uneven thirds")
        try checkUnary("Split", input: [2, 8, 5, 5], attributes: ["axis": .int(1), "split": .ints([2, 2, 4])],
                       outputs: 3, label: "attribute sizes")
        try checkUnary("Split", input: [1, 16, 4, 4], attributes: ["axis": .int(1)],
                       extraInputs: { b in [b.integers([3, 13])] }, outputs: 2, label: "input sizes")
        try checkUnary("Split", input: [2, 6, 6, 4], attributes: ["axis": .int(-2)],
                       extraInputs: { b in [b.integers([1, 5])] }, outputs: 2, label: "negative axis")
        // Split outputs consumed by further operators.
        var b = GraphBuilder(name: "split-use", seed: 31)
        let x = b.input("x", shape: [1, 8, 6, 6])
        let parts = b.node("Split", [b.conv(x, in: 8, out: 8, kernel: 1)], attributes: ["axis": .int(1)], outputs: 2)
        let left = b.conv(parts[0], in: 4, out: 4, kernel: 3)
        b.output(b.node("Concat", [b.relu(left), parts[1]], attributes: ["axis": .int(1)])[0])
        try checkAgainstReference(b.graph, "split then conv and concat")
    }

    func testSlice() throws {
        struct S { var starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]? }
        let cases = [
            S(starts: [2], ends: [6], axes: [1], steps: nil),
            S(starts: [1], ends: [8], axes: [1], steps: [2]),
            S(starts: [0, 1], ends: [8, -1], axes: [1, 3], steps: [3, 2]),
            S(starts: [-3], ends: [1000], axes: [-1], steps: nil),
            S(starts: [0, 0, 1, 1], ends: [1, 8, 5, 5], axes: nil, steps: [1, 1, 2, 1]),
            S(starts: [5], ends: [100], axes: [1], steps: [4]),
        ]
        for s in cases {
            try checkUnary("Slice", input: [2, 8, 6, 6], extraInputs: { b in
                [b.integers(s.starts), b.integers(s.ends), s.axes.map { b.integers($0) } ?? "",
                 s.steps.map { b.integers($0) } ?? ""]
            }, label: "starts \(s.starts) ends \(s.ends) axes \(String(describing: s.axes)) steps \(String(describing: s.steps))")
        }
        // Opset 1 attribute form.
        try checkUnary("Slice", input: [2, 8, 6, 6],
                       attributes: ["starts": .ints([1, 2]), "ends": .ints([3, 6]), "axes": .ints([0, 2])], label: "attributes")
    }

    func testGemm() throws {
        struct G { var m: Int, k: Int, n: Int, transA: Bool, transB: Bool, alpha: Float, beta: Float, c: [Int]?, bConstant: Bool }
        var cases: [G] = []
        for transA in [false, true] {
            for transB in [false, true] {
                for c in [nil, [5], [1, 5], [3, 5], [3, 1], [1]] as [[Int]?] {
                    cases.append(G(m: 3, k: 6, n: 5, transA: transA, transB: transB, alpha: 1, beta: 1, c: c, bConstant: true))
                }
                cases.append(G(m: 3, k: 6, n: 5, transA: transA, transB: transB, alpha: 0.5, beta: 2, c: [5], bConstant: true))
                cases.append(G(m: 3, k: 6, n: 5, transA: transA, transB: transB, alpha: -1.5, beta: 0.25, c: [3, 5], bConstant: true))
                cases.append(G(m: 4, k: 7, n: 2, transA: transA, transB: transB, alpha: 2, beta: 1, c: [2], bConstant: false))
            }
        }
        for g in cases {
            var b = GraphBuilder(name: "gemm", seed: 37)
            let a = b.input("a", shape: g.transA ? [g.k, g.m] : [g.m, g.k])
            let bShape = g.transB ? [g.n, g.k] : [g.k, g.n]
            let bv = g.bConstant ? b.constant(b.randomTensor(bShape, fanIn: g.k)) : b.input("b", shape: bShape)
            var inputs = [a, bv]
            if let c = g.c { inputs.append(b.constant(Tensor(shape: c, uniformIn: -1...1, generator: &b.generator))) }
            b.output(b.node("Gemm", inputs, attributes: [
                "transA": .int(g.transA ? 1 : 0), "transB": .int(g.transB ? 1 : 0),
                "alpha": .float(g.alpha), "beta": .float(g.beta),
            ])[0])
            try checkAgainstReference(b.graph, "\(g)")
        }
    }

    func testMatMul() throws {
        let cases: [([Int], [Int], Bool)] = [
            ([3, 5], [5, 4], true), ([3, 5], [5, 4], false), ([2, 3, 5], [2, 5, 4], false),
            ([2, 3, 5], [5, 4], true), ([1, 3, 5], [2, 5, 4], false), ([2, 2, 3, 5], [2, 5, 4], false),
        ]
        for (aShape, bShape, constant) in cases {
            var b = GraphBuilder(name: "matmul", seed: 41)
            let a = b.input("a", shape: aShape)
            let bv = constant ? b.constant(b.randomTensor(bShape, fanIn: 5)) : b.input("b", shape: bShape)
            b.output(b.node("MatMul", [a, bv])[0])
            let out = try checkAgainstReference(b.graph, "\(aShape) × \(bShape) constant=\(constant)")
            XCTAssertEqual(out[0].shape.suffix(2), [3, 4])
        }
    }

    func testFlattenAndReshape() throws {
        for axis in [0, 1, 2, -1] {
            try checkUnary("Flatten", input: [2, 16, 3, 3], attributes: ["axis": .int(axis)], label: "axis \(axis)")
        }
        for target in [[0, -1], [0, 4, 2, -1], [-1], [2, 0, 9, 1, 2], [4, 36, 2]] {
            try checkUnary("Reshape", input: [2, 8, 3, 6], extraInputs: { b in [b.integers(target)] }, label: "to \(target)")
        }
        // Flatten feeding a fully connected layer, and a reshape feeding a convolution.
        var b = GraphBuilder(name: "flatten-gemm", seed: 43)
        let x = b.input("x", shape: [3, 4, 5, 5])
        let conv = b.relu(b.conv(x, in: 4, out: 16, kernel: 3, stride: 2))
        let fc = b.linear(b.flatten(conv), in: 16 * 9, out: 10)
        let back = b.node("Reshape", [fc, b.integers([0, 10, 1, 1])])[0]
        b.output(b.conv(back, in: 10, out: 6, kernel: 1, bias: true))
        try checkAgainstReference(b.graph, "flatten → gemm → reshape → conv")
    }

    /// ShuffleNet's channel shuffle: reshape [N, g, C/g, H, W], transpose [0, 2, 1, 3, 4], reshape back.
    func testTransposeChannelShuffle() throws {
        for (channels, groups) in [(8, 2), (12, 3), (16, 4)] {
            var b = GraphBuilder(name: "shuffle", seed: 47)
            let x = b.input("x", shape: [2, 4, 5, 5])
            let conv = b.conv(x, in: 4, out: channels, kernel: 1)
            let r = b.node("Reshape", [conv, b.integers([0, groups, channels / groups, 5, 5])])[0]
            let t = b.node("Transpose", [r], attributes: ["perm": .ints([0, 2, 1, 3, 4])])[0]
            let back = b.node("Reshape", [t, b.integers([0, -1, 5, 5])])[0]
            b.output(b.conv(back, in: channels, out: channels, kernel: 3, groups: groups))
            let out = try checkAgainstReference(b.graph, "channel shuffle C=\(channels) g=\(groups)")
            XCTAssertEqual(out[0].shape, [2, channels, 5, 5])
        }
        try checkUnary("Transpose", input: [2, 3, 4, 5], attributes: ["perm": .ints([0, 2, 3, 1])], label: "NCHW→NHWC")
        try checkUnary("Transpose", input: [2, 3, 4, 5], label: "default reversal")
    }

    func testSoftmax() throws {
        try checkUnary("Softmax", input: [2, 5, 3, 3], attributes: ["axis": .int(1)], inputRange: -5...5)
        try checkUnary("Softmax", input: [2, 5, 3, 3], inputRange: -5...5, label: "default axis")
        var b = GraphBuilder(name: "classifier", seed: 53)
        let x = b.input("x", shape: [3, 8, 4, 4])
        let logits = b.linear(b.flatten(b.globalAveragePool(x)), in: 8, out: 10)
        b.output(b.node("Softmax", [logits], attributes: ["axis": .int(-1)])[0])
        let out = try checkAgainstReference(b.graph, "softmax after gemm")
        for row in 0..<3 {
            let sum = out[0].scalars[(row * 10)..<(row * 10 + 10)].reduce(0, +)
            XCTAssertEqual(sum, 1, accuracy: 1e-5)
        }
    }

    func testPad() throws {
        try checkUnary("Pad", input: [2, 3, 4, 5], extraInputs: { b in [b.integers([0, 0, 1, 2, 0, 0, 2, 1])] },
                       label: "zero")
        try checkUnary("Pad", input: [2, 3, 4, 5], extraInputs: { b in
            [b.integers([0, 1, 0, 3, 1, 0, 2, 0]), b.constant(Tensor(shape: [], repeating: 0.5))]
        }, label: "value 0.5, channel and batch padding")
        try checkUnary("Pad", input: [1, 16, 3, 3], attributes: ["pads": .ints([0, 0, 1, 1, 0, 0, 1, 1]), "value": .float(-2)],
                       label: "opset 2 attributes")
        // Pad feeding a convolution without padding (as exported for asymmetric SAME padding).
        var b = GraphBuilder(name: "pad-conv", seed: 59)
        let x = b.input("x", shape: [1, 4, 7, 7])
        let p = b.node("Pad", [x, b.integers([0, 0, 0, 0, 0, 0, 1, 1])])[0]
        b.output(b.conv(p, in: 4, out: 6, kernel: [3, 3], stride: [2, 2], padding: [0, 0, 0, 0]))
        try checkAgainstReference(b.graph, "pad then conv")
    }

    func testIdentityAndDropout() throws {
        try checkUnary("Identity", input: [2, 3, 4, 4])
        try checkUnary("Dropout", input: [2, 3, 4, 4], attributes: ["ratio": .float(0.5)])
        var b = GraphBuilder(name: "identity-chain", seed: 61)
        let x = b.input("x", shape: [1, 4, 5, 5])
        let conv = b.conv(x, in: 4, out: 8, kernel: 3)
        let id = b.node("Identity", [conv])[0]
        let drop = b.node("Dropout", [b.relu(id)], attributes: ["ratio": .float(0.1)])[0]
        b.output(drop)
        b.output(id)
        try checkAgainstReference(b.graph, "identity and dropout between operators")
    }

    /// An output that is the input itself, and a value that is both an output and consumed.
    func testInputAsOutputAndSharedOutputs() throws {
        var b = GraphBuilder(name: "io", seed: 67)
        let x = b.input("x", shape: [1, 3, 5, 5])
        let conv = b.conv(x, in: 3, out: 4, kernel: 3)
        b.output(b.node("Identity", [x])[0])
        b.output(conv)
        b.output(b.relu(conv))
        b.output(b.node("Reshape", [conv, b.integers([1, -1])])[0])
        try checkAgainstReference(b.graph, "input passed through")
    }

    /// ONNX auto_pad on convolutions and pools: SAME_UPPER, SAME_LOWER (extra padding at the
    /// start) and VALID, on odd sizes with stride 2 so the two SAME modes really differ.
    func testAutoPad() throws {
        for mode in ["SAME_UPPER", "SAME_LOWER", "VALID"] {
            for (size, stride) in [(7, 2), (8, 2), (9, 1)] {
                var b = GraphBuilder(name: "autopad", seed: 71)
                let x = b.input("x", shape: [1, 16, size, size])
                let w = b.constant(b.randomTensor([8, 16, 3, 3], fanIn: 144))
                let conv = b.node("Conv", [x, w], attributes: [
                    "kernel_shape": .ints([3, 3]), "strides": .ints([stride, stride]), "auto_pad": .string(mode),
                ])[0]
                let pool = b.node("MaxPool", [conv], attributes: [
                    "kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "auto_pad": .string(mode),
                ])[0]
                let avg = b.node("AveragePool", [conv], attributes: [
                    "kernel_shape": .ints([3, 3]), "strides": .ints([stride, stride]), "auto_pad": .string(mode),
                ])[0]
                b.output(pool)
                b.output(avg)
                let out = try checkAgainstReference(b.graph, "\(mode) size \(size) stride \(stride)")
                let convSize = mode == "VALID" ? (size - 3) / stride + 1 : (size + stride - 1) / stride
                let poolSize = mode == "VALID" ? (convSize - 2) / 2 + 1 : (convSize + 1) / 2
                let avgSize = mode == "VALID" ? (convSize - 3) / stride + 1 : (convSize + stride - 1) / stride
                XCTAssertEqual(out[0].shape, [1, 8, poolSize, poolSize], "\(mode) \(size)")
                XCTAssertEqual(out[1].shape, [1, 8, avgSize, avgSize], "\(mode) \(size)")
            }
        }
    }

    /// Mixed layouts meeting in one operator: the plain graph input next to a convolution's
    /// blocked output, and activations of constants.
    func testMixedLayoutsAndConstantOperands() throws {
        for channels in [5, 16] {
            var b = GraphBuilder(name: "mixed", seed: 101)
            let x = b.input("x", shape: [1, channels, 6, 6])
            let c = b.conv(x, in: channels, out: channels, kernel: 3)
            let cat = b.node("Concat", [x, c, x], attributes: ["axis": .int(1)])[0]
            let k = b.constant(Tensor(shape: [1, channels, 6, 6], uniformIn: -2...2, generator: &b.generator))
            let gate = b.node("Sigmoid", [k])[0]
            let sum = b.add(x, c)
            b.output(b.node("Mul", [gate, sum])[0])
            b.output(b.node("MaxPool", [cat], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])[0])
            b.output(b.add(c, x))
            try checkAgainstReference(b.graph, "mixed layouts C=\(channels)")
        }
    }

    /// Operators reading the same value twice, and a concat of a value with itself.
    func testRepeatedOperands() throws {
        for kind in ["Add", "Mul", "Sub"] {
            var b = GraphBuilder(name: "repeat", seed: 73)
            let x = b.input("x", shape: [2, 16, 5, 5])
            let c = b.conv(x, in: 16, out: 16, kernel: 3)
            let twice = b.node(kind, [c, c])[0]
            let onInput = b.node(kind, [x, x])[0]
            let cat = b.node("Concat", [twice, twice, onInput], attributes: ["axis": .int(1)])[0]
            b.output(b.conv(cat, in: 48, out: 4, kernel: 1))
            try checkAgainstReference(b.graph, "\(kind)(c, c)")
        }
    }

    /// The same value exported under several output names.
    func testOneValueSeveralOutputs() throws {
        var b = GraphBuilder(name: "aliases", seed: 79)
        let x = b.input("x", shape: [1, 4, 6, 6])
        let c = b.conv(x, in: 4, out: 8, kernel: 3)
        b.output(b.node("Identity", [c])[0])
        b.output(b.node("Identity", [c])[0])
        b.output(c)
        b.output(b.node("Flatten", [c], attributes: ["axis": .int(1)])[0])
        let out = try checkAgainstReference(b.graph, "identity outputs")
        XCTAssertEqual(out[0], out[1])
        XCTAssertEqual(out[0], out[2])
        XCTAssertEqual(out[3].scalars, out[0].scalars)
    }

    /// Weights computed at run time (not initializers): the compiler must fall back to reference kernels.
    func testNonConstantWeights() throws {
        var b = GraphBuilder(name: "dynamic-weights", seed: 83)
        let x = b.input("x", shape: [1, 4, 7, 7])
        let w = b.input("w", shape: [6, 2, 3, 3])
        let bias = b.input("bias", shape: [6])
        let conv = b.node("Conv", [x, w, bias], attributes: ["group": .int(2), "pads": .ints([1, 0, 0, 1])])[0]
        let fcW = b.input("fc", shape: [5, 6 * 6 * 6])
        b.output(b.node("Gemm", [b.flatten(conv), fcW], attributes: ["transB": .int(1)])[0])
        try checkAgainstReference(b.graph, "weights as inputs")
    }

    /// Zero-size slices and exporter-style huge end bounds.
    func testSliceEdgeBounds() throws {
        try checkUnary("Slice", input: [2, 8, 6, 6], extraInputs: { b in
            [b.integers([1]), b.integers([Int.max]), b.integers([1]), b.integers([3])]
        }, label: "Int.max end")
        try checkUnary("Slice", input: [2, 8, 6, 6], extraInputs: { b in
            [b.integers([Int.min]), b.integers([-2]), b.integers([-1])]
        }, label: "Int.min start, negative end")
        var b = GraphBuilder(name: "empty-slice", seed: 89)
        let x = b.input("x", shape: [2, 8, 4, 4])
        b.output(b.node("Slice", [x, b.integers([6]), b.integers([2]), b.integers([1])])[0])
        b.output(b.relu(x))
        let out = try checkAgainstReference(b.graph, "empty slice")
        XCTAssertEqual(out[0].shape, [2, 0, 4, 4])
    }

    /// Two residual adds on one convolution (the second add's other operand computed earlier):
    /// more residuals than oneDNN's single sum post-op.
    func testTwoResidualsOnOneConvolution() throws {
        var b = GraphBuilder(name: "two-residuals", seed: 97)
        let x = b.input("x", shape: [1, 16, 6, 6])
        let r1 = b.relu(b.conv(x, in: 16, out: 16, kernel: 1))
        let r2 = b.node("Sigmoid", [b.conv(x, in: 16, out: 16, kernel: 3)])[0]
        let main = b.conv(r1, in: 16, out: 16, kernel: 3, bias: true)
        b.output(b.relu(b.add(b.add(main, r1), r2)))
        try checkAgainstReference(b.graph, "conv + r1 + r2")
        let optimized = try Program(lowering: b.graph).optimized()
        let fused = optimized.steps.first { $0.postOps.filter { if case .add = $0 { return true }; return false }.count == 2 }
        XCTAssertNotNil(fused, "both adds fuse into the convolution")
    }

    // MARK: Hand-computed reference values (checking the oracle itself)

    func run(_ graph: Graph, _ inputs: [Tensor]) throws -> [Tensor] {
        try ReferenceRunner(program: Program(lowering: graph)).run(inputs)
    }

    static let oneToNine = try! Tensor(shape: [1, 1, 3, 3], scalars: (1...9).map(Float.init))

    func testReferenceConvolutionByHand() throws {
        var g = Graph(name: "hand-conv", inputs: [ValueInfo(name: "x", shape: [1, 1, 3, 3])], outputs: ["y", "z", "d"])
        g.initializers["w"] = Tensor(shape: [1, 1, 3, 3], repeating: 1)
        g.initializers["b"] = Tensor(shape: [1], repeating: 1)
        g.initializers["w2"] = try Tensor(shape: [1, 1, 2, 2], scalars: [1, 0, 0, -1])
        g.nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"],
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
            Node(name: "strided", opType: "Conv", inputs: ["x", "w"], outputs: ["z"],
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])]),
            // Top-left minus bottom-right with asymmetric padding (bottom and right only).
            Node(name: "diff", opType: "Conv", inputs: ["x", "w2"], outputs: ["d"],
                 attributes: ["pads": .ints([0, 0, 1, 1])]),
        ]
        let out = try run(g, [Self.oneToNine])
        XCTAssertEqual(out[0].scalars, [12, 21, 16, 27, 45, 33, 24, 39, 28].map { $0 + 1 })
        XCTAssertEqual(out[1].scalars, [12, 16, 24, 28])
        XCTAssertEqual(out[2].shape, [1, 1, 3, 3])
        XCTAssertEqual(out[2].scalars, [-4, -4, 3, -4, -4, 6, 7, 8, 9])

        // Grouped: two channels, each convolved with its own 1×1 weight.
        var h = Graph(name: "hand-grouped", inputs: [ValueInfo(name: "x", shape: [1, 2, 1, 2])], outputs: ["y"])
        h.initializers["w"] = try Tensor(shape: [2, 1, 1, 1], scalars: [2, -3])
        h.nodes = [Node(name: "g", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ["group": .int(2)])]
        XCTAssertEqual(try run(h, [Tensor(shape: [1, 2, 1, 2], scalars: [1, 2, 3, 4])])[0].scalars, [2, 4, -9, -12])

        // Dilation 2 over a 5×5 ramp: the corners of the 5×5 window.
        var d = Graph(name: "hand-dilated", inputs: [ValueInfo(name: "x", shape: [1, 1, 5, 5])], outputs: ["y"])
        d.initializers["w"] = Tensor(shape: [1, 1, 2, 2], repeating: 1)
        d.nodes = [Node(name: "dil", opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
                        attributes: ["dilations": .ints([4, 4])])]
        let dil = try run(d, [Tensor(shape: [1, 1, 5, 5], scalars: (0..<25).map(Float.init))])
        XCTAssertEqual(dil[0].shape, [1, 1, 1, 1])
        XCTAssertEqual(dil[0].scalars, [0 + 4 + 20 + 24])

        // auto_pad with an even kernel: SAME_UPPER pads after, SAME_LOWER before.
        for (mode, expected) in [("SAME_UPPER", [12, 16, 9, 24, 28, 15, 15, 17, 9]), ("SAME_LOWER", [1, 3, 5, 5, 12, 16, 11, 24, 28])] {
            var s = Graph(name: "same", inputs: [ValueInfo(name: "x", shape: [1, 1, 3, 3])], outputs: ["y"])
            s.initializers["w"] = Tensor(shape: [1, 1, 2, 2], repeating: 1)
            s.nodes = [Node(name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ["auto_pad": .string(mode)])]
            XCTAssertEqual(try run(s, [Self.oneToNine])[0].scalars, expected.map(Float.init), mode)
        }
    }

    func testReferencePoolingByHand() throws {
        func pool(_ op: String, _ attrs: [String: Attribute]) throws -> Tensor {
            let g = Graph(name: "hand-pool", inputs: [ValueInfo(name: "x", shape: [1, 1, 3, 3])], outputs: ["y"],
                          nodes: [Node(name: "p", opType: op, inputs: ["x"], outputs: ["y"], attributes: attrs)])
            return try run(g, [Self.oneToNine])[0]
        }
        let k3p1: [String: Attribute] = ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]
        // Corner windows cover 4 inputs (1+2+4+5), edges 6, the centre all 9.
        var include = k3p1; include["count_include_pad"] = .int(1)
        let inc = try pool("AveragePool", include)
        XCTAssertEqual(inc.scalars[0], 12 / 9, accuracy: 1e-6)
        XCTAssertEqual(inc.scalars[1], 21 / 9, accuracy: 1e-6)
        XCTAssertEqual(inc.scalars[4], 5, accuracy: 1e-6)
        XCTAssertEqual(inc.scalars[8], 28 / 9, accuracy: 1e-6)
        let exc = try pool("AveragePool", k3p1)
        XCTAssertEqual(exc.scalars[0], 3, accuracy: 1e-6)
        XCTAssertEqual(exc.scalars[1], 3.5, accuracy: 1e-6)
        XCTAssertEqual(exc.scalars[4], 5, accuracy: 1e-6)
        XCTAssertEqual(exc.scalars[8], 7, accuracy: 1e-6)

        // Asymmetric padding (bottom/right only): windows {1,2,4,5} {3,6} {7,8} {9}.
        let asym: [String: Attribute] = ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "pads": .ints([0, 0, 1, 1])]
        var asymInclude = asym; asymInclude["count_include_pad"] = .int(1)
        let ai = try pool("AveragePool", asymInclude)
        XCTAssertEqual(ai.shape, [1, 1, 2, 2])
        XCTAssertEqual(ai.scalars, [3, 2.25, 3.75, 2.25])
        XCTAssertEqual(try pool("AveragePool", asym).scalars, [3, 4.5, 7.5, 9])
        XCTAssertEqual(try pool("MaxPool", asym).scalars, [5, 6, 8, 9])

        // Ceil mode without padding: the overhanging window parts never count, even with
        // count_include_pad (PyTorch's rule).
        let ceil: [String: Attribute] = ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]
        var ceilInclude = ceil; ceilInclude["count_include_pad"] = .int(1)
        XCTAssertEqual(try pool("AveragePool", ceil).scalars, [3, 4.5, 7.5, 9])
        XCTAssertEqual(try pool("AveragePool", ceilInclude).scalars, [3, 4.5, 7.5, 9])
        XCTAssertEqual(try pool("MaxPool", ceil).scalars, [5, 6, 8, 9])
        // Ceil mode never starts a window in the end padding: 5 wide, k2 s2 pad 1 gives 3, not 4.
        let five = Graph(name: "ceil5", inputs: [ValueInfo(name: "x", shape: [1, 1, 5, 5])], outputs: ["y"],
                         nodes: [Node(name: "p", opType: "MaxPool", inputs: ["x"], outputs: ["y"], attributes: [
                             "kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "ceil_mode": .int(1),
                         ])])
        let ceil5 = try run(five, [Tensor(shape: [1, 1, 5, 5], scalars: (0..<25).map(Float.init))])[0]
        XCTAssertEqual(ceil5.shape, [1, 1, 3, 3])
        XCTAssertEqual(ceil5.scalars, [0, 2, 4, 10, 12, 14, 20, 22, 24])
        // Floor mode drops the partial windows.
        XCTAssertEqual(try pool("MaxPool", ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]).scalars, [5])

        let gap = Graph(name: "gap", inputs: [ValueInfo(name: "x", shape: [1, 1, 3, 3])], outputs: ["y"],
                        nodes: [Node(name: "p", opType: "GlobalAveragePool", inputs: ["x"], outputs: ["y"])])
        XCTAssertEqual(try run(gap, [Self.oneToNine])[0].scalars, [5])
    }

    func testReferenceMiscByHand() throws {
        // BatchNormalization: (x - mean) * scale / sqrt(var + eps) + bias.
        var bn = Graph(name: "bn", inputs: [ValueInfo(name: "x", shape: [1, 2, 1, 2])], outputs: ["y"])
        bn.initializers = [
            "s": try Tensor(shape: [2], scalars: [2, 1]), "b": try Tensor(shape: [2], scalars: [0.5, 0]),
            "m": try Tensor(shape: [2], scalars: [0.5, 1]), "v": try Tensor(shape: [2], scalars: [3, 0]),
        ]
        bn.nodes = [Node(name: "bn", opType: "BatchNormalization", inputs: ["x", "s", "b", "m", "v"], outputs: ["y"],
                         attributes: ["epsilon": .float(1)])]
        XCTAssertEqual(try run(bn, [Tensor(shape: [1, 2, 1, 2], scalars: [1, 2.5, 3, 5])])[0].scalars, [1, 2.5, 2, 4])

        // Gemm: 2 · Aᵀ·B + 0.5 · C with C broadcast along rows.
        var gemm = Graph(name: "gemm", inputs: [ValueInfo(name: "a", shape: [2, 2])], outputs: ["y"])
        gemm.initializers = ["B": try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]), "C": try Tensor(shape: [2], scalars: [10, 20])]
        gemm.nodes = [Node(name: "g", opType: "Gemm", inputs: ["a", "B", "C"], outputs: ["y"],
                           attributes: ["alpha": .float(2), "beta": .float(0.5), "transA": .int(1)])]
        // Aᵀ = [[1, 3], [2, 4]]; Aᵀ·B = [[10, 14], [14, 20]].
        XCTAssertEqual(try run(gemm, [Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])])[0].scalars, [25, 38, 33, 50])

        // Softmax of [0, ln 2, ln 5] is [1, 2, 5] / 8.
        let sm = Graph(name: "sm", inputs: [ValueInfo(name: "x", shape: [1, 3])], outputs: ["y"],
                       nodes: [Node(name: "s", opType: "Softmax", inputs: ["x"], outputs: ["y"])])
        let probs = try run(sm, [Tensor(shape: [1, 3], scalars: [0, logf(2), logf(5)])])[0].scalars
        for (p, e) in zip(probs, [0.125, 0.25, 0.625] as [Float]) { XCTAssertEqual(p, e, accuracy: 1e-6) }

        // Broadcast subtraction of a per-channel constant, and a transpose.
        var sub = Graph(name: "sub", inputs: [ValueInfo(name: "x", shape: [1, 2, 1, 3])], outputs: ["y", "t"])
        sub.initializers["c"] = try Tensor(shape: [2, 1, 1], scalars: [1, 10])
        sub.nodes = [Node(name: "s", opType: "Sub", inputs: ["c", "x"], outputs: ["y"]),
                     Node(name: "t", opType: "Transpose", inputs: ["x"], outputs: ["t"], attributes: ["perm": .ints([0, 3, 2, 1])])]
        let subOut = try run(sub, [Tensor(shape: [1, 2, 1, 3], scalars: [1, 2, 3, 4, 5, 6])])
        XCTAssertEqual(subOut[0].scalars, [0, -1, -2, 6, 5, 4])
        XCTAssertEqual(subOut[1].shape, [1, 3, 1, 2])
        XCTAssertEqual(subOut[1].scalars, [1, 4, 2, 5, 3, 6])

        // Slice with a step and Pad with a value.
        var sp = Graph(name: "slice-pad", inputs: [ValueInfo(name: "x", shape: [1, 6])], outputs: ["s", "p"])
        sp.integerConstants = ["st": [1], "en": [6], "ax": [1], "sp": [2], "pads": [0, 1, 0, 2]]
        sp.initializers["v"] = Tensor(shape: [], repeating: -1)
        sp.nodes = [Node(name: "slice", opType: "Slice", inputs: ["x", "st", "en", "ax", "sp"], outputs: ["s"]),
                    Node(name: "pad", opType: "Pad", inputs: ["s", "pads", "v"], outputs: ["p"])]
        let spOut = try run(sp, [Tensor(shape: [1, 6], scalars: [0, 1, 2, 3, 4, 5])])
        XCTAssertEqual(spOut[0].scalars, [1, 3, 5])
        XCTAssertEqual(spOut[1].scalars, [-1, 1, 3, 5, -1, -1])

        // MatMul, plain and with a broadcast batch.
        var mm = Graph(name: "mm", inputs: [ValueInfo(name: "a", shape: [2, 2, 2])], outputs: ["y"])
        mm.initializers["b"] = try Tensor(shape: [2, 2], scalars: [5, 6, 7, 8])
        mm.nodes = [Node(name: "m", opType: "MatMul", inputs: ["a", "b"], outputs: ["y"])]
        let mmOut = try run(mm, [Tensor(shape: [2, 2, 2], scalars: [1, 2, 3, 4, 1, 0, 0, 1])])[0]
        XCTAssertEqual(mmOut.scalars, [19, 22, 43, 50, 5, 6, 7, 8])

        // Split into explicit sizes and Concat back in the other order.
        var sc = Graph(name: "split-concat", inputs: [ValueInfo(name: "x", shape: [1, 3, 1, 2])], outputs: ["a", "b", "c"])
        sc.integerConstants["sizes"] = [1, 2]
        sc.nodes = [Node(name: "s", opType: "Split", inputs: ["x", "sizes"], outputs: ["a", "b"], attributes: ["axis": .int(1)]),
                    Node(name: "c", opType: "Concat", inputs: ["b", "a"], outputs: ["c"], attributes: ["axis": .int(1)])]
        let scOut = try run(sc, [Tensor(shape: [1, 3, 1, 2], scalars: [1, 2, 3, 4, 5, 6])])
        XCTAssertEqual(scOut[0].scalars, [1, 2])
        XCTAssertEqual(scOut[1].scalars, [3, 4, 5, 6])
        XCTAssertEqual(scOut[2].scalars, [3, 4, 5, 6, 1, 2])

        // Activation formulas at characteristic points.
        XCTAssertEqual(Eltwise.hardSwish.apply(3), 3)
        XCTAssertEqual(Eltwise.hardSwish.apply(-3), 0)
        XCTAssertEqual(Eltwise.hardSwish.apply(1), 1 * (1 / 6 + 0.5), accuracy: 1e-6)
        XCTAssertEqual(Eltwise.hardSigmoid(alpha: 0.2, beta: 0.5).apply(1), 0.7, accuracy: 1e-6)
        XCTAssertEqual(Eltwise.hardSigmoid(alpha: 0.2, beta: 0.5).apply(10), 1)
        XCTAssertEqual(Eltwise.leakyRelu(alpha: 0.1).apply(-2), -0.2, accuracy: 1e-7)
        XCTAssertEqual(Eltwise.silu.apply(0), 0)
        XCTAssertEqual(Eltwise.sigmoid.apply(0), 0.5)
        XCTAssertEqual(Eltwise.clip(min: 0, max: 6).apply(7), 6)
    }
}

import XCTest
import Metronome

/// What the element-wise math, reduction and normalization operators tell the passes, the
/// channel tools and the exporter. Their numbers are compared with ONNX Runtime in
/// `ONNXRuntimeOperatorTests` (tests/ort_operators.py).
final class MathOperatorTests: XCTestCase {
    static func eltwisePostOps(_ step: Step) -> [Eltwise] {
        step.postOps.compactMap { if case .eltwise(let f) = $0 { return f }; return nil }
    }

    static func isConv(_ step: Step) -> Bool { if case .conv = step.op { return true }; return false }

    /// Gelu, Elu and a constant-exponent Pow become post-ops of the convolution before them;
    /// Erf, which oneDNN post-ops lack, stays a step of its own, and the outputs are unchanged.
    func testFusionAsksTheActivationsOperator() throws {
        var b = GraphBuilder(name: "math-fusion", seed: 11)
        let x = b.input("x", shape: [1, 4, 6, 6])
        let two = b.constant(Tensor(shape: [], repeating: 2), prefix: "two")
        var y = b.node("Gelu", [b.conv(x, in: 4, out: 8, kernel: 3, bias: true)])[0]
        y = b.node("Elu", [y], attributes: ["alpha": .float(0.5)])[0]
        y = b.node("Pow", [y, two])[0]
        y = b.node("Erf", [b.conv(y, in: 8, out: 8, kernel: 1)])[0]
        b.output(y)
        let program = try Program(lowering: b.graph)
        let optimized = program.optimized()
        let convs = optimized.steps.filter(Self.isConv)
        XCTAssertEqual(convs.map(Self.eltwisePostOps), [[.gelu(tanh: false), .elu(alpha: 0.5), .pow(exponent: 2)], []])
        XCTAssertEqual(optimized.steps.last?.opType, "Erf")
        let inputs = TestSupport.inputs(for: program, seed: 5)
        let expected = try TestSupport.reference(program, inputs)
        for (name, options) in TestSupport.configurations {
            assertClose(try TestSupport.fast(program, inputs, options: options), expected, "math-fusion [\(name)]")
        }
    }

    /// oneDNN 2.6 computes a post-op chain that repeats an algorithm with other parameters
    /// wrongly (two Elu with different alphas); the second stays a step of its own.
    func testRepeatedOneDNNAlgorithmIsNotFused() throws {
        var b = GraphBuilder(name: "elu-elu", seed: 18)
        let x = b.input("x", shape: [1, 3, 6, 6])
        let y = b.node("Elu", [b.conv(x, in: 3, out: 8, kernel: 3)], attributes: ["alpha": .float(0.7)])[0]
        b.output(b.node("Elu", [b.node("Relu", [y])[0]], attributes: ["alpha": .float(0.5)])[0])
        let optimized = try Program(lowering: b.graph).optimized()
        XCTAssertEqual(optimized.steps.map(\.opType), ["Conv", "Elu"])
        XCTAssertEqual(Self.eltwisePostOps(optimized.steps[0]), [.elu(alpha: 0.7), .relu])
    }

    /// A tensor exponent keeps Pow a two-input broadcasting step, never a post-op.
    func testPowWithATensorExponentIsNotFused() throws {
        var b = GraphBuilder(name: "pow-tensor", seed: 12)
        let x = b.input("x", shape: [1, 3, 4, 4])
        let e = b.constant(Tensor(shape: [3, 1, 1], repeating: 2), prefix: "exponent")
        b.output(b.node("Pow", [b.conv(x, in: 3, out: 3, kernel: 1), e])[0])
        let optimized = try Program(lowering: b.graph).optimized()
        XCTAssertEqual(optimized.steps.map(\.opType), ["Conv", "Pow"])
        XCTAssertEqual(optimized.steps[1].inputs.count, 2)
    }

    /// Reductions over spatial axes pass channels through (an SE block's ReduceMean); over
    /// the channel axis, or dropping the batch axis, they fix them.
    func testReductionChannelBehaviour() throws {
        var b = GraphBuilder(name: "reduce-channels", seed: 13)
        let x = b.input("x", shape: [1, 8, 4, 4])
        b.output(b.node("ReduceMean", [x], attributes: ["axes": .ints([2, 3])])[0])
        b.output(b.node("ReduceMax", [x], attributes: ["axes": .ints([1])])[0])
        b.output(b.node("ReduceSum", [x, b.integers([0, 2])], attributes: ["keepdims": .int(0)])[0])
        b.output(b.node("ReduceL2", [x], attributes: ["axes": .ints([-1]), "keepdims": .int(0)])[0])
        let p = try Program(lowering: b.graph)
        let behaviours = try p.steps.map { try $0.channelBehaviour(in: p) }
        XCTAssertEqual(behaviours[0], .passThrough)
        guard case .pinned(let why) = behaviours[1] else { return XCTFail("ReduceMax over channels: \(behaviours[1])") }
        XCTAssertTrue(why.contains("channel axis"), why)
        guard case .pinned = behaviours[2] else { return XCTFail("ReduceSum dropping the batch: \(behaviours[2])") }
        XCTAssertEqual(behaviours[3], .passThrough)
        XCTAssertEqual(p.steps.map { p.shape($0.outputs[0]) }, [[1, 8, 1, 1], [1, 1, 4, 4], [8, 4], [1, 8, 4]])
    }

    /// Element-wise, PRelu and the normalizations: what slimming and pruning may do.
    func testElementwiseAndNormalizationChannels() throws {
        var b = GraphBuilder(name: "norm-channels", seed: 14)
        let x = b.input("x", shape: [1, 6, 4, 4])
        let slope = b.constant(Tensor(shape: [6, 1, 1], repeating: 0.2), prefix: "slope")
        let scale = b.constant(Tensor(shape: [6], repeating: 1), prefix: "scale")
        let shift = b.constant(Tensor(shape: [6], repeating: 0), prefix: "shift")
        let row = b.constant(Tensor(shape: [4], repeating: 1), prefix: "row")
        b.output(b.node("Mish", [x])[0])
        b.output(b.node("PRelu", [x, slope])[0])
        b.output(b.node("InstanceNormalization", [x, scale, shift])[0])
        b.output(b.node("LayerNormalization", [x, row], attributes: ["axis": .int(-1)])[0])
        b.output(b.node("LayerNormalization", [x, b.constant(Tensor(shape: [6, 4, 4], repeating: 1))],
                        attributes: ["axis": .int(1)])[0])
        let p = try Program(lowering: b.graph)
        let behaviours = try p.steps.map { try $0.channelBehaviour(in: p) }
        XCTAssertEqual(Array(behaviours.prefix(4)), [.passThrough, .passThrough, .passThrough, .passThrough])
        guard case .pinned = behaviours[4] else { return XCTFail("LayerNorm over channels: \(behaviours[4])") }
        let prelu = try p.steps[1].channelResize(in: p)
        XCTAssertEqual(prelu.inputs[p.steps[1].inputs[1]], .perChannel(axis: 0))
        let instance = try p.steps[2].channelResize(in: p)
        XCTAssertEqual(instance.inputs.count, 2)
        XCTAssertTrue(try p.steps[3].channelResize(in: p).inputs.isEmpty, "a channels-last row scale stays")
    }

    /// Opset 17 writes ReduceSum's axes as an input and the others' as an attribute, Gelu
    /// and Mish as their formulas, and an empty-axes no-op reduction as an Identity.
    func testExportWritesOpset17Forms() throws {
        var context = ONNXExportContext(integerConstants: ["axes": [2, 3]])
        let mean = try Node(name: "m", opType: "ReduceMean", inputs: ["x", "axes"], outputs: ["y"],
                            attributes: ["keepdims": .int(1)]).exportedToONNX(&context)
        XCTAssertEqual(mean.count, 1)
        XCTAssertEqual(mean[0].inputs, ["x"])
        XCTAssertEqual(mean[0].attributes["axes"], .ints([2, 3]))
        let sum = try Node(name: "s", opType: "ReduceSum", inputs: ["x"], outputs: ["y"],
                           attributes: ["axes": .ints([1])]).exportedToONNX(&context)
        XCTAssertEqual(sum[0].inputs.count, 2)
        XCTAssertNil(sum[0].attributes["axes"])
        XCTAssertEqual(context.constants.last?.value, .int64([1]))
        let noop = try Node(name: "n", opType: "ReduceMax", inputs: ["x"], outputs: ["y"],
                            attributes: ["noop_with_empty_axes": .int(1)]).exportedToONNX(&context)
        XCTAssertEqual(noop.map(\.opType), ["Identity"])
        let gelu = try Node(name: "g", opType: "Gelu", inputs: ["x"], outputs: ["y"],
                            attributes: ["approximate": .string("tanh")]).exportedToONNX(&context)
        XCTAssertTrue(gelu.contains { $0.opType == "Tanh" } && !gelu.contains { $0.opType == "Gelu" })
        XCTAssertEqual(gelu.last?.outputs, ["y"])
        let mish = try Node(name: "h", opType: "Mish", inputs: ["x"], outputs: ["y"]).exportedToONNX(&context)
        XCTAssertEqual(mish.map(\.opType), ["Softplus", "Tanh", "Mul"])
    }

    /// Errors name the node and say what is wrong.
    func testErrorsNameTheNode() throws {
        var b = GraphBuilder(name: "errors", seed: 15)
        let x = b.input("x", shape: [1, 3, 4, 4])
        b.output(b.node("Gelu", [x], attributes: ["approximate": .string("fast")], name: "bad_gelu")[0])
        XCTAssertThrowsError(try Program(lowering: b.graph)) { e in
            XCTAssertTrue("\(e)".contains("bad_gelu") && "\(e)".contains("approximate"), "\(e)")
        }
        var c = GraphBuilder(name: "errors2", seed: 16)
        let y = c.input("y", shape: [1, 3, 4, 4])
        c.output(c.node("ReduceMean", [y], attributes: ["axes": .ints([1, -3])], name: "dup_axes")[0])
        XCTAssertThrowsError(try Program(lowering: c.graph)) { e in
            XCTAssertTrue("\(e)".contains("dup_axes") && "\(e)".contains("twice"), "\(e)")
        }
        var d = GraphBuilder(name: "errors3", seed: 17)
        let z = d.input("z", shape: [1, 3, 4, 4])
        let slope = d.constant(Tensor(shape: [5], repeating: 1))
        d.output(d.node("PRelu", [z, slope], name: "bad_slope")[0])
        XCTAssertThrowsError(try Program(lowering: d.graph)) { e in
            XCTAssertTrue("\(e)".contains("bad_slope") && "\(e)".contains("broadcast"), "\(e)")
        }
    }
}

import Foundation
import Metronome
import MetronomeModels
import MetronomeTransforms
import XCTest

/// int8: QuantizeLinear/DequantizeLinear against ONNX's formulas worked by hand, the int8
/// plan against the reference interpreter on quantized networks, calibration ranges on
/// distributions whose answer is known, and the errors.
final class QuantizationTests: XCTestCase {
    func qdq(_ op: String, _ input: String, _ output: String, scales: [Float], zeroPoints: [Int], type: String, axis: Int? = nil) -> Node {
        var a: [String: Attribute] = ["scale": .floats(scales), "zero_point": .ints(zeroPoints), "type": .string(type)]
        if let axis { a["axis"] = .int(axis) }
        return Node(name: output + "_node", opType: op, inputs: [input], outputs: [output], attributes: a)
    }

    /// `saturate(round_half_even(x / s) + z)` then `(q − z) · s`: ties at x / s = k + 0.5 with an
    /// odd zero point (where "round, then add" and "add, then round" differ), saturation on both
    /// ends, int8 with zero point 0 and a per-axis dequantization.
    func testQuantizeLinearFollowsTheONNXFormulas() throws {
        var g = Graph(name: "qdq", inputs: [ValueInfo(name: "x", shape: [2, 6])], outputs: ["y", "z"])
        g.nodes = [
            qdq("QuantizeLinear", "x", "q", scales: [0.5], zeroPoints: [3], type: "uint8"),
            qdq("DequantizeLinear", "q", "y", scales: [0.5], zeroPoints: [3], type: "uint8"),
            qdq("QuantizeLinear", "x", "s", scales: [0.25], zeroPoints: [0], type: "int8"),
            qdq("DequantizeLinear", "s", "z", scales: [1, 2], zeroPoints: [0, 0], type: "int8", axis: 0),
        ]
        let x = try Tensor(shape: [2, 6], scalars: [0.25, 0.75, -10, 200, -0.25, 1.25,
                                                    0.125, 0.375, -100, 31.8, -0.125, 0.6])
        // By hand. y: x / 0.5 = 0.5 → 0 (+3 = 3); 1.5 → 2 (5); −20 → −17 → 0; 400 → 403 → 255; −0.5 → −0 (3); 2.5 → 2 (5);
        // 0.25 → 0; 0.75 → 1 (4); 63.6 → 64 (67); 1.2 → 1 (4).
        let y: [Float] = [0, 1, -1.5, 126, 0, 1,
                          0, 0.5, -1.5, 32, 0, 0.5]
        // z: x / 0.25 rounded and saturated to [−128, 127], then times 1 (row 0) or 2 (row 1).
        let z: [Float] = [1, 3, -40, 127, -1, 5,
                          0, 4, -256, 254, 0, 4]
        let program = try Program(lowering: g)
        let reference = try ReferenceRunner(program: program).run([x])
        XCTAssertEqual(reference[0].scalars, y)
        XCTAssertEqual(reference[1].scalars, z)
        // The compiled plan runs them as oneDNN reorders, and must agree exactly.
        let compiled = try Executor(plan: Plan.compile(program)).run([x])
        XCTAssertEqual(compiled[0].scalars, y)
        XCTAssertEqual(compiled[1].scalars, z)
    }

    /// A float network quantized by `Quantizer` (per-channel weights, calibration on random
    /// inputs), compiled for int8: every convolution and fully connected layer becomes an
    /// integer kernel, and the outputs follow the reference interpreter's QDQ formulas.
    ///
    /// `weightLimit` compiles as a CPU without VNNI does (``OptimizationOptions/integerWeightLimit``):
    /// layers with a weight beyond it stay in float, still following the reference.
    func int8Error(_ float: Graph, batch: Int, reduceRange: Bool = false, weightLimit: Float? = nil) throws -> Double {
        let folded = try BatchNormFolding.fold(float)
        var options = Quantizer.Options()
        options.perChannel = true
        options.reduceRange = reduceRange
        let quantizer = Quantizer(options: options)
        let tensors = try quantizer.calibratedTensors(folded)
        let shape = [4] + folded.inputs[0].shape.dropFirst()
        let batches = try (0..<2).map { b in
            try Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { Float(sin(Double($0 + 7919 * b))) })
        }
        let stats = try Calibrator(graph: folded, tensors: tensors).statistics(batches, method: .minmax)
        let (quantized, layers) = try quantizer.quantize(folded, statistics: stats)
        XCTAssertEqual(layers.count, folded.nodes.filter { ["Conv", "Gemm", "MatMul"].contains($0.opType) }.count)
        let program = try Program(lowering: quantized, batch: batch)
        let inputs = [try Tensor(shape: [batch] + shape.dropFirst(), scalars: (0..<(batch * shape.dropFirst().reduce(1, *))).map { Float(cos(Double($0))) })]
        let expected = try ReferenceRunner(program: program).run(inputs)[0]
        var compile = CompileOptions(precision: .int8)
        compile.optimization.integerWeightLimit = weightLimit
        let plan = try Plan.compile(program, options: compile)
        let integerKernels = plan.kernelInfo.filter { $0.opType == "Metronome.QuantizedLinear" }
        // Full-range per-channel weights reach ±127 in every layer: a limit of 64 (given, or
        // this CPU's own when it has no VNNI) keeps them all in float; 7-bit weights never.
        let exact = MachineInfo.exactInt8WeightLimit
        let limit = MachineInfo.int8ProductsSaturate ? min(weightLimit ?? exact, exact) : weightLimit
        XCTAssertEqual(integerKernels.count, limit.map { $0 < 127 && !reduceRange ? 0 : layers.count } ?? layers.count)
        XCTAssertEqual(plan.kernelInfo.filter { $0.opType == "Conv" || $0.opType == "Gemm" || $0.opType == "MatMul" }.count,
                       layers.count - integerKernels.count, "layers that are not integer kernels run in float")
        for k in integerKernels {
            XCTAssertEqual(k.backend, "onednn", "\(k.name) fell back to the reference kernel")
            XCTAssertTrue(k.srcLayout.contains("u8") || k.srcLayout.contains("s8"), "\(k.name): \(k.srcLayout)")
        }
        let got = try Executor(plan: plan).run(inputs)[0]
        return Double(got.relativeError(to: expected))
    }

    func testInt8LeNetFollowsTheReferenceInterpreter() throws {
        XCTAssertLessThan(try int8Error(TrainableCNNs.lenet5(), batch: 2), 1e-3)
    }

    func testInt8ResNetWithBatchNormsFollowsTheReferenceInterpreter() throws {
        XCTAssertLessThan(try int8Error(TrainableCNNs.resnet(), batch: 1), 1e-3)
    }

    /// Weights beyond the limit a CPU without VNNI computes exactly (64) keep their layers in
    /// float, on any machine; 7-bit weights (`reduceRange`) run on the integer kernels there.
    func testWeightLimitKeepsFullRangeLayersInFloat() throws {
        XCTAssertLessThan(try int8Error(TrainableCNNs.lenet5(), batch: 2, weightLimit: 64), 1e-3)
        XCTAssertLessThan(try int8Error(TrainableCNNs.lenet5(), batch: 2, reduceRange: true, weightLimit: 64), 1e-3)
        // 7-bit weights put more activations on rounding ties, which the integer kernels and the
        // float reference break differently (one quantum, carried through 8 layers); a
        // saturated product is off by far more (60% before the limit existed).
        XCTAssertLessThan(try int8Error(TrainableCNNs.resnet(), batch: 1, reduceRange: true), 5e-3)
    }

    func testInt8NeedsAQuantizedModel() throws {
        XCTAssertThrowsError(try Plan.compile(TrainableCNNs.lenet5(), batch: 1, options: CompileOptions(precision: .int8))) { e in
            XCTAssertTrue("\(e)".contains("metronome quantize"), "\(e)")
        }
    }

    func testBadQuantizationNodesAreNamed() throws {
        for (node, message) in [
            (qdq("QuantizeLinear", "x", "q", scales: [0.5, 1], zeroPoints: [0], type: "uint8"), "2 scales but 1 zero points"),
            (qdq("QuantizeLinear", "x", "q", scales: [0], zeroPoints: [0], type: "uint8"), "not a positive finite number"),
            (qdq("QuantizeLinear", "x", "q", scales: [1], zeroPoints: [300], type: "uint8"), "outside the range of uint8"),
            (qdq("QuantizeLinear", "x", "q", scales: [1, 2, 3], zeroPoints: [0, 0, 0], type: "int8", axis: 1), "3 scales for axis 1"),
        ] {
            let g = Graph(name: "bad", inputs: [ValueInfo(name: "x", shape: [1, 4])], outputs: ["q"], nodes: [node])
            XCTAssertThrowsError(try Program(lowering: g)) { e in
                XCTAssertTrue("\(e)".contains(message) && "\(e)".contains("q_node"), "\(e)")
            }
        }
    }

    func stats(_ values: [Float]) -> TensorStatistics {
        var s = TensorStatistics()
        values.withUnsafeBufferPointer { s.observeRange($0) }
        values.withUnsafeBufferPointer { s.observeHistogram($0) }
        return s
    }

    /// minmax keeps everything; percentile drops a lone outlier; entropy clips far outliers but
    /// keeps a uniform distribution whole, however many exact zeros (ReLU outputs) it has; a
    /// signed tensor gets one threshold per side.
    func testCalibrationRangesOnKnownDistributions() throws {
        let uniform = (0..<10_000).map { Float($0) / 10_000 }
        let withOutlier = uniform + [100]
        XCTAssertEqual(stats(withOutlier).range(.minmax, percentile: 99.99, levels: 128).1, 100)
        let p = stats(withOutlier).range(.percentile, percentile: 99.9, levels: 128).1
        XCTAssertLessThan(p, 2)
        XCTAssertGreaterThan(p, 0.9)
        let relu = [Float](repeating: 0, count: 10_000) + uniform
        XCTAssertGreaterThan(stats(relu).range(.entropy, percentile: 99.99, levels: 128).1, 0.9)
        // An exponential distribution (mass near 0, values out to ~9) and three far outliers:
        // over the whole range [0, 100] its shape would be lost in the first few levels, so
        // the threshold falls far below the maximum (but keeps the bulk).
        let exponential = (1..<10_000).map { Float(-log(Double($0) / 10_000)) }
        let outliers = stats(exponential + [50, 75, 100]).range(.entropy, percentile: 99.99, levels: 128).1
        XCTAssertLessThan(outliers, 25)
        XCTAssertGreaterThan(outliers, 2)
        let signed = stats([-0.8, -0.8, -0.8, 0.1, 1.5, 2.0])
        let (low, high) = signed.range(.percentile, percentile: 100, levels: 128)
        XCTAssertEqual(low, -0.8, accuracy: 1e-3)
        XCTAssertEqual(high, 2.0, accuracy: 1e-3)
    }

    /// Weights: symmetric int8, one scale per output channel reaching ±127 in every channel.
    func testWeightsAreSymmetricPerChannel() throws {
        let float = TrainableCNNs.lenet5()
        var options = Quantizer.Options()
        options.perChannel = true
        let quantizer = Quantizer(options: options)
        let stats = Dictionary(uniqueKeysWithValues: try quantizer.calibratedTensors(float).map { ($0, self.stats([-1, 2])) })
        let (q, _) = try quantizer.quantize(float, statistics: stats)
        let conv = try XCTUnwrap(q.nodes.first { $0.name == "conv_0_weight_DequantizeLinear" })
        guard case .floats(let scales)? = conv.attributes["scale"], case .ints(let zps)? = conv.attributes["zero_point"] else {
            return XCTFail("no scales")
        }
        let w = try XCTUnwrap(q.initializers[conv.inputs[0]])
        XCTAssertEqual(scales.count, w.shape[0])
        XCTAssertEqual(zps, Array(repeating: 0, count: w.shape[0]))
        let per = w.count / w.shape[0]
        let original = try XCTUnwrap(float.initializers[float.nodes.first { $0.name == "conv_0" }!.inputs[1]])
        for c in 0..<w.shape[0] {
            let row = w.scalars[(c * per)..<((c + 1) * per)]
            XCTAssertEqual(row.map(abs).max(), 127)
            XCTAssertTrue(row.allSatisfy { $0 == $0.rounded() })
            for j in 0..<per {
                XCTAssertEqual(row[c * per + j] * scales[c], original.scalars[c * per + j], accuracy: scales[c] / 2 + 1e-7)
            }
        }
        options.reduceRange = true
        let (seven, _) = try Quantizer(options: options).quantize(float, statistics: stats)
        let w7 = try XCTUnwrap(seven.initializers[conv.inputs[0]])
        for c in 0..<w.shape[0] { XCTAssertEqual(w7.scalars[(c * per)..<((c + 1) * per)].map(abs).max(), 64) }
        // The activation map: [-1, 2] in uint8 is scale 3/255 with zero point 85.
        let input = try XCTUnwrap(q.nodes.first { $0.name == "conv_0_input_QuantizeLinear" })
        XCTAssertEqual(input.attributes["zero_point"], .ints([85]))
    }
}

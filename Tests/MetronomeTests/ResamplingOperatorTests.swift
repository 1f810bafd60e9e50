import XCTest
import Metronome

/// Resize and ConvTranspose on small hand-computed cases, which kernel the compiler picks
/// (oneDNN resampling or deconvolution only where they give ONNX's answer), and the compiled
/// plans against the reference interpreter on blocked layouts. ONNX Runtime comparisons of
/// every variant are in `ONNXRuntimeResamplingTests`.
final class ResamplingOperatorTests: XCTestCase {
    func graph(_ input: [Int], preConv: Bool = false,
               _ body: (inout GraphBuilder, String) throws -> String) rethrows -> Graph {
        var b = GraphBuilder(name: "t", seed: 3)
        var x = b.input("x", shape: input)
        if preConv { x = b.conv(x, in: input[1], out: input[1], kernel: 1, bias: true) }
        b.output(try body(&b, x))
        return b.graph
    }

    func resize(_ b: inout GraphBuilder, _ x: String, scales: [Float], _ attributes: [String: Attribute]) throws -> String {
        let s = b.constant(try Tensor(shape: [scales.count], scalars: scales), prefix: "scales")
        return b.node("Resize", [x, "", s], attributes: attributes)[0]
    }

    func run(_ g: Graph, _ x: [Float], backend: Backend = .onednn) throws -> (Tensor, Plan) {
        let program = try Program(lowering: g)
        let plan = try Plan.compile(program, options: CompileOptions(threads: 1, backend: backend))
        let input = try Tensor(shape: program.shape(program.inputs[0]), scalars: x)
        return (try Executor(plan: plan).run([input])[0], plan)
    }

    func primitives(_ plan: Plan) -> [String] { plan.kernelInfo.map(\.primitive) }

    func testNearestAndLinearByHand() throws {
        let x: [Float] = [1, 2, 3, 4]
        let nearest = try graph([1, 1, 2, 2]) { b, x in
            try resize(&b, x, scales: [1, 1, 2, 2], ["mode": .string("nearest")])
        }
        for backend in [Backend.onednn, .reference] {
            let (y, _) = try run(nearest, x, backend: backend)
            XCTAssertEqual(y.scalars, [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
        }
        // half_pixel linear ×2 of [1, 2]: coordinates −0.25, 0.25, 0.75, 1.25 clamp to [0, 1].
        let linear = try graph([1, 1, 1, 2]) { b, x in
            try resize(&b, x, scales: [1, 1, 1, 2], ["mode": .string("linear")])
        }
        XCTAssertEqual(try run(linear, [1, 2], backend: .reference).0.scalars, [1, 1.25, 1.75, 2])
        // align_corners linear 2 → 3: 1, 1.5, 2.
        let corners = try graph([1, 1, 1, 2]) { b, x in
            try resize(&b, x, scales: [1, 1, 1, 1.5], ["mode": .string("linear"), "coordinate_transformation_mode": .string("align_corners")])
        }
        XCTAssertEqual(try run(corners, [1, 2]).0.scalars, [1, 1.5, 2])
        // asymmetric round_prefer_ceil ×2 of [1, 2, 3]: coordinates 0, 0.5, 1, 1.5, 2, 2.5 → 0, 1, 1, 2, 2, 2.
        let ceil = try graph([1, 1, 1, 3]) { b, x in
            try resize(&b, x, scales: [1, 1, 1, 2], ["coordinate_transformation_mode": .string("asymmetric"),
                                                     "nearest_mode": .string("round_prefer_ceil")])
        }
        XCTAssertEqual(try run(ceil, [1, 2, 3]).0.scalars, [1, 2, 2, 3, 3, 3])
    }

    func testOneDNNResamplingOnlyWhereItMatchesONNX() throws {
        let cases: [(scales: [Float], attributes: [String: Attribute], oneDNN: Bool)] = [
            ([1, 1, 2, 2], ["mode": .string("nearest")], true),
            ([1, 1, 3, 2], ["mode": .string("nearest"), "coordinate_transformation_mode": .string("asymmetric"),
                            "nearest_mode": .string("floor")], true),
            ([1, 1, 2, 2], ["mode": .string("nearest"), "coordinate_transformation_mode": .string("asymmetric")], false),
            ([1, 1, 2, 2], ["mode": .string("nearest"), "nearest_mode": .string("floor")], false),
            ([1, 1, 0.5, 0.5], ["mode": .string("nearest")], false),
            ([1, 1, 1.5, 2], ["mode": .string("nearest")], false),
            ([1, 1, 4, 4], ["mode": .string("linear"), "coordinate_transformation_mode": .string("pytorch_half_pixel")], true),
            ([1, 1, 0.5, 2], ["mode": .string("linear")], true),
            ([1, 1, 1.7, 2], ["mode": .string("linear")], false),  // 6 → 10 rows, but 10/6 is not the scale 1.7
            ([1, 1, 2, 2], ["mode": .string("linear"), "coordinate_transformation_mode": .string("align_corners")], false),
        ]
        for (scales, attributes, oneDNN) in cases {
            let g = try graph([2, 16, 6, 7], preConv: true) { b, x in try resize(&b, x, scales: scales, attributes) }
            let program = try Program(lowering: g)
            let plan = try Plan.compile(program, options: CompileOptions(threads: 1))
            XCTAssertEqual(primitives(plan).contains("resampling"), oneDNN, "\(scales) \(attributes): \(primitives(plan))")
            _ = try checkAgainstReference(g, "\(scales) \(attributes)")
        }
    }

    func testConvTransposeByHandAndOnDeconvolution() throws {
        // [1, 2] scattered through the kernel [1, 1] (stride 1): [1, 3, 2]; stride 2: [1, 1, 2, 2].
        for (strides, expected) in [([1, 1], [Float(1), 3, 2]), ([1, 2], [1, 1, 2, 2])] {
            let g = graph([1, 1, 1, 2]) { b, x in
                let w = b.constant(Tensor(shape: [1, 1, 1, 2], repeating: 1), prefix: "w")
                return b.node("ConvTranspose", [x, w], attributes: ["strides": .ints(strides)])[0]
            }
            for backend in [Backend.onednn, .reference] {
                XCTAssertEqual(try run(g, [1, 2], backend: backend).0.scalars, expected, "strides \(strides) \(backend)")
            }
        }
        let variants: [[String: Attribute]] = [
            ["strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "output_padding": .ints([1, 1])],
            ["strides": .ints([2, 2]), "group": .int(2)],
            ["strides": .ints([2, 1]), "dilations": .ints([2, 2]), "auto_pad": .string("SAME_UPPER")],
            ["strides": .ints([2, 2]), "output_shape": .ints([12, 10])],
        ]
        for attributes in variants {
            let g = graph([2, 8, 6, 5], preConv: true) { b, x in
                let groups: Int
                if case .int(let v)? = attributes["group"] { groups = v } else { groups = 1 }
                let wTensor = b.randomTensor([8, 6 / groups, 3, 3], fanIn: 72)
                let biasTensor = b.randomTensor([6], fanIn: 8)
                let w = b.constant(wTensor, prefix: "w")
                let bias = b.constant(biasTensor, prefix: "bias")
                return b.node("ConvTranspose", [x, w, bias], attributes: attributes)[0]
            }
            let plan = try Plan.compile(try Program(lowering: g), options: CompileOptions(threads: 1))
            XCTAssertTrue(primitives(plan).contains("deconvolution"), "\(attributes): \(primitives(plan))")
            _ = try checkAgainstReference(g, "\(attributes)")
        }
    }
}

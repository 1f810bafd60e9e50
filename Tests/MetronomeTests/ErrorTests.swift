import XCTest
import Metronome
import MetronomeModels

/// Errors are descriptive: they name the offending node (and operator, attribute, shapes).
final class ErrorTests: XCTestCase {

    /// Asserts `body` throws and that the error's description contains every fragment.
    func assertError<T>(_ body: @autoclosure () throws -> T, mentions fragments: [String],
                        file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            let text = String(describing: error)
            for f in fragments {
                XCTAssertTrue(text.contains(f), "error '\(text)' does not mention '\(f)'", file: file, line: line)
            }
        }
    }

    /// A graph with one input `x` of `shape` and the given nodes; the last node's first output is the graph output.
    func graph(_ nodes: [Node], shape: [Int] = [1, 3, 8, 8], initializers: [String: Tensor] = [:],
               integers: [String: [Int]] = [:]) -> Graph {
        Graph(name: "errors", inputs: [ValueInfo(name: "x", shape: shape)], outputs: [nodes.last!.outputs[0]],
              nodes: nodes, initializers: initializers, integerConstants: integers)
    }

    func conv(_ name: String, _ input: String, weight: String = "w", attributes: [String: Attribute] = [:]) -> Node {
        Node(name: name, opType: "Conv", inputs: [input, weight], outputs: [name], attributes: attributes)
    }

    // MARK: Lowering

    func testConvolutionChannelMismatchNamesTheNode() {
        let g = graph([conv("stem_conv", "x")], initializers: ["w": Tensor(shape: [8, 4, 3, 3])])
        assertError(try Program(lowering: g), mentions: ["stem_conv", "Conv", "3 channels", "[8, 4, 3, 3]"])
        XCTAssertThrowsError(try Program(lowering: g)) { error in
            guard case MetronomeError.node(let node, let op, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(node, "stem_conv")
            XCTAssertEqual(op, "Conv")
        }
        // The same error surfaces through Plan.compile(graph).
        assertError(try Plan.compile(g, batch: 1), mentions: ["stem_conv"])
    }

    func testAddOfIncompatibleShapesNamesTheNode() {
        var b = GraphBuilder(name: "bad-add")
        let x = b.input("x", shape: [1, 3, 4, 4])
        let y = b.input("y", shape: [1, 5, 4, 4])
        b.output(b.node("Add", [x, y], name: "merge_branches")[0])
        assertError(try Program(lowering: b.graph), mentions: ["merge_branches", "Add", "[1, 3, 4, 4]", "[1, 5, 4, 4]"])
    }

    func testMissingInputNamesTheNodeAndTheValue() {
        let g = graph([Node(name: "lonely_relu", opType: "Relu", inputs: ["ghost"], outputs: ["y"])])
        assertError(try Program(lowering: g), mentions: ["lonely_relu", "ghost"])
        // A graph output nobody produces.
        var h = graph([Node(name: "r", opType: "Relu", inputs: ["x"], outputs: ["y"])])
        h.outputs = ["nowhere"]
        assertError(try Program(lowering: h), mentions: ["nowhere"])
    }

    func testUnsupportedAttributeNamesTheNodeAndTheAttribute() {
        let g = graph([conv("conv_with_foo", "x", attributes: ["foo": .int(1)])],
                      initializers: ["w": Tensor(shape: [4, 3, 3, 3])])
        assertError(try Program(lowering: g), mentions: ["conv_with_foo", "foo"])
        // A wrongly typed attribute.
        let h = graph([conv("conv_bad_group", "x", attributes: ["group": .string("two")])],
                      initializers: ["w": Tensor(shape: [4, 3, 3, 3])])
        assertError(try Program(lowering: h), mentions: ["conv_bad_group", "group"])
        // Unsupported attribute values.
        let p = graph([Node(name: "mirror_pad", opType: "Pad", inputs: ["x", "p"], outputs: ["y"],
                            attributes: ["mode": .string("mirror")])], integers: ["p": [0, 0, 1, 1, 0, 0, 1, 1]])
        assertError(try Program(lowering: p), mentions: ["mirror_pad", "mirror"])
        let cubic = graph([Node(name: "up_cubic", opType: "Resize", inputs: ["x", "", "s"], outputs: ["y"],
                                attributes: ["mode": .string("cubic"), "antialias": .int(1)])],
                          initializers: ["s": try! Tensor(shape: [4], scalars: [1, 1, 2, 2])])
        assertError(try Program(lowering: cubic), mentions: ["up_cubic", "antialiased cubic"])
        let crop = graph([Node(name: "crop", opType: "Resize", inputs: ["x", "", "s"], outputs: ["y"],
                               attributes: ["coordinate_transformation_mode": .string("tf_crop_and_resize")])],
                         initializers: ["s": try! Tensor(shape: [4], scalars: [1, 1, 2, 2])])
        assertError(try Program(lowering: crop), mentions: ["crop", "tf_crop_and_resize"])
        let corners = graph([Node(name: "corners", opType: "Resize", inputs: ["x", "", "s"], outputs: ["y"],
                                  attributes: ["coordinate_transformation_mode": .string("align_corners")])],
                            initializers: ["s": try! Tensor(shape: [4], scalars: [1, 1, 1.3, 1.3])])
        assertError(try Program(lowering: corners), mentions: ["corners", "align_corners", "sizes"])
        let a = graph([Node(name: "auto", opType: "MaxPool", inputs: ["x"], outputs: ["y"],
                            attributes: ["kernel_shape": .ints([2, 2]), "auto_pad": .string("SOMETIMES")])])
        assertError(try Program(lowering: a), mentions: ["auto", "SOMETIMES"])
        let d = graph([Node(name: "pool_4d", opType: "AveragePool", inputs: ["x"], outputs: ["y"],
                            attributes: ["kernel_shape": .ints([2, 2, 2, 2])])])
        assertError(try Program(lowering: d), mentions: ["pool_4d", "2-D and 3-D"])
    }

    func testUnsupportedOperatorNamesOperatorAndNode() {
        let g = graph([Node(name: "encoder_lstm", opType: "LSTM", inputs: ["x"], outputs: ["y"])])
        assertError(try Program(lowering: g), mentions: ["encoder_lstm", "LSTM", "Conv"])
        XCTAssertThrowsError(try Program(lowering: g)) { error in
            XCTAssertEqual(error as? MetronomeError,
                           .unsupportedOperator(node: "encoder_lstm", op: "LSTM", supported: Program.supportedOperators))
        }
    }

    func testShapeErrorsOfOtherOperators() {
        let ints: [String: [Int]] = ["bad_shape": [5, -1], "two_unknown": [-1, -1], "sizes": [1, 1], "pads": [1, 1]]
        let cases: [(Node, [String])] = [
            (Node(name: "reshape_bad", opType: "Reshape", inputs: ["x", "bad_shape"], outputs: ["y"]), ["reshape_bad", "[5, -1]"]),
            (Node(name: "reshape_two", opType: "Reshape", inputs: ["x", "two_unknown"], outputs: ["y"]), ["reshape_two"]),
            (Node(name: "split_bad", opType: "Split", inputs: ["x", "sizes"], outputs: ["a", "b"], attributes: ["axis": .int(1)]),
             ["split_bad", "[1, 1]"]),
            (Node(name: "pad_bad", opType: "Pad", inputs: ["x", "pads"], outputs: ["y"]), ["pad_bad", "rank 4"]),
            (Node(name: "pool_big", opType: "MaxPool", inputs: ["x"], outputs: ["y"],
                  attributes: ["kernel_shape": .ints([9, 9])]), ["pool_big", "[9, 9]"]),
            (Node(name: "pool_pads", opType: "MaxPool", inputs: ["x"], outputs: ["y"],
                  attributes: ["kernel_shape": .ints([2, 2]), "pads": .ints([2, 0, 0, 0])]), ["pool_pads", "pads"]),
            (Node(name: "softmax_axis", opType: "Softmax", inputs: ["x"], outputs: ["y"], attributes: ["axis": .int(4)]),
             ["softmax_axis", "axis 4"]),
            (Node(name: "transpose_perm", opType: "Transpose", inputs: ["x"], outputs: ["y"], attributes: ["perm": .ints([0, 1, 1, 2])]),
             ["transpose_perm", "perm"]),
            (Node(name: "concat_noaxis", opType: "Concat", inputs: ["x", "x"], outputs: ["y"]), ["concat_noaxis", "axis"]),
            (Node(name: "concat_bad", opType: "Concat", inputs: ["x", "x"], outputs: ["y"], attributes: ["axis": .int(7)]),
             ["concat_bad", "axis 7"]),
            (Node(name: "relu_two", opType: "Relu", inputs: ["x", "x"], outputs: ["y"]), ["relu_two", "1 inputs, got 2"]),
            (Node(name: "slice_twice", opType: "Slice", inputs: ["x"], outputs: ["y"],
                  attributes: ["starts": .ints([0, 0]), "ends": .ints([1, 1]), "axes": .ints([1, -3])]), ["slice_twice", "twice"]),
            (Node(name: "conv_kernel", opType: "Conv", inputs: ["x", "big"], outputs: ["y"]), ["conv_kernel", "kernel"]),
            (Node(name: "conv_bias", opType: "Conv", inputs: ["x", "w3", "bias7"], outputs: ["y"]), ["conv_bias", "bias"]),
            (Node(name: "conv_groups", opType: "Conv", inputs: ["x", "w3"], outputs: ["y"], attributes: ["group": .int(3)]),
             ["conv_groups", "group"]),
            (Node(name: "bn_shape", opType: "BatchNormalization", inputs: ["x", "s4", "s3", "s3", "s3"], outputs: ["y"]),
             ["bn_shape", "scale", "[4]"]),
            (Node(name: "clip_nan", opType: "Clip", inputs: ["x", "nan", "one"], outputs: ["y"]), ["clip_nan", "numbers"]),
            (Node(name: "reshape_computed", opType: "Reshape", inputs: ["x", "x"], outputs: ["y"]), ["reshape_computed", "constant"]),
            (Node(name: "two_outputs", opType: "Relu", inputs: ["x"], outputs: ["y", "z"]), ["two_outputs", "outputs"]),
        ]
        let initializers: [String: Tensor] = [
            "big": Tensor(shape: [2, 3, 11, 11]), "w3": Tensor(shape: [4, 3, 3, 3]), "bias7": Tensor(shape: [7]),
            "s4": Tensor(shape: [4]), "s3": Tensor(shape: [3]),
            "one": Tensor(shape: [], repeating: 1), "zero": Tensor(shape: [], repeating: 0), "nan": Tensor(shape: [], repeating: .nan),
        ]
        for (node, fragments) in cases {
            let g = Graph(name: "errors", inputs: [ValueInfo(name: "x", shape: [1, 3, 8, 8])], outputs: [node.outputs[0]],
                          nodes: [node], initializers: initializers, integerConstants: ints)
            assertError(try Program(lowering: g), mentions: fragments)
        }

        // Gemm and MatMul inner dimensions.
        var gemm = Graph(name: "g", inputs: [ValueInfo(name: "a", shape: [2, 3])], outputs: ["y"])
        gemm.initializers["b"] = Tensor(shape: [4, 5])
        gemm.nodes = [Node(name: "fc_mismatch", opType: "Gemm", inputs: ["a", "b"], outputs: ["y"])]
        assertError(try Program(lowering: gemm), mentions: ["fc_mismatch", "[2, 3]", "[4, 5]"])
        gemm.nodes = [Node(name: "mm_mismatch", opType: "MatMul", inputs: ["a", "b"], outputs: ["y"])]
        assertError(try Program(lowering: gemm), mentions: ["mm_mismatch"])

        // A value defined twice.
        let dup = Graph(name: "dup", inputs: [ValueInfo(name: "x", shape: [1, 3])], outputs: ["y"], nodes: [
            Node(name: "first", opType: "Relu", inputs: ["x"], outputs: ["y"]),
            Node(name: "second", opType: "Sigmoid", inputs: ["x"], outputs: ["y"]),
        ])
        assertError(try Program(lowering: dup), mentions: ["second", "'y'"])
    }

    func testLoweringArguments() {
        let g = Graph(name: "sym", inputs: [ValueInfo(name: "x", shape: [-1, 3, 4, 4])], outputs: ["y"],
                      nodes: [Node(name: "r", opType: "Relu", inputs: ["x"], outputs: ["y"])])
        assertError(try Program(lowering: g), mentions: ["'x'", "batch"])
        assertError(try Program(lowering: g, batch: 0), mentions: ["batch", "0"])
        assertError(try Program(lowering: g, inputShapes: ["x": [2, 4, 4, 4]]), mentions: ["'x'", "[2, 4, 4, 4]"])
        XCTAssertEqual(try Program(lowering: g, batch: 5).shape(0), [5, 3, 4, 4])
        XCTAssertEqual(try Program(lowering: g, inputShapes: ["x": [2, 3, 4, 4]]).shape(0), [2, 3, 4, 4])
        let none = Graph(name: "empty", inputs: [ValueInfo(name: "x", shape: [1])])
        assertError(try Program(lowering: none), mentions: ["empty", "no outputs"])
        assertError(try Tensor(shape: [2, 3], scalars: [1, 2, 3]), mentions: ["[2, 3]", "6"])
        assertError(try Zoo.resNet(depth: 19), mentions: ["19"])
        assertError(try Plan.compile(Program(lowering: g, batch: 1), options: CompileOptions(threads: 0)), mentions: ["threads"])
    }

    // MARK: Running

    func program() throws -> Program {
        var b = GraphBuilder(name: "small", seed: 1)
        let x = b.input("image", shape: [-1, 3, 8, 8])
        b.output(b.relu(b.conv(x, in: 3, out: 4, kernel: 3)))
        return try Program(lowering: b.graph, batch: 2)
    }

    func testWrongInputShapeIsReportedByExecutorAndReferenceRunner() throws {
        let p = try program()
        let plan = try Plan.compile(p)
        let executor = try Executor(plan: plan)
        let wrong = Tensor(shape: [1, 3, 8, 8])
        assertError(try executor.run([wrong]), mentions: ["image", "[1, 3, 8, 8]", "[2, 3, 8, 8]"])
        XCTAssertThrowsError(try executor.run([wrong])) { error in
            XCTAssertEqual(error as? MetronomeError, .inputShape(name: "image", expected: [2, 3, 8, 8], actual: [1, 3, 8, 8]))
        }
        assertError(try ReferenceRunner(program: p).run([wrong]), mentions: ["image", "[1, 3, 8, 8]", "[2, 3, 8, 8]"])
        // Wrong number of inputs.
        let right = Tensor(shape: [2, 3, 8, 8])
        assertError(try executor.run([right, right]), mentions: ["1 inputs", "2"])
        assertError(try executor.run([]), mentions: ["1 inputs"])
        assertError(try ReferenceRunner(program: p).run([]), mentions: ["1 inputs"])
        // Same element count, different shape.
        assertError(try executor.run([Tensor(shape: [2, 3, 4, 16])]), mentions: ["image"])
        // The executor still works after rejecting bad inputs.
        XCTAssertEqual(try executor.run([right])[0].shape, [2, 4, 8, 8])
    }

    func testInvalidCoreList() throws {
        let plan = try Plan.compile(try program())
        assertError(try Executor(plan: plan, cores: [999]), mentions: ["999"])
        assertError(try Executor(plan: plan, cores: [-1]), mentions: ["-1"])
        assertError(try Executor(plan: plan, cores: []), mentions: ["empty"])
        XCTAssertThrowsError(try Affinity.validate([0, 999]))
        XCTAssertNoThrow(try Affinity.validate(Affinity.availableCores()))
    }

    func testAffinityParse() throws {
        XCTAssertEqual(try Affinity.parse("0"), [0])
        XCTAssertEqual(try Affinity.parse("0,2-3"), [0, 2, 3])
        XCTAssertEqual(try Affinity.parse("4-4,1"), [4, 1])
        XCTAssertEqual(try Affinity.parse(" 1 , 3 - 5"), [1, 3, 4, 5])
        for bad in ["", "a", "3-1", "1-2-3", "-1", "0,,1", "1,", "x-2", "2-", "1.5"] {
            assertError(try Affinity.parse(bad), mentions: ["'\(bad)'"])
        }
    }
}

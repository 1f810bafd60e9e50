import Foundation
import Metronome
import MetronomeModels
@preconcurrency import MetronomeONNX
import CLITestHarness
import XCTest

/// Small ONNX models assembled in Swift with the generated protobuf types.
struct ModelMaker {
    var graph = Onnx_GraphProto()
    var opset: Int64 = 13

    mutating func input(_ name: String, _ dims: [Int64?]) {
        graph.input.append(valueInfo(name, dims))
    }

    mutating func output(_ name: String) { graph.output.append(valueInfo(name, nil)) }

    func valueInfo(_ name: String, _ dims: [Int64?]?) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        if let dims {
            var s = Onnx_TensorShapeProto()
            s.dim = dims.map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                if let d { dim.dimValue = d } else { dim.dimParam = "N" }
                return dim
            }
            t.shape = s
        }
        var type = Onnx_TypeProto()
        type.tensorType = t
        v.type = type
        return v
    }

    mutating func floats(_ name: String, _ shape: [Int64], _ values: [Float]) {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = shape
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        t.floatData = values
        graph.initializer.append(t)
    }

    mutating func ints(_ name: String, _ values: [Int64], scalar: Bool = false) {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = scalar ? [] : [Int64(values.count)]
        t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        t.int64Data = values
        graph.initializer.append(t)
    }

    mutating func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String? = nil,
                       ints: [String: [Int64]] = [:], int: [String: Int64] = [:]) {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = name ?? outputs[0]
        n.input = inputs
        n.output = outputs
        for (k, v) in ints.sorted(by: { $0.key < $1.key }) {
            var a = Onnx_AttributeProto(); a.name = k; a.type = .ints; a.ints = v; n.attribute.append(a)
        }
        for (k, v) in int.sorted(by: { $0.key < $1.key }) {
            var a = Onnx_AttributeProto(); a.name = k; a.type = .int; a.i = v; n.attribute.append(a)
        }
        graph.node.append(n)
    }

    func data() throws -> Data {
        var m = Onnx_ModelProto()
        m.irVersion = 8
        var o = Onnx_OperatorSetIdProto()
        o.version = opset
        m.opsetImport = [o]
        m.graph = graph
        return try m.serializedData()
    }
}

func execute(_ graph: Graph, _ input: Tensor, backend: Backend = .onednn) throws -> Tensor {
    let plan = try Plan.compile(graph, inputShapes: [graph.inputs[0].name: input.shape],
                                options: CompileOptions(threads: 1, backend: backend))
    return try Executor(plan: plan).run([input])[0]
}

final class ImportExportTests: XCTestCase {
    func randomInput(_ shape: [Int], seed: UInt64 = 3) -> Tensor {
        var g = SplitMix64(seed: seed)
        return Tensor(shape: shape, uniformIn: -1...1, generator: &g)
    }

    /// import → export → import keeps outputs, for zoo models of every family.
    func testRoundTripPreservesOutputs() throws {
        let graphs = [try Zoo.resNet(depth: 18, classes: 10, inputSize: 32), try Zoo.mobileNetV2(width: 0.5, classes: 10, inputSize: 32),
                      try Zoo.efficientNetLite0(classes: 10, inputSize: 64), try Zoo.vgg16(classes: 10, inputSize: 32)]
        for graph in graphs {
            let once = try ONNXImporter.parse(try ONNXExporter.serialize(graph), source: graph.name)
            let twice = try ONNXImporter.parse(try ONNXExporter.serialize(once), source: graph.name)
            XCTAssertEqual(once.inputs, graph.inputs, graph.name)
            XCTAssertEqual(twice, once, "\(graph.name): a second round trip changes the graph")
            let size = graph.inputs[0].shape[2]
            let x = randomInput([2, 3, size, size])
            let expected = try execute(graph, x)
            XCTAssertLessThanOrEqual(try execute(twice, x).relativeError(to: expected), 1e-6, graph.name)
        }
    }

    /// The Shape → Gather → Unsqueeze → Concat → Reshape flatten PyTorch emits for
    /// x.view(x.size(0), -1) folds at import time and keeps the batch dynamic.
    func testShapeSubgraphFoldsWithDynamicBatch() throws {
        var m = ModelMaker()
        m.input("x", [nil, 2, 4, 4])
        m.floats("w", [3, 2, 1, 1], [0.5, -1, 2, 0.25, 1, 1])
        m.node("Conv", ["x", "w"], ["c"])
        m.node("Shape", ["c"], ["s"])
        m.ints("zero", [0], scalar: true)
        m.node("Gather", ["s", "zero"], ["n"], int: ["axis": 0])
        m.ints("axes", [0])
        m.node("Unsqueeze", ["n", "axes"], ["n1"])
        m.ints("minus1", [-1])
        m.node("Concat", ["n1", "minus1"], ["target"], int: ["axis": 0])
        m.node("Reshape", ["c", "target"], ["y"])
        m.output("y")
        let graph = try ONNXImporter.parse(try m.data())
        XCTAssertEqual(graph.nodes.map(\.opType), ["Conv", "Reshape"])
        let reshape = graph.nodes[1]
        XCTAssertEqual(graph.integerConstants[reshape.inputs[1]], [0, -1])
        XCTAssertEqual(graph.inputs[0].shape, [-1, 2, 4, 4])
        for batch in [1, 3] {
            let x = randomInput([batch, 2, 4, 4], seed: UInt64(batch))
            let y = try execute(graph, x)
            XCTAssertEqual(y.shape, [batch, 48])
            // Channel 0 of the first image: 0.5·x₀ − 1·x₁.
            XCTAssertEqual(y.scalars[0], 0.5 * x.scalars[0] - x.scalars[16], accuracy: 1e-5)
        }
        // Exported and read back, the model still takes any batch.
        let back = try ONNXImporter.parse(try ONNXExporter.serialize(graph))
        XCTAssertEqual(try execute(back, randomInput([4, 2, 4, 4])).shape, [4, 48])
    }

    func testUnsupportedOperatorNamesNodeOperatorAndSupportedList() throws {
        var m = ModelMaker()
        m.input("x", [1, 4])
        m.node("Relu", ["x"], ["r"])
        m.node("Celu", ["r"], ["y"], name: "my_celu")
        m.output("y")
        XCTAssertThrowsError(try ONNXImporter.parse(try m.data())) { error in
            guard case MetronomeError.unsupportedOperator(let node, let op, let supported) = error else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(node, "my_celu")
            XCTAssertEqual(op, "Celu")
            XCTAssertTrue(supported.contains("Conv") && supported.contains("Reshape"))
            XCTAssertTrue("\(error)".contains("unsupported operator 'Celu'"))
        }
    }

    func testUnsupportedAttributeIsReportedAtImport() throws {
        var m = ModelMaker()
        m.input("x", [1, 2, 4, 4])
        m.floats("w", [1, 2, 1, 1], [1, 1])
        m.node("Conv", ["x", "w"], ["y"], name: "conv_with_extra", int: ["frobnicate": 1])
        m.output("y")
        XCTAssertThrowsError(try ONNXImporter.parse(try m.data())) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("conv_with_extra") && text.contains("Conv") && text.contains("frobnicate") && text.contains("kernel_shape"), text)
        }
    }

    func testOpsetOutsideTheSupportedRangeIsRefused() throws {
        var m = ModelMaker()
        m.opset = 30
        m.input("x", [1, 4])
        m.node("Relu", ["x"], ["y"])
        m.output("y")
        XCTAssertThrowsError(try ONNXImporter.parse(try m.data())) { XCTAssertTrue("\($0)".contains("opset 30"), "\($0)") }
    }

    /// Softmax before opset 13 flattens at `axis`; the importer rewrites it to keep that meaning.
    func testLegacySoftmaxSemantics() throws {
        var m = ModelMaker()
        m.opset = 11
        m.input("x", [nil, 2, 3])
        m.node("Softmax", ["x"], ["y"], int: ["axis": 1])
        m.output("y")
        let graph = try ONNXImporter.parse(try m.data())
        let x = randomInput([2, 2, 3])
        let y = try execute(graph, x)
        for b in 0..<2 {
            let row = Array(x.scalars[(b * 6)..<(b * 6 + 6)])
            let e = row.map { expf($0 - row.max()!) }
            for i in 0..<6 { XCTAssertEqual(y.scalars[b * 6 + i], e[i] / e.reduce(0, +), accuracy: 1e-6) }
        }
    }

    func testExportRefusesToOverwrite() throws {
        let dir = try Harness.temporaryDirectory("export")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.onnx")
        let graph = try Zoo.resNet(depth: 18, classes: 10, inputSize: 32)
        try ONNXExporter.write(graph, to: url)
        XCTAssertThrowsError(try ONNXExporter.write(graph, to: url)) { XCTAssertTrue("\($0)".contains("--force")) }
        XCTAssertNoThrow(try ONNXExporter.write(graph, to: url, overwrite: true))
    }

    /// Random truncations and corruptions of a real model file: always a MetronomeError, never a crash.
    func testFuzzTruncatedAndCorruptedModels() throws {
        let graph = try Zoo.mobileNetV2(width: 0.35, classes: 10, inputSize: 32)
        let bytes = [UInt8](try ONNXExporter.serialize(graph))
        var rng = SplitMix64(seed: 99)
        var refused = 0, accepted = 0
        func attempt(_ data: [UInt8]) {
            do {
                let g = try ONNXImporter.parse(Data(data), source: "fuzz")
                _ = try Program(lowering: g, batch: 1)
                accepted += 1
            } catch let e as MetronomeError {
                XCTAssertFalse(e.description.isEmpty)
                refused += 1
            } catch {
                XCTFail("not a MetronomeError: \(error)")
            }
        }
        for _ in 0..<300 { attempt(Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))) }
        for _ in 0..<300 {
            var d = bytes
            for _ in 0..<(1 + Int(rng.next() % 8)) {
                // Mostly the structure at the start (graph, nodes), sometimes anywhere.
                let limit = rng.next() % 2 == 0 ? min(d.count, 8192) : d.count
                d[Int(rng.next() % UInt64(limit))] = UInt8(truncatingIfNeeded: rng.next())
            }
            attempt(d)
        }
        XCTAssertGreaterThan(refused, 250)
        print("fuzz: \(refused) refused with an error, \(accepted) still valid")
    }
}

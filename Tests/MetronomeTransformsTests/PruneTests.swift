import Foundation
import XCTest
import Metronome
import MetronomeAnalysis
import MetronomeModels
import MetronomeONNX
import MetronomeTransforms

final class PruneTests: XCTestCase {
    /// One model of every zoo family, at small inputs where the family allows it.
    static func families() throws -> [(name: String, graph: Graph, input: [Int])] {
        try [
            ("resnet18", Zoo.resNet(depth: 18, inputSize: 64, seed: 1), [1, 3, 64, 64]),
            ("resnet50", Zoo.resNet(depth: 50, inputSize: 64, seed: 2), [1, 3, 64, 64]),
            ("mobilenet_v2", Zoo.mobileNetV2(inputSize: 64, seed: 3), [1, 3, 64, 64]),
            ("efficientnet-lite0", Zoo.efficientNetLite0(inputSize: 64, seed: 4), [1, 3, 64, 64]),
            ("vgg16", Zoo.vgg16(inputSize: 32, seed: 5), [1, 3, 32, 32]),
            ("resnet18-cifar10", SpecializedCNNs.cifarResNet18(), [1, 3, 32, 32]),
            ("game", SpecializedCNNs.gameConvN(SpecializedCNNs.gameTasks.last!), [1, 3, SpecializedCNNs.gameTasks.last!.height, SpecializedCNNs.gameTasks.last!.width]),
            ("noscope", SpecializedCNNs.noScope(SpecializedCNNs.noScopeTasks.last!), [1, 3, 50, 50]),
            ("s-mobilenet_v2", SlimmableZoo.family(named: "s-mobilenet_v2")!.model().base, [1, 3, 224, 224]),
            ("s-resnet50", SlimmableZoo.family(named: "s-resnet50")!.model().base, [1, 3, 224, 224]),
        ]
    }

    /// The original graph with the removed filters silenced: their weights and biases and the
    /// scale and shift of the batch norms that read them are zeroed, so each removed channel
    /// carries zeros everywhere (residual sums included). Its outputs must equal the pruned
    /// graph's if every consumer dropped exactly the matching input slices.
    static func masked(_ g: Graph, _ r: PruneResult) throws -> Graph {
        var m = g
        for group in r.groups {
            let removed = Set(0..<group.channels).subtracting(group.kept)
            guard !removed.isEmpty else { continue }
            for name in group.producers {
                let node = try XCTUnwrap(m.nodes.first { $0.name == name })
                let transB = node.attributes["transB"] == .int(1)
                zero(&m.initializers[node.inputs[1]]!, axis: node.opType == "Conv" || transB ? 0 : 1, removed)
                if node.inputs.count > 2, let b = m.initializers[node.inputs[2]] {
                    zero(&m.initializers[node.inputs[2]]!, axis: b.rank - 1, removed)
                }
                for bn in m.nodes where bn.opType == "BatchNormalization" && bn.inputs[0] == node.outputs[0] {
                    zero(&m.initializers[bn.inputs[1]]!, axis: 0, removed)
                    zero(&m.initializers[bn.inputs[2]]!, axis: 0, removed)
                }
            }
        }
        return m
    }

    static func zero(_ t: inout Tensor, axis: Int, _ channels: Set<Int>) {
        let outer = t.shape[..<axis].reduce(1, *), inner = t.shape[(axis + 1)...].reduce(1, *), n = t.shape[axis]
        for o in 0..<outer { for c in channels { for k in 0..<inner { t.scalars[(o * n + c) * inner + k] = 0 } } }
    }

    static func params(_ g: Graph) throws -> Int { try CostModel.analyze(g, plan: false).params }

    /// Every family prunes to a graph that runs, keeps its input and output shapes, removes
    /// channels, and computes what the original computes with the removed filters silenced.
    func testEveryZooFamilyPrunesConsistently() throws {
        for (name, g, shape) in try Self.families() {
            let r = try prune(g, amount: 0.5)
            XCTAssertEqual(r.graph.inputs.map(\.shape), g.inputs.map(\.shape), name)
            XCTAssertEqual(r.paramsBefore, try Self.params(g), "\(name): parameter model before")
            XCTAssertEqual(r.paramsAfter, try Self.params(r.graph), "\(name): parameter model after")
            XCTAssertLessThan(Support.weightShapes(r.graph).reduce(0) { $0 + $1.reduce(1, *) },
                              Support.weightShapes(g).reduce(0) { $0 + $1.reduce(1, *) }, name)
            for group in r.groups { XCTAssertGreaterThanOrEqual(group.kept.count, 2, "\(name) \(group.producers)") }
            let x = Support.randomInput(shape, seed: 11)
            let y = try Support.engine(r.graph, x)
            XCTAssertEqual(y.shape, try Support.engine(g, x).shape, name)
            assertClose(y, try Support.engine(Self.masked(g, r), x), name)
        }
    }

    /// Concatenated parts are pruned separately and the consumer keeps their kept slices at
    /// their offsets; the two convs of a residual add keep the same channels.
    func testConcatAndResidualKeepCoupledChannels() throws {
        let g = Support.concatResidualNet()
        let r = try prune(g, amount: 0.4, options: PruneOptions(mode: .random, seed: 5))
        let convs = g.nodes.filter { $0.opType == "Conv" }
        let groupOf = { (node: Node) in r.groups.first { $0.producers.contains(node.name) }! }
        XCTAssertEqual(groupOf(convs[2]).producers, [convs[2].name, convs[3].name], "residual pair is one group")
        let keptA = groupOf(convs[0]).kept, keptC = groupOf(convs[1]).kept, keptD = groupOf(convs[2]).kept
        XCTAssertTrue(keptA.count < 16 || keptC.count < 24 || keptD.count < 32)
        let wD = try XCTUnwrap(g.initializers[convs[2].inputs[1]]), sD = try XCTUnwrap(r.graph.initializers[convs[2].inputs[1]])
        let inputs = keptA + keptC.map { $0 + 16 }
        XCTAssertEqual(sD.shape, [keptD.count, inputs.count, 3, 3])
        for (o, src) in keptD.enumerated() {
            for (i, ch) in inputs.enumerated() {
                for k in 0..<9 { XCTAssertEqual(sD.scalars[(o * inputs.count + i) * 9 + k], wD.scalars[(src * 40 + ch) * 9 + k]) }
            }
        }
        XCTAssertEqual(r.graph.initializers[convs[3].inputs[1]]?.shape, [keptD.count, 3, 1, 1])
        let input = Support.randomInput([2, 3, 8, 8], seed: 5)
        assertClose(try Support.engine(r.graph, input), try Support.reference(Self.masked(g, r), input))
    }

    /// The pruned graph agrees with the reference interpreter (not only with the engine).
    func testPrunedGraphAgreesWithTheReference() throws {
        let g = try Zoo.mobileNetV2(inputSize: 64, seed: 3)
        let r = try prune(g, amount: 0.5, options: PruneOptions(mode: .random, seed: 4))
        let x = Support.randomInput([1, 3, 64, 64], seed: 2)
        assertClose(try Support.engine(r.graph, x), try Support.reference(r.graph, x))
    }

    func testAchievedFractionIsWithinOnePointForEveryMode() throws {
        let models = try [
            Zoo.resNet(depth: 18, inputSize: 64, seed: 1), Zoo.mobileNetV2(inputSize: 64, seed: 3),
            SpecializedCNNs.noScope(SpecializedCNNs.noScopeTasks[0]), SpecializedCNNs.gameConvN(SpecializedCNNs.gameTasks.last!),
        ]
        let modes: [PruneOptions] = [
            PruneOptions(mode: .l1), PruneOptions(mode: .random, seed: 3),
            PruneOptions(mode: .randomWeighted, skew: .late, seed: 3), PruneOptions(mode: .randomWeighted, skew: .early, seed: 3),
        ]
        for g in models {
            let before = try Self.params(g)
            for options in modes {
                for amount in [0.1, 0.5, 0.9] {
                    let r = try prune(g, amount: amount, options: options)
                    let achieved = 1 - Double(try Self.params(r.graph)) / Double(before)
                    XCTAssertEqual(achieved, amount, accuracy: 0.01, "\(g.name) \(options.mode) \(options.skew) at \(amount)")
                }
            }
        }
    }

    /// A single conv whose filters have hand-set scales: l1 keeps the largest-norm filters,
    /// and the kept weights are the original filters.
    func testL1KeepsTheLargestNormFilters() throws {
        var b = GraphBuilder(name: "tiny", seed: 3)
        let x = b.input("input", shape: [-1, 3, 6, 6])
        let c = b.relu(b.conv(x, in: 3, out: 8, kernel: 3, bias: true))
        b.output(b.linear(b.flatten(b.globalAveragePool(c)), in: 8, out: 4))
        var g = b.graph
        let conv = try XCTUnwrap(g.nodes.first { $0.opType == "Conv" })
        let scales: [Float] = [0.3, 2, 0.1, 5, 1, 0.05, 3, 0.7]
        for j in 0..<8 { for k in 0..<27 { g.initializers[conv.inputs[1]]!.scalars[j * 27 + k] *= scales[j] } }
        let w = try XCTUnwrap(g.initializers[conv.inputs[1]])
        let norms = (0..<8).map { j in (0..<27).reduce(Float(0)) { $0 + abs(w.scalars[j * 27 + $1]) } }
        let expectedKept = (0..<8).sorted { norms[$0] > norms[$1] }.prefix(4).sorted()
        // Parameters: conv 8·27 + 8, Gemm 4·8 + 4 = 260; each filter costs 27 + 1 + 4 = 32,
        // so four filters are 128 / 260 = 49.2%.
        XCTAssertEqual(try Self.params(g), 260)
        let r = try prune(g, amount: 0.49)
        XCTAssertEqual(r.groups.map(\.kept), [expectedKept])
        XCTAssertEqual(try Self.params(r.graph), 260 - 128)
        let pw = try XCTUnwrap(r.graph.initializers[conv.inputs[1]])
        XCTAssertEqual(pw.shape, [4, 3, 3, 3])
        for (i, j) in expectedKept.enumerated() {
            XCTAssertEqual(Array(pw.scalars[(i * 27)..<(i * 27 + 27)]), Array(w.scalars[(j * 27)..<(j * 27 + 27)]))
        }
        let input = Support.randomInput([2, 3, 6, 6], seed: 1)
        assertClose(try Support.engine(r.graph, input), try Support.reference(Self.masked(g, r), input))
    }

    func testSeededScoresAreDeterministic() throws {
        let g = try Zoo.resNet(depth: 18, inputSize: 64, seed: 1)
        for mode in [PruneMode.random, .randomWeighted] {
            let a = try prune(g, amount: 0.5, options: PruneOptions(mode: mode, seed: 7))
            let b = try prune(g, amount: 0.5, options: PruneOptions(mode: mode, seed: 7))
            let c = try prune(g, amount: 0.5, options: PruneOptions(mode: mode, seed: 8))
            XCTAssertEqual(a.groups, b.groups)
            XCTAssertEqual(a.graph, b.graph)
            XCTAssertNotEqual(a.groups.map(\.kept), c.groups.map(\.kept))
        }
    }

    /// `--skew late` takes a larger share of the removed channels from the later half of the
    /// groups than `--skew early` does.
    func testSkewMovesTheRemovalTowardEarlyOrLateLayers() throws {
        let g = try Zoo.mobileNetV2(inputSize: 64, seed: 3)
        func lateShare(_ skew: PruneSkew) throws -> Double {
            let r = try prune(g, amount: 0.5, options: PruneOptions(mode: .randomWeighted, skew: skew, seed: 1))
            let removed = r.groups.map { Double($0.channels - $0.kept.count) }
            return removed[(removed.count / 2)...].reduce(0, +) / removed.reduce(0, +)
        }
        XCTAssertGreaterThan(try lateShare(.late), try lateShare(.uniform))
        XCTAssertGreaterThan(try lateShare(.uniform), try lateShare(.early))
    }

    /// At amount 0 the exported ONNX file is byte for byte the original's export.
    func testZeroAmountIsTheOriginal() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("metronome-prune-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, g, _) in try Self.families() where ["resnet50", "mobilenet_v2", "noscope"].contains(name) {
            let r = try prune(g, amount: 0)
            XCTAssertEqual(r.graph, g, name)
            let a = dir.appendingPathComponent("a.onnx"), b = dir.appendingPathComponent("b.onnx")
            try ONNXExporter.write(g, to: a, overwrite: true)
            try ONNXExporter.write(r.graph, to: b, overwrite: true)
            XCTAssertEqual(try Data(contentsOf: a), try Data(contentsOf: b), name)
        }
    }

    func testPrunedExportsMatchONNXRuntime() throws {
        let cases = try [
            (prune(Zoo.resNet(depth: 18, inputSize: 64, seed: 2), amount: 0.5).graph, [1, 3, 64, 64]),
            (prune(Zoo.mobileNetV2(inputSize: 96, seed: 1), amount: 0.5, options: PruneOptions(mode: .random, seed: 1)).graph, [2, 3, 96, 96]),
            (prune(SpecializedCNNs.noScope(SpecializedCNNs.noScopeTasks.last!), amount: 0.9).graph, [2, 3, 50, 50]),
        ].enumerated().map { (i, c) in (graph: c.0, input: Support.randomInput(c.1, seed: UInt64(i))) }
        let ort = try Support.onnxRuntime(cases)
        for (c, y) in zip(cases, ort) {
            assertClose(try Support.engine(c.graph, c.input), y, c.graph.name)
        }
    }

    func testInvalidAmountsAreRejected() throws {
        let g = try SpecializedCNNs.noScope(SpecializedCNNs.noScopeTasks[0])
        XCTAssertThrowsError(try prune(g, amount: -0.1))
        XCTAssertThrowsError(try prune(g, amount: 1))
        XCTAssertThrowsError(try prune(g, amount: 0.5, options: PruneOptions(minimumChannels: 0)))
    }
}

import Foundation
import Metronome
import MetronomeIO
import MetronomeModels
import CLITestHarness
import XCTest

final class ZooTests: XCTestCase {
    /// Learnable parameters as torchvision's models report them (sum of p.numel()).
    func testParameterCountsMatchTheReferenceArchitectures() throws {
        let expected: [(Graph, Int)] = [
            (try Zoo.resNet(depth: 18), 11_689_512), (try Zoo.resNet(depth: 34), 21_797_672),
            (try Zoo.resNet(depth: 50), 25_557_032), (try Zoo.mobileNetV2(), 3_504_872),
            (try Zoo.mobileNetV2(width: 0.5), 1_968_680), (try Zoo.vgg16(), 138_357_544),
            (try Zoo.efficientNetLite0(), 4_652_008),
        ]
        for (graph, count) in expected {
            XCTAssertEqual(Zoo.learnableParameterCount(graph), count, graph.name)
        }
    }

    func testRandomWeightsAreSeededAndDeterministic() throws {
        for name in ["resnet18", "mobilenet_v2@0.5", "vgg16"] {
            let e = try Zoo.entry(named: name)
            let a = try e.build(seed: 7), b = try e.build(seed: 7), c = try e.build(seed: 8)
            XCTAssertEqual(a, b, name)
            XCTAssertNotEqual(a.initializers, c.initializers, name)
        }
        XCTAssertEqual(Set(Zoo.names).count, Zoo.names.count, "zoo names are unique")
    }

    /// Sampled architectures (`sampled-N`): deterministic, and between them they cover what the
    /// predictor's families need — input sizes, kernel sizes, depthwise and grouped
    /// convolutions, both poolings, flattened inner products, concatenations, transposes,
    /// broadcast element-wise gates, channel counts that are not
    /// multiples of 8, weight-heavy convolutions on small maps in networks whose weights lie
    /// on both sides of a last-level cache — within the MAC budget. Three of them run on
    /// oneDNN as the reference kernels compute them.
    func testSampledNetworksSpanTheKernelShapesAndRun() throws {
        var sizes = Set<Int>(), kernels = Set<Int>(), ops = Set<String>()
        var depthwise = 0, grouped = 0, oddChannels = 0, largeInnerProducts = 0
        var heavySmallMapNetworkBytes: [Int] = []
        for i in 0..<60 {  // the ones `make predictor` profiles
            let entry = try Zoo.entry(named: "sampled-\(i)")
            let graph = try entry.build()
            XCTAssertEqual(graph, try entry.build(), "sampled-\(i) is a pure function of its index")
            XCTAssertEqual(entry.inputShape, graph.inputs[0].shape)
            sizes.insert(graph.inputs[0].shape[3])
            let program = try Program(lowering: graph, batch: 1)
            let shapes = Dictionary(program.values.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
            var macs = 0, heavySmallMap = 0
            for node in graph.nodes {
                ops.insert(node.opType)
                guard let w = graph.initializers[node.inputs.count > 1 ? node.inputs[1] : ""] else { continue }
                let out = try XCTUnwrap(shapes[node.outputs[0]], node.name)
                if node.opType == "Conv" {
                    let cin = try XCTUnwrap(shapes[node.inputs[0]], node.name)[1], cout = w.shape[0], groups = cin / w.shape[1]
                    kernels.insert(w.shape[2])
                    if groups == cin && cin > 1 { depthwise += 1 } else if groups > 1 { grouped += 1 }
                    if cout % 8 != 0 { oddChannels += 1 }
                    if 4 * w.shape.reduce(1, *) >= 2 << 20 && out[3] <= 8 { heavySmallMap += 1 }
                    macs += out.reduce(1, *) * w.shape[1] * w.shape[2] * w.shape[3]
                } else if node.opType == "Gemm" {
                    if w.shape[1] > 4096 { largeInnerProducts += 1 }
                    macs += w.shape[0] * w.shape[1]
                }
            }
            XCTAssertLessThanOrEqual(macs, SampledNetworks.maxMACs, "sampled-\(i)")
            if heavySmallMap > 0 { heavySmallMapNetworkBytes.append(graph.initializers.values.reduce(0) { $0 + 4 * $1.shape.reduce(1, *) }) }
        }
        // Convolutions with ≥ 2 MiB of weights on ≤ 8×8 maps, in networks with under 30 MB
        // and over 60 MB of weights: both sides of this machine's cache edge.
        XCTAssertGreaterThanOrEqual(heavySmallMapNetworkBytes.count, 8)
        XCTAssertGreaterThanOrEqual(heavySmallMapNetworkBytes.filter { $0 < 30_000_000 }.count, 3, "\(heavySmallMapNetworkBytes)")
        XCTAssertGreaterThanOrEqual(heavySmallMapNetworkBytes.filter { $0 > 60_000_000 }.count, 3, "\(heavySmallMapNetworkBytes)")
        XCTAssertGreaterThanOrEqual(sizes.count, 8, "\(sizes.sorted())")
        XCTAssertEqual(kernels, [1, 3, 5, 7])
        XCTAssertTrue(ops.isSuperset(of: ["MaxPool", "AveragePool", "GlobalAveragePool", "Add", "Gemm", "Relu", "Clip",
                                          "Concat", "Reshape", "Transpose", "Sigmoid", "Mul"]), "\(ops)")
        XCTAssertGreaterThan(depthwise, 10)
        XCTAssertGreaterThan(grouped, 3)
        XCTAssertGreaterThan(oddChannels, 20)
        XCTAssertGreaterThan(largeInnerProducts, 2)
        XCTAssertThrowsError(try Zoo.entry(named: "sampled-01"))
        XCTAssertThrowsError(try Zoo.entry(named: "sampled-x")) { XCTAssertTrue("\($0)".contains("sampled-N"), "\($0)") }

        var g = SplitMix64(seed: 5)
        // sampled-1 has Inception blocks; sampled-54 channel shuffles, concatenations and
        // squeeze-and-excitation gates.
        for name in ["sampled-1", "sampled-8", "sampled-54"] {
            let graph = try Zoo.entry(named: name).build()
            let program = try Program(lowering: graph, batch: 2)
            let x = Tensor(shape: [2] + graph.inputs[0].shape.dropFirst(), uniformIn: -1...1, generator: &g)
            let expected = try ReferenceRunner(program: program).run([x])[0]
            let actual = try Executor(plan: try Plan.compile(program)).run([x])[0]
            XCTAssertLessThanOrEqual(actual.relativeError(to: expected), 1e-4, name)
        }
    }

    func testVGG16RunsAtASmallInputSize() throws {
        let graph = try Zoo.vgg16(classes: 10, inputSize: 32)
        let program = try Program(lowering: graph, batch: 1)
        var g = SplitMix64(seed: 2)
        let x = Tensor(shape: [1, 3, 32, 32], uniformIn: -1...1, generator: &g)
        let expected = try ReferenceRunner(program: program).run([x])[0]
        let actual = try Executor(plan: try Plan.compile(program)).run([x])[0]
        XCTAssertEqual(actual.shape, [1, 10])
        XCTAssertLessThanOrEqual(actual.relativeError(to: expected), 1e-4)
    }

    func testPretrainedEntrySaysHowToInstallMissingWeights() throws {
        let saved = ProcessInfo.processInfo.environment["METRONOME_CACHE"]
        let empty = try Harness.temporaryDirectory("cache")
        setenv("METRONOME_CACHE", empty.path, 1)
        defer {
            if let saved { setenv("METRONOME_CACHE", saved, 1) } else { unsetenv("METRONOME_CACHE") }
            try? FileManager.default.removeItem(at: empty)
        }
        XCTAssertThrowsError(try Zoo.entry(named: "efficientnet-lite0").build()) { error in
            XCTAssertTrue("\(error)".contains("make weights"), "\(error)")
            XCTAssertTrue("\(error)".contains(empty.path), "\(error)")
        }
    }
}

import XCTest
import Metronome
import MetronomeModels

/// Whole zoo networks at reduced input size: the compiled oneDNN plan (all passes) against
/// the reference interpreter on the *unoptimized* lowered program.
final class NetworkTests: XCTestCase {

    func check(_ graph: Graph, batch: Int = 1, threads: Int = 1, seed: UInt64 = 99,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let program = try Program(lowering: graph, batch: batch)
        let inputs = TestSupport.inputs(for: program, seed: seed)
        let expected = try TestSupport.reference(program, inputs)
        let plan = try Plan.compile(program, options: CompileOptions(threads: threads))
        XCTAssertGreaterThan(plan.oneDNNKernelCount, 0, file: file, line: line)
        let actual = try Executor(plan: plan).run(inputs)
        XCTAssertEqual(expected[0].shape, [batch, 1000], file: file, line: line)
        // Outputs must not be trivially small (a network that collapsed to zeros would pass anything).
        XCTAssertGreaterThan(expected[0].scalars.map(abs).max() ?? 0, 1e-3, file: file, line: line)
        assertClose(actual, expected, "\(graph.name) batch \(batch) threads \(threads)", file: file, line: line)
        XCTAssertTrue(TestSupport.conflictingPairs(plan).isEmpty, "\(graph.name): planned buffers conflict",
                      file: file, line: line)
        // Every sample of a batch is computed independently.
        if batch > 1 {
            let single = try Program(lowering: graph, batch: 1)
            let per = expected[0].count / batch
            for i in 0..<batch {
                let x = try Tensor(shape: single.shape(single.inputs[0]),
                                   scalars: Array(inputs[0].scalars[(i * inputs[0].count / batch)..<((i + 1) * inputs[0].count / batch)]))
                let y = try Executor(plan: Plan.compile(single)).run([x])[0]
                let slice = try Tensor(shape: y.shape, scalars: Array(actual[0].scalars[(i * per)..<((i + 1) * per)]))
                XCTAssertLessThanOrEqual(y.relativeError(to: slice), TestSupport.tolerance, "sample \(i)", file: file, line: line)
            }
        }
    }

    func testResNet18() throws {
        try check(Zoo.resNet(depth: 18, inputSize: 64))
    }

    func testResNet18TwoThreads() throws {
        try check(Zoo.resNet(depth: 18, inputSize: 64, seed: 1), threads: 2, seed: 5)
    }

    func testResNet50() throws {
        try check(Zoo.resNet(depth: 50, inputSize: 64))
    }

    func testMobileNetV2() throws {
        try check(Zoo.mobileNetV2(inputSize: 64))
    }

    /// One network at its real 224×224 resolution.
    func testMobileNetV2FullResolution() throws {
        try check(Zoo.mobileNetV2(seed: 11), seed: 13)
    }

    func testMobileNetV2BatchTwo() throws {
        try check(Zoo.mobileNetV2(inputSize: 64, seed: 3), batch: 2, seed: 7)
    }

    func testEfficientNetLite0() throws {
        try check(Zoo.efficientNetLite0(inputSize: 64))
    }

    /// The zoo builds the published architectures: parameter counts (without batch-norm running
    /// statistics, which torchvision does not count as parameters, and without the scalar ReLU6
    /// bounds) and convolution counts.
    func testZooArchitecturesMatchPublishedSizes() throws {
        let expected: [(Graph, Int, Int)] = [
            (try Zoo.resNet(depth: 18), 11_689_512, 20), (try Zoo.resNet(depth: 34), 21_797_672, 36),
            (try Zoo.resNet(depth: 50), 25_557_032, 53), (try Zoo.mobileNetV2(), 3_504_872, 52),
            (try Zoo.efficientNetLite0(), 4_652_008, 49),
        ]
        for (g, parameters, convs) in expected {
            let bnChannels = g.nodes.filter { $0.opType == "BatchNormalization" }
                .reduce(0) { $0 + (g.initializers[$1.inputs[1]]?.count ?? 0) }
            let clipBounds = Set(g.nodes.filter { $0.opType == "Clip" }.flatMap { $0.inputs.dropFirst() })
                .reduce(0) { $0 + (g.initializers[$1]?.count ?? 0) }
            XCTAssertEqual(g.parameterCount - 2 * bnChannels - clipBounds, parameters, g.name)
            XCTAssertEqual(g.nodes.filter { $0.opType == "Conv" }.count, convs, g.name)
        }
        XCTAssertEqual(Zoo.makeDivisible(32 * 0.75), 24)
        XCTAssertEqual(Zoo.makeDivisible(16 * 0.35), 8)
        XCTAssertEqual(Zoo.makeDivisible(96 * 0.35), 32)
    }

    func testMobileNetV2HalfWidth() throws {
        let g = try Zoo.mobileNetV2(width: 0.5, inputSize: 64)
        XCTAssertEqual(g.name, "mobilenet_v2_0.5")
        try check(g)
    }

    /// The zoo registry lists the core networks and builds them with the advertised input shape.
    func testZooEntries() throws {
        for name in ["resnet18", "resnet34", "resnet50", "mobilenet_v2", "efficientnet-lite0"] {
            XCTAssertTrue(Zoo.names.contains(name), name)
        }
        for name in ["resnet18", "mobilenet_v2"] {
            let entry = try Zoo.entry(named: name)
            let g = try entry.build()
            XCTAssertEqual(g.inputs.map(\.shape), [entry.inputShape], entry.name)
            let p = try Program(lowering: g, batch: 1)
            XCTAssertEqual(p.shape(p.outputs[0]), [1, entry.classes], entry.name)
        }
        XCTAssertThrowsError(try Zoo.entry(named: "no-such-model")) { error in
            XCTAssertTrue(String(describing: error).contains("no-such-model"))
        }
        // Seeds are deterministic: same seed, same weights; another seed, other weights.
        XCTAssertEqual(try Zoo.mobileNetV2(inputSize: 32, seed: 4), try Zoo.mobileNetV2(inputSize: 32, seed: 4))
        XCTAssertNotEqual(try Zoo.mobileNetV2(inputSize: 32, seed: 4), try Zoo.mobileNetV2(inputSize: 32, seed: 5))
    }
}

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

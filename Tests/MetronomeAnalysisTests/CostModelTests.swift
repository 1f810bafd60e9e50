import Foundation
import XCTest
import Metronome
import MetronomeAnalysis
import MetronomeModels
import MetronomeTransforms

final class CostModelTests: XCTestCase {
    private func report(_ name: String, batch: Int = 1, plan: Bool = false) throws -> CostReport {
        try CostModel.analyze(Zoo.entry(named: name).build(), batch: batch, plan: plan)
    }

    // Published figures at 224×224, batch 1 (torchvision / the papers' tables).
    func testResNet18MatchesPublishedFigures() throws {
        let r = try report("resnet18")
        XCTAssertEqual(Double(r.macs) / 1e9, 1.814, accuracy: 0.0005)
        XCTAssertEqual(r.params, 11_689_512)
        XCTAssertEqual(r.flopsByCategory["conv_gemm"], 2 * r.macs)
    }

    func testResNet50MatchesPublishedFigures() throws {
        let r = try report("resnet50")
        XCTAssertEqual(Double(r.macs) / 1e9, 4.09, accuracy: 0.005)
        XCTAssertEqual(r.params, 25_557_032)
    }

    func testMobileNetV2MatchesPublishedFigures() throws {
        let r = try report("mobilenet_v2")
        XCTAssertEqual(Double(r.macs) / 1e9, 0.300, accuracy: 0.0015)
        XCTAssertEqual(r.params, 3_504_872)
    }

    func testEfficientNetLite0MatchesPublishedFigures() throws {
        let r = try report("efficientnet-lite0")
        XCTAssertGreaterThanOrEqual(Double(r.macs) / 1e9, 0.385)
        XCTAssertLessThanOrEqual(Double(r.macs) / 1e9, 0.400)
        XCTAssertEqual(Double(r.params) / 1e6, 4.65, accuracy: 0.005)
    }
}

/// The FoldedCNNs repository's own numbers (`config/model_map.json`: int(2 × thop MACs), where
/// thop counts conv MACs plus one per output for the bias, and linear MACs) and `ai.py` values.
final class FoldedCNNReferenceTests: XCTestCase {
    /// thop's count in our terms: 2 × (MACs + conv bias adds).
    private func thopOps(_ r: CostReport) -> Int {
        r.layers.reduce(0) { $0 + 2 * $1.macs + ($1.opType == "Conv" ? 2 * $1.biasFlops : 0) }
    }

    func testGameModelsMatchModelMap() throws {
        // `efficientnet-game_*` og_ops: the unscaled game models.
        let expected = ["game-lol-goldnumber-fraction": 16_778_672, "game-apex-squad-count": 7_171_808,
                        "game-sot-coin-count": 10_128_224, "game-sot-timer3": 14_558_784]
        for task in SpecializedCNNs.gameTasks {
            guard let ops = expected[task.name] else { continue }
            XCTAssertEqual(thopOps(try CostModel.analyze(SpecializedCNNs.gameConvN(task), plan: false)), ops, task.name)
        }
        // Folded game models: model_map's `game` entries count the final linear layer twice
        // (their og_ops exceed the identical efficientnet-game model by exactly 2 × its MACs).
        let folded: [String: [Int]] = [
            "game-lol-goldnumber-fraction": [16_784_480, 34_743_232, 53_668_372, 74_843_392],
            "game-lol-goldnumber-int": [16_890_080, 35_033_632, 54_183_172, 75_688_192],
            "game-lol-timer-minutes": [7_918_448, 16_389_814, 25_316_028, 35_298_400],
            "game-apex-squad-count": [7_176_032, 14_838_682, 22_905_844, 31_916_608],
            "game-sot-coin-count": [10_132_064, 20_960_424, 32_365_792, 45_110_464],
            "game-sot-timer3": [14_562_240, 29_692_248, 45_389_136, 62_661_504],
        ]
        for task in SpecializedCNNs.gameTasks {
            for f in 1...4 {
                let g = try fold(SpecializedCNNs.gameConvN(task), factor: f).graph
                let r = try CostModel.analyze(g, plan: false)
                let linear = r.layers.last { $0.opType == "Gemm" }?.macs ?? 0
                XCTAssertEqual(thopOps(r) + 2 * linear, folded[task.name]?[f - 1], "\(task.name) f=\(f)")
            }
        }
    }

    func testNoScopeFoldsMatchModelMap() throws {
        let expected: [String: [Int]] = [
            "noscope-coral": [16_400_512, 32_918_948, 51_471_402, 73_924_096],
            "noscope-night": [16_400_512, 32_918_948, 51_471_402, 73_924_096],
            "noscope-taipei": [196_160_128, 394_762_860, 597_713_160, 817_921_024],
            "noscope-roundabout": [120_589_952, 241_804_260, 365_155_560, 498_680_320],
        ]
        for task in SpecializedCNNs.noScopeTasks {
            for f in 1...4 {
                let g = try fold(SpecializedCNNs.noScope(task), factor: f).graph
                XCTAssertEqual(thopOps(try CostModel.analyze(g, plan: false)), expected[task.name]?[f - 1], "\(task.name) f=\(f)")
            }
        }
    }

    /// ai.py with B = 1024 and 2-byte elements gives ≈ 87, 127, 158, 188 for goldnumber-fraction.
    func testArithmeticIntensityMatchesAiPy() throws {
        let rows = try IntensityStudy.run(SpecializedCNNs.gameConvN(SpecializedCNNs.gameTasks[0]), batch: 1024,
                                          folds: [2, 3, 4], phis: [1], elementSize: 2)
        XCTAssertEqual(rows.map(\.variant), ["original", "fold 2", "fold 3", "fold 4", "compound phi=1"])
        for (row, expected) in zip(rows, [87.0, 127.0, 158.0, 188.0]) {
            XCTAssertEqual(row.convGemmArithmeticIntensity, expected, accuracy: 0.75, row.variant)
        }
        XCTAssertEqual(rows.map(\.inputs), [1024, 512, 341, 256, 1024])
        XCTAssertEqual(rows[4].inputShape, [1, 3, 19, 45])
        // Folding raises intensity under the all-layers byte model as well.
        XCTAssertTrue(zip(rows[0..<4], rows[1..<4]).allSatisfy { $0.arithmeticIntensity < $1.arithmeticIntensity })
    }
}

final class CountingRuleTests: XCTestCase {
    /// conv(3→8, 3×3, bias) → BN → ReLU → MaxPool 2 → Add(self) → GAP → Flatten → Gemm(8→4).
    private func tinyGraph() -> Graph {
        var b = GraphBuilder(name: "tiny", seed: 1)
        let x = b.input("input", shape: [-1, 3, 8, 8])
        var y = b.conv(x, in: 3, out: 8, kernel: 3, bias: true)
        y = b.relu(b.batchNorm(y, channels: 8))
        y = b.maxPool(y, kernel: 2, stride: 2, pad: 0)
        y = b.add(y, y)
        y = b.flatten(b.globalAveragePool(y))
        b.output(b.linear(y, in: 8, out: 4))
        return b.graph
    }

    func testEveryLayerFollowsTheWrittenRules() throws {
        let r = try CostModel.analyze(tinyGraph(), batch: 2, elementSize: 4)
        let byOp = Dictionary(uniqueKeysWithValues: r.layers.map { ($0.opType, $0) })
        let conv = try XCTUnwrap(byOp["Conv"])
        XCTAssertEqual(conv.macs, 2 * 8 * 8 * 8 * 3 * 9)
        XCTAssertEqual(conv.biasFlops, 2 * 8 * 8 * 8)
        XCTAssertEqual(conv.flops, 2 * conv.macs + conv.biasFlops)
        XCTAssertEqual(conv.params, 8 * 3 * 9 + 8)
        XCTAssertEqual(conv.inputBytes, 2 * 3 * 64 * 4)
        XCTAssertEqual(conv.weightBytes, (8 * 27 + 8) * 4)
        XCTAssertEqual(conv.outputBytes, 2 * 8 * 64 * 4)
        XCTAssertEqual(conv.arithmeticIntensity, Double(conv.flops) / Double(conv.inputBytes + conv.weightBytes + conv.outputBytes))
        let bn = try XCTUnwrap(byOp["BatchNormalization"])
        XCTAssertEqual(bn.flops, 2 * 2 * 8 * 64)
        XCTAssertEqual(bn.params, 16)           // scale and shift; mean and variance are statistics
        XCTAssertEqual(bn.weightElements, 32)
        XCTAssertEqual(byOp["Relu"]?.flops, 2 * 8 * 64)
        XCTAssertEqual(byOp["MaxPool"]?.flops, 3 * 2 * 8 * 16)
        XCTAssertEqual(byOp["Add"]?.flops, 2 * 8 * 16)
        XCTAssertEqual(byOp["GlobalAveragePool"]?.flops, 16 * 2 * 8)
        XCTAssertEqual(byOp["Flatten"]?.flops, 0)
        XCTAssertEqual(byOp["Flatten"]?.category, .dataMovement)
        let fc = try XCTUnwrap(byOp["Gemm"])
        XCTAssertEqual(fc.macs, 2 * 4 * 8)
        XCTAssertEqual(fc.flops, 2 * fc.macs + 2 * 4)
        XCTAssertEqual(r.macs, conv.macs + fc.macs)
        XCTAssertEqual(r.flops, r.layers.reduce(0) { $0 + $1.flops })
        XCTAssertEqual(r.flopsByCategory["conv_gemm"], 2 * r.macs)
        XCTAssertEqual(r.flopsByCategory["bias"], conv.biasFlops + fc.biasFlops)
        XCTAssertEqual(r.flopsByCategory.values.reduce(0, +), r.flops)
        XCTAssertEqual(r.params, conv.params + bn.params + fc.params)
        XCTAssertEqual(r.weightBytes, (conv.weightElements + bn.weightElements + fc.weightElements) * 4)
        // No reuse: the input and every computed value.
        let values = [3 * 64, 8 * 64, 8 * 64, 8 * 64, 8 * 16, 8 * 16, 8, 8, 4].reduce(0, +) * 2
        XCTAssertEqual(r.peakActivationBytes, values * 4)
        // Perfect reuse: at most conv input + output, or BN's input + output.
        XCTAssertEqual(r.peakLiveActivationBytes, 2 * (8 * 64 + 8 * 64) * 4)
        XCTAssertEqual(r.arithmeticIntensity, Double(r.flops) / Double(r.bytesMoved))
        let plannedArena = try XCTUnwrap(r.plannedArenaBytes)
        XCTAssertGreaterThan(plannedArena, 0)
        XCTAssertLessThanOrEqual(plannedArena, r.peakActivationBytes)
        // Element size scales every byte figure, nothing else.
        let half = try CostModel.analyze(tinyGraph(), batch: 2, elementSize: 2, plan: false)
        XCTAssertEqual(half.bytesMoved * 2, r.bytesMoved)
        XCTAssertEqual(half.flops, r.flops)
        XCTAssertEqual(half.arithmeticIntensity, 2 * r.arithmeticIntensity, accuracy: 1e-9)
    }

    func testBatchScalesActivationsNotWeights() throws {
        let one = try CostModel.analyze(tinyGraph(), batch: 1, plan: false)
        let four = try CostModel.analyze(tinyGraph(), batch: 4, plan: false)
        XCTAssertEqual(four.macs, 4 * one.macs)
        XCTAssertEqual(four.peakActivationBytes, 4 * one.peakActivationBytes)
        XCTAssertEqual(four.weightBytes, one.weightBytes)
        XCTAssertEqual(one.arithmeticIntensity(atBatch: 4), four.arithmeticIntensity, accuracy: 1e-9)
    }

    func testUnknownOperatorsAreAnError() {
        var g = tinyGraph()
        g.nodes.insert(Node(name: "mystery", opType: "GridSample", inputs: ["input"], outputs: ["m"]), at: 0)
        XCTAssertThrowsError(try CostModel.analyze(g, plan: false)) { error in
            guard case MetronomeError.unsupportedOperator(let node, let op, _)? = error as? MetronomeError else {
                return XCTFail("expected unsupportedOperator, got \(error)")
            }
            XCTAssertEqual(node, "mystery")
            XCTAssertEqual(op, "GridSample")
        }
    }

    func testJSONHasTheDocumentedKeys() throws {
        let data = try JSONEncoder().encode(CostModel.analyze(tinyGraph(), batch: 1))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in ["macs", "flops", "params", "weight_bytes", "peak_activation_bytes", "planned_arena_bytes",
                    "arithmetic_intensity", "layers", "flops_by_category"] {
            XCTAssertNotNil(object[key], key)
        }
        let layers = try XCTUnwrap(object["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.count, 8)
        XCTAssertEqual(layers[0]["op"] as? String, "Conv")
        XCTAssertNotNil(layers[0]["arithmetic_intensity"])
        let decoded = try JSONDecoder().decode(CostReport.self, from: data)
        XCTAssertEqual(decoded.macs, try CostModel.analyze(tinyGraph(), batch: 1, plan: false).macs)
    }

    func testInputSizeOverride() throws {
        let g = try CostModel.resizingInputs(Zoo.mobileNetV2(seed: 0), height: 160, width: 160)
        let r = try CostModel.analyze(g, plan: false)
        XCTAssertEqual(r.inputShapes["input"], [1, 3, 160, 160])
        XCTAssertLessThan(r.macs, 300_000_000 * 6 / 10)
        // A flatten + fully connected head fixes the input size: a clear error, not a count.
        XCTAssertThrowsError(try CostModel.analyze(
            CostModel.resizingInputs(SpecializedCNNs.noScope(SpecializedCNNs.noScopeTasks[0]), height: 40, width: 40), plan: false))
    }
}

final class SweepTests: XCTestCase {
    func testSweepRowsCSVAndChart() throws {
        let model = try SpecializedCNNs.gameConvN(SpecializedCNNs.gameTasks[3])
        let config = SweepConfiguration(batches: [9], folds: [1, 2, 4], trials: 2, threads: 1, runs: 1, warmup: 0)
        var seen = 0
        let rows = try ThroughputSweep.run(models: [("apex", model)], configuration: config) { _ in seen += 1 }
        XCTAssertEqual(seen, rows.count)
        XCTAssertEqual(rows.map(\.fold), [1, 2, 4, 1, 2, 4])
        XCTAssertEqual(rows.map(\.trial), [1, 1, 1, 2, 2, 2])
        XCTAssertEqual(rows.map(\.inputs), [9, 4, 2, 9, 4, 2])
        XCTAssertEqual(rows.map(\.images), [9, 8, 8, 9, 8, 8])
        XCTAssertEqual(rows.map(\.mode), ["Original", "Folded", "Folded", "Original", "Folded", "Folded"])
        XCTAssertTrue(rows.allSatisfy { $0.batchSize == 9 && $0.throughput > 0 && $0.throughput.isFinite })
        let perImage1 = try CostModel.analyze(model, plan: false).flopsPerImage
        for trial in [1, 2] {
            let t = rows.filter { $0.trial == trial }
            XCTAssertEqual(t[0].throughputNorm, 1)
            XCTAssertEqual(t[0].flopsPerSecond, t[0].throughput * perImage1, accuracy: t[0].flopsPerSecond * 1e-9)
            for r in t.dropFirst() {
                XCTAssertEqual(r.throughputNorm, r.throughput / t[0].throughput, accuracy: 1e-12)
                let perImage = try CostModel.analyze(fold(model, factor: r.fold).graph, plan: false).flopsPerImage / Double(r.fold)
                XCTAssertEqual(r.flopsNorm, r.throughputNorm * perImage / perImage1, accuracy: 1e-9)
            }
        }
        let csv = ThroughputSweep.csv(rows).split(separator: "\n").map(String.init)
        XCTAssertEqual(csv[0], "Model,Trial,Fold,Batch Size,Mode,Throughput,FLOPs/sec,TputNorm,FLOPNorm")
        XCTAssertEqual(csv.count, 7)
        XCTAssertTrue(csv[2].hasPrefix("apex,1,2,9,Folded,"))
        let svg = SweepChart.svg(rows)
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertTrue(svg.hasSuffix("</svg>\n"))
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 1)
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 6 + 3)
        XCTAssertThrowsError(try ThroughputSweep.run(models: [("apex", model)],
                                                     configuration: SweepConfiguration(batches: [3], folds: [4], trials: 1, threads: 1)))
    }
}

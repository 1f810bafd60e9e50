import XCTest
import Metronome
import MetronomeAnalysis
import MetronomeModels
import MetronomeTransforms

final class SlimTests: XCTestCase {
    func testMakeDivisibleFollowsTheMobileNetRule() {
        XCTAssertEqual(makeDivisible(11.2), 16)   // 8 would lose more than 10%
        XCTAssertEqual(makeDivisible(16), 16)
        XCTAssertEqual(makeDivisible(33.6), 32)
        XCTAssertEqual(makeDivisible(3), 8)
        XCTAssertEqual(slimmedChannels(35, width: 1), 35)          // width 1 never rounds
        XCTAssertEqual(slimmedChannels(64, width: 0.25), 16)
        XCTAssertEqual(slimmedChannels(12, width: 0.9), 12)        // capped at the full width
    }

    func testWidthOneIsTheOriginalBitForBit() throws {
        let g = try Zoo.mobileNetV2(inputSize: 96, seed: 3)
        let s = try slim(g, width: 1.0)
        XCTAssertEqual(s.nodes, g.nodes)
        XCTAssertEqual(s.initializers, g.initializers)
        let x = Support.randomInput([2, 3, 96, 96], seed: 1)
        XCTAssertEqual(try Support.engine(s, x).scalars, try Support.engine(g, x).scalars)
    }

    /// Every conv and the classifier keep make_divisible(C·w) of their channels; MACs follow.
    func testResNet18ChannelCountsAndMACs() throws {
        let g = try Zoo.resNet(depth: 18, seed: 1)
        let program = try Program(lowering: g, batch: 1)
        for w in [0.25, 0.5, 0.75] {
            let s = try slim(g, width: w)
            var expectedMACs = 0
            for (node, step) in zip(g.nodes, program.steps) {
                guard let weight = g.initializers[node.inputs.count > 1 ? node.inputs[1] : ""],
                      node.opType == "Conv" || node.opType == "Gemm" else { continue }
                let shape = weight.shape
                let isStem = step.inputs[0] == program.inputs[0]
                let isHead = node.opType == "Gemm"
                let m = isHead ? shape[0] : slimmedChannels(shape[0], width: w)
                let c = isStem ? shape[1] : slimmedChannels(shape[1], width: w)
                var expected = shape
                expected[0] = m
                expected[1] = c
                XCTAssertEqual(s.initializers[node.inputs[1]]?.shape, expected, "\(node.name) at width \(w)")
                let out = program.shape(step.outputs[0])
                expectedMACs += m * c * shape[2...].reduce(1, *) * out[2...].reduce(1, *)
            }
            let report = try CostModel.analyze(s, plan: false)
            XCTAssertEqual(report.macs, expectedMACs, "width \(w)")
        }
        // Interior convs scale by w², the stem (3 input channels kept) and classifier by w.
        let full = try CostModel.analyze(g, plan: false)
        let half = try CostModel.analyze(slim(g, width: 0.5), plan: false)
        XCTAssertGreaterThan(Double(half.macs) / Double(full.macs), 0.25)
        XCTAssertLessThan(Double(half.macs) / Double(full.macs), 0.30)
    }

    func testDepthwiseConvolutionsFollowTheirInput() throws {
        let g = try Zoo.mobileNetV2(inputSize: 64, seed: 2)
        let s = try slim(g, width: 0.35)
        let p = try Program(lowering: s, batch: 1)
        var depthwise = 0
        for (node, step) in zip(s.nodes, p.steps) where node.opType == "Conv" {
            guard case .int(let groups)? = node.attributes["group"], groups > 1 else { continue }
            depthwise += 1
            XCTAssertEqual(groups, p.shape(step.inputs[0])[1], node.name)
            XCTAssertEqual(groups, p.shape(step.outputs[0])[1], node.name)
            XCTAssertEqual(groups % 8, 0, "\(node.name) keeps a multiple of 8")
        }
        XCTAssertEqual(depthwise, 17)
        XCTAssertEqual(p.shape(p.outputs[0]), [1, 1000])
    }

    /// A concat's consumer keeps the kept slices of each part, and a residual add forces both
    /// operands onto the same channels.
    func testConcatAndResidualSlices() throws {
        let g = Support.concatResidualNet()
        let s = try slim(g, width: 0.5)
        let convs = g.nodes.filter { $0.opType == "Conv" }
        let wD = try XCTUnwrap(g.initializers[convs[2].inputs[1]]), sD = try XCTUnwrap(s.initializers[convs[2].inputs[1]])
        XCTAssertEqual(sD.shape, [16, 24, 3, 3])
        // Kept input channels of the concat: 8 of the first part, 16 of the second (offset 16).
        let kept = Array(0..<8) + Array(16..<32)
        for o in 0..<16 {
            for (i, src) in kept.enumerated() {
                for k in 0..<9 {
                    XCTAssertEqual(sD.scalars[(o * 24 + i) * 9 + k], wD.scalars[(o * 40 + src) * 9 + k])
                }
            }
        }
        XCTAssertEqual(s.initializers[convs[3].inputs[1]]?.shape, [16, 3, 1, 1])
        XCTAssertEqual(s.initializers[convs[1].inputs[2]]?.count, 16)  // bias of the second part
        let input = Support.randomInput([2, 3, 8, 8], seed: 5)
        assertClose(try Support.engine(s, input), try Support.reference(s, input))
    }

    func testNarrowWidthsRunAndAgreeWithTheReference() throws {
        let g = try Zoo.resNet(depth: 18, inputSize: 64, seed: 4)
        let s = try slim(g, width: 0.25)
        let x = Support.randomInput([1, 3, 64, 64], seed: 9)
        assertClose(try Support.engine(s, x), try Support.reference(s, x))
    }

    func testSlimmedGraphsMatchONNXRuntime() throws {
        let cases = try [
            (slim(Zoo.mobileNetV2(inputSize: 96, seed: 1), width: 0.5), [2, 3, 96, 96]),
            (slim(Zoo.resNet(depth: 18, inputSize: 64, seed: 2), width: 0.25), [1, 3, 64, 64]),
            (SlimmableZoo.family(named: "s-resnet50")!.model().instantiate(width: 0.25), [1, 3, 224, 224]),
        ].enumerated().map { (i, c) in (graph: c.0, input: Support.randomInput(c.1, seed: UInt64(i))) }
        let ort = try Support.onnxRuntime(cases)
        for (c, y) in zip(cases, ort) {
            assertClose(try Support.engine(c.graph, c.input), y, c.graph.name)
        }
    }

    func testInvalidWidthsAndUnknownNodesAreRejected() throws {
        let g = try SpecializedCNNs.noScope(SpecializedCNNs.noScopeTasks[0])
        XCTAssertThrowsError(try slim(g, width: 0))
        XCTAssertThrowsError(try slim(g, width: 1.5))
        XCTAssertThrowsError(try slim(g, width: 0.5, options: SlimOptions(fullWidthNodes: ["no-such-node"])))
    }

    func testFullWidthNodesKeepTheirChannels() throws {
        let family = try XCTUnwrap(SlimmableZoo.family(named: "s-mobilenet_v2"))
        let m = try family.model()
        let g = try m.instantiate(width: 0.35)
        let last = try XCTUnwrap(g.nodes.last { $0.opType == "Conv" })
        XCTAssertEqual(g.initializers[last.inputs[1]]?.shape[0], 1280)
        XCTAssertEqual(g.initializers[g.nodes.last!.inputs[1]]?.shape, [1000, 1280])
    }
}

final class SlimmableTests: XCTestCase {
    func testWidthsShareWeightsAndHavePrivateBatchNorms() throws {
        let family = try XCTUnwrap(SlimmableZoo.family(named: "s-mobilenet_v2"))
        XCTAssertEqual(family.widths, [0.35, 0.5, 0.75, 1.0])
        let m = try family.model(seed: 1)
        let full = try m.instantiate(width: 1.0)
        // The full-width instance is the base graph: same weights, same storage.
        for (name, t) in m.base.initializers {
            let a = t.scalars.withUnsafeBufferPointer { $0.baseAddress }
            let b = full.initializers[name]?.scalars.withUnsafeBufferPointer { $0.baseAddress }
            XCTAssertEqual(a, b, name)
        }
        let x = Support.randomInput([1, 3, 224, 224], seed: 2)
        XCTAssertEqual(try Support.engine(full, x).scalars, try Support.engine(m.base, x).scalars)
        // A narrower width: shared weight slices, its own batch-norm statistics.
        let narrow = try m.instantiate(width: 0.5)
        let plain = try slim(m.base, width: 0.5, options: m.options)
        let bn = Set(SlimmableModel.batchNormParameterNames(m.base))
        for (name, t) in narrow.initializers {
            if bn.contains(name) { XCTAssertNotEqual(t, plain.initializers[name], name) }
            else { XCTAssertEqual(t, plain.initializers[name], name) }
        }
        let memory = try m.memory
        let bnBytes = m.batchNormStatistics.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.byteCount } }
        XCTAssertEqual(memory.batchNormBytes, bnBytes)
        XCTAssertEqual(memory.sharedWeightBytes + bn.reduce(0) { $0 + m.base.initializers[$1]!.byteCount },
                       m.base.initializers.values.reduce(0) { $0 + $1.byteCount })
        XCTAssertLessThan(memory.totalBytes, memory.separateModelsBytes)
        XCTAssertThrowsError(try m.instantiate(width: 0.6))
        let y = try Support.engine(narrow, x)
        XCTAssertEqual(y.shape, [1, 1000])
        XCTAssertTrue(y.scalars.allSatisfy(\.isFinite))
    }

    func testBatchNormTablesMustMatchTheSlimmedShapes() throws {
        let g = try Zoo.resNet(depth: 18, inputSize: 64, seed: 1)
        let names = SlimmableModel.batchNormParameterNames(g)
        let full = Dictionary(uniqueKeysWithValues: names.map { ($0, g.initializers[$0]!) })
        // Full-width tables at width 0.5 have the wrong shapes.
        XCTAssertThrowsError(try SlimmableModel(name: "r18", base: g, widths: [0.5, 1.0], batchNormStatistics: [full, full]))
        XCTAssertNoThrow(try SlimmableModel(name: "r18", base: g, widths: [1.0], batchNormStatistics: [full]))
    }

    /// MACs of every width against the slimmable-networks MODEL_ZOO.md (its "MFLOPs" are MACs).
    func testFamiliesMatchThePublishedMACs() throws {
        let published: [String: [Double: Double]] = [
            "s-mobilenet_v2": [0.35: 59e6, 0.5: 97e6, 0.75: 209e6, 1.0: 301e6],
            "s-resnet50": [0.25: 278e6, 0.5: 1.1e9, 0.75: 2.3e9, 1.0: 4.1e9],
        ]
        for family in SlimmableZoo.families {
            let m = try family.model()
            for w in family.widths {
                let macs = Double(try CostModel.analyze(m.instantiate(width: w), plan: false).macs)
                let expected = try XCTUnwrap(published[family.name]?[w])
                // The table rounds to 2 significant digits above 1 G and to 1 M below.
                XCTAssertEqual(macs, expected, accuracy: expected >= 1e9 ? 0.05e9 : 0.5e6, "\(family.name) at \(w)")
            }
        }
    }

    func testZooEntriesForEveryWidth() throws {
        for name in ["s-mobilenet_v2", "s-mobilenet_v2@0.35", "s-resnet50@0.25"] {
            XCTAssertNoThrow(try Zoo.entry(named: name), name)
        }
        let r = try CostModel.analyze(Zoo.entry(named: "s-mobilenet_v2@0.35").build(), plan: false)
        XCTAssertEqual(r.params, try CostModel.analyze(SlimmableZoo.family(named: "s-mobilenet_v2")!.model()
            .instantiate(width: 0.35), plan: false).params)
    }
}

import Foundation
import XCTest
import Metronome
import MetronomeAnalysis
import MetronomeModels
import MetronomeONNX
import MetronomeTransforms

final class FoldTests: XCTestCase {
    func testFoldedWidthIsFloorOfRootFTimesWidth() {
        XCTAssertEqual(foldedChannels(32, factor: 1), 32)
        XCTAssertEqual(foldedChannels(32, factor: 2), 45)   // int(32·1.414…) = 45
        XCTAssertEqual(foldedChannels(32, factor: 3), 55)
        XCTAssertEqual(foldedChannels(32, factor: 4), 64)
        XCTAssertEqual(foldedChannels(8, factor: 2), 11)
        XCTAssertEqual(foldedChannels(128, factor: 3), 221)
    }

    /// The generic transform builds exactly the FoldedCNNs hand-written folded models.
    func testFoldMatchesTheHandWrittenFoldedModels() throws {
        for f in [2, 3, 4] {
            for task in SpecializedCNNs.gameTasks {
                let generic = try fold(SpecializedCNNs.gameConvN(task), factor: f)
                let reference = try SpecializedCNNs.gameConvN(task, fold: f)
                XCTAssertEqual(Support.weightShapes(generic.graph), Support.weightShapes(reference), "\(task.name) f=\(f)")
                XCTAssertEqual(generic.graph.inputs[0].shape, [-1, 3 * f, task.height, task.width])
            }
            for task in SpecializedCNNs.noScopeTasks {
                let generic = try fold(SpecializedCNNs.noScope(task), factor: f)
                XCTAssertEqual(Support.weightShapes(generic.graph), Support.weightShapes(try SpecializedCNNs.noScope(task, fold: f)),
                               "\(task.name) f=\(f)")
            }
        }
        let cifar = try fold(SpecializedCNNs.cifarResNet18(classes: 10), factor: 4)
        XCTAssertEqual(Support.weightShapes(cifar.graph), Support.weightShapes(try SpecializedCNNs.cifarResNet18(classes: 10, fold: 4)))
        XCTAssertEqual(cifar.outputChannels["fc_0"], 10)
    }

    /// Interior layers cost ⌊√f·M⌋·⌊√f·C⌋·k²·HW MACs, about f times the original, so MACs per
    /// image stay about constant; only the first conv and the classifier grow.
    func testMACsFollowTheRootFRule() throws {
        let g = try SpecializedCNNs.cifarResNet18(classes: 10)
        let original = try CostModel.analyze(g, plan: false)
        for f in [2, 3, 4] {
            let folded = try CostModel.analyze(fold(g, factor: f).graph, plan: false)
            XCTAssertEqual(folded.layers.count, original.layers.count)
            for (a, b) in zip(original.layers, folded.layers) where a.category == .convolution {
                let inA = a.inputShapes[0][1], outA = a.outputShapes[0][1]
                let isFirst = a.name == original.layers.first?.name, isLast = a.opType == "Gemm"
                let cin = isFirst ? inA * f : foldedChannels(inA, factor: f)
                let cout = isLast ? outA * f : foldedChannels(outA, factor: f)
                XCTAssertEqual(b.macs, a.macs / (inA * outA) * cin * cout, "\(a.name) f=\(f)")
                XCTAssertEqual(Array(b.outputShapes[0].dropFirst(2)), Array(a.outputShapes[0].dropFirst(2)), "spatial size of \(a.name)")
            }
            let perImage = Double(folded.macs) / Double(f) / Double(original.macs)
            XCTAssertGreaterThan(perImage, 0.95, "f=\(f)")
            XCTAssertLessThan(perImage, 1.05, "f=\(f)")
            // Activation bytes per image shrink by about 1/√f.
            let act = Double(folded.peakActivationBytes) / Double(f) / Double(original.peakActivationBytes)
            XCTAssertEqual(act, 1 / Double(f).squareRoot(), accuracy: 0.1, "f=\(f)")
        }
    }

    func testPackingPlacesImageJOfGroupGInChannelsJC() throws {
        let (n, c, h, w, f) = (6, 3, 2, 4, 3)
        var rng = SplitMix64(seed: 1)
        let images = Tensor(shape: [n, c, h, w], uniformIn: -1...1, generator: &rng)
        let packed = try FoldLayout.pack(images, factor: f)
        XCTAssertEqual(packed.shape, [n / f, f * c, h, w])
        for g in 0..<(n / f) { for j in 0..<f { for ch in 0..<c { for y in 0..<h { for x in 0..<w {
            let folded = ((g * f * c + j * c + ch) * h + y) * w + x
            let original = (((g * f + j) * c + ch) * h + y) * w + x
            XCTAssertEqual(packed.scalars[folded], images.scalars[original])
        } } } } }
        let separate = (0..<n).map { i in try! Tensor(shape: [c, h, w], scalars: Array(images.scalars[(i * c * h * w)..<((i + 1) * c * h * w)])) }
        XCTAssertEqual(try FoldLayout.pack(separate, factor: f), packed)
        // Outputs: [N/f, f·K] back to [N, K]; image j's logits are columns j·K ..< (j+1)·K.
        let logits = try Tensor(shape: [2, 3 * 5], scalars: (0..<30).map(Float.init))
        let unpacked = try FoldLayout.unpack(logits, factor: 3)
        XCTAssertEqual(unpacked.shape, [6, 5])
        XCTAssertEqual(Array(unpacked.scalars[20..<25]), [20, 21, 22, 23, 24])  // group 1, image 1
        XCTAssertEqual(try FoldLayout.unpack(FoldLayout.pack(images, factor: f), factor: f), images)
        XCTAssertThrowsError(try FoldLayout.pack(Tensor(shape: [5, 3, 2, 2]), factor: 2))
        XCTAssertThrowsError(try FoldLayout.unpack(Tensor(shape: [2, 5]), factor: 2))
    }

    /// Each image's logits depend on all f images (the first conv mixes them) and come back
    /// in the right slot after unpacking.
    func testFoldedNetworkRunsOnPackedImages() throws {
        let task = SpecializedCNNs.gameTasks[0]
        let folded = try fold(SpecializedCNNs.gameConvN(task), factor: 2, seed: 5)
        var rng = SplitMix64(seed: 3)
        let images = Tensor(shape: [4, 3, task.height, task.width], uniformIn: 0...1, generator: &rng)
        let packed = try folded.pack(images)
        let out = try Support.engine(folded.graph, packed)
        XCTAssertEqual(out.shape, [2, 2 * task.classes])
        assertClose(out, try Support.reference(folded.graph, packed))
        let perImage = try folded.unpack(out)
        XCTAssertEqual(perImage.shape, [4, task.classes])
        // Changing image 1 (group 0, slot 1) changes group 0's outputs, not group 1's.
        var changed = images
        for i in (1 * 3 * task.height * task.width)..<(2 * 3 * task.height * task.width) { changed.scalars[i] = 0.5 }
        let perImage2 = try folded.unpack(Support.engine(folded.graph, folded.pack(changed)))
        let k = task.classes
        XCTAssertNotEqual(Array(perImage.scalars[0..<(2 * k)]), Array(perImage2.scalars[0..<(2 * k)]))
        XCTAssertEqual(Array(perImage.scalars[(2 * k)...]), Array(perImage2.scalars[(2 * k)...]))
    }

    /// Fresh filters take the norm of the original filter they stand in for; biases and
    /// batch-norm statistics are tiled.
    func testFreshWeightsKeepTheOriginalScales() throws {
        let g = try SpecializedCNNs.cifarResNet18(classes: 10, seed: 2)
        let folded = try fold(g, factor: 2, seed: 1).graph
        func norms(_ t: Tensor) -> [Float] {
            let n = t.shape[0], per = t.count / n
            return (0..<n).map { j in (0..<per).reduce(Float(0)) { $0 + t.scalars[j * per + $1] * t.scalars[j * per + $1] }.squareRoot() }
        }
        for node in g.nodes where node.opType == "Conv" {
            let (w, f) = (try XCTUnwrap(g.initializers[node.inputs[1]]), try XCTUnwrap(folded.initializers[node.inputs[1]]))
            let (a, b) = (norms(w), norms(f))
            for j in b.indices { XCTAssertEqual(b[j], a[j % a.count], accuracy: a[j % a.count] * 1e-4, "\(node.name) filter \(j)") }
        }
        for node in g.nodes where node.opType == "BatchNormalization" {
            let (m, f) = (try XCTUnwrap(g.initializers[node.inputs[3]]), try XCTUnwrap(folded.initializers[node.inputs[3]]))
            XCTAssertEqual(f.count, foldedChannels(m.count, factor: 2))
            for j in 0..<f.count { XCTAssertEqual(f.scalars[j], m.scalars[j % m.count]) }
        }
    }

    /// A softmax over the logits normalizes each image's K values, not all f·K.
    func testOutputSoftmaxIsAppliedPerImage() throws {
        let task = SpecializedCNNs.noScopeTasks[0]
        var g = try SpecializedCNNs.noScope(task)
        let logits = g.outputs[0]
        let folded = try fold(g, factor: 3, seed: 4)
        g.nodes.append(Node(name: "prob", opType: "Softmax", inputs: [logits], outputs: ["prob"], attributes: ["axis": .int(1)]))
        g.outputs = ["prob"]
        let foldedSoftmax = try fold(g, factor: 3, seed: 4)
        let x = try folded.pack(Support.randomInput([6, 3, 50, 50], seed: 8))
        let z = try folded.unpack(Support.engine(folded.graph, x))
        let p = try foldedSoftmax.unpack(Support.engine(foldedSoftmax.graph, x))
        XCTAssertEqual(p.shape, [6, 2])
        for i in 0..<6 {
            let e = (0..<2).map { expf(z.scalars[i * 2 + $0] - max(z.scalars[i * 2], z.scalars[i * 2 + 1])) }
            for j in 0..<2 { XCTAssertEqual(p.scalars[i * 2 + j], e[j] / (e[0] + e[1]), accuracy: 1e-5) }
        }
        assertClose(try Support.engine(foldedSoftmax.graph, x), try Support.reference(foldedSoftmax.graph, x))
    }

    func testFactorOneKeepsTheNetwork() throws {
        let g = try SpecializedCNNs.noScope(SpecializedCNNs.noScopeTasks[2])
        let f1 = try fold(g, factor: 1)
        XCTAssertEqual(f1.graph.nodes, g.nodes)
        XCTAssertEqual(f1.graph.initializers, g.initializers)
    }

    /// ONNX graphs whose flatten is a Reshape with a constant [-1, F] shape fold too; the
    /// shape becomes [0, -1].
    func testImportedONNXWithReshapeFolds() throws {
        var b = GraphBuilder(name: "onnx-cnn", seed: 2)
        let x = b.input("input", shape: [-1, 3, 16, 16])
        var y = b.relu(b.batchNorm(b.conv(x, in: 3, out: 12, kernel: 3), channels: 12))
        y = b.maxPool(y, kernel: 2, stride: 2, pad: 0)
        let dw = b.relu(b.conv(y, in: 12, out: 12, kernel: 3, groups: 12))
        y = b.add(dw, y)
        y = b.node("Reshape", [y, b.integers([-1, 12 * 8 * 8])])[0]
        b.output(b.linear(y, in: 12 * 8 * 8, out: 5))
        let imported = try ONNXImporter.parse(ONNXExporter.serialize(b.graph))
        let folded = try fold(imported, factor: 4, seed: 1)
        XCTAssertEqual(folded.graph.inputs[0].shape, [-1, 12, 16, 16])
        let reshape = try XCTUnwrap(folded.graph.nodes.first { $0.opType == "Reshape" })
        XCTAssertEqual(folded.graph.integerConstants[reshape.inputs[1]], [0, -1])
        XCTAssertEqual(Support.weightShapes(folded.graph), [[24, 12, 3, 3], [24, 1, 3, 3], [20, 24 * 64]])
        let input = Support.randomInput([2, 12, 16, 16], seed: 3)
        assertClose(try Support.engine(folded.graph, input), try Support.reference(folded.graph, input))
    }

    func testFoldedGraphsMatchONNXRuntime() throws {
        let game = try fold(SpecializedCNNs.gameConvN(SpecializedCNNs.gameTasks[5]), factor: 3, seed: 1)
        let noscope = try fold(SpecializedCNNs.noScope(SpecializedCNNs.noScopeTasks[3]), factor: 2, seed: 2)
        let cifar = try fold(SpecializedCNNs.cifarResNet18(classes: 10), factor: 4, seed: 3)
        var cases: [(graph: Graph, input: Tensor)] = []
        for (i, (folded, images)) in [(game, 6), (noscope, 4), (cifar, 4)].enumerated() {
            var shape = folded.graph.inputs[0].shape
            shape[0] = images
            shape[1] /= folded.factor
            cases.append((folded.graph, try folded.pack(Support.randomInput(shape, seed: UInt64(i)))))
        }
        let ort = try Support.onnxRuntime(cases)
        for (c, y) in zip(cases, ort) {
            assertClose(try Support.engine(c.graph, c.input), y, c.graph.name)
        }
    }

    func testGraphsThatCannotFoldAreRejected() throws {
        // The input feeds a transpose, which depends on the exact channel count.
        var b = GraphBuilder(name: "t", seed: 1)
        let x = b.input("input", shape: [-1, 3, 4, 4])
        let t = b.node("Transpose", [x], attributes: ["perm": .ints([0, 2, 3, 1])])[0]
        b.output(t)
        XCTAssertThrowsError(try fold(b.graph, factor: 2))
        XCTAssertThrowsError(try fold(SpecializedCNNs.noScope(SpecializedCNNs.noScopeTasks[0]), factor: 0))
    }

    func testCompoundScalingMatchesTheReferenceBaseline() throws {
        let task = SpecializedCNNs.gameTasks[0]
        let scaled = try compoundScale(SpecializedCNNs.gameConvN(task), CompoundScaling(phi: 1))
        XCTAssertEqual(scaled.inputs[0].shape, [-1, 3, 19, 45])    // int(22/1.15) × int(52/1.15)
        let reference = try SpecializedCNNs.gameConvN(task, channelMultiplier: 1 / 1.1, inputHeight: 19, inputWidth: 45)
        XCTAssertEqual(Support.weightShapes(scaled), Support.weightShapes(reference))
        let r = try CostModel.analyze(scaled, plan: false)
        XCTAssertLessThan(r.macs, try CostModel.analyze(SpecializedCNNs.gameConvN(task), plan: false).macs)
    }
}

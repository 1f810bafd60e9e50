import XCTest
import Metronome
import MetronomeTransforms

/// Slimming through the resampling operators: channels pass through a spatial Resize and a
/// spatial Tile, an ungrouped ConvTranspose chooses its own output channels like a
/// convolution, while DepthToSpace fixes the channels of the convolution feeding it. The
/// slimmed graphs are run in ONNX Runtime (exported) and in the engine.
final class ResizeSlimTests: XCTestCase {
    func decoder(depthToSpace: Bool) throws -> Graph {
        var b = GraphBuilder(name: "decoder", seed: 4)
        let x = b.input("input", shape: [-1, 3, 8, 8])
        var y = b.relu(b.conv(x, in: 3, out: 16, kernel: 3, bias: true))
        let scales = b.constant(try Tensor(shape: [4], scalars: [1, 1, 2, 2]), prefix: "scales")
        y = b.node("Resize", [y, "", scales], attributes: ["mode": .string("linear")])[0]
        y = b.relu(b.conv(y, in: 16, out: 16, kernel: 3, bias: true))
        let wt = b.randomTensor([16, 16, 2, 2], fanIn: 64), bt = b.randomTensor([16], fanIn: 16)
        let w = b.constant(wt, prefix: "wt"), bias = b.constant(bt, prefix: "bt")
        y = b.node("ConvTranspose", [y, w, bias], attributes: ["strides": .ints([2, 2])])[0]
        y = b.node("Tile", [y, b.integers([1, 1, 1, 2])])[0]
        if depthToSpace {
            y = b.node("DepthToSpace", [y], attributes: ["blocksize": .int(2)])[0]
            b.output(b.conv(y, in: 4, out: 4, kernel: 1))
        } else {
            b.output(b.conv(y, in: 16, out: 4, kernel: 1))
        }
        return b.graph
    }

    func testChannelsFollowThroughResizeAndConvTranspose() throws {
        let g = try decoder(depthToSpace: false)
        let s = try slim(g, width: 0.5)
        let p = try Program(lowering: s, batch: 1)
        let shapes = p.steps.map { (step: Step) in (step.opType, p.shape(step.outputs[0])) }
        let resize = try XCTUnwrap(shapes.first { $0.0 == "Resize" })
        XCTAssertEqual(resize.1, [1, 8, 16, 16], "Resize passes the slimmed channels through")
        let deconv = try XCTUnwrap(s.nodes.first { $0.opType == "ConvTranspose" })
        XCTAssertEqual(s.initializers[deconv.inputs[1]]?.shape, [8, 8, 2, 2], "ConvTranspose weight [C, M, kH, kW]")
        XCTAssertEqual(s.initializers[deconv.inputs[2]]?.shape, [8])
        XCTAssertEqual(p.shape(p.outputs[0]), [1, 4, 32, 64])
        let x = Support.randomInput([2, 3, 8, 8], seed: 3)
        let ort = try Support.onnxRuntime([(s, x)])[0]
        assertClose(try Support.engine(s, x), ort, "slimmed decoder, engine against ONNX Runtime")
        assertClose(try Support.reference(s, x), ort, "slimmed decoder, reference against ONNX Runtime")
    }

    /// Sizes that list the channel axis name the channel count, so they pin it; sizes of the
    /// trailing axes only (the importer's form of PyTorch's `size=` export) do not.
    func testResizeSizesPinChannelsOnlyWhenTheyNameThem() throws {
        for (axes, sizes, slimmed) in [(nil, [1, 16, 16, 16], 16), ([-2, -1], [16, 16], 8)] as [([Int]?, [Int], Int)] {
            var b = GraphBuilder(name: "sizes", seed: 5)
            let x = b.input("input", shape: [1, 3, 8, 8])
            var y = b.relu(b.conv(x, in: 3, out: 16, kernel: 3, bias: true))
            let s = b.integers(sizes)
            y = b.node("Resize", [y, "", "", s], attributes: axes.map { ["axes": .ints($0)] } ?? [:])[0]
            b.output(b.conv(y, in: 16, out: 4, kernel: 1))
            let g = try slim(b.graph, width: 0.5)
            let conv = try XCTUnwrap(g.nodes.first { $0.opType == "Conv" })
            XCTAssertEqual(g.initializers[conv.inputs[1]]?.shape[0], slimmed, "sizes \(sizes) axes \(String(describing: axes))")
            let input = Support.randomInput([1, 3, 8, 8], seed: 6)
            assertClose(try Support.engine(g, input), try Support.reference(g, input))
        }
    }

    func testDepthToSpaceFixesTheChannelsFeedingIt() throws {
        let g = try decoder(depthToSpace: true)
        let s = try slim(g, width: 0.5)
        let deconv = try XCTUnwrap(s.nodes.first { $0.opType == "ConvTranspose" })
        XCTAssertEqual(s.initializers[deconv.inputs[1]]?.shape[1], 16, "ConvTranspose output feeds DepthToSpace: kept")
        let p = try Program(lowering: s, batch: 1)
        XCTAssertEqual(p.shape(p.outputs[0]), [1, 4, 64, 128])
        let x = Support.randomInput([1, 3, 8, 8], seed: 4)
        assertClose(try Support.engine(s, x), try Support.onnxRuntime([(s, x)])[0], "slimmed decoder with DepthToSpace")
    }
}

import XCTest
import Metronome
import MetronomeModels
import MetronomeTraining

/// Every backward pass against central finite differences: the loss is Σ y·r for a fixed
/// random r, the forward runs on the reference kernels in float32 with the loss summed in
/// double, and the finite difference uses h = 1e-2 (relative error is measured norm-wise,
/// ‖g − g_fd‖ / max(‖g‖, ‖g_fd‖), over up to 24 sampled elements per tensor).
final class GradientTests: XCTestCase {
    /// Runs `program` forward in training mode; returns every value.
    static func forward(_ program: Program, _ values: inout [[Float]], kernels: TrainingKernels, memories: inout [StepMemory]) throws {
        for (i, step) in program.steps.enumerated() {
            var outs = step.outputs.map { [Float](repeating: 0, count: program.values[$0].count) }
            let ins = step.inputs.map { values[$0] }
            try withPointers(ins) { inPtrs in
                try withMutablePointers(&outs) { outPtrs in
                    let b = StepBuffers(inputs: inPtrs, inputShapes: step.inputs.map(program.shape), outputs: outPtrs,
                                        outputShapes: step.outputs.map(program.shape))
                    try Autograd.forward(step, b, memory: &memories[i], kernels: kernels)
                }
            }
            for (o, v) in zip(step.outputs, outs) { values[o] = v }
        }
    }

    static func withPointers<R>(_ arrays: [[Float]], _ body: ([UnsafePointer<Float>]) throws -> R) rethrows -> R {
        var copies = arrays.map { a -> UnsafeMutablePointer<Float> in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(a.count, 1))
            p.initialize(from: a, count: a.count)
            return p
        }
        defer { copies.forEach { $0.deallocate() }; copies = [] }
        return try body(copies.map { UnsafePointer($0) })
    }

    static func withMutablePointers<R>(_ arrays: inout [[Float]], _ body: ([UnsafeMutablePointer<Float>]) throws -> R) rethrows -> R {
        let ptrs = arrays.map { a -> UnsafeMutablePointer<Float> in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(a.count, 1))
            p.initialize(from: a, count: a.count)
            return p
        }
        defer { ptrs.forEach { $0.deallocate() } }
        let r = try body(ptrs)
        for i in arrays.indices { arrays[i] = Array(UnsafeBufferPointer(start: ptrs[i], count: arrays[i].count)) }
        return r
    }

    /// Gradients of Σ y·r for every non-constant value and every constant.
    static func backward(_ program: Program, _ values: [[Float]], r: [Float], kernels: TrainingKernels,
                         memories: [StepMemory]) throws -> [[Float]] {
        var grads = program.values.map { [Float](repeating: 0, count: $0.count) }
        grads[program.outputs[0]] = r
        for (i, step) in program.steps.enumerated().reversed() {
            let dy = step.outputs.map { grads[$0] }
            var dx = step.inputs.map { grads[$0] }
            try withPointers(step.inputs.map { values[$0] }) { inPtrs in
                try withPointers(dy) { dyPtrs in
                    var outs = step.outputs.map { values[$0] }
                    try withMutablePointers(&outs) { outPtrs in
                        try withMutablePointers(&dx) { dxPtrs in
                            let b = StepBuffers(inputs: inPtrs, inputShapes: step.inputs.map(program.shape), outputs: outPtrs,
                                                outputShapes: step.outputs.map(program.shape))
                            try Autograd.backward(step, b, outputGradients: dyPtrs, inputGradients: dxPtrs.map { Optional($0) },
                                                  memory: memories[i], kernels: kernels)
                        }
                    }
                }
            }
            for (v, d) in zip(step.inputs, dx) { grads[v] = d }
        }
        return grads
    }

    static func loss(_ program: Program, _ values: [[Float]], r: [Float]) throws -> Double {
        var values = values
        var memories = program.steps.map { _ in StepMemory() }
        try forward(program, &values, kernels: .reference, memories: &memories)
        return zip(values[program.outputs[0]], r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// Checks the gradients of the input and of every constant (running statistics excepted).
    /// With `distinct`, the inputs are a shuffled ladder of values at least 4h apart and away
    /// from 0, so no finite difference crosses a kink of ReLU or a tie of max pooling.
    func check(_ graph: Graph, batch: Int? = 2, tolerance: Double = 1e-3, h: Float = 1e-2, seed: UInt64 = 1, distinct: Bool = false,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let program = try Program(lowering: graph, batch: batch)
        var rng = SplitMix64(seed: seed)
        var values = program.values.map { [Float](repeating: 0, count: $0.count) }
        for (v, t) in program.constants { values[v] = t.scalars }
        for v in program.inputs {
            let n = program.values[v].count
            if distinct {
                let ladder = (0..<n).map { k -> Float in
                    let m = Float(k / 2 + 1) * 4 * h + 0.05
                    return k % 2 == 0 ? m : -m
                }
                values[v] = ladder.shuffled(using: &rng)
            } else {
                values[v] = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            }
        }
        var forwardValues = values
        var memories = program.steps.map { _ in StepMemory() }
        try Self.forward(program, &forwardValues, kernels: .reference, memories: &memories)
        let r = (0..<program.values[program.outputs[0]].count).map { _ in Float.random(in: -1...1, using: &rng) }
        let grads = try Self.backward(program, forwardValues, r: r, kernels: .reference, memories: memories)
        var running = Set<ValueID>()
        for s in program.steps { if case .batchNorm = s.op { running.formUnion([s.inputs[3], s.inputs[4]]) } }
        // A bias right before a training-mode batch norm has a gradient of exactly zero (the
        // norm removes the batch mean): checked to be zero rather than by differences of noise.
        var zero = Set<ValueID>()
        let producers = Dictionary(program.steps.flatMap { s in s.outputs.map { ($0, s) } }, uniquingKeysWith: { a, _ in a })
        for s in program.steps {
            if case .batchNorm = s.op, let conv = producers[s.inputs[0]], case .conv = conv.op, conv.inputs.count > 2 { zero.insert(conv.inputs[2]) }
        }
        let checked = program.inputs + program.constants.keys.sorted().filter { !running.contains($0) }
        for v in zero {
            let worst = grads[v].map { abs($0) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(graph.name): '\(program.values[v].name)' feeds a batch norm; its gradient must be 0", file: file, line: line)
        }
        for v in checked where !zero.contains(v) {
            let n = program.values[v].count
            let sample = n <= 24 ? Array(0..<n) : (0..<24).map { _ in Int.random(in: 0..<n, using: &rng) }
            var diff = 0.0, a = 0.0, b = 0.0
            for i in sample {
                var plus = values, minus = values
                plus[v][i] += h
                minus[v][i] -= h
                let fd = (try Self.loss(program, plus, r: r) - Self.loss(program, minus, r: r)) / Double(2 * h)
                let g = Double(grads[v][i])
                diff += (g - fd) * (g - fd); a += g * g; b += fd * fd
            }
            // Gradients that are exactly zero in theory (a bias before a training-mode batch norm)
            // are compared absolutely.
            let rel = diff.squareRoot() / max(a.squareRoot(), b.squareRoot(), 1e-3)
            XCTAssertLessThanOrEqual(rel, tolerance, "\(graph.name): gradient of '\(program.values[v].name)' off by \(rel)", file: file, line: line)
        }
        // The fast kernels give the reference kernels' gradients.
        var fastValues = values
        var fastMemories = program.steps.map { _ in StepMemory() }
        try Self.forward(program, &fastValues, kernels: .fast, memories: &fastMemories)
        let fast = try Self.backward(program, fastValues, r: r, kernels: .fast, memories: fastMemories)
        for v in checked {
            let scale = grads[v].map { abs($0) }.max() ?? 0
            let worst = zip(grads[v], fast[v]).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-4 * max(scale, 1e-1), "\(graph.name): fast gradient of '\(program.values[v].name)'", file: file, line: line)
        }
    }

    func single(_ name: String, input: [Int], _ build: (inout GraphBuilder, String) -> String) -> Graph {
        var b = GraphBuilder(name: name, seed: 3)
        let x = b.input("x", shape: [-1] + input)
        b.output(build(&b, x))
        return b.graph
    }

    func testConvolutions() throws {
        try check(single("conv", input: [3, 7, 6]) { b, x in
            b.conv(x, in: 3, out: 4, kernel: [3, 3], stride: [2, 1], padding: [1, 0, 1, 2], bias: true)
        })
        try check(single("conv-dilated-grouped", input: [4, 8, 8]) { b, x in
            b.conv(x, in: 4, out: 6, kernel: [3, 3], stride: [1, 1], padding: [2, 2, 2, 2], dilation: [2, 2], groups: 2, bias: true)
        })
        try check(single("depthwise", input: [5, 6, 6]) { b, x in b.conv(x, in: 5, out: 5, kernel: 3, stride: 2, groups: 5) })
        try check(single("pointwise", input: [6, 4, 4]) { b, x in b.conv(x, in: 6, out: 3, kernel: 1, bias: true) })
        // Asymmetric pads, a non-square kernel, an output narrower than the input.
        try check(single("conv-asymmetric", input: [8, 6, 7]) { b, x in
            b.conv(x, in: 8, out: 5, kernel: [5, 3], stride: [1, 1], padding: [2, 0, 1, 1], bias: true)
        })
        // Sixteen channels and more: oneDNN's blocked (nChw16c) kernels, plain, grouped and
        // depthwise, where the cases above take its small-channel ones.
        try check(single("conv-blocked", input: [16, 5, 5]) { b, x in
            b.conv(x, in: 16, out: 32, kernel: 3, stride: 2, bias: true)
        })
        try check(single("conv-blocked-grouped", input: [32, 4, 4]) { b, x in
            b.conv(x, in: 32, out: 32, kernel: 3, groups: 2)
        })
        try check(single("depthwise-blocked", input: [16, 5, 5]) { b, x in
            b.conv(x, in: 16, out: 16, kernel: 3, groups: 16, bias: true)
        })
    }

    func testMatrixProducts() throws {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            var b = GraphBuilder(name: "gemm-\(ta)-\(tb)", seed: 5)
            let x = b.input("x", shape: ta ? [4, -1] : [-1, 4])
            let w = b.constant(b.randomTensor(tb ? [3, 4] : [4, 3], fanIn: 4))
            let c = b.constant(b.randomTensor([3], fanIn: 1))
            b.output(b.node("Gemm", [x, w, c], attributes: ["transA": .int(ta ? 1 : 0), "transB": .int(tb ? 1 : 0),
                                                            "alpha": .float(0.7), "beta": .float(1.3)])[0])
            var g = b.graph
            if ta { g.inputs[0].shape = [4, 2] }
            try check(g, batch: ta ? nil : 2)
        }
    }

    func testActivationsPoolingAndShapes() throws {
        for op in ["Relu", "Sigmoid", "Tanh", "Silu", "HardSwish"] {
            try check(single(op, input: [3, 4]) { b, x in b.node(op, [x])[0] }, distinct: true)
        }
        try check(single("leaky", input: [3, 4]) { b, x in b.node("LeakyRelu", [x], attributes: ["alpha": .float(0.1)])[0] }, distinct: true)
        try check(single("relu6", input: [3, 4]) { b, x in b.relu6(b.node("Mul", [x, b.constant(Tensor(shape: [1], repeating: 4))])[0]) },
                  h: 1e-3, distinct: true)
        try check(single("maxpool", input: [2, 7, 7]) { b, x in b.maxPool(x, kernel: 3, stride: 2, pad: 1) }, h: 1e-3, distinct: true)
        try check(single("avgpool", input: [2, 7, 7]) { b, x in
            b.node("AveragePool", [x], attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]),
                                                    "count_include_pad": .int(1)])[0]
        })
        try check(single("avgpool-exclude", input: [2, 6, 6]) { b, x in
            b.node("AveragePool", [x], attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])])[0]
        })
        try check(single("gap-flatten", input: [3, 5, 5]) { b, x in b.flatten(b.globalAveragePool(x)) })
        try check(single("softmax", input: [6]) { b, x in b.node("Softmax", [x], attributes: ["axis": .int(1)])[0] })
        try check(single("concat-split", input: [4, 3, 3]) { b, x in
            let parts = b.node("Split", [x], attributes: ["axis": .int(1), "split": .ints([1, 3])], outputs: 2)
            let y = b.node("Sigmoid", [parts[0]])[0]
            return b.node("Concat", [parts[1], y, x], attributes: ["axis": .int(1)])[0]
        })
    }

    func testBroadcastingBinaryOperators() throws {
        for op in ["Add", "Sub", "Mul", "Div"] {
            try check(single(op, input: [3, 4, 2]) { b, x in
                let c = b.constant(Tensor(shape: [3, 1, 1], uniformIn: 0.5...1.5, generator: &b.generator))
                let y = b.node(op, [x, c])[0]
                return b.node(op, [op == "Div" ? b.node("Sigmoid", [y])[0] : c, op == "Div" ? c : y])[0]
            })
        }
    }

    func testBatchNormInTrainingMode() throws {
        try check(single("bn", input: [3, 4, 4]) { b, x in b.batchNorm(x, channels: 3) }, batch: 3)
    }

    /// The whole-network gradient of small CNNs: LeNet-5 and a ResNet with batch norms in
    /// training mode, residual adds and global pooling. ReLU becomes tanh and max pooling
    /// average pooling (their own checks are above), so that no finite difference through
    /// hundreds of units crosses a kink.
    func testWholeNetworks() throws {
        func smooth(_ g: Graph) -> Graph {
            var g = g
            for i in g.nodes.indices {
                if g.nodes[i].opType == "Relu" { g.nodes[i].opType = "Tanh" }
                if g.nodes[i].opType == "MaxPool" { g.nodes[i].opType = "AveragePool" }
            }
            return g
        }
        try check(smooth(TrainableCNNs.lenet5(size: 16)), batch: 2)
        try check(smooth(TrainableCNNs.resnet(size: 8, width: 4)), batch: 3)
    }

    func testOperatorsWithoutBackwardAreNamed() throws {
        let scales = try Tensor(shape: [4], scalars: [1, 1, 2, 2])
        let g = single("resize", input: [2, 4, 4]) { b, x in
            b.node("Resize", [x, "", b.constant(scales)], attributes: ["mode": .string("nearest")])[0]
        }
        XCTAssertThrowsError(try Trainer(graph: g, batch: 1)) { error in
            XCTAssertTrue("\(error)".contains("has no backward pass"), "\(error)")
        }
    }
}

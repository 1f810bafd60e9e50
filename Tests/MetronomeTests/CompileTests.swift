import XCTest
import Metronome
import MetronomeModels

/// Optimization passes (each must preserve outputs) and the memory planner.
final class CompileTests: XCTestCase {

    // MARK: Helpers

    static func hasBatchNorm(_ p: Program) -> Bool {
        p.steps.contains { if case .batchNorm = $0.op { return true }; return false }
    }

    static func residualAdds(_ step: Step) -> [ValueID] {
        step.postOps.compactMap { if case .add(let v) = $0 { return v }; return nil }
    }

    static func eltwisePostOps(_ step: Step) -> [Eltwise] {
        step.postOps.compactMap { if case .eltwise(let f) = $0 { return f }; return nil }
    }

    /// Reference on the unoptimized program vs reference on the optimized one vs the compiled plan.
    @discardableResult
    func checkPassesPreserveOutputs(_ graph: Graph, batch: Int? = nil, seed: UInt64 = 3,
                                    file: StaticString = #filePath, line: UInt = #line) throws -> Program {
        let program = try Program(lowering: graph, batch: batch)
        let optimized = program.optimized()
        let inputs = TestSupport.inputs(for: program, seed: seed)
        let expected = try TestSupport.reference(program, inputs)
        assertClose(try TestSupport.reference(optimized, inputs), expected, "\(graph.name): reference on optimized",
                    file: file, line: line)
        for (name, options) in TestSupport.configurations {
            let plan = try Plan.compile(program, options: options)
            assertClose(try Executor(plan: plan).run(inputs), expected, "\(graph.name) [\(name)]", file: file, line: line)
            XCTAssertTrue(TestSupport.conflictingPairs(plan).isEmpty, "\(graph.name) [\(name)] buffers conflict",
                          file: file, line: line)
        }
        return optimized
    }

    // MARK: Batch-norm folding

    func testBatchNormFoldingPreservesResNet18() throws {
        let program = try Program(lowering: Zoo.resNet(depth: 18, inputSize: 32), batch: 1)
        XCTAssertTrue(Self.hasBatchNorm(program))
        var foldOnly = OptimizationOptions.none
        foldOnly.foldBatchNorm = true
        for (label, optimized) in [("fold only", program.optimized(foldOnly)), ("all passes", program.optimized())] {
            XCTAssertFalse(Self.hasBatchNorm(optimized), label)
            XCTAssertLessThan(optimized.steps.count, program.steps.count, label)
            let inputs = TestSupport.inputs(for: program, seed: 21)
            assertClose(try TestSupport.reference(optimized, inputs), try TestSupport.reference(program, inputs), label)
        }
        // 20 convolutions (stem, 16 in the blocks, 3 downsampling shortcuts), each followed by one batch norm.
        let convs = program.steps.filter { if case .conv = $0.op { return true }; return false }.count
        XCTAssertEqual(convs, 20)
        XCTAssertEqual(program.optimized(foldOnly).steps.count, program.steps.count - convs)
        XCTAssertLessThan(program.optimized(foldOnly).weightBytes, program.weightBytes)
    }

    func testBatchNormFoldingPreservesMobileNetV2() throws {
        let optimized = try checkPassesPreserveOutputs(Zoo.mobileNetV2(inputSize: 32), batch: 1)
        XCTAssertFalse(Self.hasBatchNorm(optimized))
    }

    /// Conv with its own bias, grouped conv, and a batch norm that cannot fold because the
    /// convolution's output has a second consumer.
    func testBatchNormFoldingVariants() throws {
        var b = GraphBuilder(name: "bn-variants", seed: 8)
        let x = b.input("x", shape: [2, 4, 7, 7])
        let c1 = b.batchNorm(b.conv(x, in: 4, out: 8, kernel: 3, bias: true), channels: 8)
        let c2 = b.batchNorm(b.conv(c1, in: 8, out: 8, kernel: 3, stride: 2, groups: 4), channels: 8, epsilon: 0.1)
        let shared = b.conv(c2, in: 8, out: 6, kernel: 1)
        b.output(b.batchNorm(shared, channels: 6))
        b.output(b.relu(shared))
        let optimized = try checkPassesPreserveOutputs(b.graph)
        let bns = optimized.steps.filter { if case .batchNorm = $0.op { return true }; return false }
        XCTAssertEqual(bns.count, 1, "only the batch norm after the shared convolution stays")
    }

    /// Batch norms no convolution can absorb stay as their own steps (run by the reference
    /// kernel) instead of crashing the folding pass, which used to read `inputs[1]` of
    /// one-input producers: BN on a graph input, after a Relu (pre-activation: BN → Relu →
    /// Conv), after MaxPool, after an Add, and after a Concat (one of whose inputs is a constant).
    func testBatchNormThatCannotFoldRunsAsItsOwnStep() throws {
        var b = GraphBuilder(name: "bn-unfoldable", seed: 9)
        let x = b.input("x", shape: [2, 3, 8, 8])
        let stem = b.conv(b.relu(b.batchNorm(x, channels: 3)), in: 3, out: 6, kernel: 3)
        let pre = b.conv(b.relu(b.batchNorm(b.relu(stem), channels: 6)), in: 6, out: 6, kernel: 3)
        let sum = b.batchNorm(b.add(stem, pre), channels: 6)
        let pooled = b.batchNorm(b.maxPool(sum, kernel: 2, stride: 2, pad: 0), channels: 6)
        let side = b.constant(Tensor(shape: [2, 2, 4, 4], uniformIn: -1...1, generator: &b.generator))
        let dense = b.node("Concat", [pooled, side, b.conv(pooled, in: 6, out: 3, kernel: 1)], attributes: ["axis": .int(1)])[0]
        b.output(b.conv(b.relu(b.batchNorm(dense, channels: 11)), in: 11, out: 4, kernel: 1))
        let optimized = try checkPassesPreserveOutputs(b.graph)
        let bns = optimized.steps.filter { if case .batchNorm = $0.op { return true }; return false }
        XCTAssertEqual(bns.count, 5, "none of the five batch norms follows a convolution it could fold into")
    }

    /// Gemm (transB = 1) followed by a 2-D batch norm folds into the Gemm, for the bias shapes
    /// that describe one value per output feature.
    func testBatchNormFoldingIntoGemm() throws {
        for bias in [nil, [5], [1, 5]] as [[Int]?] {
            var b = GraphBuilder(name: "gemm-bn", seed: 12)
            let x = b.input("x", shape: [3, 6])
            var inputs = [x, b.constant(b.randomTensor([5, 6], fanIn: 6))]
            if let bias { inputs.append(b.constant(Tensor(shape: bias, uniformIn: -1...1, generator: &b.generator))) }
            let fc = b.node("Gemm", inputs, attributes: ["transB": .int(1)])[0]
            b.output(b.batchNorm(fc, channels: 5))
            let optimized = try checkPassesPreserveOutputs(b.graph)
            XCTAssertFalse(Self.hasBatchNorm(optimized), "bias \(String(describing: bias))")
        }
    }

    /// BUG: folding a batch norm into a Gemm whose C input is a full [M, N] matrix keeps only
    /// C's first row (Passes.swift, `foldBatchNorms`, lines 87–96: C's M·N scalars are used as a
    /// per-feature bias, `bias[c]` is rewritten for c < N only, and the M·N array is stored in a
    /// constant declared as shape [N]); rows 1..<M then get row 0's bias. (With a broadcast C of
    /// shape [1] or [M, 1] and M < N the same loop indexes past the array and traps at line 92;
    /// not tested here because the trap would abort the whole test process.)
    func testBatchNormFoldingIntoGemmWithFullBiasMatrix() throws {
        var b = GraphBuilder(name: "gemm-full-c-bn", seed: 14)
        let x = b.input("x", shape: [3, 6])
        let w = b.constant(b.randomTensor([5, 6], fanIn: 6))
        let c = b.constant(Tensor(shape: [3, 5], uniformIn: -1...1, generator: &b.generator))
        let fc = b.node("Gemm", [x, w, c], attributes: ["transB": .int(1)])[0]
        b.output(b.batchNorm(fc, channels: 5))
        let program = try Program(lowering: b.graph)
        let inputs = TestSupport.inputs(for: program, seed: 1)
        let expected = try TestSupport.reference(program, inputs)
        let optimized = program.optimized()
        for (id, t) in optimized.constants {
            XCTAssertEqual(t.count, t.shape.reduce(1, *), "constant \(optimized.values[id].name) has \(t.count) scalars for shape \(t.shape)")
        }
        assertClose(try TestSupport.reference(optimized, inputs), expected, "reference on optimized program")
        assertClose(try TestSupport.fast(program, inputs), expected, "oneDNN plan")
    }

    /// A single Identity or Dropout between operators becomes a rename.
    func testIdentityElimination() throws {
        var b = GraphBuilder(name: "identity", seed: 15)
        let x = b.input("x", shape: [1, 4, 6, 6])
        let c = b.node("Dropout", [b.conv(x, in: 4, out: 8, kernel: 3)], attributes: ["ratio": .float(0.2)])[0]
        b.output(b.relu(c))
        let optimized = try checkPassesPreserveOutputs(b.graph)
        XCTAssertFalse(optimized.steps.contains { $0.op == .identity })
    }

    /// BUG: two consecutive Identity/Dropout nodes break `eliminateIdentities` (Passes.swift,
    /// lines 53–62): the loop iterates over a stale copy of `steps`, so after the first identity's uses are
    /// renamed, the second one still reads the removed value and every use of its output is
    /// renamed to a value no step produces. Plan.compile (which runs the pass by default) and
    /// ReferenceRunner on `program.optimized()` then fail with "… is used before it is computed"
    /// / "input … is not available" / "output … was not computed".
    func testChainedIdentitiesAreEliminated() throws {
        // conv → Identity → Dropout → Relu
        var b = GraphBuilder(name: "identity-chain", seed: 16)
        let x = b.input("x", shape: [1, 4, 6, 6])
        let conv = b.conv(x, in: 4, out: 8, kernel: 3)
        let id = b.node("Identity", [conv])[0]
        let drop = b.node("Dropout", [id])[0]
        b.output(b.relu(drop))
        let program = try Program(lowering: b.graph)
        let inputs = TestSupport.inputs(for: program, seed: 2)
        let expected = try TestSupport.reference(program, inputs)
        XCTAssertNoThrow(try TestSupport.reference(program.optimized(), inputs), "reference on optimized program")
        if let out = try? TestSupport.reference(program.optimized(), inputs) { assertClose(out, expected) }
        XCTAssertNoThrow(try TestSupport.fast(program, inputs), "Plan.compile with default passes")
        if let out = try? TestSupport.fast(program, inputs) { assertClose(out, expected) }

        // Input → Identity → Identity → output: the chain's end is a graph output.
        var g = GraphBuilder(name: "identity-chain-output", seed: 17)
        let gx = g.input("x", shape: [1, 3, 4, 4])
        g.output(g.node("Identity", [g.node("Identity", [gx])[0]])[0])
        let p2 = try Program(lowering: g.graph)
        let in2 = TestSupport.inputs(for: p2, seed: 3)
        XCTAssertNoThrow(try TestSupport.reference(p2.optimized(), in2), "reference on optimized program")
        XCTAssertNoThrow(try TestSupport.fast(p2, in2), "Plan.compile with default passes")
    }

    // MARK: Activation and residual fusion

    func testActivationFusion() throws {
        var b = GraphBuilder(name: "act-fusion", seed: 4)
        let x = b.input("x", shape: [1, 5, 9, 9])
        let y = b.input("y", shape: [1, 8, 9, 9])
        let c = b.relu6(b.conv(x, in: 5, out: 8, kernel: 3, bias: true))
        let s = b.node("Sigmoid", [b.add(c, y)])[0]
        b.output(b.node("Tanh", [b.node("HardSwish", [b.conv(s, in: 8, out: 8, kernel: 3, groups: 8)])[0]])[0])
        let optimized = try checkPassesPreserveOutputs(b.graph, seed: 9)
        XCTAssertEqual(optimized.steps.count, 3)
        let convs = optimized.steps.filter { if case .conv = $0.op { return true }; return false }
        XCTAssertEqual(convs.map(Self.eltwisePostOps), [[.clip(min: 0, max: 6)], [.hardSwish, .tanh]])
        let adds = optimized.steps.filter { $0.op == .binary(.add) }
        XCTAssertEqual(adds.map(Self.eltwisePostOps), [[.sigmoid]])
    }

    /// ResNet's basic block: the second convolution absorbs the shortcut add and the ReLU.
    func testResidualAddFusion() throws {
        var b = GraphBuilder(name: "residual", seed: 5)
        let x = b.input("x", shape: [2, 16, 8, 8])
        let a = b.relu(b.conv(x, in: 16, out: 16, kernel: 3))
        let y = b.batchNorm(b.conv(a, in: 16, out: 16, kernel: 3), channels: 16)
        b.output(b.relu(b.add(y, a)))
        let optimized = try checkPassesPreserveOutputs(b.graph)
        XCTAssertEqual(optimized.steps.count, 2)
        let last = optimized.steps[1]
        XCTAssertEqual(last.postOps.count, 2)
        XCTAssertEqual(Self.residualAdds(last), [optimized.steps[0].outputs[0]])
        XCTAssertEqual(last.postOps.last, .eltwise(.relu))

        // Also through the compiled plan on its own program.
        let plan = try Plan.compile(try Program(lowering: b.graph))
        XCTAssertTrue(plan.program.steps.contains { !Self.residualAdds($0).isEmpty })
    }

    /// Add(Gemm(x), r) fuses too.
    func testResidualAddFusionIntoGemm() throws {
        var b = GraphBuilder(name: "gemm-residual", seed: 6)
        let x = b.input("x", shape: [4, 12])
        let h = b.relu(b.linear(x, in: 12, out: 12))
        b.output(b.add(b.linear(h, in: 12, out: 12), h))
        let optimized = try checkPassesPreserveOutputs(b.graph)
        XCTAssertTrue(optimized.steps.contains { !Self.residualAdds($0).isEmpty })
    }

    /// The residual is read again after the add, so the convolution may not accumulate into
    /// the residual's buffer in place.
    func testResidualUsedLaterIsNotOverwritten() throws {
        for channels in [3, 8, 16] {
            var b = GraphBuilder(name: "residual-reused-\(channels)", seed: 7)
            let x = b.input("x", shape: [1, channels, 7, 7])
            let a = b.relu(b.conv(x, in: channels, out: channels, kernel: 3))
            let s = b.add(b.conv(a, in: channels, out: channels, kernel: 3), a)
            let later = b.conv(a, in: channels, out: channels, kernel: 1, bias: true)
            b.output(b.relu(s))
            b.output(b.add(later, a))  // a is read twice more after the first add
            let optimized = try checkPassesPreserveOutputs(b.graph)
            XCTAssertGreaterThanOrEqual(optimized.steps.filter { !Self.residualAdds($0).isEmpty }.count, 1)
        }
        // The residual is a program output, and the residual is a graph input used again later.
        var b = GraphBuilder(name: "residual-outputs", seed: 8)
        let x = b.input("x", shape: [1, 16, 6, 6])
        let a = b.relu(b.conv(x, in: 16, out: 16, kernel: 3))
        b.output(a)
        b.output(b.add(b.conv(a, in: 16, out: 16, kernel: 3), a))
        let s2 = b.add(b.conv(x, in: 16, out: 16, kernel: 1), x)
        b.output(s2)
        b.output(b.relu(b.add(s2, x)))
        try checkPassesPreserveOutputs(b.graph)
    }

    /// Add(conv(x), x): the residual is the convolution's own input.
    func testResidualIsTheConvolutionInput() throws {
        for channels in [3, 16, 24] {
            // x produced by an earlier step (an arena buffer) and dead after the add.
            var b = GraphBuilder(name: "self-residual-\(channels)", seed: 9)
            let input = b.input("x", shape: [2, channels, 7, 7])
            let x = b.relu(b.conv(input, in: channels, out: channels, kernel: 1))
            b.output(b.add(b.conv(x, in: channels, out: channels, kernel: 3), x))
            let optimized = try checkPassesPreserveOutputs(b.graph)
            XCTAssertTrue(optimized.steps.contains { step in
                if case .conv = step.op { return Self.residualAdds(step) == [step.inputs[0]] }
                return false
            }, "Add(conv(x), x) should fuse with x as residual")

            // x is the graph input.
            var g = GraphBuilder(name: "self-residual-input-\(channels)", seed: 10)
            let gx = g.input("x", shape: [1, channels, 5, 5])
            g.output(g.add(gx, g.conv(gx, in: channels, out: channels, kernel: 3, bias: true)))
            try checkPassesPreserveOutputs(g.graph)
        }
    }

    // MARK: Memory planner

    func testMemoryPlannerProperties() {
        var rng = SplitMix64(seed: 77)
        for trial in 0..<200 {
            let count = 1 + Int(rng.next() % 30)
            let alignment = [64, 64, 64, 128][Int(rng.next() % 4)]
            let buffers = (0..<count).map { _ -> BufferLifetime in
                let first = Int(rng.next() % 40)
                let size = 1 + Int(rng.next() % 5000)
                return BufferLifetime(size: size, first: first, last: first + Int(rng.next() % 10))
            }
            let (offsets, arena) = MemoryPlanner.plan(buffers, alignment: alignment)
            XCTAssertEqual(offsets.count, count)
            func align(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
            for i in 0..<count {
                XCTAssertEqual(offsets[i] % alignment, 0, "trial \(trial): offset \(offsets[i]) not aligned")
                XCTAssertGreaterThanOrEqual(offsets[i], 0)
                XCTAssertLessThanOrEqual(offsets[i] + buffers[i].size, arena, "trial \(trial): buffer \(i) beyond the arena")
                for j in (i + 1)..<count where buffers[i].overlaps(buffers[j]) {
                    let disjoint = offsets[i] + buffers[i].size <= offsets[j] || offsets[j] + buffers[j].size <= offsets[i]
                    XCTAssertTrue(disjoint, "trial \(trial): live buffers \(i) \(buffers[i]) @\(offsets[i]) and \(j) \(buffers[j]) @\(offsets[j]) overlap")
                }
            }
            XCTAssertGreaterThanOrEqual(arena, buffers.map(\.size).max()!)
            XCTAssertLessThanOrEqual(arena, buffers.reduce(0) { $0 + align($1.size) })
        }
    }

    func testMemoryPlannerExtremes() {
        // Disjoint lifetimes share one slot the size of the largest buffer.
        let chain = (0..<10).map { BufferLifetime(size: 100 * ($0 + 1), first: 2 * $0, last: 2 * $0 + 1) }
        let (offsets, arena) = MemoryPlanner.plan(chain)
        XCTAssertEqual(Set(offsets), [0])
        XCTAssertEqual(arena, 1024)
        // All alive together: nothing can share, so the arena is the sum of aligned sizes.
        let together = (0..<10).map { BufferLifetime(size: 100 * ($0 + 1), first: 0, last: 5) }
        let (_, full) = MemoryPlanner.plan(together)
        XCTAssertEqual(full, together.reduce(0) { $0 + ($1.size + 63) / 64 * 64 })
        // A classic chain a→b→c: a and c can share, b cannot share with either.
        let abc = [BufferLifetime(size: 1000, first: 0, last: 1), BufferLifetime(size: 1000, first: 1, last: 2),
                   BufferLifetime(size: 1000, first: 2, last: 3)]
        let (o, size) = MemoryPlanner.plan(abc)
        XCTAssertEqual(o[0], o[2])
        XCTAssertNotEqual(o[0], o[1])
        XCTAssertEqual(size, 2048)
        XCTAssertEqual(MemoryPlanner.plan([]).arenaBytes, 0)
        // Touching lifetimes (last == first) count as overlapping.
        XCTAssertTrue(BufferLifetime(size: 1, first: 0, last: 3).overlaps(BufferLifetime(size: 1, first: 3, last: 4)))
        XCTAssertFalse(BufferLifetime(size: 1, first: 0, last: 2).overlaps(BufferLifetime(size: 1, first: 3, last: 4)))
    }

    /// A random DAG of convolutions, activations, adds (including broadcast adds of a pooled
    /// value), concats and pools, where values often feed several consumers.
    static func randomGraph(seed: UInt64) -> Graph {
        var rng = SplitMix64(seed: seed)
        func rand(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        var b = GraphBuilder(name: "random-\(seed)", seed: seed)
        let batch = 1 + rand(2)
        let size = 5 + rand(7)
        var values: [(name: String, shape: [Int])] = []
        var uses: [String: Int] = [:]
        for i in 0..<(1 + rand(2)) {
            let shape = [batch, 1 + rand(12), size, size]
            values.append((b.input("in\(i)", shape: shape), shape))
        }
        func use(_ v: (name: String, shape: [Int])) -> String { uses[v.name, default: 0] += 1; return v.name }
        func pick() -> (name: String, shape: [Int]) {
            // Prefer recent values, but reach back often enough to create fan-out.
            rand(3) == 0 ? values[rand(values.count)] : values[max(0, values.count - 1 - rand(3))]
        }
        let steps = 5 + rand(10)
        for _ in 0..<steps {
            let a = pick()
            let (n, c, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
            var out: (String, [Int])
            switch rand(9) {
            case 0, 1:
                let m = 1 + rand(16)
                let k = h >= 3 && w >= 3 ? [1, 3][rand(2)] : 1
                let stride = h >= 6 && rand(4) == 0 ? 2 : 1
                let groups = c == m && rand(3) == 0 ? c : 1
                var y = b.conv(use(a), in: c, out: m, kernel: k, stride: stride, groups: groups, bias: rand(2) == 0)
                if rand(3) == 0 { y = b.batchNorm(y, channels: m) }
                let oh = (h + 2 * (k / 2) - k) / stride + 1, ow = (w + 2 * (k / 2) - k) / stride + 1
                out = (y, [n, m, oh, ow])
            case 2:
                out = ([b.relu(use(a)), b.relu6(use(a)), b.node("Sigmoid", [use(a)])[0]][rand(3)], a.shape)
            case 3, 4:
                let same = values.filter { $0.shape == a.shape && $0.name != a.name }
                let pooled = values.filter { $0.shape == [n, c, 1, 1] }
                if !same.isEmpty && rand(4) != 0 {
                    out = (b.add(use(a), use(same[rand(same.count)])), a.shape)
                } else if !pooled.isEmpty && rand(2) == 0 {
                    out = (b.add(use(a), use(pooled[rand(pooled.count)])), a.shape)
                } else {
                    // Add(conv(a), a), possibly followed by a ReLU.
                    let y = b.conv(use(a), in: c, out: c, kernel: h >= 3 && w >= 3 ? 3 : 1)
                    let s = b.add(y, use(a))
                    out = (rand(2) == 0 ? b.relu(s) : s, a.shape)
                }
            case 5:
                let partners = values.filter { $0.shape[0] == n && $0.shape[2] == h && $0.shape[3] == w }
                let others = (0..<(1 + rand(2))).map { _ in partners[rand(partners.count)] }
                let parts = [a] + others
                out = (b.node("Concat", parts.map(use), attributes: ["axis": .int(1)])[0],
                       [n, parts.reduce(0) { $0 + $1.shape[1] }, h, w])
            case 6, 7:
                if h >= 2 && w >= 2 && rand(2) == 0 {
                    out = (b.maxPool(use(a), kernel: 2, stride: 2, pad: 0), [n, c, h / 2, w / 2])
                } else {
                    out = (b.maxPool(use(a), kernel: 3, stride: 1, pad: 1), a.shape)
                }
            default:
                out = (b.globalAveragePool(use(a)), [n, c, 1, 1])
            }
            values.append(out)
        }
        // Every unused value is an output, and so is one value that also has consumers.
        let inputs = Set(b.graph.inputs.map(\.name))
        var outputs = values.filter { uses[$0.name, default: 0] == 0 && !inputs.contains($0.name) }.map(\.name)
        if let shared = values.first(where: { uses[$0.name, default: 0] > 0 && !inputs.contains($0.name) }), rand(2) == 0 {
            outputs.append(shared.name)
        }
        if outputs.isEmpty { outputs = [values.last!.name] }
        for o in outputs { b.output(o) }
        return b.graph
    }

    func testRandomGraphsPlanWithoutConflictsAndMatchReference() throws {
        var fanOut = 0
        for seed in UInt64(1)...30 {
            let graph = Self.randomGraph(seed: seed)
            let program = try Program(lowering: graph)
            fanOut += program.consumers().values.filter { $0.count > 1 }.count
            let inputs = TestSupport.inputs(for: program, seed: seed)
            let expected = try TestSupport.reference(program, inputs)
            for backend in Backend.allCases {
                let plan = try Plan.compile(program, options: CompileOptions(backend: backend))
                let label = "random graph \(seed) [\(backend)] (\(graph.nodes.map(\.opType).joined(separator: ",")))"
                XCTAssertTrue(TestSupport.conflictingPairs(plan).isEmpty, "\(label): conflicting buffers")
                XCTAssertGreaterThanOrEqual(plan.arenaBytes, plan.buffers.map { $0.offset + $0.size }.max() ?? 0, label)
                assertClose(try Executor(plan: plan).run(inputs), expected, label)
            }
        }
        XCTAssertGreaterThan(fanOut, 30, "the generator should produce values with several consumers")
    }

    func testZooArenasAreSmallerThanAllActivations() throws {
        let graphs = [try Zoo.resNet(depth: 18, inputSize: 64), try Zoo.resNet(depth: 50, inputSize: 64),
                      try Zoo.mobileNetV2(inputSize: 64), try Zoo.efficientNetLite0(inputSize: 64)]
        for graph in graphs {
            let program = try Program(lowering: graph, batch: 1)
            let total = TestSupport.activationBytes(program)
            for backend in Backend.allCases {
                let plan = try Plan.compile(program, options: CompileOptions(backend: backend))
                XCTAssertTrue(TestSupport.conflictingPairs(plan).isEmpty, "\(graph.name) [\(backend)]")
                XCTAssertLessThan(plan.arenaBytes, total, "\(graph.name) [\(backend)]")
                XCTAssertLessThan(plan.arenaBytes, plan.unplannedActivationBytes, "\(graph.name) [\(backend)]")
                // Reuse is substantial on a chain-like CNN, not marginal.
                XCTAssertLessThan(plan.arenaBytes * 3, total, "\(graph.name) [\(backend)]")
                if backend == .reference { XCTAssertEqual(plan.oneDNNKernelCount, 0) }
            }
        }
    }
}

import XCTest
import Metronome
import MetronomeModels

/// Multi-branch networks (NN-Stretch): config parsing and its errors, the built graph against
/// hand-computed shapes and MACs, branch-parallel execution against sequential execution
/// and the reference interpreter, and the memory plan against what really ran at once.
final class BranchTests: XCTestCase {
    /// Two branches of widths 4 and 6 after an 8-channel stem, 16×16 input, 10 classes.
    static let tiny = """
        MODEL: {TYPE: mbanynet, NUM_CLASSES: 10}
        ANYNET:
          STEM_TYPE: simple_stem_in
          STEM_W: 8
          BLOCK_TYPE: res_basic_block
          DEPTHS:  [[1, 1]]
          WIDTHS:  [[4, 6]]
          STRIDES: [[2, 2]]
          DEVICES: [cpu, dsp]
          ORIGINAL_WIDTHS: [10]
        TEST: {IM_SIZE: 16}
        """

    /// A config with every block type's shape of work: bottleneck branches of unequal
    /// depth, then MB_VER 1 projections.
    static func config(block: String, version: Int = 2, size: Int = 32) -> String {
        """
        MODEL: {TYPE: mbanynet, NUM_CLASSES: 7}
        ANYNET:
          STEM_TYPE: res_stem_in
          STEM_W: 16
          BLOCK_TYPE: \(block)
          MB_VER: \(version)
          DEPTHS:  [[1], [2, 1], [1, 2]]
          WIDTHS:  [[16], [24, 16], [32, 24]]
          STRIDES: [[1], [2, 2], [2, 2]]
          BOT_MULS: [0.5, 0.5, 2]
          GROUP_WS: [[8], [8, 8], [8, 8]]
          KERNELS: [3, [3, 5], 3]
          SE_ON: true
          HEAD_W: 32
          DEVICES: [cpu, dsp]
          ORIGINAL_WIDTHS: [16, \(version == 1 ? 36 : 40), \(version == 1 ? 48 : 56)]
          ACTIVATION_FUN: {cpu: relu, dsp: silu}
        TEST: {IM_SIZE: \(size)}
        """
    }

    func testTinyConfigBuildsTheHandComputedNetwork() throws {
        let c = try MultiBranchConfig.load(yaml: Self.tiny, name: "tiny")
        XCTAssertEqual(c.stages.count, 1)
        XCTAssertEqual(c.stages[0].branches.map(\.width), [4, 6])
        XCTAssertEqual(c.stages[0].branches.map(\.device), ["cpu", "dsp"])
        let graph = MultiBranchNetwork.build(c)
        let program = try Program(lowering: graph, batch: 1)
        XCTAssertEqual(program.shape(program.outputs[0]), [1, 10])
        // Hand count. Stem 3x3/2: 8x8x8 outputs x 27. Branch b (width w, 8x8x8 -> 4x4xw):
        // conv 3x3/2 (16w x 72) + conv 3x3 (16w x 9w) + 1x1/2 projection (16w x 8). Head: 10 x 10.
        func branch(_ w: Int) -> Int { 16 * w * 72 + 16 * w * 9 * w + 16 * w * 8 }
        let stem = 8 * 8 * 8 * 27
        var macs = 0
        for step in program.steps where step.opType == "Conv" || step.opType == "Gemm" {
            let out = program.shape(step.outputs[0]), w = program.shape(step.inputs[1])
            macs += out.reduce(1, *) * w.dropFirst().reduce(1, *)
        }
        XCTAssertEqual(macs, stem + branch(4) + branch(6) + 100)
        // Every node carries its placement; the merge concatenates 4 + 6 channels.
        let placements = graph.nodes.map { BranchPlacement.parse($0.name) }
        XCTAssertFalse(placements.contains(nil), "a node without placement: \(graph.nodes.map(\.name))")
        let concat = try XCTUnwrap(graph.nodes.first { $0.opType == "Concat" })
        XCTAssertEqual(BranchPlacement.parse(concat.name), BranchPlacement(.merge(stage: 1), device: "cpu"))
        XCTAssertEqual(Set(placements.compactMap { $0?.branch }), [0, 1])
        XCTAssertEqual(BranchPlacement.devices(of: graph.nodes.map(\.name)), ["cpu", "dsp"])
    }

    func testMBVersion1ProjectsToTheOriginalWidths() throws {
        let c = try MultiBranchConfig.load(yaml: Self.config(block: "mbconv", version: 1), name: "v1")
        let program = try Program(lowering: MultiBranchNetwork.build(c), batch: 1)
        let concats = program.steps.filter { $0.opType == "Concat" }
        XCTAssertEqual(concats.map { program.shape($0.outputs[0])[1] }, [36, 48])
        // Stage 2 (widths 24 and 16 of 36): convfirst gives make_divisible(24/36*16, 8) = 16 and
        // make_divisible(16/36*16, 8) = 8 channels; convlast gives 18 and 18.
        XCTAssertEqual(MultiBranchNetwork.makeDivisible(24.0 / 36 * 16, by: 8), 16)
        XCTAssertEqual(MultiBranchNetwork.makeDivisible(16.0 / 36 * 16, by: 8), 8)
        XCTAssertEqual(concats[0].inputs.map { program.shape($0)[1] }, [18, 18])
    }

    func testConfigErrorsNameTheKey() {
        func key(_ yaml: String) -> String? {
            do {
                _ = try MultiBranchConfig.load(yaml: yaml, name: "bad")
                return nil
            } catch let e as MultiBranchConfigError {
                return e.key
            } catch {
                return "unexpected \(error)"
            }
        }
        let good = Self.tiny
        XCTAssertNil(key(good))
        XCTAssertEqual(key(good.replacingOccurrences(of: "ORIGINAL_WIDTHS: [10]", with: "ORIGINAL_WIDTHS: [12]")), "ANYNET.ORIGINAL_WIDTHS[0]")
        XCTAssertEqual(key(good.replacingOccurrences(of: "WIDTHS:  [[4, 6]]", with: "WIDTHS:  [[4]]")), "ANYNET.WIDTHS[0]")
        XCTAssertEqual(key(good.replacingOccurrences(of: "STRIDES: [[2, 2]]", with: "STRIDES: [[2, 1]]")), "ANYNET.STRIDES[0]")
        XCTAssertEqual(key(good.replacingOccurrences(of: "DEVICES: [cpu, dsp]", with: "DEVICES: [cpu]")), "ANYNET.DEVICES")
        XCTAssertEqual(key(good.replacingOccurrences(of: "STEM_W: 8", with: "STEM_W: 8\n  STEM_WIDTH: 3")), "ANYNET.STEM_WIDTH")
        XCTAssertEqual(key(good.replacingOccurrences(of: "res_basic_block", with: "dense_block")), "ANYNET.BLOCK_TYPE")
        XCTAssertEqual(key(good.replacingOccurrences(of: "DEPTHS:  [[1, 1]]", with: "DEPTHS:  [[1, 0]]")), "ANYNET.DEPTHS[0][1]")
        XCTAssertEqual(key(good.replacingOccurrences(of: "TYPE: mbanynet", with: "TYPE: regnet")), "MODEL.TYPE")
        XCTAssertEqual(key(good + "\nFOO: 1"), "FOO")
        XCTAssertEqual(key(good.replacingOccurrences(of: "ORIGINAL_WIDTHS: [10]", with: "MB_VER: 1")), "ANYNET.ORIGINAL_WIDTHS")
        XCTAssertEqual(key(good.replacingOccurrences(of: "STEM_W: 8", with: "STEM_W: eight")), "ANYNET.STEM_W")
        XCTAssertEqual(key("ANYNET: [1, 2]"), "ANYNET")
        XCTAssertEqual(key(": : :"), "")
        // Training sections of a pycls config are accepted and ignored.
        XCTAssertNil(key(good + "\nOPTIM: {BASE_LR: 0.1}\nTRAIN: {IM_SIZE: 224}"))
    }

    /// Cores for two devices: two distinct cores when the machine has them (CI has 2).
    static func twoDevices() -> DeviceCores {
        let cores = Affinity.availableCores()
        return DeviceCores([.init(device: "cpu", cores: [cores[0]]), .init(device: "dsp", cores: [cores[cores.count > 1 ? 1 : 0]])])
    }

    func testBranchParallelMatchesSequentialAndTheReference() throws {
        for (block, version) in [("res_bottleneck_block", 2), ("res_basic_block", 2), ("mbconv", 1), ("inverted_residual", 2)] {
            let c = try MultiBranchConfig.load(yaml: Self.config(block: block, version: version), name: block)
            let program = try Program(lowering: MultiBranchNetwork.build(c, seed: 3), batch: 2)
            let inputs = TestSupport.inputs(for: program, seed: 5)
            let expected = try TestSupport.reference(program, inputs)
            let parallelPlan = try Plan.compile(program, options: CompileOptions(devices: Self.twoDevices()))
            let schedule = try XCTUnwrap(parallelPlan.schedule)
            XCTAssertEqual(schedule.parallelSegments.count, 2, "\(block): stages 2 and 3 run their branches at once")
            let parallel = try Executor(plan: parallelPlan)
            let sequential = try TestSupport.fast(program, inputs, options: CompileOptions(threads: 2))
            for _ in 0..<3 {
                let got = try parallel.run(inputs)
                assertClose(got, sequential, tolerance: 1e-5, "\(block): parallel vs sequential")
                assertClose(got, expected, tolerance: 1e-4, "\(block): parallel vs reference interpreter")
            }
        }
    }

    /// A first device with two cores (its lanes run on a team of two on the calling thread),
    /// sharing a core with the other device: still the sequential outputs, run after run.
    func testMultiCoreDevicesGiveTheSameOutputs() throws {
        let cores = Affinity.availableCores()
        let devices = DeviceCores([.init(device: "cpu", cores: Array(cores.prefix(2))), .init(device: "dsp", cores: [cores.last!])])
        let c = try MultiBranchConfig.load(yaml: Self.config(block: "res_basic_block"), name: "teams")
        let program = try Program(lowering: MultiBranchNetwork.build(c, seed: 4), batch: 1)
        let inputs = TestSupport.inputs(for: program, seed: 6)
        let sequential = try TestSupport.fast(program, inputs, options: CompileOptions(threads: 2))
        let executor = try Executor(plan: Plan.compile(program, options: CompileOptions(devices: devices)))
        for _ in 0..<3 { assertClose(try executor.run(inputs), sequential, tolerance: 1e-5, "two-core first device") }
    }

    func testBranchesOfAStageReadingEachOtherAreRefused() throws {
        var b = GraphBuilder(name: "crossed")
        let x = b.input("x", shape: [1, 4, 8, 8])
        b.namePrefix = "s1.b0@cpu/"
        let a = b.relu(x)
        b.namePrefix = "s1.b1@dsp/"
        let c = b.add(a, x)
        b.namePrefix = "s1.merge@cpu/"
        b.output(b.node("Concat", [a, c], attributes: ["axis": .int(1)])[0])
        XCTAssertThrowsError(try Plan.compile(b.graph, batch: 1, options: CompileOptions(devices: Self.twoDevices()))) { error in
            XCTAssertTrue("\(error)".contains("s1.b1@dsp/add_0") && "\(error)".contains("s1.b0@cpu/relu_0"), "\(error)")
        }
        let missing = DeviceCores([.init(device: "cpu", cores: [Affinity.availableCores()[0]])])
        XCTAssertThrowsError(try Plan.compile(b.graph, batch: 1, options: CompileOptions(devices: missing))) { error in
            XCTAssertTrue("\(error)".contains("'dsp'"), "\(error)")
        }
    }

    /// The memory plan against the kernels' real start and end times: buffers whose data was
    /// alive at the same moment never share bytes. The same lifetimes planned as if kernels
    /// ran in run order would overlap, so the check can fail.
    func testMemoryPlanNeverOverlapsBuffersAliveInParallelBranches() throws {
        let c = try MultiBranchConfig.load(yaml: Self.config(block: "res_bottleneck_block", size: 64), name: "mem")
        let program = try Program(lowering: MultiBranchNetwork.build(c), batch: 1)
        let plan = try Plan.compile(program, options: CompileOptions(devices: Self.twoDevices()))
        let executor = try Executor(plan: plan)
        var generator = SplitMix64(seed: 9)
        let buffers = PlanBuffers(plan: plan, generator: &generator)
        var concurrentPairs = 0
        var wouldHaveOverlapped = 0
        let sequentialOffsets = MemoryPlanner.plan(plan.buffers.map(\.lifetime)).offsets
        for _ in 0..<5 {
            let spans = try executor.runRecordingSpans(inputs: buffers.inputPointers, outputs: buffers.outputPointers)
            // A buffer holds live data from the start of its first kernel to the end of its last.
            let alive = plan.buffers.map { (spans[$0.lifetime.first].start, spans[$0.lifetime.last].end) }
            for i in plan.buffers.indices {
                for j in plan.buffers.indices where j > i {
                    guard alive[i].0 < alive[j].1 && alive[j].0 < alive[i].1 else { continue }
                    let bi = plan.buffers[i], bj = plan.buffers[j]
                    XCTAssertFalse(bi.sharesBytes(with: bj), "buffers \(i) and \(j) were alive together and share bytes")
                    if !bi.lifetime.overlaps(bj.lifetime) {
                        concurrentPairs += 1
                        var si = bi, sj = bj
                        si.offset = sequentialOffsets[i]
                        sj.offset = sequentialOffsets[j]
                        if si.sharesBytes(with: sj) { wouldHaveOverlapped += 1 }
                    }
                }
            }
        }
        XCTAssertGreaterThan(concurrentPairs, 0, "no buffers of different branches were ever alive at once")
        XCTAssertGreaterThan(wouldHaveOverlapped, 0, "a planner unaware of the branches would not have overlapped them either")
        // The plan is never smaller than the one that assumed kernels run one after another.
        XCTAssertGreaterThanOrEqual(plan.arenaBytes, MemoryPlanner.plan(plan.buffers.map(\.lifetime)).arenaBytes)
    }

    func testDeviceListsParseAndRemap() throws {
        let d = try DeviceCores.parse("cpu=0,dsp=1")
        XCTAssertEqual(d.groups.map(\.device), ["cpu", "dsp"])
        XCTAssertEqual(d.groups.map(\.cores), [[0], [1]])
        XCTAssertEqual(try DeviceCores.parse("cpu=0-1,gpu=2+3,dsp=4,5").groups.map(\.cores), [[0, 1], [2, 3], [4, 5]])
        XCTAssertEqual(d.remapped(onto: [6, 7, 8, 9]).groups.map(\.cores), [[6, 8], [7, 9]])
        XCTAssertEqual(d.remapped(onto: [3]).groups.map(\.cores), [[3], [3]])
        XCTAssertEqual(try DeviceCores.parse("cpu=0,dsp=0").sharedCores, [0])
        for bad in ["0,1", "cpu=", "cpu=x", "cpu=0,cpu=1", "c pu=0"] {
            XCTAssertThrowsError(try DeviceCores.parse(bad), bad)
        }
        XCTAssertThrowsError(try DeviceCores.oneCoreEach(["a", "b", "c"], cores: [0, 1])) { error in
            XCTAssertTrue("\(error)".contains("--devices"), "\(error)")
        }
    }
}

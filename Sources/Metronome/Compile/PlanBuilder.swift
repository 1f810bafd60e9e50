#if canImport(Glibc)
import Glibc
#endif
import CDNNL

/// Walks the program once, choosing a kernel and layouts for every step.
struct PlanBuilder {
    let program: Program
    let options: CompileOptions
    let engine: OpaquePointer
    var kernels: [Kernel] = []
    var arenaSizes: [Int] = []
    /// The values whose bytes live in each arena buffer (aliases and reordered copies).
    var bufferValues: [[ValueID]] = []
    var location: [ValueID: Location] = [:]
    /// Copies of values in other layouts, so each reorder is done once.
    var variants: [ValueID: [Location]] = [:]
    var weights: [UnsafeMutableRawPointer] = []
    /// Size of each weight, and the step (layer) that created it: the plan packs them into one
    /// ``WeightRegion``, one segment per layer.
    var weightSizes: [Int] = []
    var weightSteps: [Int] = []
    var weightBytes = 0
    var scratchpadBytes = 0
    let lastUse: [ValueID: Int]
    var stepIndex = 0
    /// For branch-parallel plans: the lanes, and the lane of the step being compiled and of
    /// each arena buffer's creator (a lane must not reuse bytes another lane may still read).
    let layout: BranchLayout?
    var currentLane: (segment: Int, lane: Int)?
    var bufferLane: [Int: (segment: Int, lane: Int)] = [:]

    init(program: Program, options: CompileOptions, layout: BranchLayout? = nil) throws {
        self.program = program
        self.options = options
        self.layout = layout
        var e: OpaquePointer?
        try DNNL.check(dnnl_engine_create(&e, dnnl_cpu, 0), "CPU engine creation")
        guard let e else { throw MetronomeError.backend("engine creation returned nothing") }
        engine = e
        var last: [ValueID: Int] = [:]
        for (i, s) in program.steps.enumerated() {
            for v in s.inputs { last[v] = i }
            for case .add(let v) in s.postOps { last[v] = i }
        }
        for v in program.outputs { last[v] = Int.max }
        lastUse = last
    }

    mutating func build() throws -> Plan {
        var handedOver = false
        defer {
            if !handedOver {
                for k in kernels { if case .primitive(let p, _, _) = k { dnnl_primitive_destroy(p) } }
                for w in weights { free(w) }
                dnnl_engine_destroy(engine)
            }
        }
        for (i, id) in program.inputs.enumerated() {
            location[id] = Location(ref: .input(i), desc: try DNNL.plain(program.shape(id)))
        }
        // Which step each kernel serves (its input reorders included), for per-kernel reports.
        var kernelSteps: [Int?] = []
        for (i, step) in program.steps.enumerated() {
            stepIndex = i
            enterLane(of: i)
            let done = options.backend == .onednn ? try compileWithOneDNN(step) : false
            if !done { try compileReference(step) }
            kernelSteps += Array(repeating: i, count: kernels.count - kernelSteps.count)
        }
        stepIndex = program.steps.count
        for (i, id) in program.outputs.enumerated() {
            let loc = try locate(id, as: DNNL.plain(program.shape(id)))
            kernels.append(.copy(from: loc.ref, to: .output(i), bytes: program.values[id].count * 4))
        }
        let life = lifetimes()
        kernelSteps += Array(repeating: nil, count: kernels.count - kernelSteps.count)
        let schedule = branchSchedule(kernelSteps: kernelSteps)
        let (offsets, arenaBytes) = schedule.map { s in MemoryPlanner.plan(life, liveTogether: s.mayBeLiveTogether) }
            ?? MemoryPlanner.plan(life)
        let region = try WeightRegion(copying: weights, sizes: weightSizes,
                                      layers: weightSteps.map { $0 < program.steps.count ? program.steps[$0].name : "outputs" })
        for w in weights { free(w) }
        weights = []
        handedOver = true
        return Plan(program: program, threads: schedule?.devices.allCores.count ?? options.threads, engine: engine, kernels: kernels,
                    arenaOffsets: offsets, lifetimes: life, arenaBytes: arenaBytes, unplannedBytes: arenaSizes.reduce(0, +),
                    weightRegion: region, weightBytes: weightBytes, scratchpadBytes: scratchpadBytes,
                    kernelSteps: kernelSteps, schedule: schedule)
    }

    /// First and last kernel touching each arena buffer.
    func lifetimes() -> [BufferLifetime] {
        var life = arenaSizes.map { BufferLifetime(size: $0, first: Int.max, last: -1) }
        func touch(_ ref: BufferRef, _ k: Int) {
            if case .arena(let b) = ref { life[b].first = min(life[b].first, k); life[b].last = max(life[b].last, k) }
        }
        for (k, kernel) in kernels.enumerated() {
            switch kernel {
            case .primitive(_, let args, _): for a in args { touch(a.ref, k) }
            case .reference(_, let ins, _, let outs, _, let res):
                for r in ins + outs + Array(res.values) { touch(r, k) }
            case .copy(let from, let to, _): touch(from, k); touch(to, k)
            }
        }
        return life.map { $0.first == Int.max ? BufferLifetime(size: $0.size, first: 0, last: 0) : $0 }
    }

    /// The data type convolutions compute in.
    var computeType: dnnl_data_type_t { options.precision == .bf16 ? dnnl_bf16 : dnnl_f32 }

    /// The error for a CPU without bf16 convolutions (oneDNN needs AVX-512 for them: native
    /// AVX512_BF16, or emulated on AVX-512 Core).
    static func noBF16(_ step: Step) -> String {
        "--precision bf16: oneDNN has no bf16 convolution for '\(step.name)' on this CPU (it needs AVX-512: avx512_bf16, or avx512_core for emulation); use --precision fp32"
    }

    // MARK: Buffers and layouts

    mutating func newArena(_ desc: dnnl_memory_desc_t, holding value: ValueID) -> Location {
        arenaSizes.append(max(DNNL.size(desc), 4))
        bufferValues.append([value])
        if let currentLane { bufferLane[arenaSizes.count - 1] = currentLane }
        return Location(ref: .arena(arenaSizes.count - 1), desc: desc)
    }

    /// Places `value` in the same bytes as `loc`, described by `desc`.
    mutating func alias(_ value: ValueID, onto loc: Location, desc: dnnl_memory_desc_t) {
        if case .arena(let b) = loc.ref {
            bufferValues[b].append(value)
            arenaSizes[b] = max(arenaSizes[b], DNNL.size(desc))
        }
        location[value] = Location(ref: loc.ref, desc: desc)
    }

    /// Whether nothing after the current step reads the arena buffer behind `ref`.
    func isDeadAfterCurrentStep(_ ref: BufferRef) -> Bool {
        guard case .arena(let b) = ref else { return false }
        // In a parallel segment, bytes made before the segment may still be read by the other lanes.
        if let lane = currentLane, let layout, layout.segments[lane.segment].isParallel {
            guard let owner = bufferLane[b], owner == lane else { return false }
        }
        return bufferValues[b].allSatisfy { (lastUse[$0] ?? -1) <= stepIndex }
    }

    /// `value` in layout `desc`, reordering (once) if it is held in another layout.
    mutating func locate(_ value: ValueID, as desc: dnnl_memory_desc_t) throws -> Location {
        if let t = program.constants[value] {
            return try constant(t.scalars, from: DNNL.plain(t.shape), as: desc)
        }
        guard let loc = location[value] else {
            throw MetronomeError.invalidGraph("value \(program.values[value].name) is used before it is computed")
        }
        if DNNL.equal(loc.desc, desc) { return loc }
        if let v = variants[value]?.first(where: { DNNL.equal($0.desc, desc) }) { return v }
        let target = newArena(desc, holding: value)
        try emitReorder(from: loc, to: target, name: "reorder \(program.values[value].name)")
        variants[value, default: []].append(target)
        return target
    }

    mutating func plainLocation(_ value: ValueID) throws -> Location {
        try locate(value, as: DNNL.plain(program.shape(value)))
    }

    mutating func emitReorder(from: Location, to: Location, name: String) throws {
        var src = from.desc, dst = to.desc
        let attr = try DNNL.Attributes()
        var pd: OpaquePointer?
        try DNNL.check(dnnl_reorder_primitive_desc_create(&pd, &src, engine, &dst, engine, attr.handle), name)
        guard let pd else { throw MetronomeError.backend("\(name): no primitive descriptor") }
        try emit(pd, [Argument(kind: Arg.src, desc: src, ref: from.ref), Argument(kind: Arg.dst, desc: dst, ref: to.ref)],
                 name: name)
    }

    /// Plan-owned constant data in layout `target`, reordered now from its plain layout.
    mutating func constant(_ scalars: [Float], from plain: dnnl_memory_desc_t, as target: dnnl_memory_desc_t) throws -> Location {
        let size = DNNL.size(target)
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, max(size, 64)) == 0, let raw else {
            throw MetronomeError.backend("cannot allocate \(size) bytes for weights")
        }
        weights.append(raw)
        weightSizes.append(size)
        weightSteps.append(stepIndex)
        weightBytes += size
        let loc = Location(ref: .weight(weights.count - 1), desc: target)
        if DNNL.equal(plain, target) {
            scalars.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: min(size, $0.count)) }
            return loc
        }
        var src = plain, dst = target
        var pd: OpaquePointer?
        try DNNL.check(dnnl_reorder_primitive_desc_create(&pd, &src, engine, &dst, engine, nil), "weight reorder")
        guard let pd else { throw MetronomeError.backend("weight reorder: no primitive descriptor") }
        defer { dnnl_primitive_desc_destroy(pd) }
        var prim: OpaquePointer?, stream: OpaquePointer?, srcMem: OpaquePointer?, dstMem: OpaquePointer?
        try DNNL.check(dnnl_primitive_create(&prim, pd), "weight reorder primitive")
        defer { dnnl_primitive_destroy(prim) }
        try DNNL.check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "stream")
        defer { dnnl_stream_destroy(stream) }
        var copy = scalars
        try copy.withUnsafeMutableBytes { buf in
            try DNNL.check(dnnl_memory_create(&srcMem, &src, engine, buf.baseAddress), "weight memory")
            defer { dnnl_memory_destroy(srcMem) }
            try DNNL.check(dnnl_memory_create(&dstMem, &dst, engine, raw), "weight memory")
            defer { dnnl_memory_destroy(dstMem) }
            let args = [dnnl_exec_arg_t(arg: Arg.src, memory: srcMem), dnnl_exec_arg_t(arg: Arg.dst, memory: dstMem)]
            try DNNL.check(dnnl_primitive_execute(prim, stream, 2, args), "weight reorder")
            try DNNL.check(dnnl_stream_wait(stream), "weight reorder")
        }
        return loc
    }

    /// For a primitive with one source whose destination oneDNN lays out (pooling, resampling,
    /// LRN): gives that destination a new arena buffer holding `step`'s output and emits
    /// `source → destination`. False, with `pd` released, when oneDNN reports no destination.
    mutating func emitIntoNewOutput(_ pd: OpaquePointer, source: dnnl_memory_desc_t, at x: Location, step: Step) throws -> Bool {
        guard let dst = DNNL.query(pd, dnnl_query_dst_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let y = newArena(dst, holding: step.outputs[0])
        location[step.outputs[0]] = y
        try emit(pd, [Argument(kind: Arg.src, desc: source, ref: x.ref), Argument(kind: Arg.dst, desc: dst, ref: y.ref)],
                 name: step.name)
        return true
    }

    /// Creates the primitive for `pd` (which it takes ownership of) and records its kernel.
    mutating func emit(_ pd: OpaquePointer, _ args: [Argument], name: String) throws {
        defer { dnnl_primitive_desc_destroy(pd) }
        var args = args
        if let sp = DNNL.query(pd, dnnl_query_scratchpad_md), DNNL.size(sp) > 0 {
            scratchpadBytes = max(scratchpadBytes, DNNL.size(sp))
            args.append(Argument(kind: Arg.scratchpad, desc: sp, ref: .scratchpad))
        }
        var prim: OpaquePointer?
        try DNNL.check(dnnl_primitive_create(&prim, pd), "primitive creation for \(name)")
        guard let prim else { throw MetronomeError.backend("primitive creation for \(name) returned nothing") }
        kernels.append(.primitive(prim, args, name: name))
    }

    // MARK: Steps

    // The oneDNN lowering of each primitive family is in PlanBuilder+<Family>.swift; the
    // operators in Ops/ choose which one a step uses.

    /// Compiles `step` to oneDNN primitives as its operator lowers it; false when oneDNN
    /// does not cover it.
    mutating func compileWithOneDNN(_ step: Step) throws -> Bool {
        try OperatorRegistry.of(step).lowerToOneDNN(step, into: &self)
    }

    /// Gives the step's output the input's bytes under the output's shape (Flatten,
    /// Reshape, Identity: no data moves).
    mutating func aliasOutput(_ step: Step) throws -> Bool {
        let x = try plainLocation(step.inputs[0])
        alias(step.outputs[0], onto: x, desc: try DNNL.plain(program.shape(step.outputs[0])))
        return true
    }

    /// The destination of a step whose post-ops may include one residual add: the residual's
    /// buffer itself when nothing reads it afterwards (oneDNN's sum post-op accumulates into
    /// the destination), else a copy of it.
    mutating func destination(for step: Step, desc: dnnl_memory_desc_t, avoiding src: BufferRef) throws -> Location {
        let out = step.outputs[0]
        let residuals = step.postOps.compactMap { post -> ValueID? in if case .add(let v) = post { return v }; return nil }
        guard let r = residuals.first else {
            let loc = newArena(desc, holding: out)
            location[out] = loc
            return loc
        }
        let rLoc = try locate(r, as: desc)
        if rLoc.ref != src && isDeadAfterCurrentStep(rLoc.ref) {
            alias(out, onto: rLoc, desc: desc)
            return Location(ref: rLoc.ref, desc: desc)
        }
        let loc = newArena(desc, holding: out)
        location[out] = loc
        kernels.append(.copy(from: rLoc.ref, to: loc.ref, bytes: DNNL.size(desc)))
        return loc
    }

    func residualCount(_ step: Step) -> Int {
        step.postOps.filter { if case .add = $0 { return true }; return false }.count
    }

    /// Runs `step` with its reference kernel on plain layouts.
    mutating func compileReference(_ step: Step) throws {
        var ins: [BufferRef] = []
        for v in step.inputs { ins.append(try plainLocation(v).ref) }
        var residuals: [ValueID: BufferRef] = [:]
        for case .add(let v) in step.postOps { residuals[v] = try plainLocation(v).ref }
        var outs: [BufferRef] = []
        for v in step.outputs {
            let loc = newArena(try DNNL.plain(program.shape(v)), holding: v)
            location[v] = loc
            outs.append(loc.ref)
        }
        kernels.append(.reference(step, inputs: ins, inShapes: step.inputs.map(program.shape), outputs: outs,
                                  outShapes: step.outputs.map(program.shape), residuals: residuals))
    }
}

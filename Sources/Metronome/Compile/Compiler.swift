#if canImport(Glibc)
import Glibc
#endif
import CDNNL

/// Which kernels a plan uses.
public enum Backend: String, Sendable, CaseIterable {
    /// oneDNN primitives in their preferred (blocked) layouts, reference kernels for the rest.
    case onednn
    /// Reference kernels only, on plain layouts (still memory-planned). For testing.
    case reference
}

public struct CompileOptions: Sendable {
    /// Threads each primitive uses (the executor's OpenMP team size).
    public var threads: Int
    public var backend: Backend
    public var optimization: OptimizationOptions

    public init(threads: Int = 1, backend: Backend = .onednn, optimization: OptimizationOptions = OptimizationOptions()) {
        self.threads = threads
        self.backend = backend
        self.optimization = optimization
    }
}

extension Plan {
    /// Lowers, optimizes and compiles a graph for the given batch (or explicit input shapes).
    public static func compile(_ graph: Graph, batch: Int? = nil, inputShapes: [String: [Int]] = [:],
                               options: CompileOptions = CompileOptions()) throws -> Plan {
        try compile(Program(lowering: graph, inputShapes: inputShapes, batch: batch), options: options)
    }

    /// Optimizes and compiles a lowered program.
    public static func compile(_ program: Program, options: CompileOptions = CompileOptions()) throws -> Plan {
        guard options.threads >= 1 else {
            throw MetronomeError.invalidArgument("threads must be at least 1, got \(options.threads)")
        }
        // oneDNN fixes its thread decomposition when a primitive is created: create them
        // under the team size the executor will use, then restore the caller's setting.
        let saved = omp_get_max_threads()
        omp_set_num_threads(Int32(options.threads))
        defer { omp_set_num_threads(saved) }
        var builder = try PlanBuilder(program: program.optimized(options.optimization), options: options)
        return try builder.build()
    }
}

/// A value's physical placement: a buffer and the oneDNN layout of its bytes.
struct Location {
    var ref: BufferRef
    var desc: dnnl_memory_desc_t
}

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
    var weightBytes = 0
    var scratchpadBytes = 0
    let lastUse: [ValueID: Int]
    var stepIndex = 0

    init(program: Program, options: CompileOptions) throws {
        self.program = program
        self.options = options
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
        for (i, step) in program.steps.enumerated() {
            stepIndex = i
            let done = options.backend == .onednn ? try compileWithOneDNN(step) : false
            if !done { try compileReference(step) }
        }
        stepIndex = program.steps.count
        for (i, id) in program.outputs.enumerated() {
            let loc = try locate(id, as: DNNL.plain(program.shape(id)))
            kernels.append(.copy(from: loc.ref, to: .output(i), bytes: program.values[id].count * 4))
        }
        let life = lifetimes()
        let (offsets, arenaBytes) = MemoryPlanner.plan(life)
        handedOver = true
        return Plan(program: program, threads: options.threads, engine: engine, kernels: kernels,
                    arenaOffsets: offsets, lifetimes: life, arenaBytes: arenaBytes, unplannedBytes: arenaSizes.reduce(0, +),
                    weights: weights, weightBytes: weightBytes, scratchpadBytes: scratchpadBytes)
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

    // MARK: Buffers and layouts

    mutating func newArena(_ desc: dnnl_memory_desc_t, holding value: ValueID) -> Location {
        arenaSizes.append(max(DNNL.size(desc), 4))
        bufferValues.append([value])
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

    mutating func convolution(_ step: Step, _ a: ConvAttributes) throws -> Bool {
        guard residualCount(step) <= 1, program.isConstant(step.inputs[1]),
              step.inputs.count < 3 || program.isConstant(step.inputs[2]) else { return false }
        let xs = program.shape(step.inputs[0]), ws = program.shape(step.inputs[1]), ys = program.shape(step.outputs[0])
        let g = a.groups
        let wdims = g > 1 ? [g, ws[0] / g] + Array(ws[1...]) : ws
        var src = try DNNL.any(xs), wts = try DNNL.any(wdims), dst = try DNNL.any(ys)
        var bias = step.inputs.count > 2 ? try DNNL.plain([ws[0]]) : dnnl_memory_desc_t()
        let strides = DNNL.dims(a.strides), dil = DNNL.dims(a.dilations.map { $0 - 1 })
        let pl = DNNL.dims([a.pads[0], a.pads[1]]), pr = DNNL.dims([a.pads[2], a.pads[3]])
        var cd = dnnl_convolution_desc_t()
        try DNNL.check(dnnl_dilated_convolution_forward_desc_init(
            &cd, dnnl_forward_inference, dnnl_convolution_direct, &src, &wts, &bias, &dst,
            strides, dil, pl, pr), "convolution \(step.name)")
        let attr = try DNNL.Attributes(postOps: step.postOps)
        guard let pd = DNNL.primitiveDesc(&cd, attr: attr, engine: engine) else { return false }
        guard let srcMd = DNNL.query(pd, dnnl_query_src_md), let wMd = DNNL.query(pd, dnnl_query_weights_md),
              let dstMd = DNNL.query(pd, dnnl_query_dst_md) else {
            dnnl_primitive_desc_destroy(pd)
            return false
        }
        let x = try locate(step.inputs[0], as: srcMd)
        let wTensor = program.constants[step.inputs[1]]!
        let w = try constant(wTensor.scalars, from: DNNL.desc(wdims, tag: g > 1 ? dnnl_goihw : dnnl_oihw), as: wMd)
        var args = [Argument(kind: Arg.src, desc: srcMd, ref: x.ref), Argument(kind: Arg.weights, desc: wMd, ref: w.ref)]
        if step.inputs.count > 2 {
            let b = try locate(step.inputs[2], as: bias)
            args.append(Argument(kind: Arg.bias, desc: bias, ref: b.ref))
        }
        let y = try destination(for: step, desc: dstMd, avoiding: x.ref)
        args.append(Argument(kind: Arg.dst, desc: dstMd, ref: y.ref))
        try emit(pd, args, name: step.name)
        return true
    }

    mutating func innerProduct(_ step: Step, _ alpha: Float, _ beta: Float, _ transA: Bool, _ transB: Bool) throws -> Bool {
        guard !transA, residualCount(step) <= 1, let b = program.constants[step.inputs[1]] else { return false }
        let xs = program.shape(step.inputs[0]), ys = program.shape(step.outputs[0])
        let (k, n) = (xs[1], ys[1])
        var biasValues: [Float]? = nil
        if step.inputs.count > 2 {
            guard let c = program.constants[step.inputs[2]], c.count == n, c.shape.last == n else { return false }
            biasValues = c.scalars.map { $0 * beta }
        }
        // oneDNN's inner product wants weights as [N, K]; fold alpha into them.
        var w = [Float](repeating: 0, count: n * k)
        for i in 0..<n { for j in 0..<k { w[i * k + j] = alpha * (transB ? b.scalars[i * k + j] : b.scalars[j * n + i]) } }
        var src = try DNNL.plain(xs), wts = try DNNL.any([n, k]), dst = try DNNL.plain(ys)
        var bias = biasValues != nil ? try DNNL.plain([n]) : dnnl_memory_desc_t()
        var d = dnnl_inner_product_desc_t()
        try DNNL.check(dnnl_inner_product_forward_desc_init(&d, dnnl_forward_inference, &src, &wts, &bias, &dst),
                       "inner product \(step.name)")
        let attr = try DNNL.Attributes(postOps: step.postOps)
        guard let pd = DNNL.primitiveDesc(&d, attr: attr, engine: engine) else { return false }
        guard let wMd = DNNL.query(pd, dnnl_query_weights_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let x = try locate(step.inputs[0], as: src)
        let wLoc = try constant(w, from: DNNL.plain([n, k]), as: wMd)
        var args = [Argument(kind: Arg.src, desc: src, ref: x.ref), Argument(kind: Arg.weights, desc: wMd, ref: wLoc.ref)]
        if let biasValues {
            let bLoc = try constant(biasValues, from: bias, as: bias)
            args.append(Argument(kind: Arg.bias, desc: bias, ref: bLoc.ref))
        }
        let y = try destination(for: step, desc: dst, avoiding: x.ref)
        args.append(Argument(kind: Arg.dst, desc: dst, ref: y.ref))
        try emit(pd, args, name: step.name)
        return true
    }

    mutating func eltwise(_ step: Step, _ f: Eltwise) throws -> Bool {
        let x = try location[step.inputs[0]] ?? plainLocation(step.inputs[0])
        let out = step.outputs[0]
        var current = x
        for (i, (alg, alpha, beta)) in f.oneDNNAlgorithms.enumerated() {
            var md = current.desc
            var d = dnnl_eltwise_desc_t()
            try DNNL.check(dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, alg, &md, alpha, beta),
                           "eltwise \(step.name)")
            guard let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(), engine: engine) else {
                if i == 0 { return false }
                throw MetronomeError.backend("eltwise \(step.name): second stage unavailable")
            }
            let target: Location
            if i > 0 {
                target = current  // later stages run in place on the step's own output
            } else if isDeadAfterCurrentStep(x.ref) {
                alias(out, onto: x, desc: x.desc)
                target = x
            } else {
                target = newArena(x.desc, holding: out)
                location[out] = target
            }
            try emit(pd, [Argument(kind: Arg.src, desc: md, ref: current.ref),
                          Argument(kind: Arg.dst, desc: md, ref: target.ref)], name: step.name)
            current = target
        }
        return true
    }

    mutating func pool(_ step: Step, _ a: PoolAttributes, alg: dnnl_alg_kind_t) throws -> Bool {
        let xs = program.shape(step.inputs[0]), ys = program.shape(step.outputs[0])
        guard let x = location[step.inputs[0]] else { return false }
        // oneDNN sizes outputs with the floor rule; ceil mode becomes extra end padding.
        let padR = (0..<2).map { (i: Int) -> Int in
            let extent: Int = (a.kernel[i] - 1) * a.dilations[i] + 1
            return (ys[2 + i] - 1) * a.strides[i] + extent - xs[2 + i] - a.pads[i]
        }
        var src = x.desc, dst = try DNNL.any(ys)
        var d = dnnl_pooling_v2_desc_t()
        try DNNL.check(dnnl_pooling_v2_forward_desc_init(
            &d, dnnl_forward_inference, alg, &src, &dst, DNNL.dims(a.strides), DNNL.dims(a.kernel),
            DNNL.dims(a.dilations.map { $0 - 1 }), DNNL.dims([a.pads[0], a.pads[1]]),
            DNNL.dims([max(padR[0], a.pads[2]), max(padR[1], a.pads[3])])), "pooling \(step.name)")
        guard let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(), engine: engine) else { return false }
        guard let dstMd = DNNL.query(pd, dnnl_query_dst_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let y = newArena(dstMd, holding: step.outputs[0])
        location[step.outputs[0]] = y
        try emit(pd, [Argument(kind: Arg.src, desc: src, ref: x.ref), Argument(kind: Arg.dst, desc: dstMd, ref: y.ref)],
                 name: step.name)
        return true
    }

    mutating func binary(_ step: Step, _ kind: BinaryKind) throws -> Bool {
        guard residualCount(step) == 0 else { return false }
        var (a, b) = (step.inputs[0], step.inputs[1])
        let ys = program.shape(step.outputs[0])
        if program.shape(a) != ys {
            guard program.shape(b) == ys, kind == .add || kind == .mul else { return false }
            swap(&a, &b)
        }
        guard program.constants[a] == nil, let aLoc = location[a] else { return false }
        let bs = program.shape(b)
        let bLoc: Location
        var src1: dnnl_memory_desc_t
        if bs == ys {
            bLoc = try locate(b, as: aLoc.desc)
            src1 = aLoc.desc
        } else {
            let aligned = Array(repeating: 1, count: ys.count - bs.count) + bs
            let plainB = try plainLocation(b)
            src1 = try DNNL.plain(aligned)
            bLoc = Location(ref: plainB.ref, desc: src1)
        }
        var src0 = aLoc.desc, dst = try DNNL.any(ys)
        let alg: dnnl_alg_kind_t = [.add: dnnl_binary_add, .sub: dnnl_binary_sub, .mul: dnnl_binary_mul,
                                    .div: dnnl_binary_div][kind]!
        var d = dnnl_binary_desc_t()
        try DNNL.check(dnnl_binary_desc_init(&d, alg, &src0, &src1, &dst), "binary \(step.name)")
        guard let pd = DNNL.primitiveDesc(&d, attr: try DNNL.Attributes(postOps: step.postOps), engine: engine) else {
            return false
        }
        guard let dstMd = DNNL.query(pd, dnnl_query_dst_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let out = step.outputs[0]
        let y: Location
        if DNNL.equal(dstMd, aLoc.desc) && isDeadAfterCurrentStep(aLoc.ref) && aLoc.ref != bLoc.ref {
            alias(out, onto: aLoc, desc: dstMd)
            y = Location(ref: aLoc.ref, desc: dstMd)
        } else {
            y = newArena(dstMd, holding: out)
            location[out] = y
        }
        try emit(pd, [Argument(kind: Arg.src, desc: src0, ref: aLoc.ref),
                      Argument(kind: Arg.src1, desc: src1, ref: bLoc.ref),
                      Argument(kind: Arg.dst, desc: dstMd, ref: y.ref)], name: step.name)
        return true
    }

    mutating func concat(_ step: Step, axis: Int) throws -> Bool {
        var srcs: [Location] = []
        for v in step.inputs {
            if let l = location[v] {
                srcs.append(l)
            } else if program.isConstant(v) {
                srcs.append(try plainLocation(v))
            } else {
                return false
            }
        }
        var descs = srcs.map(\.desc)
        var pd: OpaquePointer?
        let attr = try DNNL.Attributes()
        guard dnnl_concat_primitive_desc_create(&pd, nil, Int32(descs.count), Int32(axis), &descs, attr.handle, engine)
                == dnnl_success, let pd else { return false }
        guard let dstMd = DNNL.query(pd, dnnl_query_dst_md) else { dnnl_primitive_desc_destroy(pd); return false }
        let y = newArena(dstMd, holding: step.outputs[0])
        location[step.outputs[0]] = y
        var args = srcs.enumerated().map { Argument(kind: Arg.multipleSrc + Int32($0.offset), desc: $0.element.desc, ref: $0.element.ref) }
        args.append(Argument(kind: Arg.dst, desc: dstMd, ref: y.ref))
        try emit(pd, args, name: step.name)
        return true
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

import Foundation
import Metronome

/// What a running process holds beyond its compiled plan: oneDNN's primitives (their
/// JIT-generated code and objects), measured when the plan is compiled, plus what some
/// implementations allocate once per process the first time they run, fitted on profiles.
///
/// The plan (weights, arena, scratchpad, inputs and outputs) is computed exactly. Compiling
/// creates oneDNN's primitives, and with them nearly all the rest: the profile worker (and
/// `predict`, in a child process that runs nothing) reads it as the anonymous memory that
/// compiling and creating the executor left resident beyond the weights it wrote
/// (`compiled_runtime_bytes`). On the machines measured here that reading leaves −14 to +8 KiB
/// of the measured memory unexplained, except in networks with gemm-based convolutions, where
/// the first run adds about 3.8 MiB whatever their number or shapes (oneDNN generates its gemm
/// kernels lazily, once per process), and, before AVX-512, in networks whose inner products run
/// on oneDNN's sgemm (see ``key(_:)``). So the model is
/// `anon_rss_bytes − planned_bytes − compiled_runtime_bytes ≈ a + c·(threads − 1) + Σ over the
/// implementations present of o[implementation]`, every o ≥ 0, fitted by least squares on
/// relative error (a 5 MiB network counts as much as a 500 MiB one), each o pulled towards 0
/// by a small ridge penalty (implementations present in nearly every network are otherwise
/// not told apart from the constant). An implementation never profiled adds nothing.
public struct RuntimeMemory: Codable, Sendable, Equatable {
    public var constantBytes: Double
    public var bytesPerExtraThread: Double
    /// Bytes allocated once per process when an implementation first runs, by ``key(_:)``
    /// (`primitive:implementation`); every profiled implementation has an entry.
    public var onceBytesPerImplementation: [String: Double]
    /// Configurations the constants were fitted on.
    public var configurations: Int

    public init(constantBytes: Double, bytesPerExtraThread: Double, onceBytesPerImplementation: [String: Double] = [:],
                configurations: Int) {
        self.constantBytes = constantBytes
        self.bytesPerExtraThread = bytesPerExtraThread
        self.onceBytesPerImplementation = onceBytesPerImplementation
        self.configurations = configurations
    }

    enum CodingKeys: String, CodingKey {
        case constantBytes = "constant_bytes", bytesPerExtraThread = "bytes_per_extra_thread"
        case onceBytesPerImplementation = "once_bytes_per_implementation", configurations
    }

    /// How a kernel's implementation is named here: oneDNN's primitive kind and implementation,
    /// except oneDNN's sgemm (`x64:gemm:jit`), which gemm-based convolutions and, before
    /// AVX-512, inner products share: one key, `x64:gemm:jit`, since its buffers are set up once
    /// per process whichever primitive runs it first, and `x64:gemm:jit/gemv` for an inner
    /// product or matmul of one row, which takes another path. Measured 2026-12-02 on an AVX2
    /// EPYC: about 120 KiB for one row and 1.8 MiB for more, whatever the shapes and threads
    /// (118-131 KiB at batch 1, 1807-1848 KiB at batch 4 to 256, two networks, 1 and 2
    /// threads); fitted per primitive, a network with both paid twice and one with inner
    /// products alone was predicted 0.5 MiB short.
    public static func key(_ kernel: KernelInfo) -> String {
        guard kernel.implementation.hasSuffix("gemm:jit") else { return "\(kernel.primitive):\(kernel.implementation)" }
        // An inner product's rows are its batch; a matmul's, every dimension but the last.
        let rows = kernel.primitive == "inner_product" ? kernel.srcShape.first ?? 0 : kernel.srcShape.dropLast().reduce(1, *)
        let gemv = ["inner_product", "matmul"].contains(kernel.primitive) && kernel.srcShape.count >= 2 && rows == 1
        return kernel.implementation + (gemv ? "/gemv" : "")
    }

    /// The implementations a plan of `kernels` uses, each once.
    public static func implementations(_ kernels: [KernelInfo]) -> [String] { Array(Set(kernels.map(key))).sorted() }

    /// Implementations among `kernels` that the fit never saw (they are counted as adding nothing).
    public func unprofiled(_ kernels: [KernelInfo]) -> [String] {
        Self.implementations(kernels).filter { onceBytesPerImplementation[$0] == nil }
    }

    /// The bytes beyond the plan of a process that runs `kernels` with `threads` threads, given
    /// what compiling them left resident (`compiledBytes`; never negative).
    public func bytes(kernels: [KernelInfo], threads: Int, compiledBytes: Int) -> Int {
        let once = Self.implementations(kernels).reduce(0.0) { $0 + (onceBytesPerImplementation[$1] ?? 0) }
        return Int(max(0, Double(compiledBytes) + constantBytes + once + bytesPerExtraThread * Double(max(threads - 1, 0))).rounded())
    }

    /// Fits the constants on configurations that carry the plan's bytes, the measured anonymous
    /// memory and the compiled bytes (profiles made since `profile` records them); nil when
    /// fewer than three do. A term whose column does not vary (one thread count) is left at zero.
    public static func fit(_ configurations: [ProfiledConfiguration]) -> RuntimeMemory? {
        // In MiB, so that the normal equations stay well conditioned.
        var samples: [(implementations: [String], threads: Double, measured: Double, excess: Double)] = []
        for c in configurations {
            guard let planned = c.model.plannedBytes, let compiled = c.model.compiledRuntimeBytes,
                  let measured = c.model.anonymousRSSBytes, measured > 0, !c.kernels.isEmpty else { continue }
            let m = Double(measured) / 1_048_576
            samples.append((implementations(c.kernels), Double(max(c.model.threads - 1, 0)), m,
                            (m - Double(planned + compiled) / 1_048_576) / m))
        }
        guard samples.count >= 3 else { return nil }
        let threadsVary = Set(samples.map(\.threads)).count > 1
        let names = Array(Set(samples.flatMap(\.implementations))).sorted()
        let column = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        let fixed = threadsVary ? 2 : 1
        let data = samples.map { s -> [Double] in
            var row = [Double](repeating: 0, count: fixed + names.count)
            row[0] = 1 / s.measured
            if threadsVary { row[1] = s.threads / s.measured }
            for name in s.implementations { row[fixed + column[name]!] = 1 / s.measured }
            return row
        }
        let diagonal = (0..<names.count).map { j in data.reduce(0.0) { $0 + $1[fixed + j] * $1[fixed + j] } }
        let penalty = (1e-6 * diagonal.reduce(0, +) / Double(max(diagonal.count, 1))).squareRoot()
        let mib = 1_048_576.0
        // Bytes cannot be negative: an implementation whose fitted bytes are is fixed at zero and
        // the rest refitted (an active set).
        var active = Array(0..<names.count)
        while true {
            let columns = Array(0..<fixed) + active.map { fixed + $0 }
            var rows = data.map { row in columns.map { row[$0] } }
            var targets = samples.map(\.excess)
            for j in active.indices {
                var row = [Double](repeating: 0, count: columns.count)
                row[fixed + j] = penalty
                rows.append(row)
                targets.append(0)
            }
            guard let solution = LeastSquares.solve(rows, targets) else { return nil }
            let negative = Set(active.indices.filter { solution[fixed + $0] < 0 }.map { active[$0] })
            if !negative.isEmpty {
                active.removeAll { negative.contains($0) }
                continue
            }
            var once = Dictionary(uniqueKeysWithValues: names.map { ($0, 0.0) })
            for (j, i) in active.enumerated() { once[names[i]] = solution[fixed + j] * mib }
            return RuntimeMemory(constantBytes: solution[0] * mib, bytesPerExtraThread: threadsVary ? solution[1] * mib : 0,
                                 onceBytesPerImplementation: once, configurations: samples.count)
        }
    }
}

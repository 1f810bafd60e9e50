import Foundation
import Metronome

/// What a running process holds beyond its compiled plan, measured: oneDNN's JIT-generated
/// kernel code and the buffers some implementations keep outside the scratchpad, which no plan
/// counts.
///
/// The plan (weights, arena, scratchpad, inputs and outputs) is computed exactly; this is the
/// rest, fitted on profiled configurations by least squares on relative error (so that a 5 MiB
/// network counts as much as a 500 MiB one) as `anon_rss_bytes − planned_bytes ≈ a + c·(threads
/// − 1) + Σ over distinct kernels of b[implementation]`, every b ≥ 0. The per-implementation bytes differ
/// by an order of magnitude (a gemm-based convolution holds about 1 MiB, a blocked convolution
/// about 0.1 MiB); each is pulled towards the all-kernel average `b` by a small ridge penalty,
/// so an implementation seen in a few networks gets a sane value, and one never seen gets `b`. It is
/// the memory counterpart of the predictor's dispatch overhead: measured constants beside an
/// exact computation.
public struct RuntimeMemory: Codable, Sendable, Equatable {
    public var constantBytes: Double
    /// The all-kernel average: what a kernel of an implementation never profiled holds.
    public var bytesPerKernel: Double
    public var bytesPerExtraThread: Double
    /// Bytes per kernel by ``key(_:)`` (`primitive:implementation`).
    public var bytesPerImplementation: [String: Double]
    /// Configurations the constants were fitted on.
    public var configurations: Int

    public init(constantBytes: Double, bytesPerKernel: Double, bytesPerExtraThread: Double,
                bytesPerImplementation: [String: Double] = [:], configurations: Int) {
        self.constantBytes = constantBytes; self.bytesPerKernel = bytesPerKernel
        self.bytesPerExtraThread = bytesPerExtraThread; self.bytesPerImplementation = bytesPerImplementation
        self.configurations = configurations
    }

    enum CodingKeys: String, CodingKey {
        case constantBytes = "constant_bytes", bytesPerKernel = "bytes_per_kernel"
        case bytesPerExtraThread = "bytes_per_extra_thread", bytesPerImplementation = "bytes_per_implementation", configurations
    }

    /// How a kernel's implementation is named here: oneDNN's primitive kind and implementation.
    public static func key(_ kernel: KernelInfo) -> String { "\(kernel.primitive):\(kernel.implementation)" }

    /// What makes two kernels one oneDNN primitive: the implementation, shapes, layouts,
    /// parameters and post-ops (not the name or the position in the plan).
    public static func signature(_ k: KernelInfo) -> String {
        [key(k), "\(k.srcShape)", "\(k.weightsShape)", "\(k.dstShape)", k.srcLayout, k.dstLayout, "\(k.kernelShape)",
         "\(k.strides)", "\(k.dilations)", "\(k.groups)", k.postOps.joined(separator: "+")].joined(separator: "|")
    }

    /// The kernels with distinct ``signature(_:)``s, first occurrences in order. oneDNN keeps
    /// one primitive, and one copy of its JIT code, for identical kernels (its primitive
    /// cache), so a plan's runtime memory grows with these, not with every kernel (counted
    /// that way, the held-out error of the fit falls by about half; README).
    public static func distinct(_ kernels: [KernelInfo]) -> [KernelInfo] {
        var seen = Set<String>()
        return kernels.filter { seen.insert(signature($0)).inserted }
    }

    /// The runtime's bytes for a plan of `kernels` run with `threads` threads (never negative).
    public func bytes(kernels: [KernelInfo], threads: Int) -> Int {
        let perKernel = Self.distinct(kernels).reduce(0.0) { $0 + (bytesPerImplementation[Self.key($1)] ?? bytesPerKernel) }
        return Int(max(0, constantBytes + perKernel + bytesPerExtraThread * Double(max(threads - 1, 0))).rounded())
    }

    /// Fits the constants on configurations that carry both the plan's bytes and the measured
    /// anonymous memory (profiles made since `profile` records them); nil when fewer than three
    /// do. A term whose column does not vary (one thread count) is left at zero.
    public static func fit(_ configurations: [ProfiledConfiguration]) -> RuntimeMemory? {
        // In MiB, so that the normal equations stay well conditioned.
        var samples: [(kernels: [KernelInfo], threads: Double, measured: Double, excess: Double)] = []
        for c in configurations {
            let kernels = distinct(c.kernels)
            guard let planned = c.model.plannedBytes, let measured = c.model.anonymousRSSBytes, measured > 0, !kernels.isEmpty else { continue }
            let m = Double(measured) / 1_048_576
            samples.append((kernels, Double(max(c.model.threads - 1, 0)), m, (m - Double(planned) / 1_048_576) / m))
        }
        guard samples.count >= 3 else { return nil }
        let threadsVary = Set(samples.map(\.threads)).count > 1
        // First the average: a + b·kernels (+ c·extra threads).
        let simpleRows = samples.map { s in [1 / s.measured, Double(s.kernels.count) / s.measured] + (threadsVary ? [s.threads / s.measured] : []) }
        guard let simple = LeastSquares.solve(simpleRows, samples.map(\.excess)) else { return nil }
        let average = simple[1]
        // Then one b per implementation, each pulled towards the average. Bytes cannot be
        // negative: an implementation whose fitted bytes are is fixed at zero and the rest
        // refitted (an active set; collinear counts otherwise trade large opposite values).
        let implementations = Array(Set(samples.flatMap { $0.kernels.map(key) })).sorted()
        let column = Dictionary(uniqueKeysWithValues: implementations.enumerated().map { ($1, $0) })
        let fixed = threadsVary ? 2 : 1
        let data = samples.map { s -> [Double] in
            var row = [Double](repeating: 0, count: fixed + implementations.count)
            row[0] = 1 / s.measured
            if threadsVary { row[1] = s.threads / s.measured }
            for k in s.kernels { row[fixed + column[key(k)]!] += 1 / s.measured }
            return row
        }
        let diagonal = (0..<implementations.count).map { j in data.reduce(0.0) { $0 + $1[fixed + j] * $1[fixed + j] } }
        let penalty = (5e-4 * diagonal.reduce(0, +) / Double(max(diagonal.count, 1))).squareRoot()
        let mib = 1_048_576.0
        var active = Array(0..<implementations.count)
        while true {
            let columns = Array(0..<fixed) + active.map { fixed + $0 }
            var rows = data.map { row in columns.map { row[$0] } }
            var targets = samples.map(\.excess)
            for j in active.indices {
                var row = [Double](repeating: 0, count: columns.count)
                row[fixed + j] = penalty
                rows.append(row)
                targets.append(penalty * average)
            }
            guard let solution = LeastSquares.solve(rows, targets) else {
                return RuntimeMemory(constantBytes: simple[0] * mib, bytesPerKernel: average * mib,
                                     bytesPerExtraThread: threadsVary ? simple[2] * mib : 0, configurations: samples.count)
            }
            let negative = Set(active.indices.filter { solution[fixed + $0] < 0 }.map { active[$0] })
            if !negative.isEmpty {
                active.removeAll { negative.contains($0) }
                continue
            }
            var perImplementation = Dictionary(uniqueKeysWithValues: implementations.map { ($0, 0.0) })
            for (j, i) in active.enumerated() { perImplementation[implementations[i]] = solution[fixed + j] * mib }
            return RuntimeMemory(constantBytes: solution[0] * mib, bytesPerKernel: average * mib,
                                 bytesPerExtraThread: threadsVary ? solution[1] * mib : 0,
                                 bytesPerImplementation: perImplementation, configurations: samples.count)
        }
    }
}

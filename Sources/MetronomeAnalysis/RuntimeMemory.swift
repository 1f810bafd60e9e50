import Foundation

/// What a running process holds beyond its compiled plan, measured: oneDNN's JIT-generated
/// kernel code and the runtime's per-kernel objects, which no plan counts.
///
/// The plan (weights, arena, scratchpad, inputs and outputs) is computed exactly; this is the
/// rest, fitted on profiled configurations as `anon_rss_bytes − planned_bytes ≈ a + b·kernels +
/// c·(threads − 1)` by least squares on relative error, so that a 5 MiB network counts as much
/// as a 500 MiB one. It is the memory counterpart of the predictor's dispatch overhead: a few
/// measured constants beside an exact computation, not a learned model.
public struct RuntimeMemory: Codable, Sendable, Equatable {
    public var constantBytes: Double
    public var bytesPerKernel: Double
    public var bytesPerExtraThread: Double
    /// Configurations the constants were fitted on.
    public var configurations: Int

    public init(constantBytes: Double, bytesPerKernel: Double, bytesPerExtraThread: Double, configurations: Int) {
        self.constantBytes = constantBytes; self.bytesPerKernel = bytesPerKernel
        self.bytesPerExtraThread = bytesPerExtraThread; self.configurations = configurations
    }

    enum CodingKeys: String, CodingKey {
        case constantBytes = "constant_bytes", bytesPerKernel = "bytes_per_kernel"
        case bytesPerExtraThread = "bytes_per_extra_thread", configurations
    }

    /// The runtime's bytes for a plan of `kernels` kernels run with `threads` threads (never
    /// negative).
    public func bytes(kernels: Int, threads: Int) -> Int {
        Int(max(0, constantBytes + bytesPerKernel * Double(kernels) + bytesPerExtraThread * Double(max(threads - 1, 0))).rounded())
    }

    /// Fits the constants on configurations that carry both the plan's bytes and the measured
    /// anonymous memory (profiles made since `profile` records them); nil when fewer than three
    /// do. A term whose column does not vary (one thread count) is left at zero.
    public static func fit(_ configurations: [ProfiledConfiguration]) -> RuntimeMemory? {
        // In MiB, so that the normal equations stay well conditioned.
        var raw: [[Double]] = [], measuredMiB: [Double] = [], targets: [Double] = []
        for c in configurations {
            guard let planned = c.model.plannedBytes, let measured = c.model.anonymousRSSBytes, measured > 0, !c.layers.isEmpty else { continue }
            let m = Double(measured) / 1_048_576
            raw.append([1, Double(c.layers.count), Double(max(c.model.threads - 1, 0))])
            measuredMiB.append(m)
            targets.append((m - Double(planned) / 1_048_576) / m)
        }
        guard raw.count >= 3 else { return nil }
        let columns = (0..<3).filter { j in j == 0 || Set(raw.map { $0[j] }).count > 1 }
        let rows = zip(raw, measuredMiB).map { r, m in columns.map { r[$0] / m } }
        guard let solution = leastSquares(rows, targets) else { return nil }
        var coefficients = [0.0, 0.0, 0.0]
        for (k, j) in columns.enumerated() { coefficients[j] = solution[k] * 1_048_576 }
        return RuntimeMemory(constantBytes: coefficients[0], bytesPerKernel: coefficients[1], bytesPerExtraThread: coefficients[2],
                             configurations: raw.count)
    }

    /// Least squares through the normal equations, by Gaussian elimination with partial
    /// pivoting; nil when they are singular.
    static func leastSquares(_ x: [[Double]], _ y: [Double]) -> [Double]? {
        let n = x.first?.count ?? 0
        guard n > 0 else { return nil }
        var a = [[Double]](repeating: [Double](repeating: 0, count: n + 1), count: n)
        for (r, v) in zip(x, y) {
            for i in 0..<n {
                for j in 0..<n { a[i][j] += r[i] * r[j] }
                a[i][n] += r[i] * v
            }
        }
        let scale = (0..<n).map { a[$0][$0] }.max() ?? 0
        guard scale > 0 else { return nil }
        for col in 0..<n {
            guard let pivot = (col..<n).max(by: { abs(a[$0][col]) < abs(a[$1][col]) }), abs(a[pivot][col]) > 1e-12 * scale else { return nil }
            a.swapAt(col, pivot)
            for row in 0..<n where row != col {
                let f = a[row][col] / a[col][col]
                for k in col...n { a[row][k] -= f * a[col][k] }
            }
        }
        return (0..<n).map { a[$0][n] / a[$0][$0] }
    }
}

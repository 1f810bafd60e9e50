import Foundation

/// A probabilistic WCET from measured execution times, in the style of measurement-based
/// probabilistic timing analysis (MBPTA): the samples are cut into blocks, a Gumbel
/// distribution is fitted to the block maxima by maximum likelihood, and the bound is the
/// value that one job exceeds with probability at most `exceedanceProbability`.
///
/// Why: a measured maximum times a margin says nothing about how likely it is to be exceeded,
/// and one host-level slowdown during a run can exceed it. Extreme-value theory gives the tail
/// of the maxima from the shape of the samples' upper part, with a stated probability.
///
/// What it covers, and what not: the bound is only as good as the samples. It covers the
/// conditions the samples were taken under (e.g. contended timing: other tasks running on the
/// other cores); it does not cover conditions never seen while sampling (a noisier neighbour,
/// frequency scaling, another VM on the host). The fit assumes the samples are independent and
/// identically distributed; ``independent`` (Ljung–Box) and ``identicallyDistributed``
/// (two-half Kolmogorov–Smirnov) report whether the samples look so, and when either fails the
/// probability attached to the bound is not trustworthy.
///
/// Per job: if one block maximum is Gumbel(μ, β) and jobs are i.i.d., a single job exceeds x
/// with probability p where (1 − p)^b = G(x), so the bound is the Gumbel quantile at
/// G = (1 − p)^b: x = μ − β·ln(−b·ln(1 − p)).
public struct ProbabilisticWCET: Sendable, Equatable {
    /// The bound, ns: the Gumbel quantile, but never below the largest sample (a fit whose
    /// extreme quantile lies under an observed value is contradicted by the data).
    public let boundNs: Double
    /// The Gumbel quantile alone, ns (may be below ``observedMaxNs`` when the fit is poor).
    public let quantileNs: Double
    /// Probability that one job's execution time exceeds the quantile.
    public let exceedanceProbability: Double
    public let blockSize: Int
    /// Number of complete blocks fitted; samples after the last complete block are not used
    /// in the fit (they still count for ``observedMaxNs`` and the i.i.d. tests).
    public let blocks: Int
    /// Fitted Gumbel location μ and scale β of the block maxima, ns.
    public let location: Double
    public let scale: Double
    public let observedMaxNs: Double
    /// Lag-1 autocorrelation of the samples in their measured order.
    public let lag1Autocorrelation: Double
    /// Ljung–Box Q over ``ljungBoxLags`` lags, and its 5 % critical value (χ² with that many
    /// degrees of freedom, Wilson–Hilferty approximation).
    public let ljungBox: Double
    public let ljungBoxLags: Int
    public let ljungBoxCritical: Double
    /// Two-sample Kolmogorov–Smirnov statistic between the first and second half of the
    /// samples, and its 5 % critical value 1.358·√((n₁ + n₂)/(n₁n₂)).
    public let ksStatistic: Double
    public let ksCritical: Double

    /// No significant autocorrelation (Ljung–Box at the 5 % level).
    public var independent: Bool { ljungBox <= ljungBoxCritical }
    /// The two halves of the run look alike (two-sample KS at the 5 % level): no drift.
    public var identicallyDistributed: Bool { ksStatistic <= ksCritical }
    /// Both i.i.d. checks pass; when false the stated probability is not supported by the data.
    public var iidPassed: Bool { independent && identicallyDistributed }

    /// Fewest block maxima the fit accepts: fewer leave the Gumbel scale too uncertain to
    /// extrapolate to small exceedance probabilities.
    public static let minimumBlocks = 20

    /// Fits the samples (execution times in ns, in measured order).
    /// - Parameters:
    ///   - blockSize: samples per block (≥ 1); the last incomplete block is left out of the fit.
    ///   - exceedanceProbability: per job, in (0, 1); 1e-9 by default.
    /// - Throws: ``ProbabilisticWCETError`` for fewer than ``minimumBlocks`` blocks or invalid
    ///   parameters.
    public static func estimate(samples: [UInt64], blockSize: Int = 10,
                                exceedanceProbability: Double = 1e-9) throws -> ProbabilisticWCET {
        guard blockSize >= 1 else { throw ProbabilisticWCETError("block size must be at least 1, got \(blockSize)") }
        guard exceedanceProbability > 0, exceedanceProbability < 1 else {
            throw ProbabilisticWCETError("exceedance probability must lie in (0, 1), got \(exceedanceProbability)")
        }
        let blocks = samples.count / blockSize
        guard blocks >= minimumBlocks else {
            throw ProbabilisticWCETError(
                "\(samples.count) samples give \(blocks) blocks of \(blockSize); the Gumbel fit needs at least "
                    + "\(minimumBlocks) blocks (\(minimumBlocks * blockSize) samples): take more timing runs or use smaller blocks")
        }
        let x = samples.map { Double($0) }
        let maxima = (0..<blocks).map { k in x[(k * blockSize)..<((k + 1) * blockSize)].max()! }
        let (mu, beta) = try fitGumbel(maxima)
        let quantile = perJobBound(location: mu, scale: beta, blockSize: blockSize, exceedanceProbability: exceedanceProbability)
        let observedMax = x.max()!
        let lags = max(1, min(10, x.count / 5))
        let lb = ljungBox(x, lags: lags)
        let half = x.count / 2
        return ProbabilisticWCET(
            boundNs: max(quantile, observedMax), quantileNs: quantile, exceedanceProbability: exceedanceProbability,
            blockSize: blockSize, blocks: blocks, location: mu, scale: beta, observedMaxNs: observedMax,
            lag1Autocorrelation: autocorrelation(x, lag: 1), ljungBox: lb, ljungBoxLags: lags,
            ljungBoxCritical: chiSquaredCritical95(degreesOfFreedom: lags),
            ksStatistic: kolmogorovSmirnov(Array(x[..<half]), Array(x[half...])),
            ksCritical: 1.358 * ((Double(half) + Double(x.count - half)) / (Double(half) * Double(x.count - half))).squareRoot())
    }

    /// The value one job exceeds with probability `p` when block maxima of `blockSize` jobs are
    /// Gumbel(location, scale): the quantile at G = (1 − p)^b, computed as −ln G = −b·log1p(−p)
    /// so that p = 1e-9 keeps its precision.
    public static func perJobBound(location: Double, scale: Double, blockSize: Int, exceedanceProbability p: Double) -> Double {
        gumbelQuantile(location: location, scale: scale, nonExceedance: -Double(blockSize) * Foundation.log1p(-p))
    }

    /// The Gumbel quantile x with G(x) = exp(−exp(−(x − μ)/β)) = exp(−minusLogG), i.e.
    /// x = μ − β·ln(minusLogG). Taking −ln G keeps precision at non-exceedance probabilities
    /// like 1 − 1e-9 that a Double cannot hold distinctly from 1 otherwise.
    public static func gumbelQuantile(location: Double, scale: Double, nonExceedance minusLogG: Double) -> Double {
        location - scale * Foundation.log(minusLogG)
    }

    /// The Gumbel quantile at a plain non-exceedance probability `q` in (0, 1).
    public static func gumbelQuantile(location: Double, scale: Double, probability q: Double) -> Double {
        gumbelQuantile(location: location, scale: scale, nonExceedance: -Foundation.log(q))
    }

    /// Maximum-likelihood Gumbel fit (location μ, scale β). The likelihood equation for β,
    /// β = x̄ − Σ xᵢe^(−xᵢ/β) / Σ e^(−xᵢ/β), is solved by Newton's method from the
    /// method-of-moments start β₀ = s·√6/π; then μ = −β·ln(mean(e^(−xᵢ/β))). Values are centred
    /// and exponentials shifted by the minimum so nothing overflows. Identical values give
    /// scale 0.
    public static func fitGumbel(_ x: [Double]) throws -> (location: Double, scale: Double) {
        guard x.count >= 2 else { throw ProbabilisticWCETError("a Gumbel fit needs at least 2 values, got \(x.count)") }
        let n = Double(x.count)
        let mean = x.reduce(0, +) / n
        let y = x.map { $0 - mean }
        let sd = (y.reduce(0) { $0 + $1 * $1 } / (n - 1)).squareRoot()
        guard sd > 0 else { return (mean, 0) }
        let yMin = y.min()!
        var beta = sd * 6.0.squareRoot() / Double.pi
        func sums(_ beta: Double) -> (s0: Double, s1: Double, s2: Double) {
            var s0 = 0.0, s1 = 0.0, s2 = 0.0
            for v in y {
                let w = Foundation.exp(-(v - yMin) / beta)
                s0 += w
                s1 += v * w
                s2 += v * v * w
            }
            return (s0, s1, s2)
        }
        var converged = false
        for _ in 0..<200 {
            let (s0, s1, s2) = sums(beta)
            let f = beta + s1 / s0
            let df = 1 + (s2 / s0 - (s1 / s0) * (s1 / s0)) / (beta * beta)
            var next = beta - f / df
            if !(next > 0) || !next.isFinite { next = beta / 2 }
            let done = abs(next - beta) <= 1e-12 * beta
            beta = next
            if done { converged = true; break }
        }
        guard converged else { throw ProbabilisticWCETError("the Gumbel maximum-likelihood fit did not converge") }
        let s0 = sums(beta).s0
        return (mean + yMin - beta * Foundation.log(s0 / n), beta)
    }

    /// Sample autocorrelation at `lag` (biased estimator, as in Ljung–Box).
    static func autocorrelation(_ x: [Double], lag: Int) -> Double {
        let n = x.count
        guard lag < n else { return 0 }
        let mean = x.reduce(0, +) / Double(n)
        var den = 0.0, num = 0.0
        for v in x { den += (v - mean) * (v - mean) }
        for i in 0..<(n - lag) { num += (x[i] - mean) * (x[i + lag] - mean) }
        return den > 0 ? num / den : 0
    }

    /// Ljung–Box Q = n(n + 2)·Σₖ r²ₖ/(n − k), k = 1…lags.
    static func ljungBox(_ x: [Double], lags: Int) -> Double {
        let n = Double(x.count)
        var q = 0.0
        for k in 1...lags { let r = autocorrelation(x, lag: k); q += r * r / (n - Double(k)) }
        return n * (n + 2) * q
    }

    /// Upper 5 % point of χ² with `k` degrees of freedom (Wilson–Hilferty; within 0.2 % of the
    /// tables for k ≥ 3).
    static func chiSquaredCritical95(degreesOfFreedom k: Int) -> Double {
        let d = Double(k), z = 1.6448536269514722
        let t = 1 - 2 / (9 * d) + z * (2 / (9 * d)).squareRoot()
        return d * t * t * t
    }

    /// Two-sample Kolmogorov–Smirnov statistic sup |F₁ − F₂|.
    static func kolmogorovSmirnov(_ a: [Double], _ b: [Double]) -> Double {
        let a = a.sorted(), b = b.sorted()
        var i = 0, j = 0, d = 0.0
        while i < a.count && j < b.count {
            let v = min(a[i], b[j])
            while i < a.count && a[i] == v { i += 1 }
            while j < b.count && b[j] == v { j += 1 }
            d = max(d, abs(Double(i) / Double(a.count) - Double(j) / Double(b.count)))
        }
        return d
    }
}

/// Why a probabilistic WCET could not be estimated.
public struct ProbabilisticWCETError: Error, CustomStringConvertible, Equatable {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { "probabilistic WCET: \(message)" }
}

import Foundation
import Metronome
import MetronomeRealtime
import XCTest

/// The Gumbel fit and the bound against closed forms and seeded synthetic samples whose
/// distribution is known, never against the implementation's own earlier output.
final class ProbabilisticWCETTests: XCTestCase {
    /// A uniform in (0, 1) from 53 random bits.
    static func uniform(_ g: inout SplitMix64) -> Double { (Double(g.next() >> 11) + 0.5) / 9_007_199_254_740_992 }

    /// Gumbel(μ, β) by inversion: x = μ − β·ln(−ln U).
    static func gumbel(_ n: Int, location: Double, scale: Double, seed: UInt64) -> [UInt64] {
        var g = SplitMix64(seed: seed)
        return (0..<n).map { _ in UInt64((location - scale * log(-log(uniform(&g)))).rounded()) }
    }

    func testRecoversGumbelParametersFromGumbelSamples() throws {
        // Samples are Gumbel(5 ms, 0.2 ms); with blocks of one the fit sees them directly.
        // MLE standard errors at n = 20 000 are about 0.007β (location) and 0.006β (scale).
        let fit = try ProbabilisticWCET.estimate(samples: Self.gumbel(20_000, location: 5e6, scale: 2e5, seed: 7), blockSize: 1)
        XCTAssertEqual(fit.blocks, 20_000)
        XCTAssertEqual(fit.location, 5e6, accuracy: 0.03 * 2e5)
        XCTAssertEqual(fit.scale, 2e5, accuracy: 0.03 * 2e5)
    }

    func testBlockMaximaOfGumbelSamplesShiftByScaleTimesLogBlockSize() throws {
        // Max-stability: the maximum of b Gumbel(μ, β) values is Gumbel(μ + β·ln b, β).
        let fit = try ProbabilisticWCET.estimate(samples: Self.gumbel(50_000, location: 1e6, scale: 1e5, seed: 11), blockSize: 10)
        XCTAssertEqual(fit.blocks, 5_000)
        XCTAssertEqual(fit.location, 1e6 + 1e5 * log(10), accuracy: 0.06 * 1e5)
        XCTAssertEqual(fit.scale, 1e5, accuracy: 0.06 * 1e5)
    }

    func testBlockMaximaOfExponentialSamplesApproachGumbel() throws {
        // The maximum of b exponentials of mean θ tends to Gumbel(θ·ln b, θ): the situation of
        // execution times that are not Gumbel themselves.
        var g = SplitMix64(seed: 3)
        let theta = 50_000.0
        let samples = (0..<200_000).map { _ in UInt64((2e6 - theta * log(Self.uniform(&g))).rounded()) }
        let fit = try ProbabilisticWCET.estimate(samples: samples, blockSize: 100)
        XCTAssertEqual(fit.location, 2e6 + theta * log(100), accuracy: 0.1 * theta)
        XCTAssertEqual(fit.scale, theta, accuracy: 0.1 * theta)
    }

    func testQuantilesMatchHandComputedValues() {
        // Median of Gumbel(100, 10): 100 − 10·ln(ln 2) = 103.66512920...
        XCTAssertEqual(ProbabilisticWCET.gumbelQuantile(location: 100, scale: 10, probability: 0.5), 103.6651292, accuracy: 1e-6)
        // One job in 1e9 with blocks of one: 100 − 10·ln(1e-9) = 100 + 10·20.7232658369 = 307.232658369.
        XCTAssertEqual(ProbabilisticWCET.perJobBound(location: 100, scale: 10, blockSize: 1, exceedanceProbability: 1e-9),
                       307.2326584, accuracy: 1e-6)
        // Blocks of ten: the block maximum exceeds it with probability ≈ 10·1e-9, so
        // 100 − 10·ln(1e-8) = 284.206807440.
        XCTAssertEqual(ProbabilisticWCET.perJobBound(location: 100, scale: 10, blockSize: 10, exceedanceProbability: 1e-9),
                       284.2068074, accuracy: 1e-6)
    }

    func testBoundUsesTheFitAndNeverFallsBelowTheObservedMaximum() throws {
        let samples = Self.gumbel(2_000, location: 1e6, scale: 1e4, seed: 5)
        let fit = try ProbabilisticWCET.estimate(samples: samples, blockSize: 10, exceedanceProbability: 1e-6)
        XCTAssertEqual(fit.quantileNs, ProbabilisticWCET.perJobBound(location: fit.location, scale: fit.scale, blockSize: 10,
                                                                     exceedanceProbability: 1e-6), accuracy: 1e-6)
        XCTAssertEqual(fit.observedMaxNs, Double(samples.max()!))
        XCTAssertGreaterThanOrEqual(fit.boundNs, fit.observedMaxNs)
        // For Gumbel(1 ms, 10 µs) samples the true 1e-6 per-job quantile is 1 ms + 10 µs·13.8155 = 1.138 ms.
        // The fitted scale from 200 maxima has a standard error near 5.5 %, multiplied by the
        // 13.8 scale units of the excess: allow 20 % of the excess (about 3.5 standard errors).
        XCTAssertEqual(fit.boundNs, 1e6 + 1e4 * 13.815510557964274, accuracy: 0.2 * 1e4 * 13.815510557964274)
        // A smaller exceedance probability gives a larger bound.
        let stricter = try ProbabilisticWCET.estimate(samples: samples, blockSize: 10, exceedanceProbability: 1e-12)
        XCTAssertGreaterThan(stricter.boundNs, fit.boundNs)
    }

    func testIIDChecksPassForIndependentSamplesAndFlagDriftAndAutocorrelation() throws {
        let iid = try ProbabilisticWCET.estimate(samples: Self.gumbel(2_000, location: 1e6, scale: 1e4, seed: 13))
        XCTAssertTrue(iid.iidPassed, "Q \(iid.ljungBox) vs \(iid.ljungBoxCritical), KS \(iid.ksStatistic) vs \(iid.ksCritical)")
        XCTAssertEqual(iid.lag1Autocorrelation, 0, accuracy: 0.1)

        // A slow drift: the second half is slower than the first.
        let drifting = Self.gumbel(2_000, location: 1e6, scale: 1e4, seed: 17).enumerated().map { $1 + UInt64($0 * 20) }
        let drift = try ProbabilisticWCET.estimate(samples: drifting)
        XCTAssertFalse(drift.identicallyDistributed)
        XCTAssertFalse(drift.iidPassed)

        // AR(1) with φ = 0.9: its lag-1 autocorrelation is 0.9.
        var g = SplitMix64(seed: 19)
        var v = 0.0
        let ar = (0..<4_000).map { _ -> UInt64 in
            v = 0.9 * v + Double(g.nextGaussian()) * 1e4
            return UInt64(1e6 + v)
        }
        let correlated = try ProbabilisticWCET.estimate(samples: ar)
        XCTAssertEqual(correlated.lag1Autocorrelation, 0.9, accuracy: 0.05)
        XCTAssertFalse(correlated.independent)
        XCTAssertFalse(correlated.iidPassed)
    }

    func testRefusesTooFewSamplesAndBadParameters() {
        let samples = Self.gumbel(150, location: 1e6, scale: 1e4, seed: 23)
        XCTAssertThrowsError(try ProbabilisticWCET.estimate(samples: samples, blockSize: 10)) { error in
            XCTAssertEqual("\(error)", "probabilistic WCET: 150 samples give 15 blocks of 10; the Gumbel fit needs at least "
                + "20 blocks (200 samples): take more timing runs or use smaller blocks")
        }
        XCTAssertNoThrow(try ProbabilisticWCET.estimate(samples: samples, blockSize: 5))
        XCTAssertThrowsError(try ProbabilisticWCET.estimate(samples: samples, blockSize: 0)) { error in
            XCTAssertTrue("\(error)".contains("block size must be at least 1"), "\(error)")
        }
        for p in [0.0, 1.0, -1e-9] {
            XCTAssertThrowsError(try ProbabilisticWCET.estimate(samples: samples, blockSize: 1, exceedanceProbability: p)) { error in
                XCTAssertTrue("\(error)".contains("exceedance probability must lie in (0, 1)"), "\(error)")
            }
        }
    }

    func testIdenticalSamplesGiveZeroScaleAndTheirValue() throws {
        let fit = try ProbabilisticWCET.estimate(samples: Array(repeating: 1234, count: 400))
        XCTAssertEqual(fit.scale, 0)
        XCTAssertEqual(fit.boundNs, 1234)
    }
}

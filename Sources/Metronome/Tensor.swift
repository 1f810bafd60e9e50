#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A dense float32 tensor in row-major (NCHW for images) order.
///
/// `Tensor` is a value type used at the edges of the engine: weights in a ``Graph``,
/// inputs and outputs of the reference interpreter, and test fixtures. The compiled
/// executor works on caller-owned buffers instead, so the run path never copies a `Tensor`.
public struct Tensor: Equatable, Sendable {
    public var shape: [Int]
    public var scalars: [Float]

    /// Creates a tensor, checking that `scalars` holds exactly `shape.product` elements.
    public init(shape: [Int], scalars: [Float]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw MetronomeError.invalidTensor("negative dimension in shape \(shape)")
        }
        let count = shape.reduce(1, *)
        guard count == scalars.count else {
            throw MetronomeError.invalidTensor(
                "shape \(shape) needs \(count) elements but \(scalars.count) were given")
        }
        self.shape = shape
        self.scalars = scalars
    }

    /// Creates a tensor filled with `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        self.shape = shape
        self.scalars = Array(repeating: value, count: shape.reduce(1, *))
    }

    /// Creates a tensor of uniform random values in `range` from a seeded generator,
    /// so that the same seed always gives the same weights.
    public init(shape: [Int], uniformIn range: ClosedRange<Float>, generator: inout SplitMix64) {
        self.shape = shape
        let count = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count { values[i] = generator.nextFloat(in: range) }
        self.scalars = values
    }

    public var count: Int { scalars.count }
    public var rank: Int { shape.count }
    public var byteCount: Int { scalars.count * MemoryLayout<Float>.stride }
}

extension Tensor {
    /// The largest absolute element-wise difference divided by the largest absolute value
    /// of `reference`: the relative error measure used throughout the test suite.
    public func relativeError(to reference: Tensor) -> Float {
        guard shape == reference.shape else { return .infinity }
        var maxDiff: Float = 0
        var maxRef: Float = 0
        for i in 0..<scalars.count {
            let d = abs(scalars[i] - reference.scalars[i])
            if d.isNaN { return .infinity }
            maxDiff = max(maxDiff, d)
            maxRef = max(maxRef, abs(reference.scalars[i]))
        }
        return maxRef > 0 ? maxDiff / maxRef : maxDiff
    }
}

/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64); deterministic
/// across platforms so that seeded model weights and test cases are reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A float uniformly distributed in `range`, built from the top 24 bits.
    public mutating func nextFloat(in range: ClosedRange<Float>) -> Float {
        let unit = Float(next() >> 40) / Float(1 << 24)
        return range.lowerBound + unit * (range.upperBound - range.lowerBound)
    }

    /// A float with an approximately normal distribution (Box–Muller).
    public mutating func nextGaussian() -> Float {
        let u1 = max(nextFloat(in: 0...1), 1e-7)
        let u2 = nextFloat(in: 0...1)
        return (-2 * logf(u1)).squareRoot() * cosf(2 * .pi * u2)
    }
}

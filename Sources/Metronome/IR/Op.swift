/// Geometry of a 2-D convolution. Pads are `[top, left, bottom, right]`.
public struct ConvAttributes: Equatable, Sendable {
    public var kernel: [Int]
    public var strides: [Int]
    public var pads: [Int]
    public var dilations: [Int]
    public var groups: Int

    public init(kernel: [Int], strides: [Int] = [1, 1], pads: [Int] = [0, 0, 0, 0],
                dilations: [Int] = [1, 1], groups: Int = 1) {
        self.kernel = kernel
        self.strides = strides
        self.pads = pads
        self.dilations = dilations
        self.groups = groups
    }
}

/// Geometry of a 2-D pooling window. Pads are `[top, left, bottom, right]`.
public struct PoolAttributes: Equatable, Sendable {
    public var kernel: [Int]
    public var strides: [Int]
    public var pads: [Int]
    public var dilations: [Int]
    public var ceilMode: Bool

    public init(kernel: [Int], strides: [Int], pads: [Int], dilations: [Int] = [1, 1], ceilMode: Bool = false) {
        self.kernel = kernel
        self.strides = strides
        self.pads = pads
        self.dilations = dilations
        self.ceilMode = ceilMode
    }
}

/// Element-wise activation functions; also used as fused post-operations.
public enum Eltwise: Equatable, Sendable {
    case relu
    case clip(min: Float, max: Float)
    case sigmoid
    /// `x · sigmoid(x)`, also called Swish.
    case silu
    /// `max(0, min(1, alpha·x + beta))`.
    case hardSigmoid(alpha: Float, beta: Float)
    /// `x · max(0, min(1, x/6 + 1/2))`.
    case hardSwish
    case tanh
    case leakyRelu(alpha: Float)

    @inline(__always)
    public func apply(_ x: Float) -> Float {
        switch self {
        case .relu: return x > 0 ? x : 0
        case .clip(let lo, let hi): return Swift.min(Swift.max(x, lo), hi)
        case .sigmoid: return 1 / (1 + expf(-x))
        case .silu: return x / (1 + expf(-x))
        case .hardSigmoid(let a, let b): return Swift.max(0, Swift.min(1, a * x + b))
        case .hardSwish: return x * Swift.max(0, Swift.min(1, x / 6 + 0.5))
        case .tanh: return tanhf(x)
        case .leakyRelu(let a): return x >= 0 ? x : a * x
        }
    }
}

public enum BinaryKind: String, Equatable, Sendable, CaseIterable {
    case add = "Add", sub = "Sub", mul = "Mul", div = "Div"

    @inline(__always)
    public func apply(_ a: Float, _ b: Float) -> Float {
        switch self {
        case .add: return a + b
        case .sub: return a - b
        case .mul: return a * b
        case .div: return a / b
        }
    }
}

/// The typed, validated operator of a ``Step``. Operator parameters that ONNX passes as
/// constant inputs (Clip bounds, Reshape shape, Slice bounds, Split sizes, Pad amounts)
/// are resolved into the case's payload, and negative axes are normalised.
public enum Op: Equatable, Sendable {
    /// Inputs: data, weight `[M, C/group, kh, kw]`, optional bias `[M]`.
    case conv(ConvAttributes)
    /// Inputs: data, scale, bias, mean, variance.
    case batchNorm(epsilon: Float)
    case eltwise(Eltwise)
    case maxPool(PoolAttributes)
    case averagePool(PoolAttributes, countIncludePad: Bool)
    case globalAveragePool
    case binary(BinaryKind)
    case concat(axis: Int)
    case split(axis: Int, sizes: [Int])
    /// One entry per sliced axis; `ends` are already clamped to the input's extent.
    case slice(starts: [Int], ends: [Int], axes: [Int], steps: [Int])
    /// Inputs: A, B, optional C.
    case gemm(alpha: Float, beta: Float, transA: Bool, transB: Bool)
    case matMul
    case flatten(axis: Int)
    /// The fully resolved output shape.
    case reshape(shape: [Int])
    case transpose(perm: [Int])
    case softmax(axis: Int)
    /// ONNX pad order: all begins, then all ends.
    case pad(pads: [Int], value: Float)
    case identity
}

/// Work fused onto the end of a step's computation, applied in order.
public enum PostOp: Equatable, Sendable {
    case eltwise(Eltwise)
    /// Adds another value of the same shape (a residual connection).
    case add(ValueID)
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

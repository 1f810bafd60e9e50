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
    /// The attributes of an operator that has no case here: a value of a type its file in
    /// `Ops/` defines. A new operator uses this, so adding one touches only its own file and
    /// the registry.
    case custom(CustomAttributes)
}

/// Type-erased, comparable attributes for ``Op/custom(_:)``.
public struct CustomAttributes: Equatable, Sendable, CustomStringConvertible {
    public let value: any Hashable & Sendable

    public init(_ value: some Hashable & Sendable) { self.value = value }

    /// The attributes as the operator's own type, or nil when they are of another type.
    public func `as`<T>(_ type: T.Type) -> T? { value as? T }

    public static func == (a: CustomAttributes, b: CustomAttributes) -> Bool {
        AnyHashable(a.value) == AnyHashable(b.value)
    }

    public var description: String { "\(value)" }
}

/// Work fused onto the end of a step's computation, applied in order.
public enum PostOp: Equatable, Sendable {
    case eltwise(Eltwise)
    /// Adds another value of the same shape (a residual connection).
    case add(ValueID)
}

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

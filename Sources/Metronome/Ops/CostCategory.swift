/// What kind of work a layer does; FLOPs are totalled per category so that multiply-accumulate
/// work is never mixed up with element-wise work.
public enum CostCategory: String, Codable, CaseIterable, Sendable {
    /// Convolution, Gemm, MatMul: FLOPs = 2 × MACs (their bias adds are counted as `bias`).
    case convolution = "conv_gemm"
    case bias
    case batchNorm = "batchnorm"
    case activation
    /// Binary Add/Sub/Mul/Div (residual adds, scaling).
    case elementwise
    case pooling
    case softmax
    /// Concat, Split, Slice, Flatten, Reshape, Transpose, Pad, Identity: no arithmetic.
    case dataMovement = "data_movement"
}

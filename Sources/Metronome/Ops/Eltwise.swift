#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CDNNL

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

extension Eltwise {
    /// oneDNN algorithms (with alpha, beta) computing this function, in order: used for
    /// stand-alone eltwise primitives and for post-ops fused onto other primitives.
    var oneDNNAlgorithms: [(dnnl_alg_kind_t, Float, Float)] {
        switch self {
        case .relu: return [(dnnl_eltwise_relu, 0, 0)]
        case .leakyRelu(let a): return [(dnnl_eltwise_relu, a, 0)]
        case .clip(let lo, let hi): return [(dnnl_eltwise_clip, lo, hi)]
        case .sigmoid: return [(dnnl_eltwise_logistic, 0, 0)]
        case .silu: return [(dnnl_eltwise_swish, 1, 0)]
        case .tanh: return [(dnnl_eltwise_tanh, 0, 0)]
        case .hardSwish: return [(dnnl_eltwise_hardswish, 0, 0)]
        case .hardSigmoid(let a, let b): return [(dnnl_eltwise_linear, a, b), (dnnl_eltwise_clip, 0, 1)]
        }
    }

    /// FLOPs per output element (the cost model's counting rule).
    var flopsPerElement: Int {
        switch self {
        case .relu: return 1
        case .leakyRelu: return 2
        case .clip: return 2
        case .sigmoid: return 4
        case .tanh: return 4
        case .hardSigmoid: return 4
        case .silu: return 5
        case .hardSwish: return 5
        }
    }
}

extension Eltwise {
    /// A short name for reports.
    var postOpName: String {
        switch self {
        case .relu: return "relu"
        case .clip: return "clip"
        case .sigmoid: return "sigmoid"
        case .silu: return "silu"
        case .hardSigmoid: return "hardsigmoid"
        case .hardSwish: return "hardswish"
        case .tanh: return "tanh"
        case .leakyRelu: return "leakyrelu"
        }
    }
}

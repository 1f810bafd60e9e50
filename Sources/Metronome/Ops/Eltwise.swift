#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CDNNL

/// Element-wise functions (the activations and the unary math operators); those with oneDNN
/// algorithms are also used as fused post-operations.
public enum Eltwise: Hashable, Sendable {
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
    /// The Gauss error function (no oneDNN eltwise computes it alone: reference only).
    case erf
    /// `x·Φ(x)` with the exact normal CDF, or its tanh approximation (ONNX `Gelu`,
    /// `approximate = "tanh"`).
    case gelu(tanh: Bool)
    case sqrt
    case exp
    case log
    case abs
    case neg
    case reciprocal
    /// `x` for `x ≥ 0`, else `alpha·(eˣ − 1)`.
    case elu(alpha: Float)
    /// `gamma·elu_alpha(x)`.
    case selu(alpha: Float, gamma: Float)
    /// `log(1 + eˣ)`.
    case softplus
    /// `x·tanh(softplus(x))`.
    case mish
    /// `xᵖ` for a constant exponent.
    case pow(exponent: Float)

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
        case .erf: return erff(x)
        case .gelu(let approximate):
            if approximate {
                let inner: Float = 0.7978845608028654 * (x + 0.044715 * x * x * x)
                return 0.5 * x * (1 + tanhf(inner))
            }
            return 0.5 * x * (1 + erff(x * 0.7071067811865476))
        case .sqrt: return sqrtf(x)
        case .exp: return expf(x)
        case .log: return logf(x)
        case .abs: return Swift.abs(x)
        case .neg: return -x
        case .reciprocal: return 1 / x
        case .elu(let a): return x >= 0 ? x : a * expm1f(x)
        case .selu(let a, let g): return g * (x > 0 ? x : a * expm1f(x))
        case .softplus: return Eltwise.logOnePlusExp(x)
        case .mish: return x * tanhf(Eltwise.logOnePlusExp(x))
        case .pow(let p): return powf(x, p)
        }
    }

    /// `log(1 + eˣ)` without overflow for large `x`.
    @inline(__always)
    static func logOnePlusExp(_ x: Float) -> Float {
        x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x))
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
        // No oneDNN algorithm computes Erf. oneDNN 2.6's log and soft_relu are approximations
        // outside ONNX's conformance tolerances (log(1) = -1.4e-6 where 0 is expected,
        // softplus(-10) 1.3 % low: test_log_example, test_mish_expanded), so Log and Softplus
        // run the reference kernel too, and none of the three is fused.
        case .erf, .log, .softplus: return []
        case .gelu(let approximate): return [(approximate ? dnnl_eltwise_gelu_tanh : dnnl_eltwise_gelu_erf, 0, 0)]
        case .sqrt: return [(dnnl_eltwise_sqrt, 0, 0)]
        case .exp: return [(dnnl_eltwise_exp, 0, 0)]
        case .abs: return [(dnnl_eltwise_abs, 0, 0)]
        case .neg: return [(dnnl_eltwise_linear, -1, 0)]
        case .reciprocal: return [(dnnl_eltwise_pow, 1, -1)]
        case .elu(let a): return [(dnnl_eltwise_elu, a, 0)]
        case .selu(let a, let g): return [(dnnl_eltwise_elu, a, 0), (dnnl_eltwise_linear, g, 0)]
        case .mish: return [(dnnl_eltwise_mish, 0, 0)]
        case .pow(let p): return [(dnnl_eltwise_pow, 1, p)]
        }
    }

    /// Whether appending this function to a primitive that already has `postOps` would
    /// repeat a oneDNN algorithm with other parameters. oneDNN 2.6's convolution computes
    /// such a chain wrongly (Conv → Elu(0.7) → Elu(0.5) was off by 3 % against ONNX Runtime,
    /// tests/ort_operators.py), so the fusion pass leaves the second one a step of its own.
    func repeatsOneDNNAlgorithm(after postOps: [PostOp]) -> Bool {
        let existing = postOps.flatMap { post -> [(dnnl_alg_kind_t, Float, Float)] in
            if case .eltwise(let f) = post { return f.oneDNNAlgorithms }
            return []
        }
        return oneDNNAlgorithms.contains { alg, alpha, beta in
            existing.contains { $0.0 == alg && ($0.1 != alpha || $0.2 != beta) }
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
        case .neg, .abs: return 1
        case .reciprocal, .sqrt: return 1
        case .exp, .log, .erf, .softplus: return 4
        case .elu: return 5
        case .selu: return 6
        case .pow: return 4
        case .gelu: return 8
        case .mish: return 10
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
        case .erf: return "erf"
        case .gelu(let approximate): return approximate ? "gelu_tanh" : "gelu"
        case .sqrt: return "sqrt"
        case .exp: return "exp"
        case .log: return "log"
        case .abs: return "abs"
        case .neg: return "neg"
        case .reciprocal: return "reciprocal"
        case .elu: return "elu"
        case .selu: return "selu"
        case .softplus: return "softplus"
        case .mish: return "mish"
        case .pow: return "pow"
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// First-order optimizers with PyTorch's update rules, so that a step can be checked by
/// hand and compared with `torch.optim`.
public struct Optimizer: Sendable {
    public enum Kind: Sendable, Equatable {
        /// `torch.optim.SGD`: weight decay added to the gradient, momentum buffer `b = μb + g`
        /// (`b = g` at the first step), Nesterov `g + μb`.
        case sgd(momentum: Float, nesterov: Bool)
        /// `torch.optim.Adam`: weight decay added to the gradient (L2).
        case adam(beta1: Float, beta2: Float, epsilon: Float)
        /// `torch.optim.AdamW`: decoupled weight decay `p -= lr·λ·p` before the Adam step.
        case adamW(beta1: Float, beta2: Float, epsilon: Float)
    }

    public var kind: Kind
    public var weightDecay: Float
    /// Steps taken (Adam's bias correction uses it).
    public private(set) var steps = 0
    /// Per parameter: the momentum buffer (SGD) or the first moment (Adam).
    public internal(set) var first: [[Float]] = []
    /// Per parameter: Adam's second moment.
    public internal(set) var second: [[Float]] = []

    public init(_ kind: Kind, weightDecay: Float = 0) {
        self.kind = kind
        self.weightDecay = weightDecay
    }

    /// Updates every parameter from its gradient with learning rate `lr`.
    public mutating func step(_ parameters: [UnsafeMutablePointer<Float>], gradients: [UnsafePointer<Float>], counts: [Int], lr: Float) {
        if first.isEmpty {
            first = counts.map { [Float](repeating: 0, count: $0) }
            if case .sgd = kind {} else { second = counts.map { [Float](repeating: 0, count: $0) } }
        }
        steps += 1
        let wd = weightDecay
        for (i, (p, g)) in zip(parameters, gradients).enumerated() {
            let n = counts[i]
            switch kind {
            case .sgd(let mu, let nesterov):
                first[i].withUnsafeMutableBufferPointer { buf in
                    for j in 0..<n {
                        var d = g[j] + wd * p[j]
                        if mu != 0 {
                            buf[j] = steps == 1 ? d : mu * buf[j] + d
                            d = nesterov ? d + mu * buf[j] : buf[j]
                        }
                        p[j] -= lr * d
                    }
                }
            case .adam(let b1, let b2, let eps), .adamW(let b1, let b2, let eps):
                let decoupled: Bool
                if case .adamW = kind { decoupled = true } else { decoupled = false }
                let c1 = 1 - powf(b1, Float(steps)), c2 = 1 - powf(b2, Float(steps))
                first[i].withUnsafeMutableBufferPointer { m in
                    second[i].withUnsafeMutableBufferPointer { v in
                        for j in 0..<n {
                            if decoupled { p[j] -= lr * wd * p[j] }
                            let d = decoupled ? g[j] : g[j] + wd * p[j]
                            m[j] = b1 * m[j] + (1 - b1) * d
                            v[j] = b2 * v[j] + (1 - b2) * d * d
                            p[j] -= lr * (m[j] / c1) / ((v[j] / c2).squareRoot() + eps)
                        }
                    }
                }
            }
        }
    }

    /// Restores the state saved by a checkpoint.
    mutating func restore(steps: Int, first: [[Float]], second: [[Float]]) {
        self.steps = steps
        self.first = first
        self.second = second
    }
}

/// The learning rate over training, as a function of the fractional epoch.
public enum LearningRateSchedule: Sendable, Equatable {
    case constant
    /// Multiplied by `gamma` every `every` epochs (`torch.optim.lr_scheduler.StepLR`).
    case step(every: Int, gamma: Float)
    /// Half a cosine from the base rate down to 0 over `epochs` (`CosineAnnealingLR`, per iteration).
    case cosine(epochs: Int)

    public func rate(_ base: Float, epoch: Double) -> Float {
        switch self {
        case .constant: return base
        case .step(let every, let gamma): return base * powf(gamma, Float(Int(epoch) / max(every, 1)))
        case .cosine(let epochs): return base * 0.5 * (1 + cosf(Float.pi * Float(min(epoch / Double(max(epochs, 1)), 1))))
        }
    }
}

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


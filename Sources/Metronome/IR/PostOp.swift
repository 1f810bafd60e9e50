/// Work fused onto the end of a step's computation, applied in order.
public enum PostOp: Equatable, Sendable {
    case eltwise(Eltwise)
    /// Adds another value of the same shape (a residual connection).
    case add(ValueID)
}

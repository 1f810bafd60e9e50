/// A dimension or integer value that may depend on the symbolic batch size N: `a·N + b`.
/// Shape computations that exporters emit (Shape → Gather → Unsqueeze → Concat → Reshape)
/// are evaluated with these at import time, so a dynamic batch stays dynamic; graph inputs
/// mark such a dimension with `-1` (``ValueInfo``) and ``SymbolicShapes`` infers the
/// dimensions of every other value.
public struct SymbolicDim: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The coefficient of the batch size.
    public var a: Int
    /// The constant part.
    public var b: Int

    public init(_ b: Int) { a = 0; self.b = b }
    public init(a: Int, b: Int) { self.a = a; self.b = b }
    public static let batch = SymbolicDim(a: 1, b: 0)

    public var constant: Int? { a == 0 ? b : nil }
    public var description: String {
        if a == 0 { return "\(b)" }
        let n = a == 1 ? "N" : "\(a)·N"
        return b == 0 ? n : "\(n)\(b > 0 ? "+" : "")\(b)"
    }

    // Arithmetic on values a model file chose: nil on 64-bit overflow (reported as an error
    // naming the node) instead of wrapping silently or trapping.
    public static func + (x: SymbolicDim, y: SymbolicDim) -> SymbolicDim? {
        let (a, o1) = x.a.addingReportingOverflow(y.a), (b, o2) = x.b.addingReportingOverflow(y.b)
        return o1 || o2 ? nil : SymbolicDim(a: a, b: b)
    }
    public static func - (x: SymbolicDim, y: SymbolicDim) -> SymbolicDim? {
        let (a, o1) = x.a.subtractingReportingOverflow(y.a), (b, o2) = x.b.subtractingReportingOverflow(y.b)
        return o1 || o2 ? nil : SymbolicDim(a: a, b: b)
    }
    public static func * (x: SymbolicDim, y: SymbolicDim) -> SymbolicDim? {
        func scaled(_ s: SymbolicDim, _ c: Int) -> SymbolicDim? {
            let (a, o1) = s.a.multipliedReportingOverflow(by: c), (b, o2) = s.b.multipliedReportingOverflow(by: c)
            return o1 || o2 ? nil : SymbolicDim(a: a, b: b)
        }
        if let c = x.constant { return scaled(y, c) }
        if let c = y.constant { return scaled(x, c) }
        return nil
    }
    /// ONNX integer division truncates toward zero; a symbolic value divides only exactly.
    public static func / (x: SymbolicDim, y: SymbolicDim) -> SymbolicDim? {
        guard let d = y.constant, d != 0 else { return nil }
        if let c = x.constant { return c.dividedReportingOverflow(by: d).overflow ? nil : SymbolicDim(c / d) }
        if d == -1 { return nil }  // Int.min / -1 overflows; a batch coefficient is never negated this way
        guard x.a % d == 0, x.b % d == 0 else { return nil }
        return SymbolicDim(a: x.a / d, b: x.b / d)
    }
}

extension SymbolicDim {
    /// The dimension at batch size `n`, or nil on overflow.
    public func evaluated(batch n: Int) -> Int? {
        let (p, o1) = a.multipliedReportingOverflow(by: n)
        let (s, o2) = p.addingReportingOverflow(b)
        return o1 || o2 ? nil : s
    }
}

/// Errors raised by the engine. Every case carries enough context (node name, operator,
/// attribute, shapes) for a user to find the offending part of their model.
public enum MetronomeError: Error, Equatable, CustomStringConvertible, Sendable {
    case invalidTensor(String)
    case invalidGraph(String)
    /// A node that cannot be run: `node` is its name, `op` its operator type.
    case node(node: String, op: String, message: String)
    case unsupportedOperator(node: String, op: String, supported: [String])
    case missingInput(String)
    case inputShape(name: String, expected: [Int], actual: [Int])
    case backend(String)
    case invalidArgument(String)
    /// A file operation failed (swap files); the message names the file.
    case io(String)

    public var description: String {
        switch self {
        case .invalidTensor(let m): return "invalid tensor: \(m)"
        case .invalidGraph(let m): return "invalid graph: \(m)"
        case .node(let node, let op, let m): return "node '\(node)' (\(op)): \(m)"
        case .unsupportedOperator(let node, let op, let supported):
            return "node '\(node)': unsupported operator '\(op)'; supported operators are "
                + supported.sorted().joined(separator: ", ")
        case .missingInput(let m): return "missing input: \(m)"
        case .inputShape(let name, let expected, let actual):
            return "input '\(name)' has shape \(actual) but the graph expects \(expected)"
        case .backend(let m): return "oneDNN: \(m)"
        case .invalidArgument(let m): return m
        case .io(let m): return m
        }
    }
}

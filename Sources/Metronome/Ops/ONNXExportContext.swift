/// What an operator's ONNX export may add besides nodes: constant tensors that opset 17
/// takes as inputs where the graph keeps attributes, under fresh names.
public struct ONNXExportContext: Sendable {
    public enum Constant: Sendable, Equatable {
        case float(Tensor)
        case int64([Int])
        /// An integer tensor of a quantized type (quantized weights, zero points).
        case integers([Int], shape: [Int], type: QuantizedType)
    }

    /// Constants added by exported nodes, in the order they were added.
    public private(set) var constants: [(name: String, value: Constant)] = []
    private var counter = 0

    /// The graph's integer constants, for operators that move a constant input into an
    /// attribute (a reduction's axes).
    public let integerConstants: [String: [Int]]
    /// The graph's float initializers, for operators whose opset-17 form depends on a
    /// constant's value (Upsample's scales decide Resize's `nearest_mode`).
    public let initializers: [String: Tensor]

    public init(integerConstants: [String: [Int]] = [:], initializers: [String: Tensor] = [:]) {
        self.integerConstants = integerConstants
        self.initializers = initializers
    }

    /// A name no graph value has: `base` with a numbered `__export` suffix.
    public mutating func freshName(_ base: String) -> String {
        counter += 1
        return "\(base)__export\(counter)"
    }

    /// Adds a float constant under a fresh name derived from `base` and returns that name.
    public mutating func addFloat(_ tensor: Tensor, base: String) -> String {
        let name = freshName(base)
        constants.append((name, .float(tensor)))
        return name
    }

    /// Adds an integer constant of a quantized type under a fresh name derived from `base`.
    public mutating func addIntegers(_ values: [Int], shape: [Int], type: QuantizedType, base: String) -> String {
        let name = freshName(base)
        constants.append((name, .integers(values, shape: shape, type: type)))
        return name
    }

    /// Adds a 1-D int64 constant under a fresh name derived from `base` and returns that name.
    public mutating func addInt64(_ values: [Int], base: String) -> String {
        let name = freshName(base)
        constants.append((name, .int64(values)))
        return name
    }
}

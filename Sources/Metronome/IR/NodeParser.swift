/// Reads one node's attributes and constant inputs into a typed ``Op``; remembers which
/// attributes it read so that any other attribute is reported instead of ignored.
struct NodeParser {
    let node: Node
    let graph: Graph
    var used: Set<String> = []

    init(node: Node, graph: Graph) {
        self.node = node
        self.graph = graph
    }

    func fail(_ message: String) -> MetronomeError {
        .node(node: node.name, op: node.opType, message: message)
    }

    mutating func int(_ key: String, default value: Int) throws -> Int {
        guard let a = node.attributes[key] else { return value }
        used.insert(key)
        guard case .int(let v) = a else { throw fail("attribute '\(key)' must be an integer") }
        return v
    }

    mutating func float(_ key: String, default value: Float) throws -> Float {
        guard let a = node.attributes[key] else { return value }
        used.insert(key)
        switch a {
        case .float(let v): return v
        case .int(let v): return Float(v)
        default: throw fail("attribute '\(key)' must be a float")
        }
    }

    mutating func ints(_ key: String) throws -> [Int]? {
        guard let a = node.attributes[key] else { return nil }
        used.insert(key)
        switch a {
        case .ints(let v): return v
        case .int(let v): return [v]
        default: throw fail("attribute '\(key)' must be a list of integers")
        }
    }

    mutating func string(_ key: String, default value: String) throws -> String {
        guard let a = node.attributes[key] else { return value }
        used.insert(key)
        guard case .string(let v) = a else { throw fail("attribute '\(key)' must be a string") }
        return v
    }

    /// Ignores an attribute that has no effect at inference time.
    mutating func ignore(_ key: String) { used.insert(key) }

    func checkAllAttributesUsed() throws {
        let unknown = Set(node.attributes.keys).subtracting(used)
        if let key = unknown.sorted().first {
            let known = OperatorRegistry.named(node.opType)?.attributes(of: node.opType) ?? []
            throw fail("unsupported attribute '\(key)'; \(node.opType) accepts "
                       + (known.isEmpty ? "no attributes" : known.joined(separator: ", ")))
        }
    }

    func input(_ i: Int) -> String? {
        i < node.inputs.count && !node.inputs[i].isEmpty ? node.inputs[i] : nil
    }

    func requireInputs(_ range: ClosedRange<Int>) throws {
        let n = node.inputs.count
        guard range.contains(n) else {
            let expected = range.lowerBound == range.upperBound
                ? "\(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)"
            throw fail("expects \(expected) inputs, got \(n)")
        }
        guard input(0) != nil else { throw fail("the data input is missing") }
    }

    /// An integer constant input (Reshape shape, Slice bounds, ...).
    func integerInput(_ i: Int, what: String) throws -> [Int]? {
        guard let name = input(i) else { return nil }
        if let v = graph.integerConstants[name] { return v }
        if let t = graph.initializers[name] {
            // Exporters sometimes store integer parameters as float tensors.
            return t.scalars.map { Int($0) }
        }
        throw fail("\(what) (input '\(name)') must be a constant; computed \(what) is not supported")
    }

    /// A scalar float constant input (Clip bounds, Pad value).
    func scalarInput(_ i: Int, what: String) throws -> Float? {
        guard let name = input(i) else { return nil }
        guard let t = graph.initializers[name] else {
            throw fail("\(what) (input '\(name)') must be a constant initializer")
        }
        guard t.count == 1 else { throw fail("\(what) must be a scalar, got shape \(t.shape)") }
        return t.scalars[0]
    }

    mutating func spatial(_ key: String, default value: [Int]) throws -> [Int] {
        guard let v = try ints(key) else { return value }
        guard v.count == value.count else {
            throw fail("attribute '\(key)' has \(v.count) values; this \(value.count)-D operator needs \(value.count)")
        }
        return v
    }

    /// ONNX pads (all begins, then all ends: `[top, left, bottom, right]` in 2-D), after `auto_pad`.
    mutating func pads(kernelExtent: [Int]) throws -> [Int]? {
        let autoPad = try string("auto_pad", default: "NOTSET")
        switch autoPad {
        case "NOTSET", "VALID":
            let p = try spatial("pads", default: Array(repeating: 0, count: 2 * kernelExtent.count))
            if autoPad == "VALID" && p.contains(where: { $0 != 0 }) { throw fail("auto_pad VALID with explicit pads") }
            guard p.allSatisfy({ $0 >= 0 }) else { throw fail("negative pads \(p) are not supported") }
            return p
        case "SAME_UPPER", "SAME_LOWER":
            return nil  // resolved by shape inference, which knows the input size
        default:
            throw fail("unsupported auto_pad '\(autoPad)'; use NOTSET, VALID, SAME_UPPER or SAME_LOWER")
        }
    }

    /// The error for an operator type the engine does not run.
    func unsupported() -> MetronomeError {
        .unsupportedOperator(node: node.name, op: node.opType, supported: Program.supportedOperators)
    }
}

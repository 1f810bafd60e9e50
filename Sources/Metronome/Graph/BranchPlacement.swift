/// Where a node of a multi-branch network (NN-Stretch) runs: its role (stem, a branch of a
/// stage, a stage's merge, the head) and the device that role is assigned to.
///
/// The placement travels in the node's name as a prefix — `stem@cpu/…`, `s2.b1@dsp/…`,
/// `s2.merge@cpu/…`, `head@cpu/…` — because node names survive every step of the pipeline
/// unchanged (ONNX export and import, other tools' rewrites, the optimizer, which names a
/// fused step after its first node) while custom attributes would be rejected by ONNX
/// Runtime. NN-Stretch's Keras models carry the same information in their layer names.
public struct BranchPlacement: Hashable, Sendable, CustomStringConvertible {
    public enum Role: Hashable, Sendable {
        case stem
        case head
        /// The concatenation (and MB_VER 1 projections) that joins stage `stage`'s branches.
        case merge(stage: Int)
        case branch(stage: Int, branch: Int)
    }

    public var role: Role
    public var device: String

    public init(_ role: Role, device: String) {
        self.role = role
        self.device = device
    }

    /// The name prefix for nodes with this placement (without the trailing `/`).
    public var description: String {
        switch role {
        case .stem: return "stem@\(device)"
        case .head: return "head@\(device)"
        case .merge(let s): return "s\(s).merge@\(device)"
        case .branch(let s, let b): return "s\(s).b\(b)@\(device)"
        }
    }

    /// The stage for branch and merge nodes.
    public var stage: Int? {
        switch role {
        case .merge(let s), .branch(let s, _): return s
        case .stem, .head: return nil
        }
    }

    /// The branch index for branch nodes.
    public var branch: Int? {
        if case .branch(_, let b) = role { return b }
        return nil
    }

    /// The placement a node name encodes, or nil for names without a placement prefix.
    public static func parse(_ nodeName: String) -> BranchPlacement? {
        guard let slash = nodeName.firstIndex(of: "/") else { return nil }
        let head = nodeName[..<slash]
        guard let at = head.firstIndex(of: "@") else { return nil }
        let device = String(head[head.index(after: at)...])
        guard !device.isEmpty, device.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else { return nil }
        let role = head[..<at]
        switch role {
        case "stem": return BranchPlacement(.stem, device: device)
        case "head": return BranchPlacement(.head, device: device)
        default:
            let parts = role.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0].first == "s", let s = Int(parts[0].dropFirst()), s >= 0 else { return nil }
            if parts[1] == "merge" { return BranchPlacement(.merge(stage: s), device: device) }
            guard parts[1].first == "b", let b = Int(parts[1].dropFirst()), b >= 0 else { return nil }
            return BranchPlacement(.branch(stage: s, branch: b), device: device)
        }
    }

    /// The devices named by a graph's placements, in order of first appearance among branch
    /// nodes (the config's `DEVICES` order), then the others (stem, merge, head).
    public static func devices(of names: [String]) -> [String] {
        let placements = names.compactMap(parse)
        var order: [String] = []
        for p in placements where p.branch != nil && !order.contains(p.device) { order.append(p.device) }
        for p in placements where !order.contains(p.device) { order.append(p.device) }
        return order
    }
}

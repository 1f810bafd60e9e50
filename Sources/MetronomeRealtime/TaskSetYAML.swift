import Foundation
import Metronome
import Yams

extension TaskSet {
    /// Loads a task set from YAML. Unknown keys and bad values are errors naming the key's
    /// path; see the README for every key.
    public static func load(yaml text: String) throws -> TaskSet {
        let root: Yams.Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw TaskSetError(path: "", message: "the file is empty")
            }
            root = node
        } catch let e as TaskSetError {
            throw e
        } catch {
            throw TaskSetError(path: "", message: "not valid YAML: \(error)")
        }
        let top = try YAMLMap(root, path: "", allowed: [
            "name", "duration", "jobs", "policy", "preemption", "lock", "release", "cores", "tasks", "memory",
        ])
        var set = TaskSet(name: try top.string("name") ?? "taskset", tasks: [])
        set.duration = try top.duration("duration")
        set.jobs = try top.int("jobs")
        set.policy = try top.choice("policy", Policy.self) ?? .fixedPriority
        set.preemption = try top.choice("preemption", Preemption.self) ?? .layer
        set.release = try top.choice("release", Release.self) ?? .synchronous
        if let c = try top.intList("cores") { set.cores = c }
        if let lockNode = top.node("lock") {
            let lock = try YAMLMap(lockNode, path: "lock", allowed: ["k"])
            guard let k = try lock.int("k") else { throw TaskSetError(path: "lock.k", message: "is required") }
            set.lockK = k
        }
        if let memoryNode = top.node("memory") {
            let m = try YAMLMap(memoryNode, path: "memory", allowed: ["budget", "swap_dir"])
            guard let budget = try m.bytes("budget") else { throw TaskSetError(path: "memory.budget", message: "is required") }
            set.memory = Memory(budget: budget, swapDirectory: try m.string("swap_dir"))
        }
        guard let tasksNode = top.node("tasks") else { throw TaskSetError(path: "tasks", message: "is required") }
        guard case .sequence(let seq) = tasksNode else {
            throw TaskSetError(path: "tasks", message: "must be a list of tasks")
        }
        for (i, node) in seq.enumerated() {
            let m = try YAMLMap(node, path: "tasks[\(i)]", allowed: [
                "name", "model", "wcet", "npr", "layers", "width", "widths", "budget", "on_overrun", "fold", "batch",
                "period", "deadline", "priority", "cores", "threads", "overrun", "inputs", "offset", "swap", "weights", "precision", "branches", "data",
            ])
            guard let name = try m.string("name") else { throw TaskSetError(path: "tasks[\(i)].name", message: "is required") }
            let model = try m.string("model")
            // wcet is one duration, or with widths a list of them (one per width).
            let wcetList = try m.durationList("wcet")
            let wcet = wcetList == nil ? try m.duration("wcet") : nil
            guard model != nil || wcet != nil || wcetList != nil else {
                throw TaskSetError(path: "tasks[\(i)].model", message: "is required (or wcet, for a synthetic task)")
            }
            guard let period = try m.duration("period") else {
                throw TaskSetError(path: "tasks[\(i)].period", message: "is required")
            }
            set.tasks.append(Task(
                name: name, model: model, wcet: wcet, npr: try m.duration("npr"), layers: try m.int("layers"),
                widths: try m.doubleList("widths"), widthWCETs: wcetList, budget: try m.duration("budget"),
                onOverrun: try m.choice("on_overrun", OnOverrun.self) ?? .continue, width: try m.double("width"), fold: try m.int("fold"),
                batch: try m.int("batch") ?? 1, period: period, deadline: try m.duration("deadline"),
                priority: try m.int("priority"), cores: try m.intList("cores"), threads: try m.int("threads") ?? 1,
                overrun: try m.choice("overrun", Overrun.self) ?? .skip, inputs: try m.int("inputs") ?? 4,
                offset: try m.duration("offset") ?? 0, swap: try m.bool("swap") ?? false,
                weightBytes: try m.bytes("weights"), precision: try m.choice("precision", Precision.self) ?? .fp32,
                branches: try m.choice("branches", BranchExecution.self) ?? .sequential, data: try m.string("data")))
        }
        try set.validate()
        return set
    }

    /// Loads and validates the task set in `path`.
    public static func load(path: String) throws -> TaskSet {
        guard FileManager.default.fileExists(atPath: path) else {
            throw TaskSetError(path: "", message: "no such file: \(path)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TaskSetError(path: "", message: "cannot read \(path) as UTF-8 text")
        }
        return try load(yaml: text)
    }
}

/// A YAML mapping whose keys are checked against the allowed set, with typed accessors
/// that report errors by key path.
struct YAMLMap {
    let path: String
    var values: [String: Yams.Node] = [:]

    init(_ node: Yams.Node, path: String, allowed: [String]) throws {
        self.path = path
        guard case .mapping(let mapping) = node else {
            throw TaskSetError(path: path, message: "must be a mapping of keys to values")
        }
        for (k, v) in mapping {
            guard let key = k.string else { throw TaskSetError(path: path, message: "has a non-string key") }
            guard allowed.contains(key) else {
                throw TaskSetError(path: sub(key), message: "unknown key; allowed keys are \(allowed.joined(separator: ", "))")
            }
            guard values[key] == nil else { throw TaskSetError(path: sub(key), message: "appears twice") }
            values[key] = v
        }
    }

    func sub(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    func node(_ key: String) -> Yams.Node? { values[key] }

    func scalar(_ key: String) throws -> String? {
        guard let n = values[key] else { return nil }
        guard case .scalar(let s) = n else { throw TaskSetError(path: sub(key), message: "must be a single value") }
        return s.string
    }

    func string(_ key: String) throws -> String? { try scalar(key) }

    func int(_ key: String) throws -> Int? {
        guard let s = try scalar(key) else { return nil }
        guard let v = Int(s) else { throw TaskSetError(path: sub(key), message: "must be an integer, got '\(s)'") }
        return v
    }

    func bool(_ key: String) throws -> Bool? {
        guard let s = try scalar(key) else { return nil }
        switch s {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw TaskSetError(path: sub(key), message: "must be true or false, got '\(s)'")
        }
    }

    /// A byte count with a unit (`160MiB`, `2GB`, `4096`).
    func bytes(_ key: String) throws -> Int? {
        guard let s = try scalar(key) else { return nil }
        guard let v = ByteCountText.parse(s) else {
            throw TaskSetError(path: sub(key), message: "'\(s)' is not a byte count; write a number with a unit: B, KiB, MiB, GiB (or kB, MB, GB), e.g. 160MiB")
        }
        return v
    }

    func double(_ key: String) throws -> Double? {
        guard let s = try scalar(key) else { return nil }
        guard let v = Double(s), v.isFinite else { throw TaskSetError(path: sub(key), message: "must be a number, got '\(s)'") }
        return v
    }

    func duration(_ key: String) throws -> Int64? {
        guard let s = try scalar(key) else { return nil }
        guard let v = DurationText.parse(s) else {
            throw TaskSetError(path: sub(key), message: "'\(s)' is not a duration; write a number with a unit: ns, us, ms or s (e.g. 33ms)")
        }
        return v
    }

    func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ type: T.Type) throws -> T? where T.RawValue == String {
        guard let s = try scalar(key) else { return nil }
        guard let v = T(rawValue: s) else {
            throw TaskSetError(path: sub(key), message: "'\(s)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return v
    }

    /// A list of durations, or nil when the key is absent or a single value.
    func durationList(_ key: String) throws -> [Int64]? {
        guard let n = values[key], case .sequence = n else { return nil }
        return try list(key, of: "durations like [1ms, 2ms]", item: "a duration with a unit: ns, us, ms or s") { DurationText.parse($0) }
    }

    func doubleList(_ key: String) throws -> [Double]? {
        try list(key, of: "numbers like [0.5, 1.0]", item: "a number") { Double($0).flatMap { $0.isFinite ? $0 : nil } }
    }

    func intList(_ key: String) throws -> [Int]? {
        try list(key, of: "integers like [0, 1]", item: "an integer") { Int($0) }
    }

    /// A list whose every item `parse` accepts; errors name the key or the item's index.
    private func list<T>(_ key: String, of kind: String, item: String, _ parse: (String) -> T?) throws -> [T]? {
        guard let n = values[key] else { return nil }
        guard case .sequence(let seq) = n else { throw TaskSetError(path: sub(key), message: "must be a list of \(kind)") }
        return try seq.enumerated().map { i, node in
            guard let s = node.string, let v = parse(s) else {
                throw TaskSetError(path: "\(sub(key))[\(i)]", message: "must be \(item)")
            }
            return v
        }
    }
}

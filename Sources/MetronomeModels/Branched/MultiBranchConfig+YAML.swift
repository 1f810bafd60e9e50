import Foundation
import Metronome
import Yams

extension MultiBranchConfig {
    /// Top-level sections of a pycls config that describe training, data or logging: read
    /// and ignored (only `MODEL`, `ANYNET` and `TEST.IM_SIZE` shape the network).
    static let ignoredSections: Set<String> = [
        "TRAIN", "OPTIM", "BN", "MEM", "DATA_LOADER", "CUDNN", "NUM_GPUS", "OUT_DIR", "RNG_SEED", "LOG_DEST",
        "LOG_PERIOD", "DIST_BACKEND", "HOST", "PORT", "PORT_RANGE", "PREC_TIME", "LN", "REGNET", "RESNET", "EN",
        "VERBOSE", "DESC", "CFG_DEST", "LAUNCH",
    ]
    static let modelKeys: Set<String> = [
        "TYPE", "NUM_CLASSES", "DEPTH", "LOSS_FUN", "ACTIVATION_FUN", "ACTIVATION_INPLACE", "SCALING_TYPE", "SCALING_FACTOR",
    ]
    static let anynetKeys: Set<String> = [
        "STEM_TYPE", "STEM_W", "STEM_K", "BLOCK_TYPE", "DEPTHS", "WIDTHS", "STRIDES", "BOT_MULS", "GROUP_WS", "KERNELS",
        "SE_ON", "SE_R", "HEAD_W", "DEVICES", "STEM_DEVICE", "HEAD_DEVICE", "MERGE_DEVICE", "ORIGINAL_WIDTHS", "MB_VER",
        "ACTIVATION_FUN",
    ]
    static let testKeys: Set<String> = ["IM_SIZE", "POWERSAVE_LEVEL", "WEIGHTS", "BATCH_SIZE", "DATASET", "SPLIT"]

    /// Reads a config file; `name` defaults to the file name without extension (NN-Stretch's `cfg` column).
    public static func load(path: String) throws -> MultiBranchConfig {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw MultiBranchConfigError(file: path, key: "", message: "no such file")
        }
        guard !isDir.boolValue else {
            throw MultiBranchConfigError(file: path, key: "", message: "is a folder, not a config file (`metronome stretch` measures a folder of configs)")
        }
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw MultiBranchConfigError(file: path, key: "", message: "cannot read the file (\(error.localizedDescription))")
        }
        return try load(yaml: text, name: url.deletingPathExtension().lastPathComponent, file: path)
    }

    public static func load(yaml text: String, name: String, file: String = "") throws -> MultiBranchConfig {
        func fail(_ key: String, _ message: String) -> MultiBranchConfigError {
            MultiBranchConfigError(file: file, key: key, message: message)
        }
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch { throw fail("", "not valid YAML: \(error)") }
        guard let root = loaded as? [String: Any] else { throw fail("", "the file must be a mapping with MODEL and ANYNET sections") }
        let r = Reader(fail: fail)
        for key in root.keys.sorted() where !["MODEL", "ANYNET", "TEST"].contains(key) && !ignoredSections.contains(key) {
            throw fail(key, "unknown key (a pycls config has MODEL, ANYNET, TEST and training sections such as TRAIN, OPTIM)")
        }
        let model = try r.section(root, "MODEL", allowed: modelKeys)
        let any = try r.section(root, "ANYNET", allowed: anynetKeys, required: true)
        let test = try r.section(root, "TEST", allowed: testKeys)
        var notes: [String] = []

        let type = try r.string(model, "MODEL.TYPE") ?? "mbanynet"
        guard type == "mbanynet" || type == "anynet" else {
            throw fail("MODEL.TYPE", "'\(type)' is not supported; Metronome builds anynet and mbanynet configs")
        }
        let classes = try r.int(model, "MODEL.NUM_CLASSES", min: 1) ?? 1000
        let trainSize = (root["TRAIN"] as? [String: Any])?["IM_SIZE"] as? Int
        let imageSize = try r.int(test, "TEST.IM_SIZE", min: 8) ?? trainSize ?? 224
        if test?["WEIGHTS"] != nil {
            notes.append("TEST.WEIGHTS is not loaded (pycls checkpoints are not read); the weights are seeded random values")
        }

        let stemText = try r.string(any, "ANYNET.STEM_TYPE") ?? StemType.resStemIn.rawValue
        guard let stemType = StemType(rawValue: stemText) else {
            throw fail("ANYNET.STEM_TYPE", "'\(stemText)' is not one of \(StemType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let blockText = try r.string(any, "ANYNET.BLOCK_TYPE") ?? BlockType.resBottleneck.rawValue
        guard let blockType = BlockType(rawValue: blockText) else {
            throw fail("ANYNET.BLOCK_TYPE", "'\(blockText)' is not one of \(BlockType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let stemWidth = try r.int(any, "ANYNET.STEM_W", min: 1) else { throw fail("ANYNET.STEM_W", "is required") }
        let stemKernel = try r.int(any, "ANYNET.STEM_K", min: 1)
        if let k = stemKernel, k % 2 == 0 { throw fail("ANYNET.STEM_K", "must be odd, got \(k)") }
        let version = try r.int(any, "ANYNET.MB_VER") ?? 2
        guard version == 1 || version == 2 else { throw fail("ANYNET.MB_VER", "must be 1 or 2, got \(version)") }

        // Per-stage, per-branch lists: DEPTHS decides how many stages and branches there are.
        guard let depths = try r.perBranch(any, "ANYNET.DEPTHS", shape: nil, min: 1) else { throw fail("ANYNET.DEPTHS", "is required") }
        let shape = depths.map(\.count)
        guard !shape.isEmpty else { throw fail("ANYNET.DEPTHS", "has no stages") }
        guard let widths = try r.perBranch(any, "ANYNET.WIDTHS", shape: shape, min: 1) else { throw fail("ANYNET.WIDTHS", "is required") }
        guard let strides = try r.perBranch(any, "ANYNET.STRIDES", shape: shape, min: 1) else { throw fail("ANYNET.STRIDES", "is required") }
        let groupWidths = try r.perBranch(any, "ANYNET.GROUP_WS", shape: shape, min: 1)
        let botMuls = try r.perStage(any, "ANYNET.BOT_MULS", shape: shape)
        let kernels = try r.perStage(any, "ANYNET.KERNELS", shape: shape)
        for (i, s) in strides.enumerated() where Set(s).count > 1 {
            throw fail("ANYNET.STRIDES[\(i)]", "the branches of a stage must share one stride (they meet by concatenation), got \(s)")
        }

        let devices = try r.strings(any, "ANYNET.DEVICES") ?? ["cpu"]
        guard !devices.isEmpty else { throw fail("ANYNET.DEVICES", "is empty") }
        for (j, d) in devices.enumerated() where !isDeviceName(d) {
            throw fail("ANYNET.DEVICES[\(j)]", "'\(d)' is not a device name (letters, digits, _ or -)")
        }
        let maxBranches = shape.max() ?? 1
        guard devices.count >= maxBranches else {
            throw fail("ANYNET.DEVICES", "names \(devices.count) device(s) but a stage has \(maxBranches) branches (branch j runs on DEVICES[j])")
        }
        func device(_ key: String) throws -> String {
            guard let d = try r.string(any, "ANYNET.\(key)") else { return devices[0] }
            guard isDeviceName(d) else { throw fail("ANYNET.\(key)", "'\(d)' is not a device name (letters, digits, _ or -)") }
            return d
        }
        let stemDevice = try device("STEM_DEVICE"), headDevice = try device("HEAD_DEVICE"), mergeDevice = try device("MERGE_DEVICE")

        let original = try r.intList(any, "ANYNET.ORIGINAL_WIDTHS", min: 1)
        if let original, original.count != shape.count {
            throw fail("ANYNET.ORIGINAL_WIDTHS", "has \(original.count) entries for \(shape.count) stages")
        }
        var stages: [Stage] = []
        for i in shape.indices {
            var branches: [Branch] = []
            for j in 0..<shape[i] {
                let b = botMuls?[i][j] ?? (blockType == .resBottleneck ? 1 : (blockType == .resBasic ? 1 : 6))
                guard b > 0 else { throw fail("ANYNET.BOT_MULS[\(i)]", "must be positive, got \(b)") }
                let kd = kernels?[i][j] ?? 3
                guard kd >= 1, kd == kd.rounded(), Int(kd) % 2 == 1 else {
                    throw fail("ANYNET.KERNELS[\(i)]", "must be an odd whole number, got \(kd)")
                }
                branches.append(Branch(depth: depths[i][j], width: widths[i][j], stride: strides[i][j],
                                       groupWidth: groupWidths?[i][j] ?? 0, bottleneck: b, kernel: Int(kd), device: devices[j]))
            }
            let sum = branches.reduce(0) { $0 + $1.width }
            let o = original?[i]
            if let o {
                if shape[i] == 1 && o != sum {
                    throw fail("ANYNET.ORIGINAL_WIDTHS[\(i)]", "is \(o) but stage \(i) has one branch of width \(sum)")
                }
                if shape[i] > 1 && version == 2 && o != sum {
                    throw fail("ANYNET.ORIGINAL_WIDTHS[\(i)]", "is \(o) but under MB_VER 2 the merged width is the sum of the branch widths, \(widths[i].map(String.init).joined(separator: " + ")) = \(sum)")
                }
                if shape[i] > 1 && version == 1 && o < shape[i] {
                    throw fail("ANYNET.ORIGINAL_WIDTHS[\(i)]", "is \(o), fewer channels than stage \(i)'s \(shape[i]) branches")
                }
            } else if shape[i] > 1 && version == 1 {
                throw fail("ANYNET.ORIGINAL_WIDTHS", "is required under MB_VER 1 (the merged width of each stage)")
            }
            stages.append(Stage(branches: branches, originalWidth: o))
        }

        let defaultActivation: Activation = blockType == .mbconv ? .silu : blockType == .invertedResidual ? .relu6 : .relu
        var activations: [String: Activation] = [:]
        for section in ["MODEL", "ANYNET"] {
            let map = section == "MODEL" ? model : any
            guard let value = map?["ACTIVATION_FUN"] else { continue }
            let key = "\(section).ACTIVATION_FUN"
            func parse(_ v: Any, _ k: String) throws -> Activation {
                guard let s = v as? String, let a = Activation(rawValue: s.lowercased()) else {
                    throw fail(k, "'\(v)' is not one of \(Activation.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return a
            }
            if let list = value as? [Any] {
                guard list.count == devices.count else {
                    throw fail(key, "has \(list.count) entries for \(devices.count) DEVICES (one activation per device)")
                }
                for (j, v) in list.enumerated() { activations[devices[j]] = try parse(v, "\(key)[\(j)]") }
            } else if let map = value as? [String: Any] {
                for (d, v) in map { activations[d] = try parse(v, "\(key).\(d)") }
            } else {
                let a = try parse(value, key)
                for d in Set(devices + [stemDevice, headDevice, mergeDevice]) { activations[d] = a }
            }
        }
        let headWidth = try r.int(any, "ANYNET.HEAD_W", min: 0) ?? 0
        let se = try r.bool(any, "ANYNET.SE_ON") ?? false
        let seRatio = try r.double(any, "ANYNET.SE_R") ?? 0.25
        guard seRatio > 0, seRatio <= 1 else { throw fail("ANYNET.SE_R", "must be in (0, 1], got \(seRatio)") }
        return MultiBranchConfig(
            name: name, classes: classes, imageSize: imageSize, stemType: stemType, stemWidth: stemWidth,
            stemKernel: stemKernel, blockType: blockType, stages: stages, headWidth: headWidth, squeezeExcite: se,
            squeezeRatio: seRatio, version: version, devices: devices, stemDevice: stemDevice, headDevice: headDevice,
            mergeDevice: mergeDevice, activations: activations, defaultActivation: defaultActivation, notes: notes)
    }

    static func isDeviceName(_ s: String) -> Bool {
        !s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
    }

    /// Typed reads with errors naming the key.
    struct Reader {
        let fail: (String, String) -> MultiBranchConfigError

        func section(_ root: [String: Any], _ name: String, allowed: Set<String>, required: Bool = false) throws -> [String: Any]? {
            guard let value = root[name] else {
                if required { throw fail(name, "is required") }
                return nil
            }
            guard let map = value as? [String: Any] else { throw fail(name, "must be a mapping") }
            for key in map.keys.sorted() where !allowed.contains(key) {
                throw fail("\(name).\(key)", "unknown key (known: \(allowed.sorted().joined(separator: ", ")))")
            }
            return map
        }

        private func field(_ map: [String: Any]?, _ key: String) -> Any? {
            map?[String(key.split(separator: ".").last!)]
        }

        func string(_ map: [String: Any]?, _ key: String) throws -> String? {
            guard let v = field(map, key) else { return nil }
            guard let s = v as? String else { throw fail(key, "must be a string, got \(v)") }
            return s
        }

        func int(_ v: Any, _ key: String, min: Int? = nil) throws -> Int {
            let n: Int
            if let i = v as? Int { n = i } else if let d = v as? Double, d == d.rounded(), abs(d) < 1e15 { n = Int(d) } else {
                throw fail(key, "must be a whole number, got \(v)")
            }
            if let min, n < min { throw fail(key, "must be at least \(min), got \(n)") }
            return n
        }

        func int(_ map: [String: Any]?, _ key: String, min: Int? = nil) throws -> Int? {
            guard let v = field(map, key) else { return nil }
            return try int(v, key, min: min)
        }

        func double(_ v: Any, _ key: String) throws -> Double {
            if let d = v as? Double, d.isFinite { return d }
            if let i = v as? Int { return Double(i) }
            throw fail(key, "must be a number, got \(v)")
        }

        func double(_ map: [String: Any]?, _ key: String) throws -> Double? {
            guard let v = field(map, key) else { return nil }
            return try double(v, key)
        }

        func bool(_ map: [String: Any]?, _ key: String) throws -> Bool? {
            guard let v = field(map, key) else { return nil }
            guard let b = v as? Bool else { throw fail(key, "must be true or false, got \(v)") }
            return b
        }

        func strings(_ map: [String: Any]?, _ key: String) throws -> [String]? {
            guard let v = field(map, key) else { return nil }
            guard let list = v as? [Any] else { throw fail(key, "must be a list of names") }
            return try list.enumerated().map { j, e in
                guard let s = e as? String else { throw fail("\(key)[\(j)]", "must be a string, got \(e)") }
                return s
            }
        }

        func intList(_ map: [String: Any]?, _ key: String, min: Int) throws -> [Int]? {
            guard let v = field(map, key) else { return nil }
            guard let list = v as? [Any] else { throw fail(key, "must be a list of numbers") }
            return try list.enumerated().map { try int($1, "\(key)[\($0)]", min: min) }
        }

        /// One inner list per stage with one whole number per branch (`[[3, 2], [4]]`), or a flat
        /// list with one number per stage (one branch each). `shape` (branches per stage) must match.
        func perBranch(_ map: [String: Any]?, _ key: String, shape: [Int]?, min: Int) throws -> [[Int]]? {
            guard let v = field(map, key) else { return nil }
            guard let list = v as? [Any] else { throw fail(key, "must be a list with one entry per stage") }
            let rows: [[Int]] = try list.enumerated().map { i, e in
                if let inner = e as? [Any] {
                    guard !inner.isEmpty else { throw fail("\(key)[\(i)]", "is empty (a stage needs at least one branch)") }
                    return try inner.enumerated().map { try int($1, "\(key)[\(i)][\($0)]", min: min) }
                }
                return [try int(e, "\(key)[\(i)]", min: min)]
            }
            if let shape {
                guard rows.count == shape.count else { throw fail(key, "has \(rows.count) stages but DEPTHS has \(shape.count)") }
                for (i, row) in rows.enumerated() where row.count != shape[i] {
                    throw fail("\(key)[\(i)]", "has \(row.count) branch(es) but DEPTHS[\(i)] has \(shape[i])")
                }
            }
            return rows
        }

        /// A number per stage (all its branches), a list per stage (one per branch), or one
        /// number for every stage.
        func perStage(_ map: [String: Any]?, _ key: String, shape: [Int]) throws -> [[Double]]? {
            guard let v = field(map, key) else { return nil }
            guard let list = v as? [Any] else {
                let d = try double(v, key)
                return shape.map { Array(repeating: d, count: $0) }
            }
            guard list.count == shape.count else { throw fail(key, "has \(list.count) stages but DEPTHS has \(shape.count)") }
            return try list.enumerated().map { i, e in
                if let inner = e as? [Any] {
                    guard inner.count == shape[i] else {
                        throw fail("\(key)[\(i)]", "has \(inner.count) branch(es) but DEPTHS[\(i)] has \(shape[i])")
                    }
                    return try inner.enumerated().map { try double($1, "\(key)[\(i)][\($0)]") }
                }
                return Array(repeating: try double(e, "\(key)[\(i)]"), count: shape[i])
            }
        }
    }
}

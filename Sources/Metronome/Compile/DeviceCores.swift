/// The core group each device name of a branched network runs on (`--devices cpu=0,dsp=1`).
///
/// NN-Stretch places branches on a phone's CPU, GPU and DSP; here every "device" is a group
/// of cores of one CPU, so a branch's device decides which cores (and how many threads) its
/// kernels get. A device's kernels use as many threads as its group has cores.
public struct DeviceCores: Equatable, Sendable, CustomStringConvertible {
    public struct Group: Equatable, Sendable {
        public var device: String
        public var cores: [Int]

        public init(device: String, cores: [Int]) {
            self.device = device
            self.cores = cores
        }
    }

    public var groups: [Group]

    public init(_ groups: [Group]) {
        self.groups = groups
    }

    /// The group of `device`.
    public func group(_ device: String) -> Group? { groups.first { $0.device == device } }

    public var allCores: [Int] {
        var seen: [Int] = []
        for g in groups { for c in g.cores where !seen.contains(c) { seen.append(c) } }
        return seen
    }

    public var description: String {
        groups.map { g in "\(g.device)=\(g.cores.map(String.init).joined(separator: "+"))" }.joined(separator: ",")
    }

    /// Parses `cpu=0,dsp=1`, `cpu=0-1,gpu=2+3` or `cpu=0,1,dsp=2` (a bare core list continues
    /// the previous device's group).
    public static func parse(_ text: String) throws -> DeviceCores {
        var groups: [Group] = []
        for token in text.split(separator: ",", omittingEmptySubsequences: false) {
            let t = token.trimmingCharacters(in: .whitespaces)
            let coresText: Substring
            if let eq = t.firstIndex(of: "=") {
                let name = String(t[..<eq])
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                    throw MetronomeError.invalidArgument("--devices: '\(name)' is not a device name (letters, digits, _ or -) in '\(text)'")
                }
                guard !groups.contains(where: { $0.device == name }) else {
                    throw MetronomeError.invalidArgument("--devices: device '\(name)' is given twice in '\(text)'")
                }
                groups.append(Group(device: name, cores: []))
                coresText = t[t.index(after: eq)...]
            } else {
                guard !groups.isEmpty else {
                    throw MetronomeError.invalidArgument("--devices: '\(t)' has no device name; write NAME=CORES, e.g. cpu=0,dsp=1")
                }
                coresText = Substring(t)
            }
            for part in coresText.split(separator: "+", omittingEmptySubsequences: false) {
                do {
                    groups[groups.count - 1].cores += try Affinity.parse(String(part))
                } catch {
                    throw MetronomeError.invalidArgument("--devices: '\(part)' is not a core or core range in '\(text)' (e.g. cpu=0,dsp=1 or cpu=0-1,gpu=2+3)")
                }
            }
        }
        return DeviceCores(groups)
    }

    /// The default mapping: one core per distinct device, in order, from `cores`.
    public static func oneCoreEach(_ devices: [String], cores: [Int] = Affinity.availableCores()) throws -> DeviceCores {
        guard devices.count <= cores.count else {
            throw MetronomeError.invalidArgument(
                "the network names \(devices.count) devices (\(devices.joined(separator: ", "))) but only \(cores.count) core(s) are available; map them with --devices, e.g. \(devices.enumerated().map { "\($0.element)=\($0.offset % max(cores.count, 1))" }.joined(separator: ","))")
        }
        return DeviceCores(zip(devices, cores).map { Group(device: $0, cores: [$1]) })
    }

    /// Cores given to more than one device: allowed (the devices' lanes then share them,
    /// which is correct but slower), and worth a warning.
    public var sharedCores: [Int] {
        var seen = Set<Int>(), shared: [Int] = []
        for g in groups { for c in Set(g.cores) { if !seen.insert(c).inserted && !shared.contains(c) { shared.append(c) } } }
        return shared.sorted()
    }

    /// Checks that every device of the network has a group and groups have available cores.
    public func validate(for devices: [String]) throws {
        for d in devices where group(d) == nil {
            throw MetronomeError.invalidArgument(
                "--devices: the network places nodes on '\(d)', which has no cores (given: \(description))")
        }
        for g in groups {
            guard !g.cores.isEmpty else { throw MetronomeError.invalidArgument("--devices: device '\(g.device)' has no cores") }
            try Affinity.validate(g.cores)
        }
    }

    /// The same devices spread over other cores (the real-time runtime moves a job's cores):
    /// device `k` gets every `groups.count`-th core starting at `k`, or shares them when
    /// there are fewer cores than devices.
    public func remapped(onto cores: [Int]) -> DeviceCores {
        guard !cores.isEmpty else { return self }
        let n = groups.count
        return DeviceCores(groups.enumerated().map { k, g in
            let mine = cores.count >= n ? stride(from: k, to: cores.count, by: n).map { cores[$0] } : [cores[k % cores.count]]
            return Group(device: g.device, cores: mine)
        })
    }
}

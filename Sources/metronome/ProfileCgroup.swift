import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A memory cgroup made for one profiled configuration: it enforces `--memory-limit` on the
/// worker (the kernel's OOM killer ends it when it does not fit) and reports the peak charge.
///
/// cgroup v2 is tried first (a child of this process's own cgroup, which needs the memory
/// controller delegated to it), then v1's memory hierarchy. Where neither can be created
/// (an unprivileged container), `make` returns nil and the worker limits its address space
/// instead.
struct ProfileCgroup {
    enum Version: String { case v2 = "cgroup-v2", v1 = "cgroup-v1" }

    let path: String
    let version: Version

    /// Creates `metronome-profile-PID-N` under this process's cgroup, with the limit set
    /// (no limit when `limit` is 0); nil when this machine does not let us.
    static func make(limit: Int, serial: Int, prefix: String = "metronome-profile") -> ProfileCgroup? {
        guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        let name = "\(prefix)-\(getpid())-\(serial)"
        var candidates: [(String, Version)] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty {
                for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                    candidates.append((root + parts[2], .v2))
                }
            } else if parts[1].split(separator: ",").contains("memory") {
                candidates.append(("/sys/fs/cgroup/memory" + parts[2], .v1))
            }
        }
        for (parent, version) in candidates {
            let dir = (parent.hasSuffix("/") ? parent : parent + "/") + name
            if version == .v2 {
                guard let controllers = try? String(contentsOfFile: parent + "/cgroup.subtree_control", encoding: .utf8),
                      controllers.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("memory") else { continue }
            }
            guard mkdir(dir, 0o755) == 0 else { continue }
            let group = ProfileCgroup(path: dir, version: version)
            if limit > 0 {
                let ok = version == .v2
                    ? group.write("memory.max", String(limit)) && (group.write("memory.swap.max", "0") || true)
                    : group.write("memory.limit_in_bytes", String(limit))
                        && (group.write("memory.memsw.limit_in_bytes", String(limit)) || true)
                guard ok else { group.remove(); continue }
            }
            return group
        }
        return nil
    }

    @discardableResult
    func write(_ file: String, _ value: String) -> Bool {
        guard let handle = FileHandle(forWritingAtPath: path + "/" + file) else { return false }
        defer { try? handle.close() }
        do { try handle.write(contentsOf: Data(value.utf8)) } catch { return false }
        return true
    }

    func read(_ file: String) -> String? { try? String(contentsOfFile: path + "/" + file, encoding: .utf8) }

    /// The most memory the group was charged (v2 `memory.peak` needs Linux 5.19).
    var peakBytes: Int? {
        let file = version == .v2 ? "memory.peak" : "memory.max_usage_in_bytes"
        return read(file).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Whether the kernel's OOM killer ended a process of the group.
    var oomKilled: Bool {
        let text = read(version == .v2 ? "memory.events" : "memory.oom_control") ?? ""
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == "oom_kill", let n = Int(parts[1]), n > 0 { return true }
        }
        if version == .v1, let fails = read("memory.failcnt").flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
            return fails > 0 && text.contains("under_oom 1")
        }
        return false
    }

    /// The group's charge now.
    var usageBytes: Int? {
        read(version == .v2 ? "memory.current" : "memory.usage_in_bytes").flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Sets the limit (bytes).
    @discardableResult
    func setLimit(_ bytes: Int) -> Bool {
        version == .v2 ? write("memory.max", String(bytes)) : write("memory.limit_in_bytes", String(bytes))
    }

    /// Starts the peak over again (v1 `max_usage_in_bytes`; v2 `memory.peak` where writable).
    @discardableResult
    func resetPeak() -> Bool {
        version == .v2 ? write("memory.peak", "0") : write("memory.max_usage_in_bytes", "0")
    }

    /// Moves this whole process (every thread) into the group, or back to `parent`.
    func enter() -> Bool { write("cgroup.procs", String(getpid())) }
    func leave() -> Bool {
        let parent = (path as NSString).deletingLastPathComponent
        guard let handle = FileHandle(forWritingAtPath: parent + "/cgroup.procs") else { return false }
        defer { try? handle.close() }
        do { try handle.write(contentsOf: Data(String(getpid()).utf8)) } catch { return false }
        return true
    }

    /// Removes the (empty) group; retried briefly because the kernel frees it asynchronously.
    func remove() {
        for _ in 0..<50 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            usleep(20_000)
        }
    }
}

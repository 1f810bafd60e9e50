#if canImport(Glibc)
import Glibc
#endif

/// The bytes of one layer's weights inside a ``WeightRegion``.
public struct WeightSegment: Sendable, Equatable {
    /// The program step (layer) whose kernels read these weights.
    public var layer: String
    /// Byte offset in the region; a multiple of the page size, so a segment can be released
    /// and read back on its own.
    public var offset: Int
    /// Bytes used (the weights of that layer, each 64-byte aligned), and the page-rounded span.
    public var bytes: Int
    public var span: Int
}

/// A compiled plan's weights, in the layouts their kernels want, in one anonymous memory
/// mapping, one page-aligned segment per layer.
///
/// One anonymous mapping (not one `malloc` per weight) is what makes swapping real: dropping
/// its pages with `madvise(MADV_DONTNEED)` gives the memory back to the system (resident set
/// and cgroup charge) at once while the addresses stay valid, so the primitives and executors
/// bound to them need nothing re-created when the bytes are read back into the same place.
/// A file mapping would not do: its page cache stays charged to the process's cgroup.
public final class WeightRegion: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    /// Bytes mapped: the sum of the segments' page-rounded spans.
    public let length: Int
    public let segments: [WeightSegment]
    /// Where each weight (in the plan's weight order) starts.
    let pointers: [UnsafeMutableRawPointer]

    public static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Copies `weights` (each `sizes[i]` bytes, read by layer `layers[i]`) into a new mapping,
    /// grouped by layer in first-use order; the caller frees the originals.
    init(copying weights: [UnsafeMutableRawPointer], sizes: [Int], layers: [String]) throws {
        let page = Self.pageSize
        func round(_ n: Int, _ a: Int) -> Int { (n + a - 1) / a * a }
        var order: [String] = []
        var members: [String: [Int]] = [:]
        for (i, layer) in layers.enumerated() {
            if members[layer] == nil { order.append(layer) }
            members[layer, default: []].append(i)
        }
        var offsets = Array(repeating: 0, count: weights.count)
        var segments: [WeightSegment] = []
        var cursor = 0
        for layer in order {
            var used = 0
            for i in members[layer]! {
                offsets[i] = cursor + used
                used = round(used + sizes[i], 64)
            }
            let span = round(max(used, 1), page)
            segments.append(WeightSegment(layer: layer, offset: cursor, bytes: used, span: span))
            cursor += span
        }
        length = max(cursor, page)
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw MetronomeError.backend("cannot map \(cursor) bytes for weights: \(String(cString: strerror(errno)))")
        }
        base = p
        pointers = offsets.map { p + $0 }
        for i in weights.indices { pointers[i].copyMemory(from: weights[i], byteCount: sizes[i]) }
        self.segments = segments
    }

    deinit { munmap(base, length) }

    /// Bytes of weights held (without the page rounding).
    public var usedBytes: Int { segments.reduce(0) { $0 + $1.bytes } }
}

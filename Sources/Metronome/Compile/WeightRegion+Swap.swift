#if canImport(Glibc)
import Glibc
#endif

/// `O_DIRECT` (a `_GNU_SOURCE` macro Glibc's Swift module does not export), per architecture.
#if arch(arm64)
private let oDirect: Int32 = 0o200000
#else
private let oDirect: Int32 = 0o40000
#endif

/// A file that holds swapped-out weight regions: opened once for buffered writes and, where
/// the file system allows it, once more with `O_DIRECT` for reads, so that swap-ins bypass
/// (and do not fill) the page cache.
public final class SwapFile: @unchecked Sendable {
    public let path: String
    let writeFD: Int32
    let readFD: Int32
    /// Whether reads bypass the page cache (`O_DIRECT` accepted by the file system).
    public let direct: Bool
    private(set) var end = 0

    /// Creates `path`, which must not exist: a swap file never replaces anything. The name is
    /// removed as soon as the file is open (reads and writes go through the open descriptors),
    /// so nothing is left behind however the process ends — a crash or SIGKILL included.
    public init(creating path: String) throws {
        self.path = path
        let w = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard w >= 0 else { throw MetronomeError.io("cannot create swap file \(path): \(String(cString: strerror(errno)))") }
        writeFD = w
        let r = open(path, O_RDONLY | oDirect | O_CLOEXEC)
        if r >= 0 {
            readFD = r
            direct = true
        } else {
            readFD = open(path, O_RDONLY | O_CLOEXEC)
            direct = false
        }
        guard readFD >= 0 else {
            close(w)
            unlink(path)
            throw MetronomeError.io("cannot open swap file \(path) for reading: \(String(cString: strerror(errno)))")
        }
        unlink(path)
    }

    /// Bytes written to the file so far.
    public var sizeBytes: Int {
        var st = stat()
        return fstat(writeFD, &st) == 0 ? Int(st.st_size) : 0
    }

    deinit {
        close(writeFD)
        close(readFD)
    }

    /// Appends `bytes` bytes from `source` at the next page-aligned offset; returns that offset.
    /// The data is flushed and dropped from the page cache, so it is charged to no one.
    public func append(_ source: UnsafeRawPointer, bytes: Int) throws -> Int {
        let offset = end
        var done = 0
        while done < bytes {
            let n = pwrite(writeFD, source + done, bytes - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw MetronomeError.io("cannot write swap file \(path): \(String(cString: strerror(errno)))") }
            done += n
        }
        guard fdatasync(writeFD) == 0 else { throw MetronomeError.io("cannot flush swap file \(path): \(String(cString: strerror(errno)))") }
        _ = posix_fadvise(writeFD, off_t(offset), off_t(bytes), POSIX_FADV_DONTNEED)
        end = offset + (bytes + WeightRegion.pageSize - 1) / WeightRegion.pageSize * WeightRegion.pageSize
        return offset
    }

    /// Reads `bytes` bytes at `offset` into `target` (page-aligned, as are offset and length).
    public func read(into target: UnsafeMutableRawPointer, bytes: Int, at offset: Int) throws {
        var done = 0
        while done < bytes {
            let n = pread(readFD, target + done, bytes - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw MetronomeError.io("cannot read swap file \(path) at \(offset + done): \(n == 0 ? "end of file" : String(cString: strerror(errno)))")
            }
            done += n
        }
        if !direct { _ = posix_fadvise(readFD, off_t(offset), off_t(bytes), POSIX_FADV_DONTNEED) }
    }
}

extension WeightRegion {
    /// Writes the whole region (every segment, in the engine's own layouts) to `file` and
    /// returns where it starts there; done once, before the region is first evicted.
    public func write(to file: SwapFile) throws -> Int {
        try file.append(base, bytes: length)
    }

    /// Releases the region's memory for real (`MADV_DONTNEED`): its pages leave the resident
    /// set, and reading them before ``load(from:at:)`` gives zeros.
    public func evict() throws {
        guard madvise(base, length, MADV_DONTNEED) == 0 else {
            throw MetronomeError.backend("madvise(MADV_DONTNEED) on \(length) bytes of weights failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Reads the region back from `file` (where ``write(to:)`` put it) into the same addresses.
    public func load(from file: SwapFile, at offset: Int) throws {
        try file.read(into: base, bytes: length, at: offset)
    }

    /// Bytes of the region now resident in memory (`mincore`), a page granularity measure.
    public func residentBytes() -> Int {
        let pages = length / Self.pageSize
        var vec = [UInt8](repeating: 0, count: pages)
        guard mincore(base, length, &vec) == 0 else { return -1 }
        return vec.reduce(0) { $0 + Int($1 & 1) } * Self.pageSize
    }
}

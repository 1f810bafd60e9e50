import CDNNL

/// Runs a loop's iterations on the calling thread's OpenMP team (`omp_get_max_threads()`
/// threads): iteration `i` goes to thread `i mod T`, which is passed to the body, so each
/// thread can own a scratch buffer. oneDNN calls made inside run single-threaded (they see
/// they are inside a parallel region). Training's convolutions split a batch this way.
public enum ParallelFor {
    public static var threads: Int { Int(omp_get_max_threads()) }

    /// Runs `body` with the calling thread's team set to `threads`, then restores the
    /// caller's setting. oneDNN fixes its work split (and scratchpad sizes) when a primitive
    /// is created, so primitives are made under the team size they will run with.
    public static func withTeam<R>(of threads: Int, _ body: () throws -> R) rethrows -> R {
        let saved = omp_get_max_threads()
        omp_set_num_threads(Int32(threads))
        defer { omp_set_num_threads(saved) }
        return try body()
    }

    public static func run(_ count: Int, _ body: (_ index: Int, _ thread: Int) -> Void) {
        let t = min(threads, count)
        if t <= 1 {
            for i in 0..<count { body(i, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            final class Context {
                let body: (Int, Int) -> Void
                let count: Int
                init(_ body: @escaping (Int, Int) -> Void, _ count: Int) {
                    self.body = body
                    self.count = count
                }
            }
            let context = Context(body, count)
            let entry: @convention(c) (UnsafeMutableRawPointer?) -> Void = { raw in
                guard let raw else { return }
                let c = Unmanaged<Context>.fromOpaque(raw).takeUnretainedValue()
                let me = Int(omp_get_thread_num()), n = Int(omp_get_num_threads())
                var i = me
                while i < c.count {
                    c.body(i, me)
                    i += n
                }
            }
            withExtendedLifetime(context) {
                GOMP_parallel(entry, Unmanaged.passUnretained(context).toOpaque(), UInt32(t), 0)
            }
        }
    }
}

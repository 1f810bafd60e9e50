import CDNNL

/// Training's fast matrix products, through oneDNN's `dnnl_sgemm` (JIT-compiled,
/// multi-threaded with the OpenMP team) on the plain row-major layouts training keeps, and
/// the eight-lane copy and add of its elementwise kernels. (Convolutions run on oneDNN's
/// training primitives: `ConvTrainingPrimitives`.)
public enum GemmKernels {
    /// `C = alpha·op(A)·op(B) + beta·C`, row-major; `op` transposes when `transA`/`transB`.
    public static func sgemm(_ transA: Bool, _ transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                             _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                             beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int) throws {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
            return
        }
        let status = dnnl_sgemm(transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha,
                                a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
        try DNNL.check(status, "sgemm \(m)x\(n)x\(k)")
    }

    /// Eight-lane copy for short runs (the elementwise kernels' pieces), instead of a
    /// memmove call per run.
    @inline(__always)
    static func copy(_ from: UnsafePointer<Float>, to: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n {
            UnsafeMutableRawPointer(to + i).storeBytes(of: UnsafeRawPointer(from + i).loadUnaligned(as: SIMD8<Float>.self),
                                                       as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { to[i] = from[i]; i += 1 }
    }

    /// `to[i] += from[i]` (the compiler cannot prove the rows apart, so it would not vectorize).
    @inline(__always)
    static func add(_ from: UnsafePointer<Float>, into to: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(to + i).loadUnaligned(as: SIMD8<Float>.self) + UnsafeRawPointer(from + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(to + i).storeBytes(of: v, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { to[i] += from[i]; i += 1 }
    }
}

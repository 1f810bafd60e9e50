import Foundation

/// Linear least squares for the few measured constants the predictor fits (the dispatch
/// overhead, the runtime's memory): small, dense systems of a handful of columns, where the
/// normal equations are accurate enough and no linear-algebra library is needed.
enum LeastSquares {
    /// The coefficients c minimising Σ (x·c − y)² over the rows of `x`: the normal equations,
    /// solved by Gaussian elimination with partial pivoting; nil when they are singular.
    static func solve(_ x: [[Double]], _ y: [Double]) -> [Double]? {
        let n = x.first?.count ?? 0
        guard n > 0 else { return nil }
        var a = [[Double]](repeating: [Double](repeating: 0, count: n + 1), count: n)
        for (r, v) in zip(x, y) {
            for i in 0..<n {
                for j in 0..<n { a[i][j] += r[i] * r[j] }
                a[i][n] += r[i] * v
            }
        }
        let scale = (0..<n).map { a[$0][$0] }.max() ?? 0
        guard scale > 0 else { return nil }
        for col in 0..<n {
            guard let pivot = (col..<n).max(by: { abs(a[$0][col]) < abs(a[$1][col]) }), abs(a[pivot][col]) > 1e-12 * scale else { return nil }
            a.swapAt(col, pivot)
            for row in 0..<n where row != col {
                let f = a[row][col] / a[col][col]
                for k in col...n { a[row][k] -= f * a[col][k] }
            }
        }
        return (0..<n).map { a[$0][n] / a[$0][$0] }
    }
}

/// A row's statistics computed in `Double`, the one definition the float64 reference
/// (NormKitTesting's `Reference`) and the backward kernel's exact fallback share.
///
/// mean = Σx/n plus one correction step, mean += Σ(x - mean)/n, so the first mean's own
/// rounding cannot leak into the centred values even when |mean| is 10^7 times the
/// spread; variance = Σ(x - mean)²/n (two-pass, biased); rstd = 1/√(variance + eps).
/// Sums run in index order, so every caller gets the same bits for the same row.
///
/// - Parameters:
///   - count: the row length n (> 0).
///   - eps: added to the variance.
///   - element: the row's i-th value as a `Double`, for i in 0..<count.
@inline(__always)
package func doubleRowStatistics(
    count n: Int, eps: Double, _ element: (Int) -> Double
) -> (mean: Double, rstd: Double) {
    let nd = Double(n)
    var sum = 0.0
    for i in 0..<n { sum += element(i) }
    var mean = sum / nd
    var correction = 0.0
    for i in 0..<n { correction += element(i) - mean }
    mean += correction / nd
    var squares = 0.0
    for i in 0..<n {
        let d = element(i) - mean
        squares += d * d
    }
    return (mean, 1 / (squares / nd + eps).squareRoot())
}

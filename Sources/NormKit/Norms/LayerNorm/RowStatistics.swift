/// What the forward kernel learns about one row: its mean and `1/sqrt(var + eps)`,
/// both in `Double` so a backward pass can rebuild x-hat as exactly as forward did.
struct RowStatistics: Sendable {
    var mean: Double
    var rstd: Double

    static let nan = RowStatistics(mean: .nan, rstd: .nan)
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension String {
    /// The string padded with spaces on the right to `width` characters (unchanged if longer).
    package func padded(to width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}

/// `v` with `digits` decimals, without Foundation.
package func fixed(_ v: Double, _ digits: Int) -> String {
    guard v.isFinite else { return String(v) }
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (abs(v) * p).rounded()
    let whole = Int(r / p), frac = Int(r - Double(whole) * p)
    let sign = v < 0 && r != 0 ? "-" : ""
    guard digits > 0 else { return sign + String(whole) }
    let f = String(frac)
    return sign + String(whole) + "." + String(repeating: "0", count: digits - f.count) + f
}

/// A number in compact scientific or fixed notation.
package func sci(_ v: Double) -> String {
    if v == 0 { return "0" }
    if !v.isFinite { return String(v) }
    let a = abs(v)
    if a >= 1e-3 && a < 1e5 {
        let scaled = (v * 10000).rounded() / 10000
        return String(scaled)
    }
    var e = 0
    var m = a
    while m >= 10 { m /= 10; e += 1 }
    while m < 1 { m *= 10; e -= 1 }
    let digits = (m * 100).rounded() / 100
    return "\(v < 0 ? "-" : "")\(digits)e\(e)"
}

/// Writes `s` to stderr unbuffered (progress lines that stdout's JSON must not contain).
package func writeStderr(_ s: String) {
    var s = s
    s.withUTF8 { buffer in _ = write(2, buffer.baseAddress, buffer.count) }
}

extension Substring {
    /// The substring without leading and trailing whitespace.
    package func trimmingWhitespace() -> Substring {
        var s = self
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return s
    }
}

import ArgumentParser
import NormKit

/// `normkit accuracy`: NormKit's error on every catalogued hard row, against float64.
struct Accuracy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Error of LayerNorm against the float64 reference on the catalogued hard rows."
    )

    @Option(help: "Feature dimensions to check, comma-separated.") var dims = "768"
    @Option(help: "Seeds per row kind.") var seeds = 20

    func run() throws {
        let dimList = dims.split(separator: ",").compactMap { Int($0) }
        guard !dimList.isEmpty, dimList.allSatisfy({ $0 >= 1 }), seeds >= 1 else {
            throw ValidationError("--dims needs positive integers, --seeds >= 1")
        }
        print("max over \(seeds) seeds of max_row |y - y64| / max(1, max |y64|); bound 1e-6")
        var header = "row".padding(28)
        for d in dimList { header += "dim \(d)".padding(14) }
        print(header)
        var worst = 0.0
        for kind in Reference.HardRow.allCases {
            var line = kind.rawValue.padding(28)
            for dim in dimList {
                let norm = try LayerNorm(dim: dim)
                var err = 0.0
                for seed in 0..<UInt64(seeds) {
                    let x = try Tensor(shape: [1, dim], scalars: kind.values(dim: dim, seed: seed))
                    let y = try norm(x)
                    err = max(err, Reference.maxRowError(y, expected: try Reference.layerNormDouble(x)))
                }
                worst = max(worst, err)
                line += sci(err).padding(14)
            }
            print(line)
        }
        print("worst: \(sci(worst))")
    }
}

extension String {
    /// The string padded with spaces to `n` characters.
    func padding(_ n: Int) -> String { self + String(repeating: " ", count: max(0, n - count)) }
}

import ArgumentParser
import NormKitCLISupport

/// `normkit-dev`: the developer's tools, run from a checkout (`swift run normkit-dev ...`).
/// Not a product: they link NormKitTesting's float64 references, which the shipped
/// `normkit` command does not.
@main
struct NormKitDevCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "normkit-dev",
        abstract: "NormKit's developer tools: accuracy against float64, benchmarks, the leak check.",
        subcommands: [Accuracy.self, Bench.self, LeakCheck.self]
    )

    /// ArgumentParser's main with checked output and sanitised errors (NormKitCLISupport).
    static func main() { CommandMain.run(Self.self) }
}

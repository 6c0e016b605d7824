import ArgumentParser
import NormKitCLISupport

@main
struct NormKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "normkit",
        abstract: "Exact, fast float32 LayerNorm and RMSNorm on OpenBLAS.",
        discussion: "Accuracy checks, benchmarks and the leak check are developer tools: `swift run normkit-dev` in a checkout.",
        subcommands: [Demo.self, Apply.self, Inspect.self],
        defaultSubcommand: Demo.self
    )

    /// ArgumentParser's main with checked output and sanitised errors (StandardStreams.swift).
    static func main() { CommandMain.run(Self.self) }
}

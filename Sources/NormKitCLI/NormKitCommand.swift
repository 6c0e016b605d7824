import ArgumentParser

@main
struct NormKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "normkit",
        abstract: "Exact, fast float32 Layer Normalization on OpenBLAS.",
        subcommands: [Demo.self, Bench.self, Accuracy.self, Apply.self, Inspect.self],
        defaultSubcommand: Demo.self
    )
}

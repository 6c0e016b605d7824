import NormKitCLISupport

/// `Swift.print`, shadowed in this module: the same text through `checkedPrint`, written
/// unbuffered to fd 1, so a write error ends the command with status 1 and a message
/// instead of being lost.
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    checkedPrint(items, separator: separator, terminator: terminator)
}

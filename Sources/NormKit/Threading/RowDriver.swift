// Runs a norm's row function over all rows of an input, on the caller's thread for
// small inputs and over `RowParallel`'s fixed blocks otherwise. The function is
// handed as a C function pointer and a plain struct of pointers, so a call allocates
// nothing.

enum RowDriver {
    /// The number of threads to use for `rows` rows of `dim` elements: 1 for inputs
    /// too small to gain (the thread setting is then not even read).
    static func workers(rows: Int, dim: Int) -> Int {
        RowParallel.workerCount(rows: rows, dim: dim, threads: .max) == 1 ? 1
            : RowParallel.workerCount(rows: rows, dim: dim, threads: Parallelism.effectiveThreadCount)
    }

    /// Calls `function(&job, start, end, block)` for blocks of rows covering `0..<rows`
    /// (one call over all rows when a single thread is used). Each block must write
    /// only its own rows; every row's result must depend on that row alone.
    static func run<Job>(rows: Int, dim: Int, job: inout Job, function: RowParallel.BlockFunction) {
        guard rows > 0 else { return }
        let threads = workers(rows: rows, dim: dim)
        withUnsafeMutablePointer(to: &job) { pointer in
            if threads == 1 {
                function(UnsafeMutableRawPointer(pointer), 0, rows, 0)
            } else {
                RowParallel.forEachBlock(rows: rows, blockSize: RowParallel.blockSize(dim: dim), threads: threads,
                                         context: pointer, function: function)
            }
        }
    }
}

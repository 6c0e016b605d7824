// The half-precision forms of every row norm (BFloat16, Float16 in and out), written
// once over the engine. A norm with a half row kernel (`_RowFunctions.halfForward`:
// LayerNorm, RMSNorm) reads and writes the half rows itself, converting in registers;
// otherwise (GroupNorm, RMSNorm's Hugging Face order) each block of rows is widened to
// float in the running thread's `ThreadScratch.half` block, normalised there by the
// norm's own float row function, and narrowed once into the output. Both give the same
// bits: the float forward of the widened rows (the same statistics and affine as the
// float forms), rounded once. The fused add rounds the stream to the half type first,
// then normalises the rounded stream. docs/numerics.md ("Half-precision elements") has the
// error bound; docs/architecture.md why the engine, not each norm, does this.

import CNormKernels

extension Kernels {
    /// The half-precision conversions of `format` at ``InstructionSet/current``.
    static func half(_ format: _HalfFormat) -> nk_half_format_kernels {
        guard let table = nk_half_kernels_for(InstructionSet.current.code) else {
            preconditionFailure("NormKit: instruction set \(InstructionSet.current) chosen on a CPU without it")
        }
        return format == .bfloat16 ? table.pointee.bfloat16 : table.pointee.float16
    }

    /// How `format` is converted at the level in force ("integer", "F16C", "AVX-512",
    /// "AVX-512 BF16"), for reports and tests.
    static func halfMethod(_ format: _HalfFormat) -> String { String(cString: half(format).method) }
}

extension RowNormalization {
    /// Normalises rows of ``dim`` half-precision values (``BFloat16`` or `Float16`) held
    /// in caller memory into `output`, of the same type; allocates nothing once the
    /// calling threads have made a call of this size.
    ///
    /// Each row is widened to `Float` (exactly), normalised by the same float kernel as
    /// `forward(_:into:)` (statistics and affine in float32
    /// with the layer's float weights), and rounded once to `T`. `output` may be the very
    /// same memory as `input`; any other overlap throws. Results are bitwise the same at
    /// every instruction-set level and thread count.
    ///
    /// - Throws: ``NormKitError/invalidArgument(name:expected:actual:)`` when `input.count`
    ///   is not a multiple of ``dim``, `output.count` differs from `input.count`, or the
    ///   buffers partly overlap; ``NormKitError/parameterShapeMismatch(name:expected:actual:)``
    ///   when a parameter has the wrong shape.
    public func forward<T: HalfPrecisionElement>(
        _ input: UnsafeBufferPointer<T>, into output: UnsafeMutableBufferPointer<T>
    ) throws(NormKitError) {
        let rows = try HalfValidation.rows(ofCount: input.count, dim: dim, type: T.self)
        try HalfValidation.count("output", output.count, expected: input.count, type: T.self)
        try HalfValidation.noPartialOverlap(UnsafeRawPointer(input.baseAddress), "input",
                                            UnsafeRawPointer(output.baseAddress), "output", count: input.count, type: T.self)
        try _validateParameters()
        _runHalf(_RowLayout(rows: rows, length: dim), T._halfFormat, x: HalfValidation.bits(input.baseAddress),
                 y: HalfValidation.mutableBits(output.baseAddress))
    }

    /// The residual stream in place over caller memory, in half precision:
    /// `residual = T(input + residual)` (the exact sum rounded once to `T`), then
    /// `output = norm(residual)`, bitwise the same as `forward(_:into:)`
    /// of the rounded stream. Allocates nothing once the calling threads have made a call
    /// of this size.
    ///
    /// Aliasing: each pair of the three buffers is either the very same memory or
    /// disjoint, as for the float form.
    ///
    /// - Throws: ``NormKitError/invalidArgument(name:expected:actual:)`` when `input.count`
    ///   is not a multiple of ``dim``, `residual.count` or `output.count` differs from it,
    ///   or two buffers partly overlap (then nothing is written);
    ///   ``NormKitError/parameterShapeMismatch(name:expected:actual:)`` when a parameter has the wrong shape.
    public func forward<T: HalfPrecisionElement>(
        _ input: UnsafeBufferPointer<T>, addingTo residual: UnsafeMutableBufferPointer<T>,
        into output: UnsafeMutableBufferPointer<T>
    ) throws(NormKitError) {
        let rows = try HalfValidation.rows(ofCount: input.count, dim: dim, type: T.self)
        try HalfValidation.count("residual", residual.count, expected: input.count, type: T.self)
        try HalfValidation.count("output", output.count, expected: input.count, type: T.self)
        let i = UnsafeRawPointer(input.baseAddress), r = UnsafeRawPointer(residual.baseAddress)
        let o = UnsafeRawPointer(output.baseAddress)
        try HalfValidation.noPartialOverlap(i, "input", r, "residual", count: input.count, type: T.self)
        try HalfValidation.noPartialOverlap(i, "input", o, "output", count: input.count, type: T.self)
        try HalfValidation.noPartialOverlap(r, "residual", o, "output", count: input.count, type: T.self)
        try _validateParameters()
        _runHalf(_RowLayout(rows: rows, length: dim), T._halfFormat, x: HalfValidation.bits(input.baseAddress),
                 residual: HalfValidation.bits(UnsafePointer(residual.baseAddress)), sum: HalfValidation.mutableBits(residual.baseAddress),
                 y: HalfValidation.mutableBits(output.baseAddress))
    }
}

extension Normalization {
    /// Runs the norm over all rows of `layout` in half precision: `y = T(norm(x))`, or
    /// with `residual` and `sum`, `sum = T(x + residual)` then `y = T(norm(sum))`.
    /// Rows are split over threads as for the float forms (``RowDriver``).
    func _runHalf(
        _ layout: _RowLayout, _ format: _HalfFormat, x: UnsafePointer<UInt16>?, residual: UnsafePointer<UInt16>? = nil,
        sum: UnsafeMutablePointer<UInt16>? = nil, y: UnsafeMutablePointer<UInt16>?
    ) {
        guard layout.rows > 0, layout.length > 0, let x, let y else { return }
        let conversions = Kernels.half(format)
        if let rms = self as? RMSNorm, rms.halfRounding == .huggingFaceLlama {
            // x̂ alone through the row functions, then the scale in the half type (HalfJob.run).
            rms._withUnitScale { functions, weight, offset in
                HalfEngine.forward(functions, layout, format, conversions, x: x, residual: residual, sum: sum, y: y,
                                   halfScale: (weight, offset))
            }
            return
        }
        _withRowFunctions(layout) { functions in
            HalfEngine.forward(functions, layout, format, conversions, x: x, residual: residual, sum: sum, y: y)
        }
    }
}

enum HalfEngine {
    /// Floats of scratch per chunk of rows (at least one row), for each of the two
    /// chunks (widened input, float output): small enough that both stay in L2 between
    /// widening, normalising and narrowing.
    static let chunkFloats = 8 * 1024

    /// Runs the norm over all rows of `layout`: `functions.halfForward` when the norm has
    /// it (and no `halfScale`), else `functions.forward` through float scratch.
    /// Allocates nothing once each running thread has scratch of this size.
    static func forward(
        _ functions: _RowFunctions, _ layout: _RowLayout, _ format: _HalfFormat, _ conversions: nk_half_format_kernels,
        x: UnsafePointer<UInt16>, residual: UnsafePointer<UInt16>?, sum: UnsafeMutablePointer<UInt16>?,
        y: UnsafeMutablePointer<UInt16>, halfScale: (weight: UnsafePointer<Float>, offset: Float)? = nil
    ) {
        var job = HalfJob(functions: functions, conversions: conversions, format: format, length: layout.length,
                          x: x, residual: residual, sum: sum, y: y, halfScale: halfScale)
        RowDriver.run(rows: layout.rows, dim: layout.length, job: &job) { context, start, end, _ in
            context.assumingMemoryBound(to: HalfJob.self).pointee.run(start ..< end)
        }
    }
}

/// What every block of a half-precision forward shares.
private struct HalfJob {
    var functions: _RowFunctions
    var conversions: nk_half_format_kernels
    var format: _HalfFormat
    var length: Int
    var x: UnsafePointer<UInt16>
    var residual: UnsafePointer<UInt16>?
    var sum: UnsafeMutablePointer<UInt16>?
    var y: UnsafeMutablePointer<UInt16>
    /// ``HalfRounding/huggingFaceLlama``: the row functions give x̂ alone; each output is
    /// then T(Float(T(x̂)) · Float(T(offset + weight))), the row's `length` weights.
    var halfScale: (weight: UnsafePointer<Float>, offset: Float)?

    /// Rows `rows`, a chunk at a time: widen (or add, round, widen the rounded stream)
    /// into the input chunk, normalise in float into the output chunk, narrow. Out of
    /// place, because the float forward certifies a row before it writes it in place, and
    /// would pass over the row twice. Each chunk's inputs are read before its outputs are
    /// written, so the aliasing the public forms allow is safe.
    func run(_ rows: Range<Int>) {
        let n = length
        let perChunk = max(1, HalfEngine.chunkFloats / n)
        let capacity = min(perChunk, rows.count) &* n
        // Two chunks, then (with halfScale) the scale rounded to T and widened back, and
        // room for its 16-bit patterns.
        let floats = 2 &* capacity &+ (halfScale == nil ? 0 : 2 &* n)
        let scratch = ThreadScratch.half.buffer(bytes: floats &* MemoryLayout<Float>.stride)
            .bindMemory(to: Float.self, capacity: floats)
        let output = scratch + capacity
        let roundedScale = scratch + 2 &* capacity
        if let halfScale {
            let patterns = UnsafeMutableRawPointer(roundedScale + n).bindMemory(to: UInt16.self, capacity: n)
            for i in 0 ..< n { roundedScale[i] = halfScale.offset + halfScale.weight[i] }
            conversions.narrow(roundedScale, patterns, n)
            conversions.widen(patterns, roundedScale, n)
        }
        if let halfForward = functions.halfForward, halfScale == nil,
           functions.halfFormats & (1 &<< format.elementCode) != 0 {
            if let residual, let sum, let halfAddForward = functions.halfAddForward,
               UnsafePointer(sum) != UnsafePointer(y) {
                // The norm makes the rounded stream as it reads x and the residual.
                halfAddForward(functions.context, format.elementCode, x, residual, sum, y, rows.lowerBound,
                               rows.upperBound, scratch, conversions)
                return
            }
            // The norm converts in registers; with a residual, the rounded stream (in
            // `sum`, still in cache; no float copy of it is made) is its input, a chunk
            // at a time.
            var row = rows.lowerBound
            while row < rows.upperBound {
                let k = residual == nil ? rows.count : min(perChunk, rows.upperBound &- row)
                var source = x
                if let residual, let sum {
                    let offset = row &* n
                    conversions.add(x + offset, residual + offset, sum + offset, nil, k &* n)
                    source = UnsafePointer(sum)
                }
                halfForward(functions.context, format.elementCode, source, y, row, row &+ k, scratch, conversions)
                row &+= k
            }
            return
        }
        var row = rows.lowerBound
        while row < rows.upperBound {
            let k = min(perChunk, rows.upperBound &- row)
            let offset = row &* n, count = k &* n
            if let residual, let sum {
                conversions.add(x + offset, residual + offset, sum + offset, scratch, count)
            } else {
                conversions.widen(x + offset, scratch, count)
            }
            // Row functions index rows from a base pointer (GroupNorm's weights depend on
            // the row's index): the bases are the chunks - offset, as addresses, so rows
            // row ..< row + k land in the chunks. Nothing outside them is touched.
            let shift = offset &* MemoryLayout<Float>.stride
            let inBase = UnsafeMutablePointer<Float>(bitPattern: Int(bitPattern: scratch) &- shift)!
            let outBase = UnsafeMutablePointer<Float>(bitPattern: Int(bitPattern: output) &- shift)!
            functions.forward(functions.context, UnsafePointer(inBase), outBase, row, row &+ k, nil, nil)
            conversions.narrow(output, y + offset, count)
            if halfScale != nil {
                // T(x̂) is exact in float; times a T value it is exact again (8 or 11 bits
                // of each); then one rounding to T: PyTorch's half × half multiply.
                conversions.widen(y + offset, output, count)
                for r in 0 ..< k {
                    let o = output + r &* n
                    for i in 0 ..< n { o[i] *= roundedScale[i] }
                }
                conversions.narrow(output, y + offset, count)
            }
            row &+= k
        }
    }
}

/// The raw-buffer checks of the half-precision forms: the float forms' rules and
/// wording, counted in elements of the half type.
enum HalfValidation {
    static func typeName<T: HalfPrecisionElement>(_ type: T.Type) -> String { "\(T._halfFormat.name) values" }

    /// The 16-bit patterns of a half buffer, as the kernel layer reads them.
    static func bits<T: HalfPrecisionElement>(_ p: UnsafePointer<T>?) -> UnsafePointer<UInt16>? {
        p.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt16.self) }
    }

    static func mutableBits<T: HalfPrecisionElement>(_ p: UnsafeMutablePointer<T>?) -> UnsafeMutablePointer<UInt16>? {
        p.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: UInt16.self) }
    }

    static func rows<T: HalfPrecisionElement>(ofCount count: Int, dim: Int, type: T.Type) throws(NormKitError) -> Int {
        guard count % dim == 0 else {
            throw .invalidArgument(name: "input", expected: "a multiple of dim \(dim) \(typeName(type))",
                                   actual: "\(count) \(typeName(type))")
        }
        return count / dim
    }

    static func count<T: HalfPrecisionElement>(
        _ name: String, _ count: Int, expected: Int, type: T.Type
    ) throws(NormKitError) {
        guard count == expected else {
            throw .invalidArgument(name: name, expected: "\(expected) \(typeName(type)) (the input's count)",
                                   actual: "\(count) \(typeName(type))")
        }
    }

    /// Two buffers of `count` elements are either the very same memory or disjoint.
    static func noPartialOverlap<T: HalfPrecisionElement>(
        _ a: UnsafeRawPointer?, _ aName: String, _ b: UnsafeRawPointer?, _ bName: String, count: Int, type: T.Type
    ) throws(NormKitError) {
        guard let a, let b, count > 0, a != b else { return }
        let stride = MemoryLayout<T>.stride
        let bytes = count &* stride
        let lo = Int(bitPattern: a), hi = Int(bitPattern: b)
        let distance = hi > lo ? hi &- lo : lo &- hi
        if distance < bytes {
            throw .invalidArgument(
                name: bName, expected: "the same memory as \(aName) (in place) or memory disjoint from it",
                actual: "a buffer overlapping \(aName) by \((bytes - distance + stride - 1) / stride) of \(count) \(typeName(type)) (\(bName) starts \(hi > lo ? "" : "-")\(distance) bytes after \(aName))")
        }
    }
}

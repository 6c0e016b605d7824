// The one normalisation engine (docs/architecture.md, "The engine").
//
// A norm is a row kernel: it splits its input into rows of contiguous floats, and
// normalises each row from that row alone (its statistics, then an affine). What a
// norm supplies is small: how a shape splits into rows, its parameters and their
// checks, its statistics and gradient types, and its row functions (forward, fused
// add, backward) bound to its parameters. Everything else (the public forms, their
// checks and error messages, threading, scratch memory, the parameter-gradient
// reduction) is written once, in Normalization+Forward.swift,
// Normalization+Backward.swift and RowEngine.swift.
//
// The protocol is public so that its defaulted forms are documented once and code can
// be generic over norms; the underscored requirements name types whose contents are
// internal, so only NormKit's own norms can conform.

import CNormKernels

/// A normalisation layer: normalises each row of its input from that row alone,
/// then applies its parameters.
///
/// ``LayerNorm``, ``RMSNorm`` and ``GroupNorm`` conform. Every form below is shared:
/// validation and error wording, the residual-add fusion, training statistics and
/// backward, threading (rows split over ``Parallelism/effectiveThreadCount`` threads,
/// with results bitwise the same for every thread count) and scratch memory.
///
/// ```swift
/// func block<N: Normalization>(_ norm: N, _ x: Tensor, _ h: inout Tensor, _ y: inout Tensor) throws {
///     try norm.forward(x, addingTo: &h, into: &y)
/// }
/// ```
public protocol Normalization: Sendable {
    /// What ``forwardForTraining(_:)`` saves for ``backward(outputGradient:input:statistics:)``.
    associatedtype Statistics: NormalizationStatistics
    /// The gradients ``backward(outputGradient:input:statistics:)`` returns.
    associatedtype Gradients: NormalizationGradients

    /// How an input of `shape` splits into rows, after checking the shape and the
    /// layer's parameters; throws the typed error that says why it cannot.
    func _layout(inputShape shape: [Int]) throws(NormKitError) -> _RowLayout
    /// Checks the layer's (assignable) parameters.
    func _validateParameters() throws(NormKitError)
    /// The layer's parameter gradients: their shape and which ones it has.
    var _parameterLayout: _ParameterLayout { get }
    /// Calls `body` with the layer's row functions bound to its parameters, for rows
    /// laid out as `layout`. The functions are valid only inside `body`.
    func _withRowFunctions<R>(_ layout: _RowLayout, _ body: (_RowFunctions) -> R) -> R
}

/// A norm whose rows are a fixed number of trailing elements (``LayerNorm``,
/// ``RMSNorm``): rows are runs of ``dim`` floats in any buffer, so it also has forms
/// over caller memory.
public protocol RowNormalization: Normalization {
    /// The number of elements normalised together: the product of the normalised shape.
    var dim: Int { get }
}

/// The statistics a norm's training forward saves, one entry per row of the input.
public protocol NormalizationStatistics: Sendable, Equatable {
    /// The shape of the input these statistics describe; backward checks it.
    var inputShape: [Int] { get }
    /// The number of rows the statistics describe.
    var rowCount: Int { get }
    /// Whether the statistics hold a mean per row (LayerNorm, GroupNorm) besides the
    /// reciprocal scale (every norm).
    static var _hasMeans: Bool { get }
    /// Statistics made by the engine: `means` empty unless ``_hasMeans``.
    init(_uncheckedInputShape shape: [Int], means: [Double], scales: [Double])
    /// Calls `body` with the per-row means (nil unless ``_hasMeans``) and scales.
    func _withRows<R>(_ body: (UnsafePointer<Double>?, UnsafePointer<Double>?) -> R) -> R
}

/// The gradients of a loss with respect to a norm's input and parameters.
public protocol NormalizationGradients: Sendable, Equatable {
    /// ∂loss/∂input, shaped like the input.
    var input: Tensor { get set }
    /// ∂loss/∂weight (`[0]` for a layer without weight).
    var weight: Tensor { get set }
    /// Gradients made by the engine; `bias` is ignored by a type without one.
    init(_input: Tensor, weight: Tensor, bias: Tensor)
    /// Calls `body` on the bias gradient in place, or returns nil for a type without one.
    mutating func _withBias<R>(_ body: (inout Tensor) -> R) -> R?
}

/// How an input splits into rows: `rows` rows of `length` contiguous floats.
public struct _RowLayout: Sendable {
    /// The number of rows (statistics are one per row).
    var rows: Int
    /// The floats per row.
    var length: Int
    /// For a norm whose parameters repeat inside a row (GroupNorm: a channel's
    /// `spatial` values share one weight), the run length of one parameter; else 1.
    var inner: Int
    /// Whether the forward writes its float output through non-temporal stores
    /// (``StreamingStores``): set by the engine's float forward for calls too big for the
    /// cache, false everywhere else (scratch rows, half forms, backward). Values do not
    /// depend on it.
    var streamsOutput: Bool = false

    init(rows: Int, length: Int, inner: Int = 1) {
        self.rows = rows
        self.length = length
        self.inner = inner
    }
}

/// A norm's parameters as backward sees them.
public struct _ParameterLayout {
    /// The shape of the weight (and bias), e.g. `[dim]` or `[channels]`.
    var shape: [Int]
    /// The element count of `shape`.
    var count: Int
    /// Whether the layer applies a weight (and so has a weight gradient).
    var weight: Bool
    /// Whether the layer applies a bias.
    var bias: Bool
}

/// A norm's row functions, bound to its parameters through `context`.
///
/// The engine calls them on blocks of rows from several threads at once: each writes
/// only its own rows (and statistics, and partial sums), and a row's result depends
/// on that row alone, so results do not depend on how rows are split.
public struct _RowFunctions {
    /// The norm's parameters, as its functions read them; valid for the call.
    var context: UnsafeRawPointer
    /// Rows `start ..< end` of `x` into `y` (`y` may be `x`), writing each row's
    /// statistics when `means`/`scales` are given.
    var forward: (_ context: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                  _ start: Int, _ end: Int,
                  _ means: UnsafeMutablePointer<Double>?, _ scales: UnsafeMutablePointer<Double>?) -> Void
    /// Rows `start ..< end`: `sum = x + residual` (the float sum), then `y = norm(sum)`,
    /// bitwise as `forward` of the sum. `sum` may be `x`'s or `residual`'s memory, `y` any of the three.
    var addForward: (_ context: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ residual: UnsafePointer<Float>,
                     _ sum: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ start: Int, _ end: Int,
                     _ means: UnsafeMutablePointer<Double>?, _ scales: UnsafeMutablePointer<Double>?) -> Void
    /// Backward over blocks `blocks` of `rowsPerBlock` rows: writes (or adds
    /// into) their rows of dx, each block's partial parameter sums, and each block's
    /// count of rows that took an exact fallback.
    var backward: (_ context: UnsafeRawPointer, _ job: UnsafePointer<BackwardRows>, _ blocks: Range<Int>) -> Void
    /// The element type of the backward's partial sums.
    var partialsAreDouble: Bool
    /// Rows `start ..< end` of 16-bit elements (`format`: NK_ELEM_BF16 or NK_ELEM_F16)
    /// into `y` (`y` may be `x`), converted in registers, with the bits of `forward` on
    /// the widened rows narrowed once; `scratch` (at least two rows of floats) and
    /// `conversions` serve the rows the norm's own fallback takes in float. Nil for a norm
    /// without such a kernel: the engine then widens into scratch, calls `forward` and
    /// narrows.
    var halfForward: ((_ context: UnsafeRawPointer, _ format: Int32, _ x: UnsafePointer<UInt16>,
                       _ y: UnsafeMutablePointer<UInt16>, _ start: Int, _ end: Int,
                       _ scratch: UnsafeMutablePointer<Float>, _ conversions: nk_half_format_kernels) -> Void)? = nil
    /// The fused add on 16-bit rows `start ..< end`: `sum = T(x + residual)` (the float sum
    /// of the widened operands rounded to the format, as `nk_half_format_kernels.add`
    /// rounds it), then `y = norm(sum)` with the bits of `halfForward` on the sum. `y` is
    /// not `sum` and overlaps neither `residual` nor `sum`; `sum` may be `residual` or `x`,
    /// and `y` may be `x` when `sum` is not. Nil for a norm without it: the engine then adds
    /// a chunk of rows and runs `halfForward` on it. Takes the formats `halfForward` takes.
    var halfAddForward: ((_ context: UnsafeRawPointer, _ format: Int32, _ x: UnsafePointer<UInt16>,
                          _ residual: UnsafePointer<UInt16>, _ sum: UnsafeMutablePointer<UInt16>,
                          _ y: UnsafeMutablePointer<UInt16>, _ start: Int, _ end: Int,
                          _ scratch: UnsafeMutablePointer<Float>, _ conversions: nk_half_format_kernels) -> Void)? = nil
    /// The formats `halfForward` takes (bit NK_ELEM_* set): those the level's row kernels
    /// convert cheaply; the engine's float chunks take the others.
    var halfFormats: Int32 = 0
    /// Rows per backward block: a function of the layout alone (never of the thread
    /// count), since it sets the rounding of the parameter gradients.
    var rowsPerBlock: Int = BackwardRows.blockRows
}

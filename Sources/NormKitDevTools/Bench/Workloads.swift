import ArgumentParser
import Dispatch
import NormKit
import NormKitCLISupport
import NormKitTesting

/// What `normkit-dev bench` can time. Each case builds its own inputs and says which bytes
/// one call must move (the baseline streams exactly those).
enum Workload: String, CaseIterable, ExpressibleByArgument, Sendable {
    /// `LayerNorm.forward(_:into:)`: no allocation per call.
    case forward
    /// `LayerNorm.forward(_:)`: allocates its output each call.
    case forwardAllocating = "forward-alloc"
    /// `Reference.layerNorm`: the naive Double reference, for scale.
    case reference
    /// `LayerNorm.backward(outputGradient:input:statistics:)`: fresh gradients (dx,
    /// dweight, dbias) each call, as PyTorch's `native_layer_norm_backward` returns them.
    case backward
    /// `LayerNorm.backward(..., accumulatingInto:)`: adds into gradients made once.
    case backwardAccumulating = "backward-accumulate"
    /// `RMSNorm.forward(_:into:)`.
    case rms
    /// `RMSNorm.backward(outputGradient:input:statistics:)`: fresh dx and dweight.
    case rmsBackward = "rms-backward"
    /// `LayerNorm.forward(_:addingTo:into:)`: the residual stream in place, h += x, y = norm(h).
    case fused = "add-layernorm"
    /// `RMSNorm.forward(_:addingTo:into:)`.
    case rmsFused = "add-rms"
    /// `GroupNorm.forward(_:into:)` with 32 groups over axis 1 (`--shape 2,320,64,64`).
    case group
    /// `GroupNorm.backward(outputGradient:input:statistics:)`: fresh dx, dweight and dbias.
    case groupBackward = "group-backward"
    /// `LayerNorm.forward(_:into:)` on `HalfTensor<BFloat16>` (float32 weights and math).
    case forwardBF16 = "forward-bf16"
    /// `LayerNorm.forward(_:into:)` on `HalfTensor<Float16>`.
    case forwardF16 = "forward-f16"
    /// `LayerNorm.forward(_:addingTo:into:)` on bfloat16: h = bf16(h + x), y = norm(h).
    case fusedBF16 = "add-layernorm-bf16"
    /// `RMSNorm.forward(_:into:)` on `HalfTensor<BFloat16>`.
    case rmsBF16 = "rms-bf16"

    var isBackward: Bool {
        self == .backward || self == .backwardAccumulating || self == .rmsBackward || self == .groupBackward
    }
    var isGroup: Bool { self == .group || self == .groupBackward }
    var isFused: Bool { self == .fused || self == .rmsFused || self == .fusedBF16 }
    /// Half-precision workloads: 2 bytes per element, and baselines that move as many.
    var isHalf: Bool { self == .forwardBF16 || self == .forwardF16 || self == .fusedBF16 || self == .rmsBF16 }

    /// Tensors a call reads or writes, each the input's size: forward reads x and
    /// writes y; backward reads x and dy and writes dx (its statistics, weight and
    /// parameter gradients are a few KB); the fused add reads x and h and writes h and y.
    var streams: Int { isFused ? 4 : isBackward ? 3 : 2 }

    /// One call of the workload on `state`'s tensors.
    func runOnce(_ state: BenchState) {
        switch self {
        case .forward:
            try! state.norm.forward(state.x, into: &state.y)
        case .forwardAllocating:
            state.sink = try! state.norm.forward(state.x)
        case .reference:
            state.sink = try! Reference.layerNorm(state.x, weight: state.norm.weight, bias: state.norm.bias)
        case .backward:
            state.gradientSink = try! state.norm.backward(
                outputGradient: state.dy, input: state.x, statistics: state.statistics!)
        case .backwardAccumulating:
            try! state.norm.backward(
                outputGradient: state.dy, input: state.x, statistics: state.statistics!,
                accumulatingInto: &state.gradientSink!)
        case .rms:
            try! state.rms.forward(state.x, into: &state.y)
        case .rmsBackward:
            state.rmsGradientSink = try! state.rms.backward(
                outputGradient: state.dy, input: state.x, statistics: state.rmsStatistics!)
        case .fused:
            try! state.norm.forward(state.x, addingTo: &state.h, into: &state.y)
        case .rmsFused:
            try! state.rms.forward(state.x, addingTo: &state.h, into: &state.y)
        case .group:
            try! state.group!.forward(state.x, into: &state.y)
        case .groupBackward:
            state.groupGradientSink = try! state.group!.backward(
                outputGradient: state.dy, input: state.x, statistics: state.groupStatistics!)
        case .forwardBF16:
            try! state.norm.forward(state.xb, into: &state.yb)
        case .forwardF16:
            try! state.norm.forward(state.xh, into: &state.yh)
        case .fusedBF16:
            try! state.norm.forward(state.xb, addingTo: &state.hb, into: &state.yb)
        case .rmsBF16:
            try! state.rms.forward(state.xb, into: &state.yb)
        }
    }
}

#if !(os(macOS) && arch(x86_64))
/// The forward-f16 workload's element.
typealias BenchFloat16 = Float16
#else
/// Swift has no Float16 on macOS x86-64: forward-f16 times bfloat16 there.
typealias BenchFloat16 = BFloat16
#endif

/// The tensors a bench run works on and the baseline passes it times against
/// (the timing loop is in Timing.swift).
final class BenchState {
    let workload: Workload
    let norm: LayerNorm
    let x: Tensor
    /// The output gradient (backward workloads; empty otherwise).
    let dy: Tensor
    /// What forward saved for backward (backward workloads).
    let statistics: LayerNorm.Statistics?
    var y: Tensor
    /// Where allocating workloads put their result, so it is not optimised away.
    var sink: Tensor
    /// Backward's gradients: the last fresh result, or what an accumulating call adds into.
    var gradientSink: LayerNorm.Gradients?
    /// The RMSNorm workloads' layer (weight like `norm`'s), statistics and gradients.
    let rms: RMSNorm
    let rmsStatistics: RMSNorm.Statistics?
    var rmsGradientSink: RMSNorm.Gradients?
    /// The GroupNorm workloads' layer (32 groups over axis 1), statistics and gradients.
    let group: GroupNorm?
    let groupStatistics: GroupNorm.Statistics?
    var groupGradientSink: GroupNorm.Gradients?
    /// The residual stream of the fused workloads (empty otherwise): each call adds x into it.
    var h: Tensor
    /// Bytes of the input. A call must move `workload.streams` times as many.
    let bytes: Int
    /// The half-precision workloads' input, output and stream (x, y and h rounded).
    let xb: HalfTensor<BFloat16>
    var yb: HalfTensor<BFloat16>
    var hb: HalfTensor<BFloat16>
    let xh: HalfTensor<BenchFloat16>
    var yh: HalfTensor<BenchFloat16>

    init(workload: Workload, shape: [Int], seed: UInt64, inputMean: Float = 0, gpt2Like: Bool = false,
         data: InputData = .normal) throws {
        self.workload = workload
        let dim = shape.last!
        var norm = try LayerNorm(dim: dim)
        // A non-trivial affine transform, so the kernel's weight and bias loads are real.
        norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.2, seed: seed &+ 1)
        norm.bias = Tensor.randomNormal([dim], standardDeviation: 0.1, seed: seed &+ 2)
        self.norm = norm
        var rms = try RMSNorm(dim: dim)
        rms.weight = norm.weight
        self.rms = rms
        if gpt2Like {
            let rows = shape.dropLast().reduce(1, *)
            x = try Tensor(shape: shape, scalars: Activations.gpt2Like(batch: 1, seq: rows, dim: dim, seed: seed).scalars)
        } else {
            switch data {
            case .normal: x = Tensor.randomNormal(shape, mean: inputMean, standardDeviation: 2, seed: seed)
            case .symmetric: x = Tensor.randomUniform(shape, lower: -2, upper: 2, seed: seed)
            case .rand: x = Tensor.randomUniform(shape, lower: 0, upper: 1, seed: seed)
            case .offset: x = Tensor.randomNormal(shape, mean: 100, standardDeviation: 1, seed: seed)
            }
        }
        y = Tensor.zeros(shape)
        sink = y
        bytes = x.scalarCount * (workload.isHalf ? 2 : MemoryLayout<Float>.stride)
        let empty = Tensor.zeros([0])
        xb = HalfTensor(rounding: workload == .forwardBF16 || workload == .fusedBF16 || workload == .rmsBF16 ? x : empty)
        yb = xb
        xh = HalfTensor(rounding: workload == .forwardF16 ? x : empty)
        yh = xh
        if workload.isGroup {
            var group = try GroupNorm(groups: 32, channels: shape[1])
            group.weight = Tensor.randomNormal([shape[1]], mean: 1, standardDeviation: 0.2, seed: seed &+ 1)
            group.bias = Tensor.randomNormal([shape[1]], standardDeviation: 0.1, seed: seed &+ 2)
            self.group = group
            groupStatistics = workload == .groupBackward ? try group.forwardForTraining(x).statistics : nil
        } else {
            group = nil
            groupStatistics = nil
        }
        if workload.isBackward {
            dy = Tensor.randomNormal(shape, seed: seed &+ 3)
            statistics = workload.isGroup ? nil : try norm.forwardForTraining(x).statistics
            gradientSink = workload == .backwardAccumulating ? try norm.zeroGradients(inputShape: shape) : nil
        } else {
            dy = Tensor.zeros([0])
            statistics = nil
        }
        rmsStatistics = workload == .rmsBackward ? try rms.forwardForTraining(x).statistics : nil
        h = workload.isFused ? Tensor.randomNormal(shape, standardDeviation: 2, seed: seed &+ 4) : Tensor.zeros([0])
        hb = HalfTensor(rounding: workload == .fusedBF16 ? h : empty)
    }

    /// A single-thread pass that only streams the bytes a call must move: a memcpy of
    /// the input into the output (forward), `y = x + dy` (backward: reads x and dy,
    /// writes a tensor of their size), or `h += x, y = h` (fused: reads x and h, writes
    /// h and y).
    func baselineOnce() {
        if workload.isFused { return fusedBaseline(parts: 1) }
        x.withUnsafeBufferPointer { src in
            y.withUnsafeMutableBufferPointer { dst in
                guard let d = dst.baseAddress, let s = src.baseAddress else { return }
                if workload.isBackward {
                    dy.withUnsafeBufferPointer { g in BenchState.add(s, g.baseAddress!, d, src.count) }
                } else {
                    d.update(from: s, count: workload.isHalf ? src.count / 2 : src.count)  // half: a memcpy of the 2-byte elements
                }
            }
        }
    }

    /// The same pass split into `threads` contiguous parts on Dispatch's threads.
    func baselineParallel(threads: Int) {
        if workload.isFused { return fusedBaseline(parts: threads) }
        x.withUnsafeBufferPointer { src in
            y.withUnsafeMutableBufferPointer { dst in
                guard let d = dst.baseAddress, let s = src.baseAddress else { return }
                dy.withUnsafeBufferPointer { g in
                    let count = workload.isHalf ? src.count / 2 : src.count, backward = workload.isBackward
                    let (dp, sp) = (UncheckedPointer(d), UncheckedPointer(UnsafeMutablePointer(mutating: s)))
                    let gp = UncheckedPointer(UnsafeMutablePointer(mutating: g.baseAddress ?? s))
                    DispatchQueue.concurrentPerform(iterations: threads) { t in
                        let lo = t * count / threads, hi = (t + 1) * count / threads
                        if backward {
                            BenchState.add(sp.pointer + lo, gp.pointer + lo, dp.pointer + lo, hi - lo)
                        } else {
                            (dp.pointer + lo).update(from: sp.pointer + lo, count: hi - lo)
                        }
                    }
                }
            }
        }
    }

    /// The fused workloads' baseline, `h += x` and `y = h` in one pass, in `parts`
    /// contiguous parts (on Dispatch's threads when more than one).
    func fusedBaseline(parts: Int) {
        x.withUnsafeBufferPointer { src in
            h.withUnsafeMutableBufferPointer { stream in
                y.withUnsafeMutableBufferPointer { dst in
                    guard let s = src.baseAddress, let r = stream.baseAddress, let d = dst.baseAddress else { return }
                    let count = workload.isHalf ? src.count / 2 : src.count  // half: the same bytes as 2-byte elements
                    if parts == 1 { return BenchState.addCopy(s, r, d, count) }
                    let (sp, rp, dp) = (UncheckedPointer(UnsafeMutablePointer(mutating: s)), UncheckedPointer(r), UncheckedPointer(d))
                    DispatchQueue.concurrentPerform(iterations: parts) { t in
                        let lo = t * count / parts, hi = (t + 1) * count / parts
                        BenchState.addCopy(sp.pointer + lo, rp.pointer + lo, dp.pointer + lo, hi - lo)
                    }
                }
            }
        }
    }

    /// h += x and y = h over `count` floats, SIMD16: x and h read once, h and y written once.
    @inline(never)
    static func addCopy(_ x: UnsafePointer<Float>, _ h: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
        typealias V = SIMD16<Float>
        var i = 0
        while i &+ 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self) + UnsafeRawPointer(h + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(h + i).storeBytes(of: v, as: V.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: v, as: V.self)
            i &+= 16
        }
        while i < count {
            h[i] += x[i]
            y[i] = h[i]
            i &+= 1
        }
    }

    /// out = a + b over `count` floats, SIMD16 over raw pointers: each byte read or
    /// written once, at streaming speed.
    @inline(never)
    static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ count: Int) {
        typealias V = SIMD16<Float>
        var i = 0
        while i &+ 16 <= count {
            let v = UnsafeRawPointer(a + i).loadUnaligned(as: V.self) + UnsafeRawPointer(b + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(out + i).storeBytes(of: v, as: V.self)
            i &+= 16
        }
        while i < count {
            out[i] = a[i] + b[i]
            i &+= 1
        }
    }

}

/// A pointer that may cross into Dispatch's `@Sendable` closures: each part of the
/// parallel baseline writes its own range while the caller waits.
struct UncheckedPointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    init(_ pointer: UnsafeMutablePointer<Float>) { self.pointer = pointer }
}

/// The input rows of `normkit-dev bench --data`.
enum InputData: String, CaseIterable, ExpressibleByArgument {
    /// N(--input-mean, 2): the default.
    case normal
    /// Uniform in [-2, 2): mean near 0, what the peer comparisons use.
    case symmetric
    /// Uniform in [0, 1) (`torch.rand`): all positive, mean 1.7 standard deviations.
    case rand
    /// 100 + N(0, 1): a mean of 100 standard deviations.
    case offset
}

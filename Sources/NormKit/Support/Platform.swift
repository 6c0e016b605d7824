// Elementary functions from the platform's C library, without Foundation. The C
// library comes through CNormKernels (include/nk_platform.h), once for every platform.
import CNormKernels  // include/nk_platform.h: the C library, on every platform

@inline(__always) func _log(_ x: Double) -> Double { log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { cos(x) }
@inline(__always) func _sin(_ x: Double) -> Double { sin(x) }

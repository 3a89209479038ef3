#ifndef GRADWATCH_ENGINE_RELU_BACKWARD_H_
#define GRADWATCH_ENGINE_RELU_BACKWARD_H_

#include <cstdint>

namespace gradwatch::engine {

/// The backward pass of ReLU and leaky ReLU over n entries:
///
///   diff_src[i] = x[i] > 0 ? diff_dst[i] : negative_slope * diff_dst[i]
///
/// where x is Z or A = f(Z), which have the same sign entry by entry (A = Z
/// where Z > 0; otherwise +0 with slope 0, as oneDNN's forward computes
/// max(Z, +0), or slope * Z), except where Z is NaN and the slope 0 (A is
/// then +0); and "x > 0" holds for NaN too (an
/// unordered comparison is not "<= 0"). From Z, this is oneDNN's
/// eltwise_relu backward, bit for bit as its JIT kernels compute it (a
/// multiplication by 1 or by the slope; with slope 0 a negative gradient
/// becomes -0). It runs as the engine's own loop because oneDNN 2.7's JIT
/// kernel for it stores and reloads a vector register on the stack every
/// 16 entries, which made it 3x as slow as the forward pass
/// (docs/engine.md).
///
/// Arrays of 32,768 entries or more are split among the calling thread's
/// OpenMP threads; the result does not depend on the split. Thread-safe for
/// distinct outputs.
void ReluBackward(const float* x, const float* diff_dst, float* diff_src,
                  int64_t n, float negative_slope);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_RELU_BACKWARD_H_

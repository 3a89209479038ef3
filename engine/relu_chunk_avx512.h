#ifndef GRADWATCH_ENGINE_RELU_CHUNK_AVX512_H_
#define GRADWATCH_ENGINE_RELU_CHUNK_AVX512_H_

#include <cstdint>

#include "engine/activation_stats.h"

namespace gradwatch::engine {

/// ReLU's activation pass for one chunk of a layer, written for AVX-512
/// (x86-64-v4) CPUs: A = max(z, +0) stored, the chunk's shifted sums,
/// extrema and negative count, and the units with an entry z > 0 or NaN
/// marked. The portable loop of activation_stats.cc computes the same
/// figures, bit for bit (the same lanes, in the same order); this one
/// keeps the vector unit's adders for what needs them: the marks are one
/// masked store, the negatives a mask's population count, and the shifts'
/// subtractions run on the multiply-add units (x * 1 - s is exact).
/// Functions only; thread-safe.

/// Whether this CPU runs WriteReluAndSumChunkAvx512.
bool ReluChunkAvx512Supported();

/// For z[0, n): writes a[i] = max(z[i], +0) (NaN and -0 give +0) and
/// returns the sums of A - a_shift and Z - z_shift and their squares, the
/// extrema of Z (NaN skipped) and its entries below 0. With `active` not
/// null, sets active[u] = -1 for the unit u of every entry with z > 0 or
/// NaN, entry 0 being unit `unit` of rows of `units`.
/// Only where ReluChunkAvx512Supported().
ActivationStats::ChunkSums WriteReluAndSumChunkAvx512(const float* z, float* a,
                                                      int n, float z_shift,
                                                      float a_shift,
                                                      int32_t* active, int unit,
                                                      int units);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_RELU_CHUNK_AVX512_H_

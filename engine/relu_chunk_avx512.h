#ifndef GRADWATCH_ENGINE_RELU_CHUNK_AVX512_H_
#define GRADWATCH_ENGINE_RELU_CHUNK_AVX512_H_

#include <cstdint>

#include "engine/activation_stats.h"

namespace gradwatch::engine {

/// ReLU's activation pass over the whole vectors of one chunk of a layer,
/// written for AVX-512 (x86-64-v4) CPUs: A = max(z, +0) stored, the shifted
/// sums, extrema and negative count, and the units with an entry z > 0 or
/// NaN marked. The portable loop of activation_stats.cc computes the same
/// figures, bit for bit (the same lanes, in the same order), and adds a
/// chunk's last n % 16 entries after them, for both. This loop keeps the
/// vector unit's adders for what needs them: the marks are one masked
/// store, the negatives a mask's population count, and the shifts'
/// subtractions run on the multiply-add units (x * 1 - s is exact).
/// Functions only; thread-safe.

/// Whether this CPU runs WriteReluAndSumVectorsAvx512.
bool ReluChunkAvx512Supported();

/// For z[0, n), n a multiple of 16: writes a[i] = max(z[i], +0) (NaN and
/// -0 give +0) and returns the sums of A - a_shift and Z - z_shift and
/// their squares, the extrema of Z (NaN skipped) and its entries below 0.
/// With `active` not null, sets active[u] = -1 for the unit u of every
/// entry with z > 0 or NaN, entry 0 being unit `unit` of rows of `units`.
/// Only where ReluChunkAvx512Supported().
ActivationStats::ChunkSums WriteReluAndSumVectorsAvx512(
    const float* z, float* a, int n, float z_shift, float a_shift,
    int32_t* active, int unit, int units);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_RELU_CHUNK_AVX512_H_

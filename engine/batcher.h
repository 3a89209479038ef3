#ifndef GRADWATCH_ENGINE_BATCHER_H_
#define GRADWATCH_ENGINE_BATCHER_H_

#include <cstdint>
#include <vector>

#include "engine/dataset.h"
#include "engine/random.h"

namespace gradwatch::engine {

/// Draws training batches: each epoch is a fresh seeded permutation of the
/// rows, consumed batch_size rows at a time; a last partial batch is dropped,
/// so every batch has exactly batch_size rows. Requires 1 <= batch_size <=
/// data.rows. Copies rows into caller-owned buffers; allocates only in the
/// constructor. Not thread-safe.
class Batcher {
 public:
  Batcher(const Dataset& data, int batch_size, uint64_t seed);

  /// Fills x [batch][features] and, per the dataset's kind, labels [batch]
  /// or targets [batch][target_width] (the other pointer may be null).
  void Next(float* x, int32_t* labels, float* targets);

  /// 0-based epoch of the batch returned by the last Next().
  int64_t epoch() const { return epoch_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }

 private:
  void Reshuffle();

  const Dataset& data_;
  int batch_size_;
  Rng rng_;
  std::vector<int64_t> order_;
  int64_t position_ = 0;
  int64_t epoch_ = -1;
  int64_t steps_per_epoch_;
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_BATCHER_H_

#include "engine/batcher.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <utility>

namespace gradwatch::engine {

Batcher::Batcher(const Dataset& data, int batch_size, uint64_t seed)
    : data_(data),
      batch_size_(batch_size),
      rng_(seed),
      order_(std::max<int64_t>(data.rows, 0)),
      // Zero when the precondition is broken: Next() then writes nothing
      // rather than reading past the data or the caller's buffers.
      steps_per_epoch_(
          batch_size >= 1 ? std::max<int64_t>(data.rows, 0) / batch_size : 0) {
  std::iota(order_.begin(), order_.end(), int64_t{0});
}

void Batcher::Reshuffle() {
  // Fisher-Yates from the last position down, j = Below(i + 1). Shuffling
  // the previous epoch's order in place keeps Next() allocation-free; the
  // result is still a uniformly random permutation.
  for (int64_t i = static_cast<int64_t>(order_.size()) - 1; i > 0; --i) {
    std::swap(order_[i], order_[rng_.Below(static_cast<uint64_t>(i) + 1)]);
  }
  position_ = 0;
  ++epoch_;
}

void Batcher::Next(float* x, int32_t* labels, float* targets) {
  if (steps_per_epoch_ == 0) return;
  if (epoch_ < 0 ||
      position_ + batch_size_ > static_cast<int64_t>(order_.size())) {
    Reshuffle();
  }
  const size_t features = data_.features;
  const size_t width = data_.target_width;
  const bool regression = data_.is_regression();
  for (int b = 0; b < batch_size_; ++b) {
    const size_t row = order_[position_ + b];
    std::copy_n(data_.x.begin() + row * features, features, x + b * features);
    if (regression) {
      if (targets != nullptr) {
        std::copy_n(data_.targets.begin() + row * width, width,
                    targets + b * width);
      }
    } else if (labels != nullptr) {
      labels[b] = data_.labels[row];
    }
  }
  position_ += batch_size_;
}

}  // namespace gradwatch::engine

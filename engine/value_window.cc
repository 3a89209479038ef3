#include "engine/value_window.h"

#include <algorithm>

namespace gradwatch::engine {

ValueWindow::ValueWindow(size_t capacity)
    : capacity_(std::max<size_t>(capacity, 1)),
      values_(capacity_),
      sums_(capacity_ + 1),
      squares_(capacity_ + 1) {}

void ValueWindow::Push(double value) {
  if (pushed_ == 0) center_ = value;
  values_[pushed_ % capacity_] = value;
  const size_t slots = capacity_ + 1;
  const size_t from = pushed_ % slots;
  const size_t to = (pushed_ + 1) % slots;
  const double d = value - center_;
  sums_[to] = sums_[from] + d;
  squares_[to] = squares_[from] + d * d;
  ++pushed_;
  size_ = std::min(size_ + 1, capacity_);
  if (pushed_ % capacity_ == 0) Recenter();
}

void ValueWindow::Recenter() {
  const size_t slots = capacity_ + 1;
  center_ = values_[(pushed_ - 1) % capacity_];
  uint64_t p = pushed_ - size_;
  sums_[p % slots] = 0;
  squares_[p % slots] = 0;
  for (; p < pushed_; ++p) {
    const double d = values_[p % capacity_] - center_;
    sums_[(p + 1) % slots] = sums_[p % slots] + d;
    squares_[(p + 1) % slots] = squares_[p % slots] + d * d;
  }
}

void ValueWindow::MeanVariance(size_t skip, size_t n, double* mean,
                               double* variance) const {
  if (n == 0) {
    *mean = 0;
    *variance = 0;
    return;
  }
  const size_t slots = capacity_ + 1;
  const uint64_t end = pushed_ - skip;
  const uint64_t begin = end - n;
  const double sum = sums_[end % slots] - sums_[begin % slots];
  const double squares = squares_[end % slots] - squares_[begin % slots];
  const auto count = static_cast<double>(n);
  *mean = center_ + sum / count;
  *variance =
      n > 1 ? std::max(0.0, (squares - sum * sum / count) / (count - 1)) : 0;
}

double ValueWindow::Mean(size_t n) const {
  double mean = 0, variance = 0;
  MeanVariance(0, n, &mean, &variance);
  return mean;
}

}  // namespace gradwatch::engine

#include "engine/value_window.h"

#include <algorithm>

namespace gradwatch::engine {
namespace {

// i - k modulo `size`, for i < size and k <= size: no division, as a
// window is read and written several times on every collected step.
size_t Back(size_t i, size_t k, size_t size) {
  return i >= k ? i - k : i + size - k;
}

size_t Next(size_t i, size_t size) { return i + 1 == size ? 0 : i + 1; }

}  // namespace

ValueWindow::ValueWindow(size_t capacity)
    : capacity_(std::max<size_t>(capacity, 1)),
      values_(capacity_),
      sums_(capacity_ + 1),
      squares_(capacity_ + 1),
      until_recenter_(capacity_) {}

void ValueWindow::Push(double value) {
  if (size_ == 0) center_ = value;
  values_[next_value_] = value;
  next_value_ = Next(next_value_, capacity_);
  const size_t to = Next(last_sum_, capacity_ + 1);
  const double d = value - center_;
  sums_[to] = sums_[last_sum_] + d;
  squares_[to] = squares_[last_sum_] + d * d;
  last_sum_ = to;
  size_ = std::min(size_ + 1, capacity_);
  if (--until_recenter_ == 0) {
    Recenter();
    until_recenter_ = capacity_;
  }
}

void ValueWindow::Recenter() {
  const size_t slots = capacity_ + 1;
  center_ = values_[Back(next_value_, 1, capacity_)];
  size_t v = Back(next_value_, size_, capacity_);  // the oldest value
  size_t p = Back(last_sum_, size_, slots);
  sums_[p] = 0;
  squares_[p] = 0;
  for (size_t k = 0; k < size_; ++k) {
    const double d = values_[v] - center_;
    const size_t q = Next(p, slots);
    sums_[q] = sums_[p] + d;
    squares_[q] = squares_[p] + d * d;
    p = q;
    v = Next(v, capacity_);
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
  const size_t end = Back(last_sum_, skip, slots);
  const size_t begin = Back(end, n, slots);
  const double sum = sums_[end] - sums_[begin];
  const double squares = squares_[end] - squares_[begin];
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

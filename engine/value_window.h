#ifndef GRADWATCH_ENGINE_VALUE_WINDOW_H_
#define GRADWATCH_ENGINE_VALUE_WINDOW_H_

#include <cstddef>
#include <vector>

namespace gradwatch::engine {

/// The last `capacity` values pushed (a job's losses, accuracies, ...),
/// with the mean and sample variance of any run of them in constant time,
/// however long the window: the health rules and the diagnosis read
/// windows of up to thousands of steps on every collected step.
///
/// Prefix sums of (value - center) and of its square give a run's sums by
/// subtraction. The center is the first value pushed, then, every
/// `capacity` pushes, the newest one, and the prefix sums are computed
/// again from the kept values. So they add up at most 2 x capacity
/// deviations from a recent value: a variance's absolute error is about
/// 1e-16 x capacity x (the largest deviation from the center)^2 / (n - 1),
/// whatever the values' own magnitude. Not thread-safe.
class ValueWindow {
 public:
  explicit ValueWindow(size_t capacity = 1);

  void Push(double value);
  size_t size() const { return size_; }

  /// Mean and sample variance (0 for fewer than two values) of `n` values
  /// ending `skip` values before the newest one; skip + n <= size(). Both
  /// are 0 for n = 0.
  void MeanVariance(size_t skip, size_t n, double* mean,
                    double* variance) const;
  double Mean(size_t n) const;

 private:
  void Recenter();

  size_t capacity_;
  std::vector<double> values_;  // a ring of the last size_ values
  // Rings of capacity_ + 1 prefix sums: the sums over the values before
  // each of the last size_ values, and over all of them at last_sum_.
  std::vector<double> sums_;
  std::vector<double> squares_;
  double center_ = 0;
  size_t next_value_ = 0;  // where the next value goes
  size_t last_sum_ = 0;
  size_t size_ = 0;
  size_t until_recenter_;
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_VALUE_WINDOW_H_

#include "engine/loss.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace gradwatch::engine {
namespace {

using gradwatch::v1::Loss;

// Index of the first largest entry (ties go to the lowest index, as
// PyTorch's argmax).
int ArgMax(const float* row, int width) {
  int best = 0;
  for (int j = 1; j < width; ++j) {
    if (row[j] > row[best]) best = j;
  }
  return best;
}

// log(1 + e^o) without overflow for large |o|.
double Softplus(double o) {
  return std::max(o, 0.0) + std::log1p(std::exp(-std::abs(o)));
}

// 1 / (1 + e^-o), evaluated so that exp never overflows.
double Sigmoid(double o) {
  if (o >= 0) return 1.0 / (1.0 + std::exp(-o));
  const double e = std::exp(o);
  return e / (1.0 + e);
}

// e^(row[j] - shift) where shift = row[best]: a finite maximum's term is 1
// without calling exp (which gives exactly 1 for 0 too; an infinite or NaN
// maximum still gives NaN), which saves half of the calls for two classes.
inline double ShiftedExp(const float* row, int j, int best, double shift) {
  return j == best && std::isfinite(shift) ? 1.0 : std::exp(row[j] - shift);
}

LossResult CrossEntropy(const float* out, int batch, int width,
                        const int32_t* labels, float* d_out) {
  LossResult result;
  double total = 0;
  const double inv_batch = 1.0 / batch;
  for (int b = 0; b < batch; ++b) {
    const float* row = out + static_cast<int64_t>(b) * width;
    const int label = labels[b];
    const int best = ArgMax(row, width);
    if (best == label) ++result.correct;
    // Shifting by the maximum keeps every exponent <= 0: no overflow, and
    // the largest term is exactly 1, so the sum is >= 1 (log is finite).
    const double shift = row[best];
    double sum = 0;
    for (int j = 0; j < width; ++j) sum += ShiftedExp(row, j, best, shift);
    total += shift + std::log(sum) - row[label];
    if (d_out == nullptr) continue;
    float* d_row = d_out + static_cast<int64_t>(b) * width;
    const double scale = inv_batch / sum;
    for (int j = 0; j < width; ++j) {
      const double onehot = j == label ? 1.0 : 0.0;
      d_row[j] = static_cast<float>(ShiftedExp(row, j, best, shift) * scale -
                                    onehot * inv_batch);
    }
  }
  result.loss = total * inv_batch;
  return result;
}

LossResult BinaryCrossEntropy(const float* out, int batch, int width,
                              const int32_t* labels, float* d_out) {
  LossResult result;
  double total = 0;
  const double inv_batch = 1.0 / batch;
  for (int b = 0; b < batch; ++b) {
    const int64_t index = static_cast<int64_t>(b) * width;
    const double o = out[index];
    const double y = labels[b] == 1 ? 1.0 : 0.0;
    if ((o > 0) == (labels[b] == 1)) ++result.correct;
    total += Softplus(o) - y * o;
    if (d_out != nullptr) {
      d_out[index] = static_cast<float>((Sigmoid(o) - y) * inv_batch);
    }
  }
  result.loss = total * inv_batch;
  return result;
}

LossResult MeanSquaredError(const float* out, int batch, int width,
                            const float* targets, float* d_out) {
  const int64_t count = static_cast<int64_t>(batch) * width;
  const double inv_count = 1.0 / static_cast<double>(count);
  double total = 0;
  for (int64_t i = 0; i < count; ++i) {
    const double diff = static_cast<double>(out[i]) - targets[i];
    total += diff * diff;
    if (d_out != nullptr) d_out[i] = static_cast<float>(2.0 * diff * inv_count);
  }
  LossResult result;
  result.loss = total * inv_count;
  return result;
}

}  // namespace

LossResult ComputeLoss(gradwatch::v1::Loss loss, const float* out, int batch,
                       int width, const int32_t* labels, const float* targets,
                       float* d_out) {
  switch (loss) {
    case Loss::CROSS_ENTROPY:
      return CrossEntropy(out, batch, width, labels, d_out);
    case Loss::BINARY_CROSS_ENTROPY:
      return BinaryCrossEntropy(out, batch, width, labels, d_out);
    default:  // MSE; a valid spec has no other value
      return MeanSquaredError(out, batch, width, targets, d_out);
  }
}

void ApplyOutputLink(gradwatch::v1::Loss loss, const float* out, int batch,
                     int width, float* probs) {
  const int64_t count = static_cast<int64_t>(batch) * width;
  switch (loss) {
    case Loss::CROSS_ENTROPY:
      for (int b = 0; b < batch; ++b) {
        const float* row = out + static_cast<int64_t>(b) * width;
        float* p_row = probs + static_cast<int64_t>(b) * width;
        const int best = ArgMax(row, width);
        const double shift = row[best];
        double sum = 0;
        for (int j = 0; j < width; ++j) sum += ShiftedExp(row, j, best, shift);
        for (int j = 0; j < width; ++j) {
          p_row[j] = static_cast<float>(ShiftedExp(row, j, best, shift) / sum);
        }
      }
      break;
    case Loss::BINARY_CROSS_ENTROPY:
      for (int64_t i = 0; i < count; ++i) {
        probs[i] = static_cast<float>(Sigmoid(out[i]));
      }
      break;
    default:
      std::copy(out, out + count, probs);
      break;
  }
}

}  // namespace gradwatch::engine

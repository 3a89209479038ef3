#ifndef GRADWATCH_ENGINE_LOSS_H_
#define GRADWATCH_ENGINE_LOSS_H_

#include <cstdint>

#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// Mean loss over the batch and the number of correctly classified rows
/// (always 0 for MSE).
struct LossResult {
  double loss = 0;
  int64_t correct = 0;
};

/// Computes the loss of `out` ([batch][width], the output layer's linear
/// output) and, if `d_out` is not null, its gradient dL/d(out) with the
/// same shape. Labels: `labels` [batch] for CROSS_ENTROPY and
/// BINARY_CROSS_ENTROPY (width 1); `targets` [batch][width] for MSE.
///   CROSS_ENTROPY: L = mean_b(-log softmax(out_b)[label_b]), computed with
///     the max-shift (log-sum-exp) for stability; d = (softmax - onehot) / B.
///   BINARY_CROSS_ENTROPY: L = mean_b(softplus(o) - y o) (stable form);
///     d = (sigmoid(o) - y) / B.
///   MSE: L = mean over b and j of (o - y)^2; d = 2 (o - y) / (B * width).
/// Thread-safe (pure function); allocates nothing.
LossResult ComputeLoss(gradwatch::v1::Loss loss, const float* out, int batch,
                       int width, const int32_t* labels, const float* targets,
                       float* d_out);

/// Writes the loss's link function of `out` to `probs` (softmax, sigmoid, or
/// a copy for MSE) and returns nothing; used by Predict.
void ApplyOutputLink(gradwatch::v1::Loss loss, const float* out, int batch,
                     int width, float* probs);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_LOSS_H_

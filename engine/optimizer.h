#ifndef GRADWATCH_ENGINE_OPTIMIZER_H_
#define GRADWATCH_ENGINE_OPTIMIZER_H_

#include <cstdint>
#include <vector>

#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// One parameter tensor: a contiguous buffer of `size` values and its loss
/// gradient, in the same layout. The buffers are owned by the model.
struct ParamTensor {
  float* value = nullptr;
  const float* grad = nullptr;
  int64_t size = 0;
};

/// What one step did to one tensor, for the statistics: squared L2 norms of
/// the weights before and after the update and of the update applied, and
/// whether the values are bit-identical to before.
struct UpdateResult {
  double weight_sq_before = 0;
  double weight_sq_after = 0;
  double update_sq = 0;
  bool unchanged = true;
};

/// Applies the update rules documented on OptimizerSpec (SGD with heavy-ball
/// or Nesterov momentum, Adam, AdamW, RMSProp; coupled and decoupled weight
/// decay). The gradient buffers are read, never written: clipping and
/// coupled decay are applied on the fly as g' = grad_scale * g + wd * w.
///
/// All state (momentum, moments) is allocated in the constructor; Step
/// allocates nothing. Tensors of 65,536 entries or more are updated by the
/// calling thread's OpenMP threads (omp_get_max_threads); the weights are
/// the same for any thread count. Not thread-safe: one owner (the trainer).
class Optimizer {
 public:
  /// `spec` must have its defaults filled (WithDefaults).
  Optimizer(const gradwatch::v1::OptimizerSpec& spec,
            std::vector<ParamTensor> tensors);

  /// One update of every tensor with learning rate `lr`. `grad_scale`
  /// multiplies every gradient (1, or the clipping factor). `results` gets
  /// one entry per tensor, in registration order (resized once by the
  /// caller to tensors().size()).
  void Step(double lr, float grad_scale, std::vector<UpdateResult>& results);

  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  /// Number of Step calls so far (Adam's t).
  int64_t steps() const { return t_; }

 private:
  gradwatch::v1::OptimizerSpec spec_;
  std::vector<ParamTensor> tensors_;
  std::vector<std::vector<float>> first_;   // momentum buffer or Adam m
  std::vector<std::vector<float>> second_;  // Adam/RMSProp second moment
  int64_t t_ = 0;
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_OPTIMIZER_H_

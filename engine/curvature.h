#ifndef GRADWATCH_ENGINE_CURVATURE_H_
#define GRADWATCH_ENGINE_CURVATURE_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model.h"
#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// Estimates the dominant eigenvalue of the Hessian of the batch loss with
/// respect to all parameters (weights, biases, batch-norm scale and shift)
/// by power iteration. Each Hessian-vector product is a central finite
/// difference of two gradients of the training net on the batch already in
/// its input:
///
///   H v ~ (g(w + h v) - g(w - h v)) / (2 h),  ||v||_2 = 1 over all tensors,
///   h = kRelativeStep * max(1, ||w||_2).
///
/// The Hessian is that of the smooth piece of the loss the parameters are
/// on, as automatic differentiation gives it. A RELU, LEAKY_RELU or ELU
/// pre-activation that changes sign for one sample between w and w +- h v
/// makes the gradient jump, and the jump divided by 2h swamps H v (one
/// such unit among 8,192 turned 25.7 into -72). So after each perturbed
/// Forward, such pre-activations get back their unperturbed value (only
/// the activation's backward reads them): the backward then uses the
/// unperturbed derivative pattern, and what remains of the crossing is an
/// O(h) change of a forward value. A STEP unit's value itself jumps, so for
/// STEP layers h is halved instead (at most kMaxHalvings times, kept for
/// the rest of the estimate) until no pre-activation crosses.
///
/// The estimate is the Rayleigh quotient d.(g+ - g-) / d.d of the last
/// iteration, where d = w+ - w- is the perturbation actually stored in f32
/// (so the rounding of w +- h v does not bias it). Power iteration finds
/// the eigenvalue of largest magnitude, returned with its sign: near a
/// minimum it is the largest eigenvalue; a negative value means negative
/// curvature (a saddle) dominates. Convergence goes as
/// (|lambda_2| / |lambda_1|)^(2 * iterations). Accuracy once converged:
/// within 2e-3 of exact double-precision Hessians on small tanh, sigmoid,
/// ReLU, leaky ReLU, ELU, STEP and linear nets with and without batch norm
/// (tests/engine/curvature_test.cc; largest error measured 8e-4); on
/// 784-1000-500-100-10 and 64-256x8-10 ReLU nets it moves by <= 0.5% as h
/// goes to 1e-6 (the crossings' residue; 0.3% where the loss is flat).
///
/// The padding of blocked weight layouts is never perturbed. Afterwards
/// the parameters, their gradients and every activation buffer of the
/// training net (Z, A, batch-norm batch statistics, the backward's
/// gradients) are bit-identical to before, so training and the step's
/// statistics are unaffected. All buffers are allocated in Create; an
/// estimate allocates nothing. Costs 2 * iterations forward and backward
/// passes (plus one forward per halving). Not thread-safe: the trainer's
/// thread only, like the Model.
///
///   auto curvature = CurvatureEstimator::Create(*model);  // once per job
///   // on a curvature step, after Backward and before the optimizer step:
///   absl::StatusOr<double> top = (*curvature)->LargestEigenvalue(
///       *model, spec.loss(), labels, targets, iterations, seed);
class CurvatureEstimator {
 public:
  /// h relative to the parameters' norm. Smaller h shrinks the truncation
  /// error (as h^2; 4e-2 at 1e-3 on a batch-norm net) and the residue of
  /// kink crossings (23% at 1e-4 on a flat 784-1000-500-100-10 ReLU net,
  /// 0.3% at 1e-5), larger h the f32 rounding of the gradients (as 1/h;
  /// 8e-4 at 1e-5, 3e-3 at 3e-6 on a 5-input linear layer).
  static constexpr double kRelativeStep = 1e-5;
  /// How often h may be halved to keep STEP pre-activations on their side
  /// of 0.
  static constexpr int kMaxHalvings = 20;

  /// Allocates the copies of the parameters, gradients and training-net
  /// activations of `model`, and finds the padding of its weight layouts.
  /// `relative_step` replaces kRelativeStep (> 0; for accuracy studies).
  /// FAILED_PRECONDITION for a BF16 model (see curvature.cc).
  static absl::StatusOr<std::unique_ptr<CurvatureEstimator>> Create(
      Model& model, double relative_step = kRelativeStep);

  /// Runs `iterations` (>= 1) power iterations from a random direction
  /// drawn from `seed`, on the batch in model.train_net().input() with its
  /// `labels` [batch] (CROSS_ENTROPY, BINARY_CROSS_ENTROPY) or `targets`
  /// [batch][output units] (MSE). `model` is the one given to Create.
  /// Returns 0 when the Hessian is zero along the iteration (e.g. every
  /// unit dead). Errors: INVALID_ARGUMENT (iterations < 1, missing labels
  /// or targets, another model), FAILED_PRECONDITION (a non-finite
  /// gradient), INTERNAL (oneDNN). The model is restored in every case.
  absl::StatusOr<double> LargestEigenvalue(Model& model,
                                           gradwatch::v1::Loss loss,
                                           const int32_t* labels,
                                           const float* targets, int iterations,
                                           uint64_t seed);

  /// How many pre-activations the last estimate pinned to their side of a
  /// kink, and how often it halved h for a STEP layer (see above).
  int64_t pinned() const { return pinned_; }
  int halvings() const { return halvings_; }

 private:
  // A buffer of the training net saved and restored byte for byte.
  struct Snapshot {
    float* data = nullptr;
    std::vector<float> copy;
  };

  // A kinked activation's pre-activation: the live buffer and its copy
  // at the unperturbed parameters.
  struct KinkLayer {
    float* z = nullptr;
    const float* z_saved = nullptr;
    int64_t size = 0;
    bool step = false;  // STEP: the activation's value jumps too
  };

  CurvatureEstimator() = default;

  // Loss gradient and backward pass after a Forward; false if the loss is
  // not finite.
  bool LossAndBackward(Model& model, gradwatch::v1::Loss loss,
                       const int32_t* labels, const float* targets);
  // Whether the last Forward moved a STEP layer's pre-activation across 0.
  bool StepCrossed() const;
  // After a Forward: gives every other kinked pre-activation that crossed
  // 0 its unperturbed value, which only the activation's backward reads
  // (net.cc). Returns how many.
  int64_t PinKinks();
  // g(w + step v) into g_plus_ and g(w - step v) into the gradients,
  // on the unperturbed activation pattern; false if a loss is not finite.
  bool GradientPair(Model& model, gradwatch::v1::Loss loss,
                    const int32_t* labels, const float* targets, float& step);
  void Save();
  void Restore();
  // Parameters = saved w + step * v.
  void SetWeights(float step);
  void FillRandomDirection(uint64_t seed);
  void ZeroPadding(std::vector<float>& x) const;

  const Model* model_ = nullptr;
  double relative_step_ = kRelativeStep;
  std::vector<ParamTensor> tensors_;  // Model::ParamTensors()
  int64_t size_ = 0;                  // parameters, padding included
  std::vector<float> weights_;        // w, all tensors in ParamTensors order
  std::vector<float> grads_;          // g(w)
  std::vector<float> v_;              // the iterate, unit norm
  std::vector<float> g_plus_;         // g(w + h v), then the difference
  std::vector<Snapshot> activations_;
  std::vector<KinkLayer> kinks_;
  int halvings_ = 0;
  int64_t pinned_ = 0;
  // [begin, end) offsets of weight-layout padding in the flat buffers.
  std::vector<std::pair<int64_t, int64_t>> padding_;
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_CURVATURE_H_

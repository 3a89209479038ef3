#ifndef GRADWATCH_ENGINE_MODEL_H_
#define GRADWATCH_ENGINE_MODEL_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/layer_params.h"
#include "engine/net.h"
#include "engine/optimizer.h"
#include "gradwatch/v1/spec.pb.h"
#include "gradwatch/v1/trainer.pb.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace gradwatch::engine {

/// The multilayer perceptron: its parameters (initialized from the spec or
/// from explicit initial weights), the training Net for the job's batch
/// size, and forward-only Nets for evaluation and prediction.
///
/// Not thread-safe: the owner serializes calls.
class Model {
 public:
  /// Rows per forward-only chunk (the last chunk is zero-padded).
  static constexpr int kInferenceChunk = 256;

  /// `spec` must be valid and have its defaults filled (WithDefaults).
  static absl::StatusOr<std::unique_ptr<Model>> Create(
      const gradwatch::v1::JobSpec& spec, int input_features, int train_batch);

  Net& train_net() { return *train_net_; }
  std::vector<LayerParams>& params() { return params_; }
  const std::vector<LayerParams>& params() const { return params_; }
  int input_features() const { return input_features_; }
  int output_units() const { return params_.back().units; }

  /// Every parameter tensor with its gradient, in the order: per layer
  /// weights, bias, then bn_scale and bn_shift if the layer has them.
  std::vector<ParamTensor> ParamTensors();

  /// Folds the last training Forward's batch-norm statistics into the
  /// running ones (momentum 0.1, unbiased variance, as PyTorch).
  void UpdateRunningStats();

  /// Runs forward-only (running batch-norm statistics) over `rows` rows of
  /// `x` ([rows][input_features]) in chunks; after each chunk calls
  /// `visit(net, first_row, chunk_rows)`, where the net's activations hold
  /// the chunk (only the first chunk_rows rows are real).
  absl::Status ForEachInferenceChunk(
      const float* x, int64_t rows,
      const std::function<void(const Net&, int64_t, int)>& visit);

  /// The parameters in LayerParameters' plain layout.
  absl::StatusOr<gradwatch::v1::Model> Export() const;

 private:
  Model() = default;
  absl::Status Build(const gradwatch::v1::JobSpec& spec, int train_batch);

  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  int input_features_ = 0;
  std::vector<LayerParams> params_;
  std::unique_ptr<Net> train_net_;
  std::unique_ptr<Net> inference_net_;  // created on first use
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_MODEL_H_

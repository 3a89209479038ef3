#ifndef GRADWATCH_ENGINE_NET_H_
#define GRADWATCH_ENGINE_NET_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/layer_params.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace gradwatch::engine {

/// One layer's activations in a Net, plain row-major [batch][units]. Names
/// that are the same tensor share the memory: `z` is `fc_dst` without batch
/// norm before the activation, `act` is `z` for LINEAR, `out` is `act`
/// without batch norm after it.
struct LayerActivations {
  dnnl::memory fc_dst;           // X W + b
  dnnl::memory z;                // the activation's input ("pre-activation")
  dnnl::memory act;              // f(z)
  dnnl::memory out;              // what the next layer reads
  dnnl::memory bn_mean, bn_var;  // this step's batch statistics (training)
  // Training only: gradients of the loss with respect to the above.
  dnnl::memory diff_out, diff_act, diff_z, diff_fc_dst;
};

/// Writes the activation A of a ReLU or leaky ReLU layer from its Z during
/// Net::ForwardActivating, exactly as oneDNN's eltwise_relu forward would
/// (StatsCollector: with the layer's statistics, in the same pass).
class ActivationWriter {
 public:
  virtual void WriteActivation(int layer) = 0;

 protected:
  ~ActivationWriter() = default;
};

/// The forward (and, for training, backward) pass of the model for one
/// batch size, built once: every primitive descriptor, primitive and
/// activation buffer is created in Create, and Forward/Backward are a list
/// of execute calls that allocate nothing. Reads and writes the parameters
/// owned by the caller's LayerParams, which must outlive the Net.
///
/// Not thread-safe: one thread at a time.
class Net {
 public:
  enum class Mode { kTraining, kInference };

  static absl::StatusOr<std::unique_ptr<Net>> Create(
      const dnnl::engine& engine, std::vector<LayerParams>& params,
      int input_features, int batch, Mode mode);

  /// [batch][input_features], written by the caller before Forward.
  float* input() { return static_cast<float*>(input_.get_data_handle()); }
  /// [batch][output units], valid after Forward.
  const float* output() const;
  /// [batch][output units]: dL/d(output), written by the caller before
  /// Backward. Training only.
  float* diff_output();

  /// Training: batch statistics in batch norm. Inference: running ones.
  /// Writes every activation buffer.
  void Forward();
  /// Forward with ReLU and leaky ReLU applied as the inner product's
  /// post-op where no batch norm comes between them: one primitive
  /// instead of two, and Z (`z`, `fc_dst`) of those layers is not written.
  /// What a training step without statistics needs: every other buffer,
  /// and the output, is the same as after Forward, bit for bit, and so is
  /// what Backward computes from them.
  void ForwardFused();
  /// Forward, but the activation of every ReLU and leaky ReLU layer is
  /// written by `writer` (WriteActivation(l), once Z is written) instead of
  /// oneDNN's eltwise primitive. Training only.
  void ForwardActivating(ActivationWriter& writer);
  /// Fills every parameter gradient of the LayerParams. Training only,
  /// after one of the forward passes. The input's gradient is not
  /// computed. ReLU's derivative is taken from Z as it is then (the
  /// curvature estimator pins Z entries to their side of the kink before
  /// calling Backward), or from A after ForwardFused.
  void Backward();

  int batch() const { return batch_; }
  int num_layers() const { return static_cast<int>(layers_.size()); }
  const LayerActivations& layer(int l) const { return layers_[l]; }

 private:
  Net(dnnl::engine engine, int batch);
  void Build(std::vector<LayerParams>& params, int input_features, Mode mode);

  dnnl::engine engine_;
  dnnl::stream stream_;
  int batch_;
  dnnl::memory input_;
  std::vector<LayerActivations> layers_;
  std::vector<std::function<void()>> forward_ops_;
  std::vector<std::function<void()>> fused_forward_ops_;
  std::vector<std::function<void()>> activating_forward_ops_;
  ActivationWriter* activation_writer_ = nullptr;  // in ForwardActivating
  bool z_written_ = true;                          // by the last forward pass
  std::vector<std::function<void()>> backward_ops_;
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_NET_H_

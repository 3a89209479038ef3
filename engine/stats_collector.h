#ifndef GRADWATCH_ENGINE_STATS_COLLECTOR_H_
#define GRADWATCH_ENGINE_STATS_COLLECTOR_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "engine/activation_stats.h"
#include "engine/dataset.h"
#include "engine/gradient_stats.h"
#include "engine/model.h"
#include "engine/net.h"
#include "engine/optimizer.h"
#include "gradwatch/v1/events.pb.h"
#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// Fills the per-layer figures of a step (StepStats.layers) from the
/// model's training net, parameters and gradients, as docs/statistics.md
/// defines them: dead, windowed-dead, revived, newly dead and saturated
/// units, activation health, the optional Z histogram, and for each
/// parameter tensor the gradient figures, weight norm, update ratio and
/// "unchanged". SweepDataset adds the dead ratio over the training set.
///
/// Everything is allocated in the constructor; Collect allocates nothing
/// once the StepStats it fills has held a step's figures (its repeated
/// fields are reused). The windowed dead set is state: call Collect once
/// per collected step, in order. Not thread-safe: the trainer's thread
/// only.
///
///   StatsCollector collector(spec.monitoring(), *model);  // once per job
///   // each collected step: the forward pass (ReLU layers' activations
///   // written by the collector, with their statistics; or Forward()),
///   // then the other layers' statistics:
///   model->train_net().ForwardActivating(collector);
///   collector.CollectActivations();
///   // after Backward:
///   double grad_norm = collector.CollectGradients(stats);
///   // ... Optimizer::Step(lr, clip_scale(grad_norm), updates) ...
///   collector.CollectLayers(*model, updates, stats);
///   // (or Collect(*model, updates, stats) after the update: both at once)
///   // on dataset-sweep steps, after Collect:
///   absl::Status s = collector.SweepDataset(*model, train, stats);
class StatsCollector : public ActivationWriter {
 public:
  /// `monitoring` has its defaults filled (dead_window, saturation_eps,
  /// histograms). `model` must outlive the collector and be the one passed
  /// to Collect and SweepDataset.
  StatsCollector(const gradwatch::v1::MonitoringSpec& monitoring, Model& model);

  /// Fills stats->layers with one LayerStats per layer, in order, from the
  /// training net's last Forward/Backward and the parameters after the
  /// update. `updates` holds one UpdateResult per tensor in
  /// Model::ParamTensors() order, or is empty when no update was applied
  /// (the update figures are then 0 and "unchanged" true).
  /// dead_dataset_ratio is cleared. Same as CollectGradients, then
  /// CollectLayers.
  void Collect(const Model& model, const std::vector<UpdateResult>& updates,
               gradwatch::v1::StepStats* stats);

  /// The gradient figures of every parameter tensor (name and grad_* fields
  /// of each TensorStats), from one sweep over each gradient buffer.
  /// Returns the L2 norm over all gradients (StepStats.grad_norm), so that
  /// a caller that needs it before the update (clipping) sweeps the
  /// gradients once: call it after Backward, apply the update (which does
  /// not change gradients), then call CollectLayers on the same message.
  double CollectGradients(gradwatch::v1::StepStats* stats);

  /// CollectGradients in two halves, for a caller that sweeps on another
  /// thread (SpareThread) while its own goes on: SweepGradients computes
  /// every tensor's figures into the collector's own summaries and touches
  /// nothing else (no message, no other state of the collector), so it may
  /// run beside any call but CollectGradients, Collect and FillGradients,
  /// as long as nothing writes the gradients. FillGradients
  /// then writes the figures of the last sweep into `stats`, on the
  /// caller's thread, and returns the L2 norm over all gradients.
  void SweepGradients();
  double FillGradients(gradwatch::v1::StepStats* stats);

  /// Computes every layer's unit and activation statistics from the
  /// training net's last Forward, for the next CollectLayers to report.
  /// Call it right after Forward, while the activations are still in
  /// cache: by the end of a large net's step, its backward pass and update
  /// have pushed them out, and reading them back costs more than the
  /// statistics themselves. CollectLayers computes them itself when this
  /// was not called since the previous CollectLayers. Large nets have every
  /// layer split among the calling thread's OpenMP threads (the figures do
  /// not depend on the split: ActivationStats::ComputePart).
  void CollectActivations();

  /// For Net::ForwardActivating, which calls it for ReLU and leaky ReLU
  /// layers only: writes layer `l`'s activation from its Z and computes the
  /// layer's statistics in the same pass
  /// (ActivationStats::ComputeWritingActivation), so that a collected step
  /// reads each such layer once instead of three times (the activation
  /// primitive, then Z and A for the statistics). The next
  /// CollectActivations computes only the other layers.
  void WriteActivation(int l) override;

  /// Everything but the gradient figures: unit and activation statistics,
  /// the windowed dead set (one call per collected step), weight norms and
  /// update figures. dead_dataset_ratio is cleared.
  void CollectLayers(const Model& model,
                     const std::vector<UpdateResult>& updates,
                     gradwatch::v1::StepStats* stats);

  /// Runs the model forward-only over every training example and sets each
  /// layer's dead_dataset_ratio: the fraction of units inactive on every
  /// example. Adds the LayerStats entries (index, name, activation, units)
  /// if stats has none yet. Errors come from the forward passes.
  absl::Status SweepDataset(Model& model, const Dataset& train,
                            gradwatch::v1::StepStats* stats);

  /// Units in the windowed dead set of layer `l` after the last Collect.
  int dead_window_units(int l) const { return layers_[l].dead_window_units; }

  /// One parameter tensor of a layer and its gradient (internal).
  struct TensorRef {
    const char* name;
    const float* value;
    const float* grad;
    int64_t elements;  // padding included
    int64_t padding;
    std::vector<int32_t> gather_index;  // see tensors_
  };

 private:
  struct LayerState {
    ActivationFunction activation;
    ActivationStats stats;
    // The training net's Z and A of this layer.
    const float* z;
    float* act;
    // Consecutive collected steps (capped at the window) on which each
    // unit was inactive on the whole batch.
    std::vector<uint16_t> dead_run;
    int dead_window_units = 0;
    std::vector<uint8_t> dataset_inactive;  // SweepDataset's flags
  };

  // Threads for the activation statistics: the job's, for large nets.
  int ActivationThreads() const;
  void FillLayer(int l, const LayerParams& p, gradwatch::v1::LayerStats* out);
  void FillUpdate(const TensorRef& tensor, const UpdateResult* update,
                  gradwatch::v1::TensorStats* out);
  void UpdateWindow(LayerState& layer, gradwatch::v1::LayerStats* out);

  const Net* train_net_;
  uint16_t window_;
  std::vector<LayerState> layers_;
  // Z entries of all layers (batch x units).
  int64_t total_entries_ = 0;
  // Whether each layer's stats hold the figures of the net's last Forward
  // that the next CollectLayers is to report.
  bool activations_current_ = false;
  // Per layer, 1 if WriteActivation computed its statistics since the last
  // CollectActivations.
  std::vector<uint8_t> written_;
  // One per parameter tensor, in Model::ParamTensors() order. The buffers'
  // addresses and sizes are fixed for the model's life and found once:
  // asking oneDNN for them every step cost tiny's collected step two
  // points of its plain step's time.
  // gather_index: the offsets of the real entries of a small padded
  // weights buffer, whose gradient is swept from a copy of those entries
  // in gather_scratch_ (empty: swept in place). A blocked layout can pad a
  // few inputs or units to many: tiny's 64 x 2 weights fill 128 of 1,024
  // entries, in runs of two.
  std::vector<TensorRef> tensors_;
  // Per layer, its tensors' range in tensors_.
  std::vector<int> first_tensor_;
  std::vector<GradientSummary> summaries_;
  // Whole cache lines, as summaries_ (GradientSummary is aligned to one):
  // a sweep on another thread writes no line that this one uses.
  struct AlignedFree {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], AlignedFree> gather_scratch_;
  std::vector<float> dataset_scratch_;  // [max units]
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_STATS_COLLECTOR_H_

#include "engine/stats_collector.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <new>

#include "absl/strings/str_cat.h"
#include "engine/onednn_util.h"

namespace gradwatch::engine {
namespace {

// MonitoringSpec.dead_window's documented range; the counters are 16-bit.
constexpr uint32_t kMaxDeadWindow = 4096;
// From this many activation entries (Z and A each) over all layers, the
// layers' statistics are split among the job's OpenMP threads; below it,
// starting the team costs more than it saves.
constexpr int64_t kParallelActivationEntries = int64_t{1} << 16;
constexpr int kMaxThreads = 64;
constexpr size_t kCacheLine = 64;

double Ratio(int64_t part, int64_t whole) {
  return whole > 0 ? static_cast<double>(part) / static_cast<double>(whole)
                   : 0.0;
}

// The layer's tensors in Model::ParamTensors() order; returns their count.
int LayerTensors(const LayerParams& p, StatsCollector::TensorRef* refs) {
  refs[0] = {"weights",
             Data(p.weights),
             Data(p.diff_weights),
             Elements(p.weights_md),
             p.weights_padding,
             {}};
  refs[1] = {"bias", Data(p.bias), Data(p.diff_bias), p.units, 0, {}};
  if (!p.has_bn) return 2;
  refs[2] = {"bn_scale", Data(p.bn_scale), Data(p.diff_bn_scale), p.units, 0,
             {}};
  refs[3] = {"bn_shift", Data(p.bn_shift), Data(p.diff_bn_shift), p.units, 0,
             {}};
  return 4;
}

// Offsets of the real entries of a layer's weights buffer.
std::vector<int32_t> RealEntries(const LayerParams& p) {
  std::vector<bool> real(Elements(p.weights_md), true);
  for (const auto& [begin, end] : p.weights_padding_ranges) {
    std::fill(real.begin() + begin, real.begin() + end, false);
  }
  std::vector<int32_t> index;
  for (size_t i = 0; i < real.size(); ++i) {
    if (real[i]) index.push_back(static_cast<int32_t>(i));
  }
  return index;
}

// Keeps `count` elements in a repeated message field, reusing the ones it
// holds (a cleared RepeatedPtrField keeps its objects for the next Add).
template <class Field>
void EnsureSize(Field* field, int count) {
  if (field->size() == count) return;
  field->Clear();
  for (int i = 0; i < count; ++i) field->Add();
}

// Sets a name only where it differs: a reused message mostly holds it
// already, and assigning it cost tiny's step ~65 TSC cycles a tensor,
// comparing it a fraction of that.
template <typename Message, typename Name>
void SetName(const Name& name, Message* out) {
  if (out->name() != name) out->set_name(name);
}

void SetIdentity(int l, const LayerParams& p, v1::Activation activation,
                 v1::LayerStats* out) {
  out->set_index(static_cast<uint32_t>(l));
  SetName(p.spec.name(), out);
  out->set_activation(activation);
  out->set_units(static_cast<uint32_t>(p.units));
}

}  // namespace

StatsCollector::StatsCollector(const v1::MonitoringSpec& monitoring,
                               Model& model)
    : train_net_(&model.train_net()),
      window_(static_cast<uint16_t>(
          std::clamp<uint32_t>(monitoring.dead_window(), 1, kMaxDeadWindow))) {
  const int64_t batch = train_net_->batch();
  for (const LayerParams& p : model.params()) total_entries_ += batch * p.units;
  const int parts = ActivationThreads();
  layers_.reserve(model.params().size());
  int max_units = 0;
  size_t most_gathered = 0;
  for (size_t l = 0; l < model.params().size(); ++l) {
    const LayerParams& p = model.params()[l];
    const ActivationFunction f = ActivationFunction::FromSpec(p.spec);
    const LayerActivations& la = train_net_->layer(static_cast<int>(l));
    layers_.push_back(LayerState{
        f,
        ActivationStats(f, p.units, train_net_->batch(),
                        monitoring.saturation_eps(), monitoring.histograms(),
                        parts),
        Data(la.z),
        Data(la.act),
        std::vector<uint16_t>(p.units, 0),
        0,
        std::vector<uint8_t>(p.units, 1),
    });
    max_units = std::max(max_units, p.units);
    first_tensor_.push_back(static_cast<int>(tensors_.size()));
    TensorRef refs[4];
    const int count = LayerTensors(p, refs);
    if (p.weights_padding > 0 &&
        Elements(p.weights_md) < kParallelSweepElements) {
      refs[0].gather_index = RealEntries(p);
      most_gathered = std::max(most_gathered, refs[0].gather_index.size());
    }
    for (int k = 0; k < count; ++k) tensors_.push_back(std::move(refs[k]));
  }
  first_tensor_.push_back(static_cast<int>(tensors_.size()));
  dataset_scratch_.resize(max_units);
  written_.assign(layers_.size(), 0);
  summaries_.resize(tensors_.size());
  if (most_gathered > 0) {
    const size_t bytes = (most_gathered * sizeof(float) + kCacheLine - 1) /
                         kCacheLine * kCacheLine;
    gather_scratch_.reset(static_cast<float*>(
        ::operator new[](bytes, std::align_val_t{kCacheLine})));
  }
}

void StatsCollector::Collect(const Model& model,
                             const std::vector<UpdateResult>& updates,
                             v1::StepStats* stats) {
  CollectGradients(stats);
  CollectLayers(model, updates, stats);
}

double StatsCollector::CollectGradients(v1::StepStats* stats) {
  SweepGradients();
  return FillGradients(stats);
}

void StatsCollector::SweepGradients() {
  for (size_t t = 0; t < tensors_.size(); ++t) {
    const TensorRef& ref = tensors_[t];
    const float* grad = ref.grad;
    int64_t elements = ref.elements;
    int64_t padding = ref.padding;
    const std::vector<int32_t>& index = ref.gather_index;
    if (!index.empty()) {
      for (size_t i = 0; i < index.size(); ++i) {
        gather_scratch_[i] = grad[index[i]];
      }
      grad = gather_scratch_.get();
      elements = static_cast<int64_t>(index.size());
      padding = 0;
    }
    SweepGradient(grad, elements, padding, summaries_[t]);
  }
}

double StatsCollector::FillGradients(v1::StepStats* stats) {
  const int num_layers = static_cast<int>(layers_.size());
  EnsureSize(stats->mutable_layers(), num_layers);
  double sum_squares = 0;
  for (int l = 0; l < num_layers; ++l) {
    const int first = first_tensor_[l];
    const int count = first_tensor_[l + 1] - first;
    auto* tensors = stats->mutable_layers(l)->mutable_params();
    EnsureSize(tensors, count);
    for (int k = 0; k < count; ++k) {
      v1::TensorStats* out = tensors->Mutable(k);
      SetName(tensors_[first + k].name, out);
      FillGradientStats(summaries_[first + k], out);
      sum_squares += summaries_[first + k].sum_squares;
    }
  }
  return std::sqrt(sum_squares);
}

void StatsCollector::AlignedFree::operator()(float* p) const {
  ::operator delete[](p, std::align_val_t{kCacheLine});
}

int StatsCollector::ActivationThreads() const {
  return total_entries_ >= kParallelActivationEntries
             ? std::min(omp_get_max_threads(), kMaxThreads)
             : 1;
}

void StatsCollector::WriteActivation(int l) {
  const float* z = layers_[l].z;
  float* a = layers_[l].act;
  const int batch = train_net_->batch();
  ActivationStats& stats = layers_[l].stats;
  const int threads = ActivationThreads();
  if (threads <= 1) {
    stats.ComputeWritingActivation(z, a, batch);
  } else {
#pragma omp parallel num_threads(threads)
    stats.ComputePartWritingActivation(z, a, batch, omp_get_thread_num(),
                                       omp_get_num_threads());
    stats.Finish(z, a, batch);
  }
  written_[l] = 1;
}

void StatsCollector::CollectActivations() {
  const int num_layers = static_cast<int>(layers_.size());
  const int batch = train_net_->batch();
  const int threads = ActivationThreads();
  if (threads <= 1) {
    for (int l = 0; l < num_layers; ++l) {
      if (written_[l]) continue;
      LayerState& layer = layers_[l];
      layer.stats.Compute(layer.z, layer.act, batch);
    }
  } else {
    // Every thread takes its part of every layer: equal shares of the
    // work, whatever the layers' sizes.
#pragma omp parallel num_threads(threads)
    {
      const int part = omp_get_thread_num();
      const int parts = omp_get_num_threads();
      for (int l = 0; l < num_layers; ++l) {
        if (written_[l]) continue;
        LayerState& layer = layers_[l];
        layer.stats.ComputePart(layer.z, layer.act, batch, part, parts);
      }
    }
    for (int l = 0; l < num_layers; ++l) {
      if (written_[l]) continue;
      LayerState& layer = layers_[l];
      layer.stats.Finish(layer.z, layer.act, batch);
    }
  }
  std::fill(written_.begin(), written_.end(), 0);
  activations_current_ = true;
}

void StatsCollector::CollectLayers(const Model& model,
                                   const std::vector<UpdateResult>& updates,
                                   v1::StepStats* stats) {
  if (!activations_current_) CollectActivations();
  activations_current_ = false;
  const std::vector<LayerParams>& params = model.params();
  const int num_layers = static_cast<int>(params.size());
  EnsureSize(stats->mutable_layers(), num_layers);
  const bool have_updates = updates.size() == tensors_.size();
  for (int l = 0; l < num_layers; ++l) {
    v1::LayerStats* out = stats->mutable_layers(l);
    FillLayer(l, params[l], out);
    const int first = first_tensor_[l];
    const int count = first_tensor_[l + 1] - first;
    auto* tensors = out->mutable_params();
    EnsureSize(tensors, count);
    for (int k = 0; k < count; ++k) {
      FillUpdate(tensors_[first + k],
                 have_updates ? &updates[first + k] : nullptr,
                 tensors->Mutable(k));
    }
  }
}

void StatsCollector::FillLayer(int l, const LayerParams& p,
                               v1::LayerStats* out) {
  LayerState& layer = layers_[l];
  const ActivationStats& s = layer.stats;

  SetIdentity(l, p, layer.activation.kind, out);
  out->set_dead_units(static_cast<uint32_t>(s.inactive_units()));
  out->set_dead_ratio(Ratio(s.inactive_units(), p.units));
  UpdateWindow(layer, out);
  out->clear_dead_dataset_ratio();
  out->set_saturated_units(static_cast<uint32_t>(s.saturated_units()));
  out->set_saturated_ratio(Ratio(s.saturated_units(), p.units));

  const ActivationMoments& m = s.moments();
  out->set_a_mean(m.a_mean);
  out->set_a_std(m.a_std);
  out->set_z_mean(m.z_mean);
  out->set_z_std(m.z_std);
  out->set_z_min(m.z_min);
  out->set_z_max(m.z_max);
  out->set_z_negative_fraction(m.z_negative_fraction);
  out->set_z_nonfinite_count(m.z_nonfinite_count);

  if (s.has_histogram()) {
    v1::Histogram* h = out->mutable_z_histogram();
    h->set_min(s.histogram_min());
    h->set_max(s.histogram_max());
    auto* counts = h->mutable_counts();
    counts->Resize(s.histogram_bins(), 0);
    std::copy(s.histogram_counts(), s.histogram_counts() + s.histogram_bins(),
              counts->mutable_data());
  } else {
    out->clear_z_histogram();
  }
}

void StatsCollector::UpdateWindow(LayerState& layer, v1::LayerStats* out) {
  const std::vector<uint8_t>& inactive = layer.stats.inactive();
  const int units = static_cast<int>(inactive.size());
  int in_window = 0, revived = 0, newly_dead = 0;
  for (int j = 0; j < units; ++j) {
    const uint16_t before = layer.dead_run[j];
    const uint16_t after =
        inactive[j] ? static_cast<uint16_t>(std::min<int>(before + 1, window_))
                    : 0;
    layer.dead_run[j] = after;
    const bool was_dead = before >= window_;
    const bool is_dead = after >= window_;
    in_window += is_dead;
    revived += was_dead && !is_dead;
    newly_dead += is_dead && !was_dead;
  }
  layer.dead_window_units = in_window;
  out->set_dead_window_units(static_cast<uint32_t>(in_window));
  out->set_dead_window_ratio(Ratio(in_window, units));
  out->set_revived_units(static_cast<uint32_t>(revived));
  out->set_newly_dead_units(static_cast<uint32_t>(newly_dead));
}

void StatsCollector::FillUpdate(const TensorRef& tensor,
                                const UpdateResult* update,
                                v1::TensorStats* out) {
  if (update != nullptr) {
    // The optimizer summed the new weights as it wrote them: no second
    // pass over the buffer.
    out->set_weight_l2_norm(std::sqrt(update->weight_sq_after));
    out->set_update_ratio(update->weight_sq_before > 0
                              ? std::sqrt(update->update_sq) /
                                    std::sqrt(update->weight_sq_before)
                              : 0.0);
    out->set_unchanged(update->unchanged);
  } else {
    // Padding entries are exactly 0 and add nothing to the norm.
    out->set_weight_l2_norm(
        std::sqrt(SumOfSquares(tensor.value, tensor.elements)));
    out->set_update_ratio(0.0);
    out->set_unchanged(true);
  }
}

absl::Status StatsCollector::SweepDataset(Model& model, const Dataset& train,
                                          v1::StepStats* stats) {
  if (train.rows <= 0) {
    return absl::FailedPreconditionError(
        "the dataset sweep needs at least one training example");
  }
  if (train.features != model.input_features()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the dataset has ", train.features,
                     " features, the model takes ", model.input_features()));
  }
  for (LayerState& layer : layers_) {
    std::fill(layer.dataset_inactive.begin(), layer.dataset_inactive.end(), 1);
  }
  const std::vector<LayerParams>& params = model.params();
  absl::Status status = model.ForEachInferenceChunk(
      train.x.data(), train.rows, [&](const Net& net, int64_t, int rows) {
        for (size_t l = 0; l < layers_.size(); ++l) {
          const LayerActivations& la = net.layer(static_cast<int>(l));
          ActivationStats::ClearActiveUnits(layers_[l].activation, Data(la.z),
                                            Data(la.act), rows, params[l].units,
                                            layers_[l].dataset_inactive.data(),
                                            dataset_scratch_.data());
        }
      });
  if (!status.ok()) return status;

  const int num_layers = static_cast<int>(layers_.size());
  if (stats->layers_size() != num_layers) {
    EnsureSize(stats->mutable_layers(), num_layers);
    for (int l = 0; l < num_layers; ++l) {
      SetIdentity(l, params[l], layers_[l].activation.kind,
                  stats->mutable_layers(l));
    }
  }
  for (int l = 0; l < num_layers; ++l) {
    const std::vector<uint8_t>& flags = layers_[l].dataset_inactive;
    const int64_t dead = std::count(flags.begin(), flags.end(), 1);
    stats->mutable_layers(l)->set_dead_dataset_ratio(
        Ratio(dead, static_cast<int64_t>(flags.size())));
  }
  return absl::OkStatus();
}

}  // namespace gradwatch::engine

#include "client/export.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace gradwatch::client {
namespace {

namespace v1 = ::gradwatch::v1;

constexpr const char* kColumns[] = {"step",
                                    "epoch",
                                    "loss",
                                    "accuracy",
                                    "learning_rate",
                                    "grad_norm",
                                    "validation_loss",
                                    "validation_accuracy",
                                    "layer",
                                    "layer_name",
                                    "activation",
                                    "units",
                                    "dead_units",
                                    "dead_ratio",
                                    "dead_window_ratio",
                                    "dead_dataset_ratio",
                                    "saturated_ratio",
                                    "z_mean",
                                    "z_std",
                                    "z_min",
                                    "z_max",
                                    "z_negative_fraction",
                                    "weights_grad_l2_norm",
                                    "weights_grad_mean_abs",
                                    "weights_grad_max_abs",
                                    "weights_grad_zero_fraction",
                                    "weights_grad_subnormal_count",
                                    "weights_update_ratio",
                                    "weights_unchanged",
                                    "bias_grad_l2_norm",
                                    "bias_update_ratio"};

std::string Number(double value) { return absl::StrFormat("%.9g", value); }

const v1::TensorStats* Tensor(const v1::LayerStats& layer,
                              const std::string& name) {
  for (const v1::TensorStats& tensor : layer.params()) {
    if (tensor.name() == name) return &tensor;
  }
  return nullptr;
}

// Layer names are [A-Za-z0-9_.-] and enums are identifiers: no cell needs
// quoting.
std::vector<std::string> LayerCells(const v1::LayerStats& layer) {
  const v1::TensorStats* weights = Tensor(layer, "weights");
  const v1::TensorStats* bias = Tensor(layer, "bias");
  return {
      absl::StrCat(layer.index()),
      layer.name(),
      v1::Activation_Name(layer.activation()),
      absl::StrCat(layer.units()),
      absl::StrCat(layer.dead_units()),
      Number(layer.dead_ratio()),
      Number(layer.dead_window_ratio()),
      layer.has_dead_dataset_ratio() ? Number(layer.dead_dataset_ratio()) : "",
      Number(layer.saturated_ratio()),
      Number(layer.z_mean()),
      Number(layer.z_std()),
      Number(layer.z_min()),
      Number(layer.z_max()),
      Number(layer.z_negative_fraction()),
      weights ? Number(weights->grad_l2_norm()) : "",
      weights ? Number(weights->grad_mean_abs()) : "",
      weights ? Number(weights->grad_max_abs()) : "",
      weights ? Number(weights->grad_zero_fraction()) : "",
      weights ? absl::StrCat(weights->grad_subnormal_count()) : "",
      weights ? Number(weights->update_ratio()) : "",
      weights ? (weights->unchanged() ? "1" : "0") : "",
      bias ? Number(bias->grad_l2_norm()) : "",
      bias ? Number(bias->update_ratio()) : "",
  };
}

}  // namespace

StatsCsvWriter::StatsCsvWriter(std::ostream& out) : out_(out) {
  out_ << absl::StrJoin(kColumns, ",") << '\n';
}

void StatsCsvWriter::Write(const v1::JobEvent& event) {
  if (!event.has_stats()) return;
  const v1::StepStats& stats = event.stats();
  const std::vector<std::string> step_cells = {
      absl::StrCat(stats.step()),
      absl::StrCat(stats.epoch()),
      Number(stats.loss()),
      Number(stats.accuracy()),
      Number(stats.learning_rate()),
      Number(stats.grad_norm()),
      stats.has_validation_loss() ? Number(stats.validation_loss()) : "",
      stats.has_validation_accuracy() ? Number(stats.validation_accuracy())
                                      : "",
  };
  const std::string prefix = absl::StrJoin(step_cells, ",");
  if (stats.layers().empty()) {
    out_ << prefix << std::string(std::size(kColumns) - step_cells.size(), ',')
         << '\n';
    return;
  }
  for (const v1::LayerStats& layer : stats.layers()) {
    out_ << prefix << ',' << absl::StrJoin(LayerCells(layer), ",") << '\n';
  }
}

}  // namespace gradwatch::client

#include "server/limits.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "engine/dataset.h"
#include "engine/spec_defaults.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;

// engine::Model::kInferenceChunk, which this library cannot include (its
// header needs oneDNN's).
constexpr int64_t kInferenceRows = 256;

// Rows and fields of a CSV document, counted without parsing numbers: the
// limits are checked before any of the dataset is built. Empty lines are
// skipped, as the engine's parser does.
struct CsvShape {
  int64_t rows = 0;
  int64_t fields = 0;
};

CsvShape MeasureCsv(const v1::CsvData& csv) {
  CsvShape shape;
  bool skip_header = csv.header();
  absl::string_view content = csv.content();
  // The parser drops a byte order mark; left in, it would make a line of
  // its own look non-blank and be counted as the first row.
  absl::ConsumePrefix(&content, "\xEF\xBB\xBF");
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    if (skip_header) {
      skip_header = false;
      continue;
    }
    if (shape.rows == 0) {
      shape.fields =
          1 + static_cast<int64_t>(std::count(line.begin(), line.end(), ','));
    }
    ++shape.rows;
  }
  return shape;
}

int64_t SaturatingMul(int64_t a, int64_t b) {
  if (a <= 0 || b <= 0) return 0;
  return a > std::numeric_limits<int64_t>::max() / b
             ? std::numeric_limits<int64_t>::max()
             : a * b;
}

const char* SourcePath(const v1::DataSpec& data) {
  if (data.has_synthetic()) return "data.synthetic";
  if (data.has_inline_()) return "data.inline";
  return "data.csv";
}

// Values stored per example besides its features: the class label, or the
// regression targets.
int64_t LabelValues(const v1::JobSpec& spec) {
  const v1::DataSpec& data = spec.data();
  if (data.has_synthetic() &&
      data.synthetic().kind() == v1::SyntheticData::TEACHER_STUDENT) {
    return std::max<int64_t>(1, data.synthetic().classes());
  }
  if (data.has_inline_() && engine::IsRegression(spec.loss()) &&
      !data.inline_().examples().empty()) {
    return data.inline_().examples(0).y_size();
  }
  return 1;
}

absl::Status OverLimit(absl::string_view what, int64_t value,
                       absl::string_view unit, int64_t limit,
                       absl::string_view flag) {
  return absl::ResourceExhaustedError(
      absl::StrCat(what, " ", value, unit, ", over the server's limit of ",
                   limit, " (--", flag, ")"));
}

}  // namespace

absl::Status CheckLimits(const v1::JobSpec& spec, const ServerLimits& limits) {
  const int64_t dataset_bytes =
      static_cast<int64_t>(spec.data().ByteSizeLong());
  if (dataset_bytes > limits.max_dataset_bytes) {
    return OverLimit("data has", dataset_bytes, " bytes",
                     limits.max_dataset_bytes, "max_dataset_bytes");
  }

  int64_t examples = engine::DeclaredExampleCount(spec.data());
  int64_t features = engine::DeclaredFeatureCount(spec.data());
  if (spec.data().has_csv()) {
    const CsvShape shape = MeasureCsv(spec.data().csv());
    if (examples < 0) examples = shape.rows;
    // Every field but the label is an input.
    if (features < 0) features = shape.fields - 1;
  }

  const int64_t parameters = engine::CountParameters(spec.model(), features);
  if (parameters > limits.max_parameters) {
    return OverLimit("model has", parameters, " parameters",
                     limits.max_parameters, "max_parameters");
  }

  const int64_t row_values = features + LabelValues(spec);
  const int64_t memory_bytes = SaturatingMul(
      SaturatingMul(examples, row_values), static_cast<int64_t>(sizeof(float)));
  if (memory_bytes > limits.max_dataset_bytes) {
    return OverLimit(absl::StrCat(SourcePath(spec.data()), " holds ", examples,
                                  " examples of ", row_values, " values,"),
                     memory_bytes, " bytes in memory", limits.max_dataset_bytes,
                     "max_dataset_bytes");
  }

  const int64_t train_rows =
      examples -
      engine::ValidationRows(examples, spec.data().validation_fraction());
  const v1::JobSpec effective = engine::WithDefaults(spec, train_rows);
  const int64_t batch_size = effective.training().batch_size();
  if (batch_size > limits.max_batch_size) {
    return OverLimit("training.batch_size is", batch_size, "",
                     limits.max_batch_size, "max_batch_size");
  }
  int64_t example_values = std::max<int64_t>(features, 0);
  for (const v1::LayerSpec& layer : spec.model().layers()) {
    example_values += layer.units();
  }
  // Evaluation, the dataset sweep and Predict run a forward-only net of
  // kInferenceRows rows whatever the batch size.
  const int64_t rows = std::max(batch_size, kInferenceRows);
  const int64_t activations = SaturatingMul(rows, example_values);
  if (activations > limits.max_activations) {
    return OverLimit(
        absl::StrCat(batch_size >= kInferenceRows
                         ? absl::StrCat("training.batch_size ", batch_size)
                         : absl::StrCat(rows, " rows (evaluation's chunk)"),
                     " times ", example_values,
                     " inputs and units per example (model.layers) is"),
        activations, " activations", limits.max_activations, "max_activations");
  }
  const uint64_t steps = effective.training().steps();
  if (steps > static_cast<uint64_t>(limits.max_steps)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("job has ", steps, " steps, over the server's limit of ",
                     limits.max_steps, " (--max_steps)"));
  }
  return absl::OkStatus();
}

}  // namespace gradwatch::server

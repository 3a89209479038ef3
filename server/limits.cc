#include "server/limits.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "engine/dataset.h"
#include "engine/spec_defaults.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;

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
  for (absl::string_view line : absl::StrSplit(csv.content(), '\n')) {
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

  const int64_t train_rows =
      examples -
      engine::ValidationRows(examples, spec.data().validation_fraction());
  const v1::JobSpec effective = engine::WithDefaults(spec, train_rows);
  const int64_t batch_size = effective.training().batch_size();
  if (batch_size > limits.max_batch_size) {
    return OverLimit("training.batch_size is", batch_size, "",
                     limits.max_batch_size, "max_batch_size");
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

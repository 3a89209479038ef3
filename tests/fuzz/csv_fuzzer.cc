// Fuzzes the CSV loader: the first two bytes choose the CsvData options and
// the loss kind, the rest is the document. Beyond "no crash", a parsed
// dataset must be consistent, and the server's limits must measure the
// document (rows and input width) exactly as the parser reads it, since
// they are checked before it is parsed.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "engine/csv_data.h"
#include "engine/dataset.h"
#include "gradwatch/v1/spec.pb.h"
#include "server/limits.h"

namespace {

namespace v1 = ::gradwatch::v1;
using ::gradwatch::engine::Dataset;

void Require(bool condition, const char* what,
             const absl::Status& status = absl::OkStatus()) {
  if (condition) return;
  std::fprintf(stderr, "csv_fuzzer: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

void CheckDataset(const Dataset& d, bool regression) {
  Require(d.rows >= 1 && d.features >= 1, "empty dataset accepted");
  Require(d.x.size() == static_cast<size_t>(d.rows) * d.features,
          "x does not hold rows * features values");
  for (float value : d.x) Require(std::isfinite(value), "non-finite feature");
  if (regression) {
    Require(d.target_width == 1 && d.labels.empty() &&
                d.targets.size() == static_cast<size_t>(d.rows),
            "regression targets do not match the rows");
    for (float value : d.targets) {
      Require(std::isfinite(value), "non-finite target");
    }
  } else {
    Require(d.target_width == 0 && d.targets.empty() &&
                d.labels.size() == static_cast<size_t>(d.rows),
            "labels do not match the rows");
    for (int32_t label : d.labels) Require(label >= 0, "negative label");
  }
}

// One output unit on the CSV's inputs: features + 1 parameters, and with
// one epoch of batch 1, one step per row.
void CheckLimitsAgree(const v1::CsvData& csv, const Dataset& d) {
  v1::JobSpec spec;
  *spec.mutable_data()->mutable_csv() = csv;
  spec.mutable_model()->add_layers()->set_units(1);
  spec.mutable_training()->set_epochs(1);
  spec.mutable_training()->set_batch_size(1);
  gradwatch::server::ServerLimits limits;
  limits.max_dataset_bytes = INT64_MAX;
  limits.max_activations = INT64_MAX;
  limits.max_parameters = d.features + 1;
  limits.max_steps = d.rows;
  const absl::Status fits = gradwatch::server::CheckLimits(spec, limits);
  Require(fits.ok(), "limits measure a larger CSV than the parser reads", fits);
  limits.max_parameters = d.features;
  Require(
      absl::IsResourceExhausted(gradwatch::server::CheckLimits(spec, limits)),
      "limits count fewer inputs than the parser reads");
  limits.max_parameters = d.features + 1;
  limits.max_steps = d.rows - 1;
  Require(
      absl::IsResourceExhausted(gradwatch::server::CheckLimits(spec, limits)),
      "limits count fewer rows than the parser reads");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  // Small columns from either end, or (flag 4) values near the int32 ends.
  const int32_t column = static_cast<int8_t>(data[1]);
  v1::CsvData csv;
  csv.set_header((flags & 1) != 0);
  const bool regression = (flags & 2) != 0;
  csv.set_label_column(
      (flags & 4) != 0
          ? static_cast<int32_t>(static_cast<uint32_t>(column) << 24)
          : column);
  csv.set_content(reinterpret_cast<const char*>(data + 2), size - 2);

  const absl::StatusOr<Dataset> parsed =
      gradwatch::engine::ParseCsv(csv, regression);
  if (!parsed.ok()) {
    Require(absl::IsInvalidArgument(parsed.status()) ||
                absl::IsResourceExhausted(parsed.status()),
            "unexpected error code", parsed.status());
    Require(absl::StartsWith(parsed.status().message(), "data.csv"),
            "error does not name the field", parsed.status());
    return 0;
  }
  CheckDataset(*parsed, regression);
  CheckLimitsAgree(csv, *parsed);
  return 0;
}

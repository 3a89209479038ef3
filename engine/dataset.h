#ifndef GRADWATCH_ENGINE_DATASET_H_
#define GRADWATCH_ENGINE_DATASET_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// Examples held in memory, row-major.
///
/// Classification (CROSS_ENTROPY, BINARY_CROSS_ENTROPY): `labels` holds one
/// class index per row and `target_width` is 0. Regression (MSE): `targets`
/// holds `target_width` values per row and `labels` is empty.
///
/// A plain value type; not synchronized.
struct Dataset {
  int64_t rows = 0;
  int features = 0;
  int target_width = 0;
  std::vector<float> x;         // [rows][features]
  std::vector<int32_t> labels;  // [rows], classification only
  std::vector<float> targets;   // [rows][target_width], regression only

  bool is_regression() const { return target_width > 0; }
};

/// The training and validation parts of a dataset.
struct DataSplit {
  Dataset train;
  Dataset validation;
};

/// True for the regression loss (MSE), whose labels are real targets.
inline bool IsRegression(gradwatch::v1::Loss loss) {
  return loss == gradwatch::v1::MSE;
}

/// Builds the examples a (validated) DataSpec describes: synthetic
/// generation, inline examples or CSV parsing. `loss` decides whether labels
/// are class indices or regression targets. Errors are INVALID_ARGUMENT with
/// the field path (CSV: line and column).
absl::StatusOr<Dataset> LoadDataset(const gradwatch::v1::DataSpec& spec,
                                    gradwatch::v1::Loss loss);

/// Number of validation rows for `rows` examples: floor(rows * fraction).
int64_t ValidationRows(int64_t rows, double validation_fraction);

/// Shuffles the rows with `seed` and moves the last
/// ValidationRows(rows, validation_fraction) of them into `validation`.
DataSplit SplitDataset(Dataset all, double validation_fraction, uint64_t seed);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_DATASET_H_

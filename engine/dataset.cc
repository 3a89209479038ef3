#include "engine/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/csv_data.h"
#include "engine/random.h"
#include "engine/synthetic_data.h"

namespace gradwatch::engine {
namespace {

using gradwatch::v1::DataSpec;
using gradwatch::v1::InlineData;
using gradwatch::v1::Loss;
using gradwatch::v1::SyntheticData;

absl::StatusOr<Dataset> LoadSynthetic(const SyntheticData& spec,
                                      bool regression) {
  absl::StatusOr<Dataset> data = GenerateSynthetic(spec);
  if (!data.ok()) return data;
  // The trainer relies on the dataset's kind matching the loss.
  if (data->is_regression() && !regression) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data.synthetic.kind ", SyntheticData::Kind_Name(spec.kind()),
        " gives regression targets and needs loss MSE"));
  }
  if (!data->is_regression() && regression) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data.synthetic.kind ", SyntheticData::Kind_Name(spec.kind()),
        " gives class labels; loss MSE needs TEACHER_STUDENT, inline y or a "
        "CSV target column"));
  }
  return data;
}

absl::Status CheckFinite(const google::protobuf::RepeatedField<float>& values,
                         int example, absl::string_view field) {
  for (int i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("data.inline.examples[", example, "].", field, "[", i,
                       "] must be finite, got ", values[i]));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Dataset> LoadInline(const InlineData& spec, bool regression) {
  const auto& examples = spec.examples();
  if (examples.empty()) {
    return absl::InvalidArgumentError("data.inline.examples must not be empty");
  }
  Dataset d;
  d.rows = examples.size();
  d.features = examples[0].x_size();
  if (d.features == 0) {
    return absl::InvalidArgumentError(
        "data.inline.examples[0].x must not be empty");
  }
  if (regression) {
    d.target_width = examples[0].y_size();
    if (d.target_width == 0) {
      return absl::InvalidArgumentError(
          "data.inline.examples[0].y must not be empty for loss MSE");
    }
    d.targets.reserve(static_cast<size_t>(d.rows) * d.target_width);
  } else {
    d.labels.reserve(d.rows);
  }
  d.x.reserve(static_cast<size_t>(d.rows) * d.features);

  for (int i = 0; i < examples.size(); ++i) {
    const gradwatch::v1::Example& example = examples[i];
    if (example.x_size() != d.features) {
      return absl::InvalidArgumentError(
          absl::StrCat("data.inline.examples[", i, "].x must have ", d.features,
                       " values (as examples[0]), got ", example.x_size()));
    }
    if (absl::Status s = CheckFinite(example.x(), i, "x"); !s.ok()) return s;
    d.x.insert(d.x.end(), example.x().begin(), example.x().end());
    if (regression) {
      if (example.y_size() != d.target_width) {
        return absl::InvalidArgumentError(absl::StrCat(
            "data.inline.examples[", i, "].y must have ", d.target_width,
            " values (as examples[0]), got ", example.y_size()));
      }
      if (absl::Status s = CheckFinite(example.y(), i, "y"); !s.ok()) return s;
      d.targets.insert(d.targets.end(), example.y().begin(), example.y().end());
    } else {
      if (example.label() >
          static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "data.inline.examples[", i, "].label must be at most ",
            std::numeric_limits<int32_t>::max(), ", got ", example.label()));
      }
      d.labels.push_back(static_cast<int32_t>(example.label()));
    }
  }
  return d;
}

// Copies the rows order[begin, end) of `all` into a dataset of the same kind.
Dataset Gather(const Dataset& all, const std::vector<int64_t>& order,
               int64_t begin, int64_t end) {
  Dataset part;
  part.rows = end - begin;
  part.features = all.features;
  part.target_width = all.target_width;
  const size_t features = all.features;
  const size_t width = all.target_width;
  part.x.reserve(part.rows * features);
  if (all.is_regression()) {
    part.targets.reserve(part.rows * width);
  } else {
    part.labels.reserve(part.rows);
  }
  for (int64_t k = begin; k < end; ++k) {
    const size_t row = order[k];
    part.x.insert(part.x.end(), all.x.begin() + row * features,
                  all.x.begin() + (row + 1) * features);
    if (all.is_regression()) {
      part.targets.insert(part.targets.end(), all.targets.begin() + row * width,
                          all.targets.begin() + (row + 1) * width);
    } else {
      part.labels.push_back(all.labels[row]);
    }
  }
  return part;
}

}  // namespace

absl::StatusOr<Dataset> LoadDataset(const DataSpec& spec, Loss loss) {
  const bool regression = IsRegression(loss);
  switch (spec.source_case()) {
    case DataSpec::kSynthetic:
      return LoadSynthetic(spec.synthetic(), regression);
    case DataSpec::kInline:
      return LoadInline(spec.inline_(), regression);
    case DataSpec::kCsv:
      return ParseCsv(spec.csv(), regression);
    case DataSpec::SOURCE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      "data must set exactly one source: synthetic, inline or csv");
}

int64_t ValidationRows(int64_t rows, double validation_fraction) {
  if (rows <= 0 || !(validation_fraction > 0.0)) return 0;
  if (validation_fraction >= 1.0) return rows;
  return static_cast<int64_t>(
      std::floor(static_cast<double>(rows) * validation_fraction));
}

DataSplit SplitDataset(Dataset all, double validation_fraction, uint64_t seed) {
  const int64_t rows = std::max<int64_t>(all.rows, 0);
  // Fisher-Yates from the last position down, j = Below(i + 1): the same
  // permutation for a seed on every platform.
  std::vector<int64_t> order(rows);
  std::iota(order.begin(), order.end(), int64_t{0});
  Rng rng(seed);
  for (int64_t i = rows - 1; i > 0; --i) {
    std::swap(order[i], order[rng.Below(static_cast<uint64_t>(i) + 1)]);
  }
  const int64_t train_rows = rows - ValidationRows(rows, validation_fraction);
  DataSplit split;
  split.train = Gather(all, order, 0, train_rows);
  split.validation = Gather(all, order, train_rows, rows);
  return split;
}

}  // namespace gradwatch::engine

#include "engine/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

using gradwatch::v1::DataSpec;
using gradwatch::v1::SyntheticData;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

DataSpec Synthetic(SyntheticData::Kind kind) {
  DataSpec spec;
  spec.mutable_synthetic()->set_kind(kind);
  spec.mutable_synthetic()->set_samples(40);
  return spec;
}

void AddExample(DataSpec& spec, std::vector<float> x, uint32_t label,
                std::vector<float> y = {}) {
  gradwatch::v1::Example* e = spec.mutable_inline_()->add_examples();
  e->mutable_x()->Add(x.begin(), x.end());
  e->set_label(label);
  e->mutable_y()->Add(y.begin(), y.end());
}

std::string ErrorOf(const DataSpec& spec, gradwatch::v1::Loss loss) {
  absl::StatusOr<Dataset> d = LoadDataset(spec, loss);
  if (d.ok()) return "ok";
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(d.status().message());
}

TEST(LoadDatasetTest, SyntheticKindMustMatchTheLoss) {
  absl::StatusOr<Dataset> spirals = LoadDataset(
      Synthetic(SyntheticData::SPIRALS), gradwatch::v1::CROSS_ENTROPY);
  ASSERT_TRUE(spirals.ok()) << spirals.status();
  EXPECT_EQ(spirals->rows, 40);
  EXPECT_FALSE(spirals->is_regression());

  absl::StatusOr<Dataset> teacher = LoadDataset(
      Synthetic(SyntheticData::TEACHER_STUDENT), gradwatch::v1::MSE);
  ASSERT_TRUE(teacher.ok()) << teacher.status();
  EXPECT_TRUE(teacher->is_regression());

  EXPECT_EQ(ErrorOf(Synthetic(SyntheticData::TEACHER_STUDENT),
                    gradwatch::v1::CROSS_ENTROPY),
            "data.synthetic.kind TEACHER_STUDENT gives regression targets and "
            "needs loss MSE");
  EXPECT_THAT(ErrorOf(Synthetic(SyntheticData::XOR), gradwatch::v1::MSE),
              HasSubstr("data.synthetic.kind XOR gives class labels"));
  EXPECT_THAT(ErrorOf(Synthetic(SyntheticData::KIND_UNSPECIFIED),
                      gradwatch::v1::CROSS_ENTROPY),
              HasSubstr("data.synthetic.kind must be one of"));
}

TEST(LoadDatasetTest, InlineClassification) {
  DataSpec spec;
  AddExample(spec, {1, 2}, 0, {9});  // y is ignored for classification
  AddExample(spec, {3, 4}, 2);
  AddExample(spec, {5, 6}, 1);
  absl::StatusOr<Dataset> d =
      LoadDataset(spec, gradwatch::v1::BINARY_CROSS_ENTROPY);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->rows, 3);
  EXPECT_EQ(d->features, 2);
  EXPECT_THAT(d->x, ElementsAre(1, 2, 3, 4, 5, 6));
  EXPECT_THAT(d->labels, ElementsAre(0, 2, 1));
  EXPECT_THAT(d->targets, IsEmpty());
}

TEST(LoadDatasetTest, InlineRegression) {
  DataSpec spec;
  AddExample(spec, {1}, 5, {0.5f, -1});
  AddExample(spec, {2}, 0, {1.5f, 2});
  absl::StatusOr<Dataset> d = LoadDataset(spec, gradwatch::v1::MSE);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->target_width, 2);
  EXPECT_THAT(d->targets, ElementsAre(0.5f, -1, 1.5f, 2));
  EXPECT_THAT(d->labels, IsEmpty());
}

TEST(LoadDatasetTest, InlineErrorsNameTheExample) {
  DataSpec empty;
  empty.mutable_inline_();
  EXPECT_EQ(ErrorOf(empty, gradwatch::v1::CROSS_ENTROPY),
            "data.inline.examples must not be empty");

  DataSpec ragged;
  AddExample(ragged, {1, 2}, 0);
  AddExample(ragged, {1, 2, 3}, 0);
  EXPECT_EQ(ErrorOf(ragged, gradwatch::v1::CROSS_ENTROPY),
            "data.inline.examples[1].x must have 2 values (as examples[0]), "
            "got 3");

  DataSpec infinite;
  AddExample(infinite, {1, 2}, 0);
  AddExample(infinite, {1, INFINITY}, 0);
  EXPECT_EQ(ErrorOf(infinite, gradwatch::v1::CROSS_ENTROPY),
            "data.inline.examples[1].x[1] must be finite, got inf");

  DataSpec no_targets;
  AddExample(no_targets, {1}, 0);
  EXPECT_EQ(ErrorOf(no_targets, gradwatch::v1::MSE),
            "data.inline.examples[0].y must not be empty for loss MSE");

  DataSpec ragged_targets;
  AddExample(ragged_targets, {1}, 0, {1});
  AddExample(ragged_targets, {1}, 0, {1, 2});
  EXPECT_EQ(ErrorOf(ragged_targets, gradwatch::v1::MSE),
            "data.inline.examples[1].y must have 1 values (as examples[0]), "
            "got 2");

  DataSpec huge_label;
  AddExample(huge_label, {1}, 0);
  AddExample(huge_label, {1}, 3000000000u);
  EXPECT_EQ(ErrorOf(huge_label, gradwatch::v1::CROSS_ENTROPY),
            "data.inline.examples[1].label must be at most 2147483647, got "
            "3000000000");
}

TEST(LoadDatasetTest, CsvFollowsTheLoss) {
  DataSpec spec;
  spec.mutable_csv()->set_content("1,2,0.5\n3,4,1.5\n");
  spec.mutable_csv()->set_label_column(-1);
  absl::StatusOr<Dataset> regression = LoadDataset(spec, gradwatch::v1::MSE);
  ASSERT_TRUE(regression.ok()) << regression.status();
  EXPECT_THAT(regression->targets, ElementsAre(0.5f, 1.5f));
  EXPECT_EQ(ErrorOf(spec, gradwatch::v1::CROSS_ENTROPY),
            "data.csv.content line 1, column 3: label \"0.5\" is not a "
            "non-negative integer");
}

TEST(LoadDatasetTest, MissingSourceIsInvalid) {
  EXPECT_EQ(ErrorOf(DataSpec(), gradwatch::v1::CROSS_ENTROPY),
            "data must set exactly one source: synthetic, inline or csv");
}

TEST(ValidationRowsTest, IsTheFloorOfRowsTimesFraction) {
  EXPECT_EQ(ValidationRows(10, 0.3), 3);
  EXPECT_EQ(ValidationRows(7, 0.5), 3);
  EXPECT_EQ(ValidationRows(1000, 0.25), 250);
  EXPECT_EQ(ValidationRows(999, 0.1), 99);
  EXPECT_EQ(ValidationRows(5, 0.0), 0);
  EXPECT_EQ(ValidationRows(1, 0.5), 0);
  EXPECT_EQ(ValidationRows(0, 0.5), 0);
}

// Row r has x = (r, -r), label r % 5 and target 2r: pairing is checkable.
Dataset Numbered(int64_t rows, bool regression) {
  Dataset d;
  d.rows = rows;
  d.features = 2;
  if (regression) d.target_width = 1;
  for (int64_t r = 0; r < rows; ++r) {
    d.x.push_back(static_cast<float>(r));
    d.x.push_back(static_cast<float>(-r));
    if (regression) {
      d.targets.push_back(static_cast<float>(2 * r));
    } else {
      d.labels.push_back(static_cast<int32_t>(r % 5));
    }
  }
  return d;
}

std::vector<int64_t> RowIds(const Dataset& d) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < d.rows; ++i) ids.push_back(std::lround(d.x[2 * i]));
  return ids;
}

TEST(SplitDatasetTest, EveryRowLandsExactlyOnceWithItsLabel) {
  const DataSplit split = SplitDataset(Numbered(103, false), 0.2, 7);
  EXPECT_EQ(split.train.rows, 83);
  EXPECT_EQ(split.validation.rows, 20);
  for (const Dataset* part : {&split.train, &split.validation}) {
    EXPECT_EQ(part->features, 2);
    EXPECT_EQ(part->x.size(), static_cast<size_t>(part->rows) * 2);
    ASSERT_EQ(part->labels.size(), static_cast<size_t>(part->rows));
    for (int64_t i = 0; i < part->rows; ++i) {
      EXPECT_EQ(part->x[2 * i + 1], -part->x[2 * i]);
      EXPECT_EQ(part->labels[i], std::lround(part->x[2 * i]) % 5);
    }
  }
  std::vector<int64_t> ids = RowIds(split.train);
  const std::vector<int64_t> validation_ids = RowIds(split.validation);
  ids.insert(ids.end(), validation_ids.begin(), validation_ids.end());
  std::vector<int64_t> expected(103);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_NE(ids, expected);  // shuffled
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, expected);
}

TEST(SplitDatasetTest, RegressionTargetsStayWithTheirRows) {
  const DataSplit split = SplitDataset(Numbered(50, true), 0.5, 3);
  EXPECT_EQ(split.train.rows, 25);
  EXPECT_EQ(split.validation.rows, 25);
  for (const Dataset* part : {&split.train, &split.validation}) {
    EXPECT_EQ(part->target_width, 1);
    EXPECT_THAT(part->labels, IsEmpty());
    for (int64_t i = 0; i < part->rows; ++i) {
      EXPECT_EQ(part->targets[i], 2 * part->x[2 * i]);
    }
  }
}

TEST(SplitDatasetTest, SeedDecidesTheSplit) {
  const DataSplit a = SplitDataset(Numbered(60, false), 0.25, 11);
  const DataSplit b = SplitDataset(Numbered(60, false), 0.25, 11);
  const DataSplit c = SplitDataset(Numbered(60, false), 0.25, 12);
  EXPECT_EQ(RowIds(a.validation), RowIds(b.validation));
  EXPECT_EQ(RowIds(a.train), RowIds(b.train));
  EXPECT_NE(RowIds(a.validation), RowIds(c.validation));
}

TEST(SplitDatasetTest, ZeroFractionKeepsEveryRowForTraining) {
  const DataSplit split = SplitDataset(Numbered(9, false), 0.0, 1);
  EXPECT_EQ(split.train.rows, 9);
  EXPECT_EQ(split.validation.rows, 0);
  EXPECT_THAT(split.validation.x, IsEmpty());
  EXPECT_EQ(split.validation.features, 2);
}

}  // namespace
}  // namespace gradwatch::engine

#include "server/limits.h"

#include <string>

#include "absl/status/status.h"
#include "gradwatch/v1/spec.pb.h"
#include "gtest/gtest.h"
#include "tests/spirals_spec.h"

namespace gradwatch::server {
namespace {

using ::gradwatch::testing::SmallSpiralsSpec;

namespace v1 = ::gradwatch::v1;

ServerLimits Generous() {
  ServerLimits limits;
  limits.max_parameters = 1'000'000;
  limits.max_steps = 1'000'000;
  limits.max_batch_size = 1024;
  limits.max_dataset_bytes = 1 << 20;
  return limits;
}

TEST(LimitsTest, SpecWithinEveryLimitIsAccepted) {
  EXPECT_TRUE(CheckLimits(SmallSpiralsSpec(50), Generous()).ok());
}

TEST(LimitsTest, ParametersAtTheLimitPassAndAboveFail) {
  ServerLimits limits = Generous();
  limits.max_parameters = 99;
  EXPECT_TRUE(CheckLimits(SmallSpiralsSpec(50), limits).ok());
  limits.max_parameters = 98;
  absl::Status status = CheckLimits(SmallSpiralsSpec(50), limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(),
            "model has 99 parameters, over the server's limit of 98 "
            "(--max_parameters)");
}

TEST(LimitsTest, ParametersCountBatchNormScaleAndShift) {
  v1::JobSpec spec = SmallSpiralsSpec(50);
  spec.mutable_model()->mutable_layers(0)->set_batch_norm(
      v1::LayerSpec::BEFORE_ACTIVATION);
  ServerLimits limits = Generous();
  limits.max_parameters = 130;
  // 99 + 16 scales + 16 shifts.
  absl::Status status = CheckLimits(spec, limits);
  EXPECT_EQ(status.message(),
            "model has 131 parameters, over the server's limit of 130 "
            "(--max_parameters)");
}

TEST(LimitsTest, CsvInputWidthComesFromTheFirstRow) {
  v1::JobSpec spec = SmallSpiralsSpec(50);
  // Three inputs and a label: 3*16+16 + 16*3+3 = 115 parameters.
  spec.mutable_data()->mutable_csv()->set_content(
      "a,b,c,label\n0.1,0.2,0.3,0\n0.4,0.5,0.6,1\n\n0.7,0.8,0.9,2\n");
  spec.mutable_data()->mutable_csv()->set_header(true);
  spec.mutable_data()->mutable_csv()->set_label_column(-1);
  spec.mutable_training()->set_batch_size(2);
  ServerLimits limits = Generous();
  limits.max_parameters = 114;
  absl::Status status = CheckLimits(spec, limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(),
            "model has 115 parameters, over the server's limit of 114 "
            "(--max_parameters)");
}

TEST(LimitsTest, ExplicitStepsOverTheLimitFail) {
  ServerLimits limits = Generous();
  limits.max_steps = 50;
  EXPECT_TRUE(CheckLimits(SmallSpiralsSpec(50), limits).ok());
  limits.max_steps = 49;
  absl::Status status = CheckLimits(SmallSpiralsSpec(50), limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(),
            "job has 50 steps, over the server's limit of 49 (--max_steps)");
}

TEST(LimitsTest, EpochsAreConvertedToStepsBeforeTheCheck) {
  v1::JobSpec spec = SmallSpiralsSpec(50);
  spec.mutable_training()->clear_steps();
  spec.mutable_training()->set_epochs(3);
  spec.mutable_data()->set_validation_fraction(0.1);
  // 200 examples, 20 held out: 180 / 20 = 9 steps per epoch, 27 in all.
  ServerLimits limits = Generous();
  limits.max_steps = 27;
  EXPECT_TRUE(CheckLimits(spec, limits).ok());
  limits.max_steps = 26;
  EXPECT_EQ(CheckLimits(spec, limits).message(),
            "job has 27 steps, over the server's limit of 26 (--max_steps)");
}

TEST(LimitsTest, DefaultStepsCountAgainstTheLimit) {
  v1::JobSpec spec = SmallSpiralsSpec(50);
  spec.mutable_training()->clear_steps();
  ServerLimits limits = Generous();
  limits.max_steps = 999;
  EXPECT_EQ(CheckLimits(spec, limits).message(),
            "job has 1000 steps, over the server's limit of 999 "
            "(--max_steps)");
}

TEST(LimitsTest, BatchSizeOverTheLimitFails) {
  ServerLimits limits = Generous();
  limits.max_batch_size = 20;
  EXPECT_TRUE(CheckLimits(SmallSpiralsSpec(50), limits).ok());
  limits.max_batch_size = 19;
  absl::Status status = CheckLimits(SmallSpiralsSpec(50), limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(),
            "training.batch_size is 20, over the server's limit of 19 "
            "(--max_batch_size)");
}

TEST(LimitsTest, DefaultBatchSizeCountsAgainstTheLimit) {
  v1::JobSpec spec = SmallSpiralsSpec(50);
  spec.mutable_training()->clear_batch_size();
  ServerLimits limits = Generous();
  limits.max_batch_size = 31;
  EXPECT_EQ(CheckLimits(spec, limits).message(),
            "training.batch_size is 32, over the server's limit of 31 "
            "(--max_batch_size)");
}

TEST(LimitsTest, DatasetBytesOverTheLimitFail) {
  v1::JobSpec spec = SmallSpiralsSpec(50);
  const std::string content(1000, '1');
  spec.mutable_data()->mutable_csv()->set_content(content);
  // DataSpec field 3 (tag 1 byte, length 2 bytes) holding CsvData field 1
  // (tag 1 byte, length 2 bytes, 1000 bytes of text).
  const int64_t bytes = 1 + 2 + 1 + 2 + 1000;
  ASSERT_EQ(static_cast<int64_t>(spec.data().ByteSizeLong()), bytes);
  ServerLimits limits = Generous();
  limits.max_dataset_bytes = bytes - 1;
  absl::Status status = CheckLimits(spec, limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(),
            "data has 1006 bytes, over the server's limit of 1005 "
            "(--max_dataset_bytes)");
}

// 200 spirals of 2 features and a label: 200 * 3 * 4 = 2400 bytes in memory,
// from a spec of a few bytes.
TEST(LimitsTest, ExamplesInMemoryCountAgainstTheDatasetLimit) {
  ServerLimits limits = Generous();
  limits.max_dataset_bytes = 2400;
  EXPECT_TRUE(CheckLimits(SmallSpiralsSpec(50), limits).ok());
  limits.max_dataset_bytes = 2399;
  absl::Status status = CheckLimits(SmallSpiralsSpec(50), limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(),
            "data.synthetic holds 200 examples of 3 values, 2400 bytes in "
            "memory, over the server's limit of 2399 (--max_dataset_bytes)");
}

// Batch 20 is below evaluation's 256-row chunk: 256 * (2 + 16 + 3) = 5376.
TEST(LimitsTest, ActivationsCountTheEvaluationChunkOrTheBatch) {
  ServerLimits limits = Generous();
  limits.max_activations = 5376;
  EXPECT_TRUE(CheckLimits(SmallSpiralsSpec(50), limits).ok());
  limits.max_activations = 5375;
  absl::Status status = CheckLimits(SmallSpiralsSpec(50), limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(),
            "256 rows (evaluation's chunk) times 21 inputs and units per "
            "example (model.layers) is 5376 activations, over the server's "
            "limit of 5375 (--max_activations)");

  v1::JobSpec big_batch = SmallSpiralsSpec(50);
  big_batch.mutable_training()->set_batch_size(1000);
  limits.max_activations = 20999;
  EXPECT_EQ(CheckLimits(big_batch, limits).message(),
            "training.batch_size 1000 times 21 inputs and units per example "
            "(model.layers) is 21000 activations, over the server's limit of "
            "20999 (--max_activations)");
}

// A first line holding only a byte order mark is skipped by the parser, so
// the limits must take the inputs from the line after it.
TEST(LimitsTest, CsvLeadingByteOrderMarkLineIsSkipped) {
  v1::JobSpec spec = SmallSpiralsSpec(50);
  spec.mutable_data()->mutable_csv()->set_content(
      "\xEF\xBB\xBF\n1,2,3,4,0\n5,6,7,8,1\n");
  // 4 inputs: 4*16+16 + 16*3+3 = 131 parameters.
  ServerLimits limits = Generous();
  limits.max_parameters = 130;
  EXPECT_EQ(CheckLimits(spec, limits).message(),
            "model has 131 parameters, over the server's limit of 130 "
            "(--max_parameters)");
}

}  // namespace
}  // namespace gradwatch::server

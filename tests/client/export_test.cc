#include "client/export.h"

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace gradwatch::client {
namespace {

v1::JobEvent Event(const std::string& text) {
  v1::JobEvent event;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &event));
  return event;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(ExportTest, OneRowPerStepAndLayer) {
  std::ostringstream out;
  StatsCsvWriter writer(out);
  writer.Write(Event(R"pb(state_change { state: RUNNING })pb"));  // skipped
  writer.Write(Event(R"pb(
    step: 7
    stats {
      step: 7
      epoch: 1
      loss: 1.5
      accuracy: 0.25
      learning_rate: 0.1
      grad_norm: 2
      validation_loss: 1.75
      validation_accuracy: 0.5
      layers {
        index: 0
        name: "hidden1"
        activation: RELU
        units: 64
        dead_units: 64
        dead_ratio: 1
        dead_window_ratio: 1
        dead_dataset_ratio: 1
        z_mean: -10
        z_std: 1.5
        z_min: -14
        z_max: -6
        z_negative_fraction: 1
        params { name: "weights" grad_zero_fraction: 1 unchanged: true }
        params { name: "bias" grad_l2_norm: 0 update_ratio: 0 }
      }
      layers {
        index: 1
        name: "output"
        activation: LINEAR
        units: 3
        params {
          name: "weights"
          grad_l2_norm: 0.25
          grad_mean_abs: 0.01
          grad_max_abs: 0.125
          grad_subnormal_count: 2
          update_ratio: 0.001
        }
      }
    }
  )pb"));
  const std::vector<std::string> lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 3u);
  const std::vector<std::string> header = absl::StrSplit(lines[0], ',');
  EXPECT_EQ(header.size(), 31u);
  EXPECT_EQ(lines[1],
            "7,1,1.5,0.25,0.1,2,1.75,0.5,0,hidden1,RELU,64,64,1,1,1,0,-10,1.5,"
            "-14,-6,1,0,0,0,1,0,0,1,0,0");
  // No dataset sweep and no bias tensor: empty cells.
  EXPECT_EQ(lines[2],
            "7,1,1.5,0.25,0.1,2,1.75,0.5,1,output,LINEAR,3,0,0,0,,0,0,0,0,0,0,"
            "0.25,0.01,0.125,0,2,0.001,0,,");
}

TEST(ExportTest, StepWithoutLayersKeepsTheColumns) {
  std::ostringstream out;
  StatsCsvWriter writer(out);
  writer.Write(Event(R"pb(stats { step: 1 loss: 0.5 })pb"));
  const std::vector<std::string> lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "1,0,0.5,0,0,0,,,,,,,,,,,,,,,,,,,,,,,,,");
  EXPECT_EQ(std::count(lines[1].begin(), lines[1].end(), ','), 30);
  EXPECT_THAT(std::vector<std::string>(absl::StrSplit(lines[0], ',')),
              testing::Contains("weights_update_ratio"));
}

}  // namespace
}  // namespace gradwatch::client

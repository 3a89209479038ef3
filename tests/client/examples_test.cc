// The specs in examples/ parse, validate, and do what examples/README.md
// says they do.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "client/spec_io.h"
#include "engine/dataset.h"
#include "engine/spec_validation.h"
#include "engine/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gradwatch::client {
namespace {

const std::string kExamplesDir =
    std::string(GRADWATCH_SOURCE_DIR) + "/examples";

v1::JobSpec LoadExample(const std::string& name) {
  absl::StatusOr<v1::JobSpec> spec = ReadJobSpecFile(kExamplesDir + "/" + name);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : v1::JobSpec();
}

std::unique_ptr<engine::Trainer> MakeTrainer(const v1::JobSpec& spec) {
  engine::TrainerOptions options;
  options.threads = 1;
  auto trainer = engine::Trainer::Create(spec, options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return trainer.ok() ? std::move(*trainer) : nullptr;
}

TEST(ExamplesTest, EveryExampleParsesAndValidates) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(kExamplesDir)) {
    if (entry.path().extension() == ".json") {
      names.push_back(entry.path().filename().string());
    }
  }
  EXPECT_THAT(names, testing::IsSupersetOf({"spirals.json", "dead_init.json"}));
  for (const std::string& name : names) {
    absl::StatusOr<v1::JobSpec> spec =
        ReadJobSpecFile(kExamplesDir + "/" + name);
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_TRUE(engine::ValidateJobSpec(*spec).ok())
        << name << ": " << engine::ValidateJobSpec(*spec);
  }
}

TEST(ExamplesTest, DeadInitMakesEveryPreActivationNegative) {
  const v1::JobSpec spec = LoadExample("dead_init.json");
  std::unique_ptr<engine::Trainer> trainer = MakeTrainer(spec);
  ASSERT_NE(trainer, nullptr);
  absl::StatusOr<v1::Model> model = trainer->GetModel();
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_GE(model->layers_size(), 1);
  const v1::LayerParameters& first = model->layers(0);
  absl::StatusOr<engine::Dataset> data =
      engine::LoadDataset(spec.data(), spec.loss());
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(static_cast<int>(first.inputs()), data->features);

  // Z = X W + b for every example and unit of the first hidden layer.
  float max_z = -std::numeric_limits<float>::infinity();
  for (int64_t row = 0; row < data->rows; ++row) {
    for (uint32_t unit = 0; unit < first.units(); ++unit) {
      float z = first.bias(unit);
      for (uint32_t in = 0; in < first.inputs(); ++in) {
        z += data->x[row * data->features + in] *
             first.weights(in * first.units() + unit);
      }
      max_z = std::max(max_z, z);
    }
  }
  EXPECT_LT(max_z, 0.0f) << "a unit of the first layer is active somewhere";
  // With He-normal weights on inputs of norm ~1 the margin is wide.
  EXPECT_LT(max_z, -3.0f);
}

TEST(ExamplesTest, DeadInitStaysDeadAndIsDiagnosed) {
  const v1::JobSpec spec = LoadExample("dead_init.json");
  std::unique_ptr<engine::Trainer> trainer = MakeTrainer(spec);
  ASSERT_NE(trainer, nullptr);
  absl::StatusOr<v1::Model> before = trainer->GetModel();
  ASSERT_TRUE(before.ok()) << before.status();
  std::vector<v1::JobEvent> events;
  engine::CancellationToken cancel;
  const v1::Summary summary = trainer->Run(
      [&](const v1::JobEvent& event) { events.push_back(event); }, cancel);
  EXPECT_EQ(summary.state(), v1::SUCCEEDED);
  EXPECT_EQ(summary.diagnosis(), v1::STALLED_DEAD_UNITS);
  // Nothing but the class frequencies can be learned: chance level.
  EXPECT_NEAR(summary.final_loss(), std::log(3.0), 0.01);

  absl::StatusOr<v1::Model> after = trainer->GetModel();
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->layers_size(), before->layers_size());
  // Plain SGD and no gradient: bit-identical weights and biases.
  EXPECT_THAT(after->layers(0).weights(),
              testing::ElementsAreArray(before->layers(0).weights()));
  EXPECT_THAT(after->layers(0).bias(),
              testing::ElementsAreArray(before->layers(0).bias()));

  int stats = 0;
  int sweeps = 0;
  bool dead_relu_fired = false;
  for (const v1::JobEvent& event : events) {
    if (event.has_alert() && event.alert().rule() == v1::DEAD_RELU &&
        event.alert().layer() == 0 && event.alert().firing()) {
      dead_relu_fired = true;
    }
    if (!event.has_stats()) continue;
    ++stats;
    ASSERT_GE(event.stats().layers_size(), 2);
    // Layer 0 is dead on every batch; layer 1 then sees only zeros, and its
    // pre-activation is its zero bias: ReLU'(0) = 0, dead too.
    for (int layer = 0; layer < 2; ++layer) {
      const v1::LayerStats& figures = event.stats().layers(layer);
      EXPECT_EQ(figures.dead_ratio(), 1.0) << "step " << event.step();
      if (figures.has_dead_dataset_ratio()) {
        ++sweeps;
        EXPECT_EQ(figures.dead_dataset_ratio(), 1.0);
      }
      for (const v1::TensorStats& tensor : figures.params()) {
        EXPECT_EQ(tensor.grad_zero_fraction(), 1.0) << tensor.name();
        EXPECT_EQ(tensor.grad_l2_norm(), 0.0) << tensor.name();
      }
    }
  }
  EXPECT_GE(stats, 150);  // stats_every 10 over 1500 steps
  EXPECT_GT(sweeps, 0);
  EXPECT_TRUE(dead_relu_fired);
}

TEST(ExamplesTest, SpiralsReachesNinetyFivePercentTrainingAccuracy) {
  const v1::JobSpec spec = LoadExample("spirals.json");
  std::unique_ptr<engine::Trainer> trainer = MakeTrainer(spec);
  ASSERT_NE(trainer, nullptr);
  engine::CancellationToken cancel;
  bool dead_relu_fired = false;
  const v1::Summary summary = trainer->Run(
      [&](const v1::JobEvent& event) {
        dead_relu_fired |=
            event.has_alert() && event.alert().rule() == v1::DEAD_RELU;
      },
      cancel);
  ASSERT_EQ(summary.state(), v1::SUCCEEDED) << summary.error();
  EXPECT_EQ(summary.diagnosis(), v1::CONVERGED) << summary.diagnosis_reason();
  EXPECT_FALSE(dead_relu_fired);

  absl::StatusOr<engine::Dataset> data =
      engine::LoadDataset(spec.data(), spec.loss());
  ASSERT_TRUE(data.ok()) << data.status();
  google::protobuf::RepeatedPtrField<v1::Example> rows;
  for (int64_t row = 0; row < data->rows; ++row) {
    v1::Example* example = rows.Add();
    for (int in = 0; in < data->features; ++in) {
      example->add_x(data->x[row * data->features + in]);
    }
  }
  absl::StatusOr<v1::PredictResponse> predictions = trainer->Predict(rows);
  ASSERT_TRUE(predictions.ok()) << predictions.status();
  ASSERT_EQ(predictions->predictions_size(), data->rows);
  int64_t correct = 0;
  for (int64_t row = 0; row < data->rows; ++row) {
    correct += predictions->predictions(row).predicted_class() ==
               static_cast<uint32_t>(data->labels[row]);
  }
  const double accuracy = static_cast<double>(correct) / data->rows;
  EXPECT_GE(accuracy, 0.95) << correct << " of " << data->rows;
}

}  // namespace
}  // namespace gradwatch::client

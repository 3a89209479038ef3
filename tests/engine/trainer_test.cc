// The training loop end to end through engine::Trainer with real specs:
// learning (spirals, teacher-student), the dead-layer claim, determinism,
// cancellation, prediction and divergence.

#include "engine/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/dataset.h"
#include "engine/layer_params.h"
#include "engine/loss.h"
#include "engine/model.h"
#include "engine/onednn_util.h"
#include "engine/random.h"
#include "engine/spec_defaults.h"
#include "engine/spec_validation.h"
#include "gtest/gtest.h"
#include "tests/engine/reference_mlp.h"

namespace gradwatch::engine {
namespace {

namespace v1 = ::gradwatch::v1;

// Validates like a server would, then builds the trainer.
absl::StatusOr<std::unique_ptr<Trainer>> MakeTrainer(const v1::JobSpec& spec) {
  absl::Status valid = ValidateJobSpec(spec);
  if (!valid.ok()) return valid;
  return Trainer::Create(spec, TrainerOptions{});
}

struct RunRecord {
  v1::Summary summary;
  std::vector<v1::StepStats> steps;  // every stats event, in order
  int summary_events = 0;
};

RunRecord RunToEnd(Trainer& trainer, CancellationToken& cancel,
                   uint64_t cancel_after_step = 0) {
  RunRecord record;
  record.summary = trainer.Run(
      [&](const v1::JobEvent& event) {
        if (event.has_stats()) {
          record.steps.push_back(event.stats());
          if (event.stats().step() == cancel_after_step) cancel.Cancel();
        }
        if (event.has_summary()) ++record.summary_events;
      },
      cancel);
  return record;
}

RunRecord RunToEnd(Trainer& trainer) {
  CancellationToken cancel;
  return RunToEnd(trainer, cancel);
}

v1::JobSpec SpiralsSpec(uint32_t samples, uint64_t steps) {
  v1::JobSpec spec;
  v1::SyntheticData& data = *spec.mutable_data()->mutable_synthetic();
  data.set_kind(v1::SyntheticData::SPIRALS);
  data.set_samples(samples);
  data.set_classes(3);
  data.set_seed(1);
  for (uint32_t units : {64, 64}) {
    v1::LayerSpec& layer = *spec.mutable_model()->add_layers();
    layer.set_units(units);
    layer.set_activation(v1::RELU);
  }
  spec.mutable_model()->add_layers()->set_units(3);
  spec.set_loss(v1::CROSS_ENTROPY);
  spec.mutable_optimizer()->set_kind(v1::OptimizerSpec::ADAM);
  spec.mutable_optimizer()->set_learning_rate(0.01);
  spec.mutable_training()->set_steps(steps);
  spec.mutable_training()->set_batch_size(32);
  spec.mutable_training()->set_seed(7);
  spec.mutable_training()->set_threads(1);
  return spec;
}

v1::JobSpec TeacherStudentSpec(double learning_rate, uint64_t steps) {
  v1::JobSpec spec;
  v1::SyntheticData& data = *spec.mutable_data()->mutable_synthetic();
  data.set_kind(v1::SyntheticData::TEACHER_STUDENT);
  data.set_samples(512);
  data.set_features(4);
  data.set_classes(1);
  data.set_seed(3);
  v1::LayerSpec& hidden = *spec.mutable_model()->add_layers();
  hidden.set_units(32);
  hidden.set_activation(v1::TANH);
  spec.mutable_model()->add_layers()->set_units(1);
  spec.set_loss(v1::MSE);
  spec.mutable_optimizer()->set_kind(v1::OptimizerSpec::ADAM);
  spec.mutable_optimizer()->set_learning_rate(learning_rate);
  spec.mutable_training()->set_steps(steps);
  spec.mutable_training()->set_batch_size(64);
  spec.mutable_training()->set_seed(11);
  spec.mutable_training()->set_threads(1);
  return spec;
}

// The trainer's own split of the spec's data.
DataSplit SplitOf(const v1::JobSpec& spec) {
  absl::StatusOr<Dataset> all = LoadDataset(spec.data(), spec.loss());
  EXPECT_TRUE(all.ok()) << all.status();
  return SplitDataset(*std::move(all), spec.data().validation_fraction(),
                      spec.training().seed());
}

google::protobuf::RepeatedPtrField<v1::Example> Inputs(const Dataset& data) {
  google::protobuf::RepeatedPtrField<v1::Example> inputs;
  for (int64_t r = 0; r < data.rows; ++r) {
    const float* x = data.x.data() + r * data.features;
    inputs.Add()->mutable_x()->Assign(x, x + data.features);
  }
  return inputs;
}

// Fraction of rows whose predicted class is the label.
double Accuracy(const v1::PredictResponse& response, const Dataset& data) {
  int64_t correct = 0;
  for (int64_t r = 0; r < data.rows; ++r) {
    correct += response.predictions(static_cast<int>(r)).predicted_class() ==
               static_cast<uint32_t>(data.labels[r]);
  }
  return static_cast<double>(correct) / data.rows;
}

double MeanSquaredError(Trainer& trainer, const Dataset& data) {
  absl::StatusOr<v1::PredictResponse> response = trainer.Predict(Inputs(data));
  EXPECT_TRUE(response.ok()) << response.status();
  double sum = 0;
  const int width = data.target_width;
  for (int64_t r = 0; r < data.rows; ++r) {
    const auto& out = response->predictions(static_cast<int>(r)).outputs();
    for (int j = 0; j < width; ++j) {
      const double d = out[j] - data.targets[r * width + j];
      sum += d * d;
    }
  }
  return sum / (data.rows * width);
}

bool BitIdentical(const google::protobuf::RepeatedField<float>& a,
                  const google::protobuf::RepeatedField<float>& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

// Forward, backward and update of the whole loop against the reference:
// full-batch plain SGD (every batch is the whole set, so the shuffled order
// changes nothing but summation order), batch norm with running statistics.
TEST(TrainerTest, FullBatchSgdStepsMatchTheReference) {
  constexpr int kRows = 8, kSteps = 3;
  constexpr double kLearningRate = 0.1;
  Rng rng(99);
  v1::JobSpec spec;
  spec.set_loss(v1::CROSS_ENTROPY);
  for (int r = 0; r < kRows; ++r) {
    v1::Example& e = *spec.mutable_data()->mutable_inline_()->add_examples();
    for (int i = 0; i < 3; ++i) e.add_x(static_cast<float>(rng.Normal()));
    e.set_label(r % 3);
  }
  const int units[] = {5, 4, 3};
  int inputs = 3;
  for (int l = 0; l < 3; ++l) {
    v1::LayerSpec& layer = *spec.mutable_model()->add_layers();
    layer.set_units(units[l]);
    if (l < 2) layer.set_activation(l == 0 ? v1::TANH : v1::RELU);
    if (l == 0) layer.set_batch_norm(v1::LayerSpec::BEFORE_ACTIVATION);
    v1::LayerParameters& p = *spec.mutable_model()->add_initial_weights();
    p.set_inputs(inputs);
    p.set_units(units[l]);
    for (int k = 0; k < inputs * units[l]; ++k) {
      p.add_weights(static_cast<float>(rng.Normal(0, 1 / std::sqrt(inputs))));
    }
    for (int j = 0; j < units[l]; ++j) {
      p.add_bias(static_cast<float>(rng.Uniform(-0.2, 0.2)));
    }
    inputs = units[l];
  }
  spec.mutable_optimizer()->set_learning_rate(kLearningRate);
  spec.mutable_training()->set_steps(kSteps);
  spec.mutable_training()->set_batch_size(kRows);
  spec.mutable_training()->set_threads(1);
  auto trainer = MakeTrainer(spec);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const RunRecord run = RunToEnd(**trainer);
  ASSERT_EQ(run.summary.state(), v1::SUCCEEDED) << run.summary.error();
  ASSERT_EQ(run.steps.size(), static_cast<size_t>(kSteps));
  auto model = (*trainer)->GetModel();
  ASSERT_TRUE(model.ok()) << model.status();

  ReferenceMlp ref = ReferenceMlp::FromModelSpec(
      WithDefaults(spec, kRows).model(), /*input_features=*/3);
  std::vector<double> x;
  ReferenceTargets targets;
  for (const v1::Example& e : spec.data().inline_().examples()) {
    x.insert(x.end(), e.x().begin(), e.x().end());
    targets.labels.push_back(static_cast<int32_t>(e.label()));
  }
  for (int step = 0; step < kSteps; ++step) {
    const ReferenceTrace trace = ref.Forward(x, kRows, BatchNormStats::kBatch);
    std::vector<double> diff_output;
    const double loss = ReferenceLoss(v1::CROSS_ENTROPY, trace.output(), kRows,
                                      3, targets, &diff_output);
    EXPECT_NEAR(run.steps[step].loss(), loss, 1e-5) << "step " << step + 1;
    const auto grads = ref.Backward(trace, diff_output);
    for (size_t l = 0; l < grads.size(); ++l) {
      for (ParamKind kind : {ParamKind::kWeights, ParamKind::kBias,
                             ParamKind::kBnScale, ParamKind::kBnShift}) {
        std::vector<double>& param = ref.Param(static_cast<int>(l), kind);
        for (size_t i = 0; i < param.size(); ++i) {
          param[i] -= kLearningRate * grads[l].Get(kind)[i];
        }
      }
      ReferenceLayer& layer = ref.layers()[l];
      for (int j = 0; j < static_cast<int>(layer.bn_running_mean.size()); ++j) {
        layer.bn_running_mean[j] =
            0.9 * layer.bn_running_mean[j] + 0.1 * trace.layers[l].bn_mean[j];
        layer.bn_running_var[j] =
            0.9 * layer.bn_running_var[j] +
            0.1 * trace.layers[l].bn_var[j] * kRows / (kRows - 1);
      }
    }
  }
  auto expect_close = [](const google::protobuf::RepeatedField<float>& got,
                         const std::vector<double>& want, const char* what) {
    ASSERT_EQ(got.size(), static_cast<int>(want.size())) << what;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_NEAR(got[static_cast<int>(i)], want[i],
                  2e-5 * std::max(1.0, std::abs(want[i])))
          << what << "[" << i << "]";
    }
  };
  for (int l = 0; l < 3; ++l) {
    const ReferenceLayer& want = ref.layers()[l];
    const v1::LayerParameters& got = model->layers(l);
    expect_close(got.weights(), want.weights, "weights");
    expect_close(got.bias(), want.bias, "bias");
    expect_close(got.bn_scale(), want.bn_scale, "bn_scale");
    expect_close(got.bn_shift(), want.bn_shift, "bn_shift");
    expect_close(got.bn_running_mean(), want.bn_running_mean,
                 "bn_running_mean");
    expect_close(got.bn_running_var(), want.bn_running_var, "bn_running_var");
  }
}

// Budget: 1,000 Adam steps (learning rate 0.01) of batch 32 on 300 points
// (about 107 epochs); about 500 suffice here.
TEST(TrainerTest, SpiralsReachNinetyFivePercentTrainingAccuracy) {
  const v1::JobSpec spec = SpiralsSpec(300, 1000);
  auto trainer = MakeTrainer(spec);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const RunRecord run = RunToEnd(**trainer);
  EXPECT_EQ(run.summary.state(), v1::SUCCEEDED) << run.summary.error();
  EXPECT_EQ(run.summary.steps_completed(), 1000u);
  EXPECT_EQ(run.steps.size(), 1000u);
  EXPECT_EQ(run.summary_events, 1);

  const DataSplit split = SplitOf(spec);
  ASSERT_EQ(split.train.rows, 300);
  auto predictions = (*trainer)->Predict(Inputs(split.train));
  ASSERT_TRUE(predictions.ok()) << predictions.status();
  EXPECT_GE(Accuracy(*predictions, split.train), 0.95);
}

TEST(TrainerTest, PredictReturnsSoftmaxRowsWhoseClassesGiveTheAccuracy) {
  v1::JobSpec spec = SpiralsSpec(300, 300);
  spec.mutable_data()->set_validation_fraction(0.2);
  spec.mutable_monitoring()->set_validation_every(100);
  auto trainer = MakeTrainer(spec);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const RunRecord run = RunToEnd(**trainer);
  ASSERT_EQ(run.summary.state(), v1::SUCCEEDED) << run.summary.error();
  ASSERT_TRUE(run.summary.has_final_validation_accuracy());

  const DataSplit split = SplitOf(spec);
  ASSERT_EQ(split.validation.rows, 60);
  auto response = (*trainer)->Predict(Inputs(split.validation));
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->predictions_size(), 60);
  for (const v1::Prediction& p : response->predictions()) {
    ASSERT_EQ(p.outputs_size(), 3);
    double sum = 0;
    for (float v : p.outputs()) {
      EXPECT_GE(v, 0.0f);
      EXPECT_LE(v, 1.0f);
      sum += v;
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_EQ(p.predicted_class(),
              static_cast<uint32_t>(
                  std::max_element(p.outputs().begin(), p.outputs().end()) -
                  p.outputs().begin()));
  }
  // The trainer evaluated the same model on the same rows after its last
  // step: Predict's classes must give exactly its validation accuracy.
  EXPECT_EQ(Accuracy(*response, split.validation),
            run.summary.final_validation_accuracy());
  // Better than chance (1/3), so the classes are not arbitrary.
  EXPECT_GT(run.summary.final_validation_accuracy(), 0.5);

  v1::Example wrong_width;
  wrong_width.add_x(1.0f);
  google::protobuf::RepeatedPtrField<v1::Example> bad;
  *bad.Add() = wrong_width;
  EXPECT_EQ((*trainer)->Predict(bad).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Budget: 1,500 Adam steps (learning rate 0.01) of batch 64 on 512 points;
// the loss is the mean squared error over the whole training set before and
// after (it falls about 1,900x here).
TEST(TrainerTest, TeacherStudentLossFallsHundredfold) {
  const v1::JobSpec spec = TeacherStudentSpec(0.01, 1500);
  auto trainer = MakeTrainer(spec);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const DataSplit split = SplitOf(spec);
  const double before = MeanSquaredError(**trainer, split.train);
  const RunRecord run = RunToEnd(**trainer);
  EXPECT_EQ(run.summary.state(), v1::SUCCEEDED) << run.summary.error();
  const double after = MeanSquaredError(**trainer, split.train);
  EXPECT_GT(before, 0.0);
  EXPECT_LE(after, before / 100) << "before " << before << ", after " << after;
}

// The seed's first claim: a ReLU layer whose pre-activation X W + b is
// negative for every training input gets exactly zero gradient, so plain
// SGD never changes it. Spiral inputs have |x| < 1 and He-normal weights
// with fan-in 2 are N(0, 1), so a bias of -10 keeps every Z below 0.
TEST(TrainerTest, DeadReluLayerStaysBitIdenticalUnderPlainSgd) {
  v1::JobSpec spec = SpiralsSpec(200, 1000);
  v1::LayerSpec& first = *spec.mutable_model()->mutable_layers(0);
  first.mutable_init()->set_scheme(v1::InitSpec::HE_NORMAL);
  first.mutable_init()->set_bias(-10);
  spec.mutable_optimizer()->Clear();  // plain SGD, no momentum or decay
  spec.mutable_optimizer()->set_learning_rate(0.1);
  spec.mutable_training()->set_batch_size(20);
  auto trainer = MakeTrainer(spec);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<v1::Model> before = (*trainer)->GetModel();
  ASSERT_TRUE(before.ok()) << before.status();

  // The gradients: the same model (same spec and seed) stepped through
  // every training batch by hand.
  const v1::JobSpec filled = WithDefaults(spec, 200);
  const DataSplit split = SplitOf(spec);
  const int batch = 20;
  auto model = Model::Create(filled, 2, batch);
  ASSERT_TRUE(model.ok()) << model.status();
  auto exported = (*model)->Export();
  ASSERT_TRUE(exported.ok()) << exported.status();
  ASSERT_EQ(exported->SerializeAsString(), [&] {
    v1::Model m = *before;
    m.clear_step();
    return m.SerializeAsString();
  }()) << "the hand-built model must start from the trainer's weights";
  Net& net = (*model)->train_net();
  const LayerParams& p0 = (*model)->params()[0];
  const LayerParams& p1 = (*model)->params()[1];
  const LayerParams& p2 = (*model)->params()[2];
  for (int64_t row0 = 0; row0 < split.train.rows; row0 += batch) {
    std::copy_n(split.train.x.data() + row0 * 2, batch * 2, net.input());
    net.Forward();
    const float* z = Data(net.layer(0).z);
    EXPECT_TRUE(
        std::all_of(z, z + batch * p0.units, [](float v) { return v < 0; }));
    ComputeLoss(v1::CROSS_ENTROPY, net.output(), batch, 3,
                split.train.labels.data() + row0, nullptr, net.diff_output());
    net.Backward();
    auto zeros = [](const dnnl::memory& mem, int64_t n) {
      const float* v = Data(mem);
      return std::count(v, v + n, 0.0f);
    };
    const int64_t w0 = Elements(p0.weights_md);
    EXPECT_EQ(zeros(p0.diff_weights, w0), w0);
    EXPECT_EQ(zeros(p0.diff_bias, p0.units), p0.units);
    // Layer 1 reads only zeros, so its weights get no gradient either,
    // but its bias and the output layer do.
    const int64_t w1 = Elements(p1.weights_md);
    EXPECT_EQ(zeros(p1.diff_weights, w1), w1);
    EXPECT_LT(zeros(p2.diff_bias, p2.units), p2.units);
  }

  const RunRecord run = RunToEnd(**trainer);
  ASSERT_EQ(run.summary.state(), v1::SUCCEEDED) << run.summary.error();
  ASSERT_EQ(run.summary.steps_completed(), 1000u);
  absl::StatusOr<v1::Model> after = (*trainer)->GetModel();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->step(), 1000u);
  EXPECT_TRUE(
      BitIdentical(before->layers(0).weights(), after->layers(0).weights()));
  EXPECT_TRUE(BitIdentical(before->layers(0).bias(), after->layers(0).bias()));
  // Downstream of the dead layer the biases still learn (the class prior:
  // with no signal from the inputs, that is all there is to learn).
  EXPECT_FALSE(BitIdentical(before->layers(2).bias(), after->layers(2).bias()));
}

// A spirals spec with hidden layers wide enough (2-256-256-3, batch 32:
// 12.8 MFLOP a step) that a job with 2 threads uses both.
v1::JobSpec WideSpiralsSpec(uint32_t samples, uint64_t steps) {
  v1::JobSpec spec = SpiralsSpec(samples, steps);
  spec.mutable_model()->mutable_layers(0)->set_units(256);
  spec.mutable_model()->mutable_layers(1)->set_units(256);
  spec.mutable_training()->set_threads(2);
  return spec;
}

TEST(TrainerTest, SmallStepsUseFewerThreadsThanTheBudget) {
  v1::JobSpec small = SpiralsSpec(300, 5);  // 2-64-64-3: 0.9 MFLOP a step
  small.mutable_training()->set_threads(2);
  auto small_trainer = MakeTrainer(small);
  ASSERT_TRUE(small_trainer.ok()) << small_trainer.status();
  EXPECT_EQ((*small_trainer)->run_info().threads(), 1u);

  auto wide_trainer = MakeTrainer(WideSpiralsSpec(300, 5));
  ASSERT_TRUE(wide_trainer.ok()) << wide_trainer.status();
  EXPECT_EQ((*wide_trainer)->run_info().threads(), 2u);

  EXPECT_EQ(ThreadsForStep(8, 1.7e6), 1);
  EXPECT_EQ(ThreadsForStep(8, 12.8e6), 3);
  EXPECT_EQ(ThreadsForStep(2, 1e9), 2);
  EXPECT_EQ(ThreadsForStep(0, 1e9), 1);
}

// Two threads, so that oneDNN's parallel reductions are part of the check.
TEST(TrainerTest, SameSpecAndSeedGiveBitIdenticalRuns) {
  v1::JobSpec spec = WideSpiralsSpec(300, 50);
  spec.mutable_model()->mutable_layers(0)->set_batch_norm(
      v1::LayerSpec::BEFORE_ACTIVATION);
  spec.mutable_optimizer()->Clear();
  spec.mutable_optimizer()->set_momentum(0.9);
  spec.mutable_optimizer()->set_learning_rate(0.05);

  auto run_once = [](const v1::JobSpec& s, RunRecord& record,
                     v1::Model& model) {
    auto trainer = MakeTrainer(s);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    record = RunToEnd(**trainer);
    ASSERT_EQ(record.summary.state(), v1::SUCCEEDED) << record.summary.error();
    auto m = (*trainer)->GetModel();
    ASSERT_TRUE(m.ok()) << m.status();
    model = *m;
  };
  RunRecord first, second, other_seed;
  v1::Model first_model, second_model, other_model;
  run_once(spec, first, first_model);
  run_once(spec, second, second_model);
  ASSERT_EQ(first.steps.size(), 50u);
  ASSERT_EQ(second.steps.size(), 50u);
  for (size_t i = 0; i < first.steps.size(); ++i) {
    // Exact comparison: bit-identical, not merely close.
    ASSERT_EQ(first.steps[i].loss(), second.steps[i].loss())
        << "step " << i + 1;
    ASSERT_EQ(first.steps[i].grad_norm(), second.steps[i].grad_norm())
        << "step " << i + 1;
  }
  EXPECT_EQ(first_model.SerializeAsString(), second_model.SerializeAsString());

  // A different seed really gives a different run (the check can fail).
  spec.mutable_training()->set_seed(8);
  run_once(spec, other_seed, other_model);
  EXPECT_NE(first.steps.back().loss(), other_seed.steps.back().loss());
  EXPECT_NE(first_model.SerializeAsString(), other_model.SerializeAsString());
}

// Steps without statistics run a different forward pass (ReLU fused into
// the inner product, Z not written): the run must not depend on which
// steps collect statistics.
class CollectingStatisticsTest
    : public testing::TestWithParam<v1::TrainingSpec::Precision> {};

TEST_P(CollectingStatisticsTest, DoesNotChangeTheRun) {
  if (GetParam() == v1::TrainingSpec::BF16 && !CpuSupportsBf16()) {
    GTEST_SKIP() << "no bf16 support on this CPU";
  }
  v1::JobSpec spec = WideSpiralsSpec(300, 40);
  spec.mutable_training()->set_precision(GetParam());
  spec.mutable_model()->mutable_layers(1)->set_activation(v1::LEAKY_RELU);
  spec.mutable_model()->mutable_layers(1)->set_negative_slope(0.05f);
  spec.mutable_optimizer()->Clear();
  spec.mutable_optimizer()->set_momentum(0.9);
  spec.mutable_optimizer()->set_learning_rate(0.05);
  RunRecord records[2];
  std::string models[2];
  for (const int every : {1, 7}) {
    spec.mutable_monitoring()->set_stats_every(every);
    auto trainer = MakeTrainer(spec);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    const int k = every == 1 ? 0 : 1;
    records[k] = RunToEnd(**trainer);
    ASSERT_EQ(records[k].summary.state(), v1::SUCCEEDED);
    auto model = (*trainer)->GetModel();
    ASSERT_TRUE(model.ok()) << model.status();
    models[k] = model->SerializeAsString();
  }
  // Every step's event against the same step's in the every-step run:
  // steps 1, 7, 14, ..., 35 and the last, 40.
  ASSERT_EQ(records[0].steps.size(), 40u);
  ASSERT_EQ(records[1].steps.size(), 7u);
  for (const v1::StepStats& sparse : records[1].steps) {
    const v1::StepStats& every = records[0].steps[sparse.step() - 1];
    ASSERT_EQ(every.step(), sparse.step());
    EXPECT_EQ(every.loss(), sparse.loss()) << "step " << sparse.step();
    EXPECT_EQ(every.grad_norm(), sparse.grad_norm())
        << "step " << sparse.step();
  }
  EXPECT_EQ(models[0], models[1]);
}

INSTANTIATE_TEST_SUITE_P(F32AndBf16, CollectingStatisticsTest,
                         testing::Values(v1::TrainingSpec::F32,
                                         v1::TrainingSpec::BF16));

TEST(TrainerTest, CancellationStopsAtTheNextStep) {
  auto trainer = MakeTrainer(SpiralsSpec(300, 1000));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  CancellationToken cancel;
  const RunRecord run = RunToEnd(**trainer, cancel, /*cancel_after_step=*/10);
  EXPECT_EQ(run.summary.state(), v1::CANCELLED);
  EXPECT_EQ(run.summary.steps_completed(), 10u);
  ASSERT_EQ(run.steps.size(), 10u);
  EXPECT_EQ(run.steps.back().step(), 10u);
  EXPECT_EQ(run.summary_events, 1);
  auto model = (*trainer)->GetModel();
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->step(), 10u);
}

TEST(TrainerTest, NanProducingRunFailsAsDiverged) {
  v1::JobSpec spec = TeacherStudentSpec(1000, 500);
  spec.mutable_optimizer()->Clear();  // SGD with learning rate 1e3
  spec.mutable_optimizer()->set_learning_rate(1000);
  auto trainer = MakeTrainer(spec);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const RunRecord run = RunToEnd(**trainer);
  EXPECT_EQ(run.summary.state(), v1::FAILED);
  EXPECT_EQ(run.summary.diagnosis(), v1::DIVERGED);
  const uint64_t diverged = run.summary.diverged_step();
  ASSERT_GE(diverged, 1u);
  ASSERT_LT(diverged, 500u);
  EXPECT_EQ(run.summary.steps_completed(), diverged);
  EXPECT_FALSE(run.summary.diverged_tensor().empty());
  // The run stopped at the divergent step, and it is the first non-finite.
  ASSERT_EQ(run.steps.size(), diverged);
  for (const v1::StepStats& s : run.steps) {
    const bool finite = std::isfinite(s.loss()) && std::isfinite(s.grad_norm());
    EXPECT_EQ(finite, s.step() < diverged) << "step " << s.step();
  }
}

}  // namespace
}  // namespace gradwatch::engine

// A small net's job with a thread to spare sweeps its gradients on that
// thread and reports each collected step in the next one, before its
// backward pass (engine/spare_thread.h). The run must be the same as on
// the training thread alone: every event, every stop and the model.

#include <sched.h>

#include <string>
#include <vector>

#include "engine/spare_thread.h"
#include "engine/spec_validation.h"
#include "engine/trainer.h"
#include "gtest/gtest.h"
#include "tests/spirals_spec.h"

namespace gradwatch::engine {
namespace {

namespace v1 = ::gradwatch::v1;

// tests/spirals_spec.h's 2-16-3 job (0.03 MFLOP a step, which one thread
// runs) with momentum and a validation split.
v1::JobSpec SmallSpec(uint64_t steps, uint32_t threads) {
  v1::JobSpec spec = gradwatch::testing::SmallSpiralsSpec(steps);
  spec.mutable_data()->set_validation_fraction(0.2);
  spec.mutable_optimizer()->set_momentum(0.9);
  spec.mutable_training()->set_threads(threads);
  spec.mutable_monitoring()->set_validation_every(5);
  return spec;
}

struct RunRecord {
  bool statistics_thread = false;
  // Every event after `started`, serialized, with its timings cleared.
  std::vector<std::string> events;
  v1::Summary summary;
  std::string model;
};

RunRecord RunSpec(const v1::JobSpec& spec, uint64_t cancel_after_step) {
  RunRecord run;
  const absl::Status valid = ValidateJobSpec(spec);
  EXPECT_TRUE(valid.ok()) << valid;
  auto trainer = Trainer::Create(spec, {});
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  if (!trainer.ok()) return run;
  run.statistics_thread = (*trainer)->run_info().statistics_thread();
  CancellationToken cancel;
  run.summary = (*trainer)->Run(
      [&](const v1::JobEvent& event) {
        if (event.has_started()) return;
        v1::JobEvent copy = event;
        if (copy.has_stats()) {
          copy.mutable_stats()->clear_step_seconds();
          if (copy.stats().step() == cancel_after_step) cancel.Cancel();
        }
        if (copy.has_summary()) copy.mutable_summary()->clear_train_seconds();
        run.events.push_back(copy.SerializeAsString());
      },
      cancel);
  auto model = (*trainer)->GetModel();
  EXPECT_TRUE(model.ok()) << model.status();
  if (model.ok()) run.model = model->SerializeAsString();
  return run;
}

struct Scenario {
  const char* name;
  uint32_t stats_every;
  bool z_histograms;
  bool stop_rule;  // LOSS_NOT_DECREASING with STOP_JOB, quick to fire
  bool diverge;    // MSE on teacher-student data at learning rate 1e3
  uint64_t cancel_after_step;  // 0: none
  v1::JobState state;
};

class StatisticsThreadTest : public ::testing::TestWithParam<Scenario> {};

TEST_P(StatisticsThreadTest, LeavesTheRunAsOnTheTrainingThreadAlone) {
  if (SpareThread::AvailableCpus() < 2) {
    GTEST_SKIP() << "one core: no thread to spare";
  }
  const Scenario& scenario = GetParam();
  constexpr uint64_t kSteps = 40;
  RunRecord runs[2];
  for (const uint32_t threads : {1u, 2u}) {
    v1::JobSpec spec = SmallSpec(kSteps, threads);
    spec.mutable_monitoring()->set_stats_every(scenario.stats_every);
    spec.mutable_monitoring()->mutable_histograms()->set_enabled(
        scenario.z_histograms);
    if (scenario.diverge) {
      v1::SyntheticData& data = *spec.mutable_data()->mutable_synthetic();
      data.set_kind(v1::SyntheticData::TEACHER_STUDENT);
      data.set_features(4);
      data.set_classes(1);
      v1::ModelSpec& model = *spec.mutable_model();
      model.mutable_layers(model.layers_size() - 1)->set_units(1);
      spec.set_loss(v1::MSE);
      spec.mutable_optimizer()->set_learning_rate(1000);
    }
    if (scenario.stop_rule) {
      v1::RuleConfig& rule = *spec.mutable_monitoring()
                                  ->mutable_rules()
                                  ->mutable_loss_not_decreasing();
      rule.set_threshold(50);
      rule.set_for_steps(4);
      rule.set_action(v1::RuleConfig::STOP_JOB);
    }
    runs[threads - 1] = RunSpec(spec, scenario.cancel_after_step);
  }
  const RunRecord& alone = runs[0];
  const RunRecord& beside = runs[1];
  ASSERT_FALSE(alone.statistics_thread);
  ASSERT_TRUE(beside.statistics_thread);
  EXPECT_EQ(alone.summary.state(), scenario.state) << alone.summary.error();
  if (scenario.state != v1::SUCCEEDED) {
    EXPECT_LT(alone.summary.steps_completed(), kSteps);
  }
  EXPECT_EQ(beside.summary.state(), alone.summary.state());
  EXPECT_EQ(beside.summary.steps_completed(), alone.summary.steps_completed());
  EXPECT_EQ(beside.summary.error(), alone.summary.error());
  ASSERT_EQ(beside.events.size(), alone.events.size());
  for (size_t i = 0; i < alone.events.size(); ++i) {
    ASSERT_EQ(beside.events[i], alone.events[i]) << "event " << i;
  }
  EXPECT_EQ(beside.model, alone.model);
}

INSTANTIATE_TEST_SUITE_P(
    Scenarios, StatisticsThreadTest,
    ::testing::Values(
        Scenario{"EveryStepWithHistograms", 1, true, false, false, 0,
                 v1::SUCCEEDED},
        Scenario{"EveryThirdStep", 3, false, false, false, 0, v1::SUCCEEDED},
        Scenario{"StoppedByARule", 1, false, true, false, 0, v1::FAILED},
        Scenario{"CancelledFromTheCallback", 1, false, false, false, 11,
                 v1::CANCELLED},
        Scenario{"Diverging", 1, false, false, true, 0, v1::FAILED}),
    [](const ::testing::TestParamInfo<Scenario>& info) {
      return std::string(info.param.name);
    });

TEST(StatisticsThreadTest, OnlyWhenTheStepLeavesAThreadOfTheBudget) {
  if (SpareThread::AvailableCpus() < 2) {
    GTEST_SKIP() << "one core: no thread to spare";
  }
  auto run_info = [](const v1::JobSpec& spec) {
    auto trainer = Trainer::Create(spec, {});
    EXPECT_TRUE(trainer.ok()) << trainer.status();
    return trainer.ok() ? (*trainer)->run_info() : v1::RunInfo();
  };
  EXPECT_TRUE(run_info(SmallSpec(5, 2)).statistics_thread());
  EXPECT_FALSE(run_info(SmallSpec(5, 1)).statistics_thread());
  // 2-2048-3 at batch 256 (16 MFLOP a step): both threads run the step.
  v1::JobSpec wide = SmallSpec(5, 2);
  wide.mutable_model()->mutable_layers(0)->set_units(2048);
  wide.mutable_training()->set_batch_size(256);
  const v1::RunInfo info = run_info(wide);
  EXPECT_EQ(info.threads(), 2u);
  EXPECT_FALSE(info.statistics_thread());
}

// A job confined to one CPU (taskset, a cpuset) has no thread to spare,
// whatever its budget: the two threads would take turns on that CPU.
TEST(StatisticsThreadTest, NotWhenTheJobMayRunOnOneCpu) {
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu(), &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  EXPECT_EQ(SpareThread::AvailableCpus(), 1);
  auto trainer = Trainer::Create(SmallSpec(5, 2), {});
  ASSERT_EQ(sched_setaffinity(0, sizeof(saved), &saved), 0);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  EXPECT_FALSE((*trainer)->run_info().statistics_thread());
}

}  // namespace
}  // namespace gradwatch::engine

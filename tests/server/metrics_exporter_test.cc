#include "server/metrics_exporter.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/job_manager.h"
#include "tests/server/exposition.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;

using ::gradwatch::server::testing::Scrape;
using ::gradwatch::server::testing::Value;

// The exposition prints 16 significant digits: a figure read back matches
// the event's to about 1e-15, relative.
void ExpectClose(std::optional<double> actual, double expected) {
  ASSERT_TRUE(actual.has_value());
  EXPECT_NEAR(*actual, expected, 1e-13 * std::max(1.0, std::abs(expected)));
}

v1::JobEvent StateEvent(v1::JobState state) {
  v1::JobEvent event;
  event.mutable_state_change()->set_state(state);
  return event;
}

v1::JobEvent ParseEvent(const std::string& text) {
  v1::JobEvent event;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &event));
  return event;
}

// Two layers: layer 0 with weights and bias, layer 1 with weights only.
v1::JobEvent StatsEvent(uint64_t step, uint64_t nan_count) {
  return ParseEvent(absl::StrCat(
      R"pb(
        stats { step:)pb",
      step, R"pb(
        loss: 1.25
        accuracy: 0.625
        learning_rate: 0.05
        step_seconds: 0.003
        layers { index: 0 dead_ratio: 0.75 dead_window_ratio: 0.5
                 saturated_ratio: 0.125
                 params { name: "weights" size: 64 grad_l2_norm: 2.5
                          grad_mean_abs: 0.25
                          grad_zero_fraction: 0.75
                          grad_subnormal_count: 16
                          grad_nan_count:)pb",
      nan_count, R"pb(
          grad_inf_count: 1
          update_ratio: 0.001953125
        }
                  params { name: "bias" size: 8 grad_l2_norm: 0.5 update_ratio: 4 }
      }
      layers {
        index: 1
        dead_ratio: 0
        params { name: "weights" size: 24 grad_mean_abs: 1e-9 }
      }
    }
  )pb"));
}

TEST(MetricsExporterTest, ExportsServerMetricsBeforeAnyJob) {
  MetricsExporterOptions options;
  options.dead_neuron_alert_threshold = 0.625;
  MetricsExporter exporter(options);
  const std::string text = Scrape(exporter);
  EXPECT_EQ(Value(text, "gradwatch_dead_neuron_alert_threshold"), 0.625);
  EXPECT_EQ(Value(text, "gradwatch_jobs{state=\"running\"}"), 0);
  EXPECT_EQ(Value(text, "gradwatch_jobs_finished_total{outcome=\"failed\"}"),
            0);
  EXPECT_EQ(Value(text, "gradwatch_jobs_submitted_total"), 0);
  EXPECT_EQ(Value(text, "gradwatch_step_duration_seconds_count"), 0);
  EXPECT_FALSE(absl::StrContains(text, "job_id="));
  EXPECT_FALSE(absl::StrContains(text, "{job="));
}

TEST(MetricsExporterTest, StepStatsSetJobLayerAndTensorSeries) {
  MetricsExporter exporter({});
  exporter.OnJobEvent("j-1", StatsEvent(/*step=*/1, /*nan_count=*/2));
  std::string text = Scrape(exporter);
  EXPECT_EQ(Value(text, "gradwatch_loss{job_id=\"j-1\"}"), 1.25);
  EXPECT_EQ(Value(text, "gradwatch_accuracy{job_id=\"j-1\"}"), 0.625);
  EXPECT_EQ(Value(text, "gradwatch_learning_rate{job_id=\"j-1\"}"), 0.05);
  EXPECT_EQ(Value(text, "gradwatch_steps_total{job_id=\"j-1\"}"), 1);
  const std::string layer0 = "{job_id=\"j-1\",layer=\"0\"}";
  EXPECT_EQ(Value(text, "gradwatch_dead_neuron_ratio" + layer0), 0.75);
  EXPECT_EQ(Value(text, "gradwatch_dead_neuron_window_ratio" + layer0), 0.5);
  EXPECT_EQ(Value(text, "gradwatch_saturated_ratio" + layer0), 0.125);
  // The weights' update ratio, not the bias's.
  EXPECT_EQ(Value(text, "gradwatch_update_ratio" + layer0), 0.001953125);
  EXPECT_EQ(
      Value(text, "gradwatch_dead_neuron_ratio{job_id=\"j-1\",layer=\"1\"}"),
      0);
  const std::string weights0 =
      "{job_id=\"j-1\",layer=\"0\",tensor=\"weights\"}";
  EXPECT_EQ(Value(text, "gradwatch_gradient_l2_norm" + weights0), 2.5);
  EXPECT_EQ(Value(text, "gradwatch_gradient_mean_abs" + weights0), 0.25);
  EXPECT_EQ(Value(text, "gradwatch_gradient_zero_fraction" + weights0), 0.75);
  EXPECT_EQ(Value(text, "gradwatch_gradient_subnormal_fraction" + weights0),
            0.25);  // 16 of 64
  EXPECT_EQ(Value(text, "gradwatch_gradient_nonfinite_total" + weights0), 3);
  EXPECT_EQ(Value(text,
                  "gradwatch_gradient_l2_norm{job_id=\"j-1\",layer=\"0\","
                  "tensor=\"bias\"}"),
            0.5);
  EXPECT_EQ(Value(text,
                  "gradwatch_gradient_mean_abs{job_id=\"j-1\",layer=\"1\","
                  "tensor=\"weights\"}"),
            1e-9);
  EXPECT_EQ(Value(text, "gradwatch_step_duration_seconds_count"), 1);
  EXPECT_EQ(
      Value(text, "gradwatch_step_duration_seconds_bucket{le=\"0.0025\"}"), 0);
  EXPECT_EQ(Value(text, "gradwatch_step_duration_seconds_bucket{le=\"0.005\"}"),
            1);

  // Step 4 after step 1 (steps between went unreported): the counters add
  // up, the gauges take the new values.
  v1::JobEvent later = StatsEvent(/*step=*/4, /*nan_count=*/0);
  later.mutable_stats()->mutable_layers(0)->set_dead_ratio(0.875);
  exporter.OnJobEvent("j-1", later);
  text = Scrape(exporter);
  EXPECT_EQ(Value(text, "gradwatch_steps_total{job_id=\"j-1\"}"), 4);
  EXPECT_EQ(Value(text, "gradwatch_gradient_nonfinite_total" + weights0), 4);
  EXPECT_EQ(Value(text, "gradwatch_dead_neuron_ratio" + layer0), 0.875);
  EXPECT_EQ(Value(text, "gradwatch_step_duration_seconds_count"), 2);
}

TEST(MetricsExporterTest, StateChangesMoveJobsBetweenStates) {
  MetricsExporter exporter({});
  exporter.OnJobEvent("j-1", StateEvent(v1::QUEUED));
  exporter.OnJobEvent("j-2", StateEvent(v1::QUEUED));
  exporter.OnJobEvent("j-1", StateEvent(v1::RUNNING));
  std::string text = Scrape(exporter);
  EXPECT_EQ(Value(text, "gradwatch_jobs{state=\"queued\"}"), 1);
  EXPECT_EQ(Value(text, "gradwatch_jobs{state=\"running\"}"), 1);
  EXPECT_EQ(Value(text, "gradwatch_jobs_submitted_total"), 2);
  EXPECT_EQ(
      Value(text, "gradwatch_job_state{job_id=\"j-1\",state=\"running\"}"), 1);
  EXPECT_EQ(Value(text, "gradwatch_job_state{job_id=\"j-1\",state=\"queued\"}"),
            0);

  exporter.OnJobEvent("j-1", StateEvent(v1::SUCCEEDED));
  exporter.OnJobEvent("j-2", StateEvent(v1::CANCELLED));
  text = Scrape(exporter);
  EXPECT_EQ(Value(text, "gradwatch_jobs{state=\"queued\"}"), 0);
  EXPECT_EQ(Value(text, "gradwatch_jobs{state=\"running\"}"), 0);
  EXPECT_EQ(Value(text, "gradwatch_jobs{state=\"succeeded\"}"), 1);
  EXPECT_EQ(Value(text, "gradwatch_jobs{state=\"cancelled\"}"), 1);
  EXPECT_EQ(Value(text, "gradwatch_jobs_finished_total{outcome=\"succeeded\"}"),
            1);
  EXPECT_EQ(Value(text, "gradwatch_jobs_finished_total{outcome=\"cancelled\"}"),
            1);
  EXPECT_EQ(
      Value(text, "gradwatch_job_state{job_id=\"j-1\",state=\"succeeded\"}"),
      1);
  EXPECT_EQ(
      Value(text, "gradwatch_job_state{job_id=\"j-1\",state=\"running\"}"), 0);
}

TEST(MetricsExporterTest, RecoveredJobIsFinishedButNotSubmitted) {
  MetricsExporter exporter({});
  // A job recovered from the store: its first event is its final state.
  exporter.OnJobEvent("j-old", StateEvent(v1::INTERRUPTED));
  const std::string text = Scrape(exporter);
  EXPECT_EQ(Value(text, "gradwatch_jobs_submitted_total"), 0);
  EXPECT_EQ(Value(text, "gradwatch_jobs{state=\"interrupted\"}"), 1);
  EXPECT_EQ(
      Value(text, "gradwatch_jobs_finished_total{outcome=\"interrupted\"}"), 1);
}

TEST(MetricsExporterTest, AlertsSetRuleFiringPerLayer) {
  MetricsExporter exporter({});
  exporter.OnJobEvent("j-1", ParseEvent(R"pb(
                        alert { rule: DEAD_RELU layer: 1 firing: true }
                      )pb"));
  exporter.OnJobEvent(
      "j-1", ParseEvent(R"pb(
        alert { rule: LOSS_NOT_DECREASING layer: -1 firing: true }
      )pb"));
  std::string text = Scrape(exporter);
  const std::string dead_relu =
      "gradwatch_health_rule_firing{job_id=\"j-1\",layer=\"1\",rule=\"dead_"
      "relu\"}";
  EXPECT_EQ(Value(text, dead_relu), 1);
  EXPECT_EQ(Value(text,
                  "gradwatch_health_rule_firing{job_id=\"j-1\",layer=\"all\","
                  "rule=\"loss_not_decreasing\"}"),
            1);
  exporter.OnJobEvent("j-1", ParseEvent(R"pb(
                        alert { rule: DEAD_RELU layer: 1 firing: false }
                      )pb"));
  text = Scrape(exporter);
  EXPECT_EQ(Value(text, dead_relu), 0);
}

TEST(MetricsExporterTest, SummarySetsTheDiagnosis) {
  MetricsExporter exporter({});
  exporter.OnJobEvent("j-1", StateEvent(v1::RUNNING));
  std::string text = Scrape(exporter);
  EXPECT_EQ(Value(text,
                  "gradwatch_job_diagnosis{diagnosis=\"diverged\",job_id=\"j-"
                  "1\"}"),
            0);
  exporter.OnJobEvent("j-1", ParseEvent(R"pb(
                        summary { state: FAILED diagnosis: DIVERGED }
                      )pb"));
  text = Scrape(exporter);
  EXPECT_EQ(Value(text,
                  "gradwatch_job_diagnosis{diagnosis=\"diverged\",job_id=\"j-"
                  "1\"}"),
            1);
  EXPECT_EQ(Value(text,
                  "gradwatch_job_diagnosis{diagnosis=\"learning\",job_id=\"j-"
                  "1\"}"),
            0);
}

TEST(MetricsExporterTest, RemovesAFinishedJobsSeriesAfterTheRetention) {
  absl::Time now = absl::FromUnixSeconds(1000000);
  MetricsExporterOptions options;
  options.retention = absl::Minutes(10);
  options.clock = [&now] { return now; };
  MetricsExporter exporter(options);
  for (const std::string id : {"j-done", "j-live"}) {
    exporter.OnJobEvent(id, StateEvent(v1::QUEUED));
    exporter.OnJobEvent(id, StateEvent(v1::RUNNING));
    exporter.OnJobEvent(id, StatsEvent(/*step=*/1, /*nan_count=*/0));
    exporter.OnJobEvent(id, ParseEvent(R"pb(
                          alert { rule: DEAD_RELU layer: 0 firing: true }
                        )pb"));
  }
  exporter.OnJobEvent("j-done", StateEvent(v1::SUCCEEDED));
  EXPECT_EQ(exporter.tracked_jobs(), 2u);

  now += absl::Minutes(10) - absl::Seconds(1);
  std::string text = Scrape(exporter);
  EXPECT_EQ(
      Value(text, "gradwatch_dead_neuron_ratio{job_id=\"j-done\",layer=\"0\"}"),
      0.75);
  EXPECT_EQ(exporter.tracked_jobs(), 2u);

  now += absl::Seconds(1);
  text = Scrape(exporter);
  EXPECT_EQ(exporter.tracked_jobs(), 1u);
  EXPECT_FALSE(absl::StrContains(text, "j-done")) << text;
  EXPECT_EQ(
      Value(text, "gradwatch_dead_neuron_ratio{job_id=\"j-live\",layer=\"0\"}"),
      0.75);
  EXPECT_EQ(Value(text, "gradwatch_steps_total{job_id=\"j-live\"}"), 1);
  // Server-wide figures keep the finished job.
  EXPECT_EQ(Value(text, "gradwatch_jobs_finished_total{outcome=\"succeeded\"}"),
            1);
  EXPECT_EQ(Value(text, "gradwatch_jobs{state=\"succeeded\"}"), 1);
  EXPECT_EQ(Value(text, "gradwatch_jobs{state=\"running\"}"), 1);
}

TEST(MetricsExporterTest, CountsWatchersAndStreamedEvents) {
  MetricsExporter exporter({});
  exporter.OnWatcherStarted();
  exporter.OnWatcherStarted();
  exporter.OnWatcherEnded();
  exporter.OnEventsStreamed(5);
  exporter.OnEventsStreamed(2);
  const std::string text = Scrape(exporter);
  EXPECT_EQ(Value(text, "gradwatch_active_watchers"), 1);
  EXPECT_EQ(Value(text, "gradwatch_events_streamed_total"), 7);
}

TEST(MetricsExporterTest, JobsOnSeveralThreadsWhileScraping) {
  MetricsExporter exporter({});
  constexpr int kJobs = 4;
  constexpr int kSteps = 200;
  std::vector<std::thread> threads;
  for (int j = 0; j < kJobs; ++j) {
    threads.emplace_back([&exporter, j] {
      const std::string id = absl::StrCat("j-", j);
      exporter.OnJobEvent(id, StateEvent(v1::QUEUED));
      exporter.OnJobEvent(id, StateEvent(v1::RUNNING));
      for (int s = 1; s <= kSteps; ++s) {
        exporter.OnJobEvent(id, StatsEvent(s, /*nan_count=*/1));
      }
      exporter.OnJobEvent(id, StateEvent(v1::SUCCEEDED));
    });
  }
  for (int i = 0; i < 20; ++i) Scrape(exporter);
  for (std::thread& thread : threads) thread.join();
  const std::string text = Scrape(exporter);
  for (int j = 0; j < kJobs; ++j) {
    const std::string id = absl::StrCat("j-", j);
    EXPECT_EQ(Value(text, "gradwatch_steps_total{job_id=\"" + id + "\"}"),
              kSteps);
    EXPECT_EQ(Value(text, "gradwatch_gradient_nonfinite_total{job_id=\"" + id +
                              "\",layer=\"0\",tensor=\"weights\"}"),
              2 * kSteps);
  }
  EXPECT_EQ(Value(text, "gradwatch_step_duration_seconds_count"),
            kJobs * kSteps);
  EXPECT_EQ(Value(text, "gradwatch_jobs{state=\"succeeded\"}"), kJobs);
}

// A real job through the JobManager: every event reaches the exporter.
TEST(MetricsExporterTest, FollowsARealJob) {
  MetricsExporter exporter({});
  JobManagerOptions options;
  options.observer = &exporter;
  auto manager = JobManager::Create(options, /*store=*/nullptr);
  ASSERT_TRUE(manager.ok()) << manager.status();
  v1::JobSpec spec;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        data { synthetic { kind: SPIRALS samples: 200 classes: 3 seed: 7 } }
        model {
          layers { units: 16 activation: RELU }
          layers { units: 3 }
        }
        loss: CROSS_ENTROPY
        optimizer { learning_rate: 0.1 }
        training { steps: 30 batch_size: 20 seed: 1 threads: 1 }
      )pb",
      &spec));
  auto job = (*manager)->Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto history = (*manager)->History(job->id());
  ASSERT_TRUE(history.ok());
  std::deque<JobHistory::EventPtr> events;
  while (!(*history)->Read(0, 1 << 20, &events)) {
    events.clear();
    absl::SleepFor(absl::Milliseconds(10));
  }
  const v1::JobEvent* last_stats = nullptr;
  for (const auto& event : events) {
    if (event->has_stats()) last_stats = event.get();
  }
  ASSERT_NE(last_stats, nullptr);

  const std::string text = Scrape(exporter);
  const std::string id = job->id();
  EXPECT_EQ(Value(text, "gradwatch_steps_total{job_id=\"" + id + "\"}"), 30);
  ExpectClose(Value(text, "gradwatch_loss{job_id=\"" + id + "\"}"),
              last_stats->stats().loss());
  EXPECT_EQ(Value(text, "gradwatch_job_state{job_id=\"" + id +
                            "\",state=\"succeeded\"}"),
            1);
  EXPECT_EQ(Value(text, "gradwatch_jobs_submitted_total"), 1);
  EXPECT_EQ(Value(text, "gradwatch_jobs_finished_total{outcome=\"succeeded\"}"),
            1);
  for (const v1::LayerStats& layer : last_stats->stats().layers()) {
    ExpectClose(
        Value(text, absl::StrCat("gradwatch_dead_neuron_ratio{job_id=\"", id,
                                 "\",layer=\"", layer.index(), "\"}")),
        layer.dead_ratio());
  }
}

}  // namespace
}  // namespace gradwatch::server

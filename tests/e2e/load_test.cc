// The load workload at a bounded size on a real server: eight clients at
// once submit, watch, poll and cancel jobs, closing and reopening streams
// at random points; every job ends in a final state with its full history,
// and the server is still healthy. bench/load_bench.cc runs the same
// workload at a larger size. And the history check itself, on histories
// with one defect each.

#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gradwatch/v1/events.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/load_workload.h"
#include "tests/e2e/server_process.h"

namespace gradwatch::e2e {
namespace {

namespace v1 = ::gradwatch::v1;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kJob[] = "j-0000000000000001";

TEST(LoadTest, EveryJobEndsWithItsFullHistory) {
  auto server = ServerProcess::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  LoadOptions options;
  options.clients = 8;
  options.jobs_per_client = 10;
  options.seed = 1;
  options.cancel_fraction = 0.25;
  options.watch_drop_fraction = 0.3;
  // Bounds, not expectations: together under the test's 300 s timeout, so
  // that a stuck job fails the test with its id instead of hanging it.
  options.max_duration = absl::Seconds(150);
  options.drain = absl::Seconds(60);

  const LoadReport report = RunLoad((*server)->address(), options);
  std::printf("%s", FormatReport(report).c_str());

  EXPECT_THAT(report.failures, IsEmpty());
  EXPECT_FALSE(report.stopped_at_deadline);
  EXPECT_EQ(report.jobs_submitted, 80);
  EXPECT_EQ(report.jobs_succeeded + report.jobs_cancelled, 80);
  // The seed's plans cancel jobs and close streams early.
  EXPECT_GT(report.cancels_requested, 0);
  EXPECT_GT(report.watch_drops, 0);
  EXPECT_EQ(report.watch_streams, 80 + report.watch_drops);
  EXPECT_EQ(report.events_replayed, report.events_live);
  EXPECT_EQ(report.submit_latency.count, 80);
  EXPECT_GE(report.get_latency.count, 80);
  EXPECT_TRUE(report.server_serving);
  EXPECT_EQ((*server)->Stop(SIGTERM), 0);
}

v1::JobEvent State(v1::JobState state, uint64_t step) {
  v1::JobEvent event;
  event.set_step(step);
  event.mutable_state_change()->set_state(state);
  return event;
}

// A job of `steps` steps that ran to `final_state` after `done` of them.
std::vector<v1::JobEvent> RunHistory(uint64_t steps, uint64_t done,
                                     v1::JobState final_state) {
  std::vector<v1::JobEvent> events = {State(v1::QUEUED, 0),
                                      State(v1::RUNNING, 0)};
  events.emplace_back().mutable_started()->set_steps_total(steps);
  for (uint64_t step = 1; step <= done; ++step) {
    v1::JobEvent& stats = events.emplace_back();
    stats.set_step(step);
    stats.mutable_stats()->set_step(step);
  }
  v1::JobEvent& alert = events.emplace_back();
  alert.set_step(done);
  alert.mutable_alert()->set_rule(v1::LOSS_NOT_DECREASING);
  v1::JobEvent& summary = events.emplace_back();
  summary.set_step(done);
  summary.mutable_summary()->set_state(final_state);
  summary.mutable_summary()->set_steps_completed(done);
  events.push_back(State(final_state, done));
  return events;
}

// Sets job ids and sequences as a server's history does.
std::vector<v1::JobEvent> Numbered(std::vector<v1::JobEvent> events) {
  for (size_t i = 0; i < events.size(); ++i) {
    events[i].set_job_id(kJob);
    events[i].set_sequence(i);
  }
  return events;
}

std::string Defect(uint64_t steps, const std::vector<v1::JobEvent>& events) {
  absl::Status status = CheckHistory(kJob, steps, events);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  std::string message(status.message());
  return message;
}

TEST(CheckHistoryTest, AcceptsCompleteHistories) {
  EXPECT_TRUE(
      CheckHistory(kJob, 5, Numbered(RunHistory(5, 5, v1::SUCCEEDED))).ok());
  EXPECT_TRUE(
      CheckHistory(kJob, 5, Numbered(RunHistory(5, 2, v1::CANCELLED))).ok());
  EXPECT_TRUE(
      CheckHistory(kJob, 5, Numbered(RunHistory(5, 0, v1::CANCELLED))).ok());
  std::vector<v1::JobEvent> queued = {State(v1::QUEUED, 0)};
  queued.emplace_back().mutable_summary()->set_state(v1::CANCELLED);
  queued.push_back(State(v1::CANCELLED, 0));
  EXPECT_TRUE(CheckHistory(kJob, 5, Numbered(queued)).ok());
}

TEST(CheckHistoryTest, NamesALostEvent) {
  std::vector<v1::JobEvent> events = RunHistory(5, 5, v1::SUCCEEDED);
  events.erase(events.begin() + 5);  // step 3's statistics
  EXPECT_THAT(Defect(5, Numbered(events)),
              HasSubstr("event 5: statistics of step 4 (event step 4) after "
                        "step 2"));
  // Lost on the way, with the sequence left as sent.
  events = Numbered(RunHistory(5, 5, v1::SUCCEEDED));
  events.erase(events.begin() + 5);
  EXPECT_THAT(Defect(5, events), HasSubstr("event 5: has sequence 6"));
  events = Numbered(RunHistory(5, 5, v1::SUCCEEDED));
  events.erase(events.end() - 2);
  EXPECT_THAT(Defect(5, events), HasSubstr("has sequence"));
  events = RunHistory(5, 5, v1::SUCCEEDED);
  events.erase(events.end() - 2);
  EXPECT_THAT(Defect(5, Numbered(events)), HasSubstr("no summary"));
}

TEST(CheckHistoryTest, NamesAnUnfinishedOrInconsistentJob) {
  std::vector<v1::JobEvent> events = RunHistory(5, 5, v1::SUCCEEDED);
  events.pop_back();
  EXPECT_THAT(Defect(5, Numbered(events)), HasSubstr("ends in RUNNING"));
  EXPECT_THAT(Defect(6, Numbered(RunHistory(6, 5, v1::SUCCEEDED))),
              HasSubstr("SUCCEEDED after 5 of 6 steps"));
  EXPECT_THAT(Defect(5, Numbered(RunHistory(5, 5, v1::FAILED))),
              HasSubstr("ends in FAILED"));
  events = RunHistory(5, 5, v1::SUCCEEDED);
  events[events.size() - 2].mutable_summary()->set_steps_completed(4);
  EXPECT_THAT(Defect(5, Numbered(events)),
              HasSubstr("summary says SUCCEEDED after 4 steps"));
  events = RunHistory(5, 5, v1::SUCCEEDED);
  events.erase(events.begin() + 2);  // RunInfo
  EXPECT_THAT(Defect(5, Numbered(events)),
              HasSubstr("QUEUED RUNNING SUCCEEDED without RunInfo"));
  events = RunHistory(5, 5, v1::SUCCEEDED);
  events.push_back(State(v1::SUCCEEDED, 5));
  EXPECT_THAT(Defect(5, Numbered(events)),
              HasSubstr("follows the final state"));
  events = Numbered(RunHistory(5, 5, v1::SUCCEEDED));
  events[4].set_job_id("j-0000000000000002");
  EXPECT_THAT(Defect(5, events), HasSubstr("belongs to job"));
}

}  // namespace
}  // namespace gradwatch::e2e

#include "client/local_run.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/spec_validation.h"

namespace gradwatch::client {
namespace {

namespace v1 = ::gradwatch::v1;

void SetNow(google::protobuf::Timestamp* timestamp) {
  const absl::Duration since_epoch = absl::Now() - absl::UnixEpoch();
  const int64_t seconds = absl::ToInt64Seconds(since_epoch);
  timestamp->set_seconds(seconds);
  timestamp->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(since_epoch - absl::Seconds(seconds))));
}

}  // namespace

absl::StatusOr<v1::Summary> RunLocalJob(
    const v1::JobSpec& spec,
    const std::function<void(const v1::JobEvent&)>& on_event,
    const engine::CancellationToken& cancel) {
  absl::Status valid = engine::ValidateJobSpec(spec);
  if (!valid.ok()) return valid;
  engine::TrainerOptions options;
  // As a server's default per-job budget on this machine size: these
  // networks are too small to gain from more, and extra OpenMP threads
  // only spin when the cores are busy. The spec's training.threads wins.
  options.threads = 1;
  absl::StatusOr<std::unique_ptr<engine::Trainer>> trainer =
      engine::Trainer::Create(spec, options);
  if (!trainer.ok()) return trainer.status();

  uint64_t sequence = 0;
  auto emit = [&](v1::JobEvent event) {
    event.set_job_id(kLocalJobId);
    event.set_sequence(sequence++);
    SetNow(event.mutable_time());
    on_event(event);
  };
  v1::JobEvent running;
  running.mutable_state_change()->set_state(v1::RUNNING);
  running.mutable_state_change()->set_message("started");
  emit(running);
  bool summary_seen = false;
  v1::Summary summary = (*trainer)->Run(
      [&](const v1::JobEvent& event) {
        summary_seen = summary_seen || event.has_summary();
        emit(event);
      },
      cancel);
  if (!summary_seen) {
    v1::JobEvent event;
    event.set_step(summary.steps_completed());
    *event.mutable_summary() = summary;
    emit(event);
  }
  // Worded as the server words it.
  std::string message =
      absl::StrCat(v1::JobState_Name(summary.state()), " after ",
                   summary.steps_completed(), " steps");
  if (summary.diagnosis() != v1::DIAGNOSIS_UNSPECIFIED) {
    absl::StrAppend(&message, ", diagnosis ",
                    v1::Diagnosis_Name(summary.diagnosis()));
  }
  if (!summary.error().empty())
    absl::StrAppend(&message, ": ", summary.error());
  v1::JobEvent ended;
  ended.set_step(summary.steps_completed());
  ended.mutable_state_change()->set_state(summary.state());
  ended.mutable_state_change()->set_message(message);
  emit(ended);
  return summary;
}

}  // namespace gradwatch::client

#ifndef GRADWATCH_CLIENT_LOCAL_RUN_H_
#define GRADWATCH_CLIENT_LOCAL_RUN_H_

#include <functional>

#include "absl/status/statusor.h"
#include "engine/trainer.h"
#include "gradwatch/v1/events.pb.h"
#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::client {

/// The job id of runs made in the CLI's own process.
inline constexpr char kLocalJobId[] = "local";

/// Validates and trains a job in this process, emitting the event stream a
/// server would send for it: job id "local", sequence numbers from 0, event
/// times, a RUNNING state change first and the final state change last.
/// Returns the summary, or the validation / setup error (nothing is emitted
/// then). `on_event` runs on the calling thread. Thread-compatible.
absl::StatusOr<gradwatch::v1::Summary> RunLocalJob(
    const gradwatch::v1::JobSpec& spec,
    const std::function<void(const gradwatch::v1::JobEvent&)>& on_event,
    const engine::CancellationToken& cancel);

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_LOCAL_RUN_H_

#ifndef GRADWATCH_SERVER_JOB_OBSERVER_H_
#define GRADWATCH_SERVER_JOB_OBSERVER_H_

#include <cstdint>
#include <string>

#include "gradwatch/v1/events.pb.h"

namespace gradwatch::server {

/// Told about every event a job appends to its history (state changes,
/// run info, step statistics, alerts, the summary), in the history's order
/// for each job, and about the streams that follow jobs. Called on the
/// appending thread (usually a training thread between two steps) or on
/// gRPC's callback threads, for different jobs from different threads at
/// once: implementations must be thread-safe, must not block, and must not
/// call back into the JobManager.
class JobObserver {
 public:
  virtual ~JobObserver() = default;
  virtual void OnJobEvent(const std::string& job_id,
                          const gradwatch::v1::JobEvent& event) = 0;
  /// A WatchJob or Train stream started following a job, or ended.
  virtual void OnWatcherStarted() {}
  virtual void OnWatcherEnded() {}
  /// A stream wrote `count` events to its client.
  virtual void OnEventsStreamed(uint64_t /*count*/) {}
  /// An RPC of `method` ("gradwatch.v1.Trainer/SubmitJob") ended with the
  /// canonical status `code` ("OK", "NOT_FOUND").
  virtual void OnRpcFinished(const std::string& /*method*/,
                             const std::string& /*code*/) {}
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_JOB_OBSERVER_H_

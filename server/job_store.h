#ifndef GRADWATCH_SERVER_JOB_STORE_H_
#define GRADWATCH_SERVER_JOB_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gradwatch/v1/events.pb.h"
#include "gradwatch/v1/trainer.pb.h"

namespace gradwatch::server {

/// Where jobs outlive the server process: each job's record (spec
/// included), its full event history and its trained model. The
/// JobManager writes through to the store at every lifecycle point and
/// every event, and reads it back once, at startup, to recover.
///
/// Implementations are thread-safe. Calls for one job arrive in order
/// (events in sequence order); calls for different jobs interleave.
class JobStore {
 public:
  /// One job as stored.
  struct StoredJob {
    gradwatch::v1::Job job;
    std::vector<gradwatch::v1::JobEvent> events;
    std::optional<gradwatch::v1::Model> model;
  };

  virtual ~JobStore() = default;

  /// Inserts or replaces a job's record.
  virtual absl::Status PutJob(const gradwatch::v1::Job& job) = 0;
  /// Appends one event (job_id and sequence set) to its job's history.
  virtual absl::Status AppendEvent(const gradwatch::v1::JobEvent& event) = 0;
  /// Stores the trained parameters of `model.job_id`, replacing any.
  virtual absl::Status PutModel(const gradwatch::v1::Model& model) = 0;
  /// Removes a job with its events and model; unknown ids are no error.
  virtual absl::Status DeleteJob(const std::string& job_id) = 0;
  /// Every stored job, oldest first.
  virtual absl::StatusOr<std::vector<StoredJob>> LoadAll() = 0;
  /// Bytes the store occupies: its files for a file store, the serialized
  /// size of its contents for an in-memory one (exported as
  /// gradwatch_store_bytes). UNIMPLEMENTED for a store that cannot tell.
  virtual absl::StatusOr<uint64_t> SizeBytes() {
    return absl::UnimplementedError("this job store does not report a size");
  }
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_JOB_STORE_H_

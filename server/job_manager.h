#ifndef GRADWATCH_SERVER_JOB_MANAGER_H_
#define GRADWATCH_SERVER_JOB_MANAGER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gradwatch/v1/trainer.pb.h"
#include "server/job_history.h"
#include "server/job_observer.h"
#include "server/job_store.h"
#include "server/principal.h"

namespace gradwatch::engine {
class Trainer;
}  // namespace gradwatch::engine

namespace gradwatch::server {

struct JobManagerOptions {
  /// Worker threads: jobs trained at once.
  int workers = 1;
  /// oneDNN threads per job when its spec leaves training.threads at 0.
  int job_threads = 1;
  /// Jobs waiting for a worker before Submit answers RESOURCE_EXHAUSTED.
  int64_t max_queued_jobs = 64;
  /// Streams following one job at once.
  int64_t max_watchers_per_job = 32;
  /// A running job whose history's serialized events pass this many bytes
  /// is stopped and ends FAILED, naming --max_history_bytes.
  int64_t max_history_bytes = int64_t{1} << 30;
  /// Told every event appended to a job's history (not owned; may be null).
  JobObserver* observer = nullptr;
  /// How long a finished job is kept (in memory and in the store) after it
  /// ended; infinite keeps every job.
  absl::Duration retention = absl::InfiniteDuration();
};

/// Runs jobs: a bounded queue, a pool of worker threads that each train one
/// job at a time with engine::Trainer, and every job's record and history.
/// States go QUEUED -> RUNNING -> SUCCEEDED / FAILED / CANCELLED, or
/// INTERRUPTED when the manager shuts down under a job. Each job's events
/// (its own state changes included) go to its JobHistory. A job's failure,
/// even an exception out of the engine, ends that job only.
///
/// With a JobStore, every record, event and trained model is written
/// through to it, and Create recovers the stored jobs: finished ones as
/// they were, queued or running ones as INTERRUPTED.
///
/// A job belongs to the principal that submitted it (Job.owner). Every
/// look-up takes the caller: a job the caller may not access
/// (Principal::CanAccess) is NOT_FOUND with the very message of an unknown
/// id, and List leaves it out. The default caller, the anonymous admin,
/// reaches every job.
///
/// Specs must have passed engine::ValidateJobSpec and CheckLimits.
/// Thread-safe; the destructor shuts down with no grace period.
class JobManager {
 public:
  /// Recovers the jobs of `store` (optional, not owned; it must outlive
  /// the manager), then starts the workers. Errors are the store's.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(
      const JobManagerOptions& options, JobStore* store);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  /// Queues a job owned by `owner` and returns its record at once: QUEUED,
  /// or already further along if a free worker took it up in between.
  /// RESOURCE_EXHAUSTED when the queue is full; UNAVAILABLE once shutting
  /// down.
  absl::StatusOr<gradwatch::v1::Job> Submit(const gradwatch::v1::JobSpec& spec,
                                            const std::string& owner = "");

  /// The job's record, with its spec when `with_spec`. NOT_FOUND if unknown
  /// (to `caller`).
  absl::StatusOr<gradwatch::v1::Job> Get(
      const std::string& job_id, bool with_spec,
      const Principal& caller = Principal::AnonymousAdmin()) const;

  /// The jobs `caller` may access, newest first, paged, optionally only one
  /// state. INVALID_ARGUMENT for a page_size over 1000 or a page_token this
  /// manager did not issue.
  absl::StatusOr<gradwatch::v1::ListJobsResponse> List(
      const gradwatch::v1::ListJobsRequest& request,
      const Principal& caller = Principal::AnonymousAdmin()) const;

  /// Cancels a queued job at once, a running one at its next step; a
  /// finished job is returned unchanged. NOT_FOUND if unknown.
  absl::StatusOr<gradwatch::v1::Job> Cancel(
      const std::string& job_id,
      const Principal& caller = Principal::AnonymousAdmin());

  /// The job's history, for streams. NOT_FOUND if unknown.
  absl::StatusOr<std::shared_ptr<JobHistory>> History(
      const std::string& job_id,
      const Principal& caller = Principal::AnonymousAdmin()) const;

  /// Runs the job's model. NOT_FOUND if unknown; FAILED_PRECONDITION
  /// before the job's trainer exists (queued, or failed before training).
  /// May take a while: call it off gRPC's callback threads.
  absl::StatusOr<gradwatch::v1::PredictResponse> Predict(
      const gradwatch::v1::PredictRequest& request,
      const Principal& caller = Principal::AnonymousAdmin()) const;

  /// The job's current parameters (a recovered job: its stored model);
  /// errors as Predict.
  absl::StatusOr<gradwatch::v1::Model> GetModel(
      const std::string& job_id,
      const Principal& caller = Principal::AnonymousAdmin()) const;

  /// Refuses new jobs, interrupts the queued ones, lets running jobs go on
  /// for up to `grace`, then stops them (INTERRUPTED) and joins the
  /// workers. Every history is closed when it returns. Idempotent.
  void Shutdown(absl::Duration grace);

  /// After Shutdown: waits until every stream has sent its job's last
  /// event and ended, or `timeout` passes.
  void AwaitStreamsDrained(absl::Duration timeout) const;

 private:
  struct Entry;

  JobManager(const JobManagerOptions& options, JobStore* store);
  absl::Status Recover();
  // Appends to the job's history and writes the event through to the store.
  void Append(const std::shared_ptr<Entry>& entry,
              gradwatch::v1::JobEvent event);
  void EmitState(const std::shared_ptr<Entry>& entry,
                 gradwatch::v1::JobState state, const std::string& message);
  void PersistRecord(const Entry& entry);
  void ReportStoreError(const std::string& job_id, const absl::Status& status);
  absl::StatusOr<std::shared_ptr<engine::Trainer>> TrainerFor(
      const std::shared_ptr<Entry>& entry) const;

  // Null when the job is unknown or `caller` may not access it.
  std::shared_ptr<Entry> Find(const std::string& job_id,
                              const Principal& caller) const;
  void WorkerLoop();
  void RunJob(const std::shared_ptr<Entry>& entry);
  // Ends a job that never reached Run: a summary and the final state.
  void EndWithoutRun(const std::shared_ptr<Entry>& entry,
                     gradwatch::v1::JobState state, const std::string& reason);
  // Records and emits the final state after the summary.
  void EndJob(const std::shared_ptr<Entry>& entry,
              const gradwatch::v1::Summary& summary);
  // Until shutdown, removes the jobs that ended over `retention` ago.
  void SweepLoop();
  void RemoveEndedBefore(absl::Time cutoff);
  bool WorkAvailable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool NothingRunning() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const JobManagerOptions options_;
  JobStore* const store_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Entry>> jobs_
      ABSL_GUARDED_BY(mu_);
  // Creation order, for ListJobs (newest first) and its page tokens.
  std::map<uint64_t, std::shared_ptr<Entry>> by_creation_ ABSL_GUARDED_BY(mu_);
  uint64_t next_creation_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<std::shared_ptr<Entry>> queue_ ABSL_GUARDED_BY(mu_);
  // Submissions between their admission and their place in queue_.
  int64_t admitting_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool workers_joined_ ABSL_GUARDED_BY(mu_) = false;
  absl::BitGen id_bits_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_;
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_JOB_MANAGER_H_

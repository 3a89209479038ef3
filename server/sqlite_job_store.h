#ifndef GRADWATCH_SERVER_SQLITE_JOB_STORE_H_
#define GRADWATCH_SERVER_SQLITE_JOB_STORE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/job_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace gradwatch::server {

/// A JobStore in one SQLite file: job records (spec included), every
/// event and each trained model, stored as serialized protobuf messages.
///
/// The database runs in WAL mode with synchronous=NORMAL: a committed
/// write survives the process being killed (not a power cut). The file is
/// locked for the lifetime of the store, so a second server on the same
/// file fails at Open instead of recovering the first one's running jobs.
///
/// Events are written behind the caller: AppendEvent checks and queues
/// the event, and a writer thread commits queued writes in batches, one
/// transaction each, so that a training step never waits for the disk.
/// PutJob, PutModel and DeleteJob return once their write (and every one
/// queued before it) is committed. A write error in the background is
/// returned by the next call that reports completion (Flush, PutJob,
/// PutModel, DeleteJob or AppendEvent). Queued bytes are bounded: a writer
/// that falls behind slows AppendEvent rather than grow the memory.
///
/// Thread-safe. Every statement is prepared once, at Open.
class SqliteJobStore final : public JobStore {
 public:
  /// Opens or creates the store file at `path` (its directory must exist).
  /// FAILED_PRECONDITION when another process holds the file or it was
  /// written by a newer schema; other errors are SQLite's.
  static absl::StatusOr<std::unique_ptr<SqliteJobStore>> Open(
      const std::string& path);
  /// Commits every queued write, then closes the file.
  ~SqliteJobStore() override;
  SqliteJobStore(const SqliteJobStore&) = delete;
  SqliteJobStore& operator=(const SqliteJobStore&) = delete;

  absl::Status PutJob(const gradwatch::v1::Job& job) override;
  absl::Status AppendEvent(const gradwatch::v1::JobEvent& event) override;
  absl::Status PutModel(const gradwatch::v1::Model& model) override;
  absl::Status DeleteJob(const std::string& job_id) override;
  absl::StatusOr<std::vector<StoredJob>> LoadAll() override;
  /// The size of the database file and its write-ahead log, in bytes.
  absl::StatusOr<uint64_t> SizeBytes() override;

  /// Waits until every write accepted so far is committed.
  absl::Status Flush();

  /// SQLite's journal mode for the file ("wal").
  absl::StatusOr<std::string> JournalMode();

 private:
  class Statements;
  // One queued write.
  struct Write {
    enum class Kind { kJob, kEvent, kModel, kDelete };
    Kind kind;
    std::string job_id;
    int64_t number = 0;  // job state, event sequence or model step
    int64_t step = 0;    // event step
    std::string blob;    // the serialized message
  };

  SqliteJobStore(sqlite3* db, std::unique_ptr<Statements> statements,
                 absl::flat_hash_map<std::string, uint64_t> next_sequence);
  // Queues `write`, once the queue has room; returns its ticket.
  uint64_t Enqueue(Write write) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits until `ticket` is committed; returns (and clears) any error.
  absl::Status AwaitWritten(uint64_t ticket) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriterLoop();
  absl::Status Execute(const Write& write)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::Status CommitBatch(const std::deque<Write>& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);

  absl::Mutex mu_;
  // Signalled when there is something to write, or the store closes.
  absl::CondVar work_cv_;
  // Signalled when a batch has been committed.
  absl::CondVar written_cv_;
  std::deque<Write> pending_ ABSL_GUARDED_BY(mu_);
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t enqueued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Per stored job, the sequence its next event must carry.
  absl::flat_hash_map<std::string, uint64_t> next_sequence_
      ABSL_GUARDED_BY(mu_);

  // The connection and its statements: one user at a time.
  absl::Mutex db_mu_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(db_mu_);
  std::unique_ptr<Statements> statements_ ABSL_PT_GUARDED_BY(db_mu_);

  std::thread writer_;
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_SQLITE_JOB_STORE_H_

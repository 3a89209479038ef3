#ifndef GRADWATCH_SERVER_MEMORY_JOB_STORE_H_
#define GRADWATCH_SERVER_MEMORY_JOB_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "server/job_store.h"

namespace gradwatch::server {

/// A JobStore in process memory: it survives a JobManager (a restart of
/// the manager over the same store recovers every job) but not the
/// process. The reference behaviour for durable stores. Thread-safe.
class MemoryJobStore final : public JobStore {
 public:
  absl::Status PutJob(const gradwatch::v1::Job& job) override;
  absl::Status AppendEvent(const gradwatch::v1::JobEvent& event) override;
  absl::Status PutModel(const gradwatch::v1::Model& model) override;
  absl::Status DeleteJob(const std::string& job_id) override;
  absl::StatusOr<std::vector<StoredJob>> LoadAll() override;
  /// The serialized size of every stored record, event and model.
  absl::StatusOr<uint64_t> SizeBytes() override;

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, StoredJob> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_MEMORY_JOB_STORE_H_

#include "server/memory_job_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace gradwatch::server {
namespace {

uint64_t StoredBytes(const JobStore::StoredJob& stored) {
  uint64_t bytes = stored.job.ByteSizeLong();
  for (const gradwatch::v1::JobEvent& event : stored.events) {
    bytes += event.ByteSizeLong();
  }
  if (stored.model.has_value()) bytes += stored.model->ByteSizeLong();
  return bytes;
}

}  // namespace

absl::Status MemoryJobStore::PutJob(const gradwatch::v1::Job& job) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = jobs_.try_emplace(job.id());
  if (inserted) order_.push_back(job.id());
  bytes_ -= it->second.job.ByteSizeLong();
  bytes_ += job.ByteSizeLong();
  it->second.job = job;
  return absl::OkStatus();
}

absl::Status MemoryJobStore::AppendEvent(const gradwatch::v1::JobEvent& event) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(event.job_id());
  if (it == jobs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no stored job ", event.job_id(), " for the event"));
  }
  std::vector<gradwatch::v1::JobEvent>& events = it->second.events;
  if (event.sequence() != events.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", event.job_id(), ": event ", event.sequence(),
                     " arrived after ", events.size(), " stored events"));
  }
  events.push_back(event);
  bytes_ += event.ByteSizeLong();
  return absl::OkStatus();
}

absl::Status MemoryJobStore::PutModel(const gradwatch::v1::Model& model) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(model.job_id());
  if (it == jobs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no stored job ", model.job_id(), " for the model"));
  }
  if (it->second.model.has_value()) bytes_ -= it->second.model->ByteSizeLong();
  bytes_ += model.ByteSizeLong();
  it->second.model = model;
  return absl::OkStatus();
}

absl::Status MemoryJobStore::DeleteJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it != jobs_.end()) {
    bytes_ -= StoredBytes(it->second);
    jobs_.erase(it);
    order_.erase(std::remove(order_.begin(), order_.end(), job_id),
                 order_.end());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JobStore::StoredJob>> MemoryJobStore::LoadAll() {
  absl::MutexLock lock(&mu_);
  std::vector<StoredJob> all;
  all.reserve(order_.size());
  for (const std::string& id : order_) all.push_back(jobs_.at(id));
  return all;
}

absl::StatusOr<uint64_t> MemoryJobStore::SizeBytes() {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace gradwatch::server

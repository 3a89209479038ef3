#ifndef GRADWATCH_SERVER_LIMITS_H_
#define GRADWATCH_SERVER_LIMITS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::server {

/// What one server accepts. Every field is a `gradwatch-server` flag of the
/// same name; the initializers are the flags' documented defaults. A plain
/// value type.
struct ServerLimits {
  /// Trainable parameters of one model (weights, biases, batch-norm).
  int64_t max_parameters = 10'000'000;
  /// Optimizer steps of one job, after epochs are turned into steps.
  int64_t max_steps = 1'000'000;
  /// Examples per step.
  int64_t max_batch_size = 8192;
  /// Size of a spec's `data`, both serialized (inline rows or CSV text)
  /// and as examples in memory (4 bytes per feature, label or target), so
  /// that a few bytes of synthetic spec cannot ask for gigabytes.
  int64_t max_dataset_bytes = 64 << 20;
  /// Activations of one step: rows times the input features plus the units
  /// of every layer, the rows being training.batch_size or, if larger, the
  /// 256 that evaluation and Predict run at a time. The trainer holds
  /// several tensors of this size (pre-activations, activations, their
  /// gradients).
  int64_t max_activations = 16'000'000;
  /// Largest request the server receives; above it gRPC itself answers
  /// RESOURCE_EXHAUSTED. Leaves room for a dataset at its limit.
  int64_t max_message_bytes = 80 << 20;
  /// Jobs waiting for a worker; a submission beyond it is refused.
  int64_t max_queued_jobs = 64;
  /// Concurrent WatchJob / WatchJobBatches / Train streams on one job.
  int64_t max_watchers_per_job = 32;
  /// Serialized events one job's history may hold (it is kept in memory
  /// until the job's retention ends). A job that passes it ends FAILED.
  int64_t max_history_bytes = int64_t{1} << 30;
};

/// Checks a spec that passed engine::ValidateJobSpec against the server's
/// limits on parameters, steps, batch size, activations and dataset bytes,
/// without building any of the dataset. Returns OK or
/// RESOURCE_EXHAUSTED naming the figure, the limit and its flag, e.g.
/// `model has 5000000 parameters, over the server's limit of 1000000
/// (--max_parameters)`. Thread-safe (pure function).
absl::Status CheckLimits(const gradwatch::v1::JobSpec& spec,
                         const ServerLimits& limits);

}  // namespace gradwatch::server

#endif  // GRADWATCH_SERVER_LIMITS_H_

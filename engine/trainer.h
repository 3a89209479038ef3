#ifndef GRADWATCH_ENGINE_TRAINER_H_
#define GRADWATCH_ENGINE_TRAINER_H_

// Intended usage:
//
//   absl::Status valid = ValidateJobSpec(spec);  // the one check
//   auto trainer = Trainer::Create(spec, {.threads = 2});
//   if (!trainer.ok()) return trainer.status();
//   CancellationToken cancel;  // Cancel() from any thread
//   v1::Summary summary = (*trainer)->Run(
//       [](const v1::JobEvent& event) { /* started, stats, alert, ... */ },
//       cancel);
//   auto outputs = (*trainer)->Predict(rows);  // the trained model
//   auto model = (*trainer)->GetModel();       // plain-layout weights
//
// The trainer knows nothing of gRPC or Prometheus: it reports through the
// callback, which runs on the training thread and must be quick (copy the
// event and return).

#include <atomic>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "google/protobuf/repeated_field.h"
#include "gradwatch/v1/events.pb.h"
#include "gradwatch/v1/spec.pb.h"
#include "gradwatch/v1/trainer.pb.h"

namespace gradwatch::engine {

/// Set from any thread to stop a run at the next step boundary.
/// Thread-safe.
class CancellationToken {
 public:
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
};

struct TrainerOptions {
  /// oneDNN (OpenMP) threads for this job when the spec says 0; 0 = 1.
  int threads = 0;
};

/// Receives every event of a run, on the training thread. The trainer
/// fills JobEvent.step and the event; job_id, sequence and time are left to
/// the caller.
using EventCallback = std::function<void(const gradwatch::v1::JobEvent&)>;

class Model;

/// Trains one job: data, model, optimizer and the training loop, built once
/// in Create. Run is called at most once, on one thread; GetModel and
/// Predict may be called from any thread at any time (they take a
/// snapshot under a lock the step takes once, between updates).
class Trainer {
 public:
  /// Builds everything the run needs from a spec that passed
  /// ValidateJobSpec. Errors: FAILED_PRECONDITION (e.g. BF16 on a CPU
  /// without bf16), INTERNAL (oneDNN), INVALID_ARGUMENT (data).
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const gradwatch::v1::JobSpec& spec, const TrainerOptions& options);
  ~Trainer();

  /// Trains to the end, to cancellation, or to a failure, emitting
  /// events; returns the final summary (also emitted as the last event).
  gradwatch::v1::Summary Run(const EventCallback& on_event,
                             const CancellationToken& cancel);

  /// Runs the current model on `inputs` (each as wide as the input layer).
  absl::StatusOr<gradwatch::v1::PredictResponse> Predict(
      const google::protobuf::RepeatedPtrField<gradwatch::v1::Example>& inputs);

  /// The current parameters in the plain layout of LayerParameters, and
  /// the step they were taken at.
  absl::StatusOr<gradwatch::v1::Model> GetModel();

  /// How the run is configured (threads, FTZ, sizes); valid after Create.
  const gradwatch::v1::RunInfo& run_info() const;

 private:
  struct State;
  explicit Trainer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_TRAINER_H_

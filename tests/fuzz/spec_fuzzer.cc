// Fuzzes the job spec's single validation point with arbitrary serialized
// JobSpec bytes, then, for a spec it accepts that is small enough to train
// quickly, everything a server does behind it: the limits, the defaults,
// the dataset, the trainer and two steps. Code behind the validation point
// may assume a valid spec, so any failure there is a validation gap.

#include <xmmintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "engine/dataset.h"
#include "engine/spec_defaults.h"
#include "engine/spec_validation.h"
#include "engine/trainer.h"
#include "google/protobuf/stubs/logging.h"
#include "gradwatch/v1/events.pb.h"
#include "gradwatch/v1/spec.pb.h"
#include "gradwatch/v1/trainer.pb.h"
#include "server/limits.h"

namespace {

namespace v1 = ::gradwatch::v1;
using ::gradwatch::engine::CancellationToken;
using ::gradwatch::engine::Trainer;

// Beyond this the spec is only parsed and validated: -max_len keeps inputs
// far smaller, and the corpus replay has no reason to exceed it.
constexpr size_t kMaxInputBytes = 1 << 20;
constexpr uint64_t kStepsRun = 2;

// A server whose limits keep one execution in milliseconds.
gradwatch::server::ServerLimits TightLimits() {
  gradwatch::server::ServerLimits limits;
  limits.max_parameters = 16384;
  limits.max_steps = 64;
  limits.max_batch_size = 64;
  limits.max_dataset_bytes = 64 << 10;
  limits.max_activations = 65536;
  return limits;
}

[[noreturn]] void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "spec_fuzzer: %s: %s\n", what,
               status.ToString().c_str());
  std::abort();
}

void Require(bool condition, const char* what,
             const absl::Status& status = absl::OkStatus()) {
  if (!condition) Fail(what, status);
}

// Trains the spec for two steps as a job worker would; returns the trained
// model, or nothing if the job rightly ended without one worth checking.
std::optional<v1::Model> TrainBriefly(v1::JobSpec spec) {
  spec.mutable_training()->set_threads(1);  // valid, and cheap to start
  absl::StatusOr<std::unique_ptr<Trainer>> trainer =
      Trainer::Create(spec, {.threads = 1});
  if (!trainer.ok()) {
    // The one refusal a valid spec may meet: a CPU without bf16.
    Require(absl::IsFailedPrecondition(trainer.status()) &&
                spec.training().precision() == v1::TrainingSpec::BF16,
            "Trainer::Create refused a valid spec", trainer.status());
    return std::nullopt;
  }
  CancellationToken cancel;
  bool stop_rule_fired = false;
  const v1::Summary summary = (*trainer)->Run(
      [&](const v1::JobEvent& event) {
        if (event.step() >= kStepsRun) cancel.Cancel();
        if (event.has_alert() && event.alert().firing() &&
            event.alert().action() == v1::RuleConfig::STOP_JOB) {
          stop_rule_fired = true;
        }
      },
      cancel);
  if (summary.state() == v1::FAILED) {
    // Divergence and STOP_JOB rules are results; anything else is an error
    // the validation should have prevented.
    Require(absl::StartsWith(summary.error(), "diverged") || stop_rule_fired,
            "a valid spec failed to train",
            absl::InternalError(summary.error()));
    return std::nullopt;
  }
  absl::StatusOr<v1::Model> model = (*trainer)->GetModel();
  Require(model.ok(), "GetModel failed after training", model.status());
  Require(model->layers_size() == spec.model().layers_size(),
          "GetModel returned the wrong number of layers");
  return *std::move(model);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Invalid UTF-8 in string fields is ordinary input here, not news.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  if (size > kMaxInputBytes) return 0;
  v1::JobSpec spec;
  if (!spec.ParseFromArray(data, static_cast<int>(size))) return 0;

  const absl::Status valid = gradwatch::engine::ValidateJobSpec(spec);
  if (!valid.ok()) {
    // A rejection is INVALID_ARGUMENT naming the field, or
    // RESOURCE_EXHAUSTED for a CSV document too large to hold.
    Require(absl::IsInvalidArgument(valid) || absl::IsResourceExhausted(valid),
            "validation returned an unexpected code", valid);
    Require(!valid.message().empty(), "validation error without a message");
    return 0;
  }
  // Defaults fill only documented values: the filled spec is still valid
  // (its steps now stand for the epochs they came from).
  const int64_t rows = gradwatch::engine::DeclaredExampleCount(spec.data());
  const int64_t train_rows =
      rows - gradwatch::engine::ValidationRows(
                 rows, spec.data().validation_fraction());
  if (rows >= 0) {
    v1::JobSpec filled = gradwatch::engine::WithDefaults(spec, train_rows);
    filled.mutable_training()->clear_epochs();
    const absl::Status refilled = gradwatch::engine::ValidateJobSpec(filled);
    Require(refilled.ok(), "the spec with defaults filled is invalid",
            refilled);
  }

  const absl::Status admitted =
      gradwatch::server::CheckLimits(spec, TightLimits());
  if (!admitted.ok()) {
    Require(absl::IsResourceExhausted(admitted),
            "limits returned an unexpected code", admitted);
    return 0;
  }
  // Training sets FTZ/DAZ on this thread when the spec asks for it; left
  // set, validation would read subnormal values as 0 from here on.
  const unsigned int mxcsr = _mm_getcsr();
  const std::optional<v1::Model> model = TrainBriefly(spec);
  _mm_setcsr(mxcsr);
  if (!model.has_value()) return 0;
  // GetModel's layers are documented as usable initial weights.
  *spec.mutable_model()->mutable_initial_weights() = model->layers();
  const absl::Status reloaded = gradwatch::engine::ValidateJobSpec(spec);
  Require(reloaded.ok(), "trained weights are not valid initial weights",
          reloaded);
  return 0;
}

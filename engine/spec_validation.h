#ifndef GRADWATCH_ENGINE_SPEC_VALIDATION_H_
#define GRADWATCH_ENGINE_SPEC_VALIDATION_H_

#include "absl/status/status.h"
#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// The single validation point of a JobSpec: checks every field's range and
/// every cross-field rule, as documented in proto/gradwatch/v1/spec.proto.
/// Returns OK or INVALID_ARGUMENT whose message names the field path and the
/// allowed range, e.g. `model.layers[2].units must be in [1, 65536], got 0`.
/// Code behind it (WithDefaults, LoadDataset, the model) may assume a valid
/// spec. Thread-safe (pure function).
absl::Status ValidateJobSpec(const gradwatch::v1::JobSpec& spec);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_SPEC_VALIDATION_H_

#ifndef GRADWATCH_ENGINE_SPEC_DEFAULTS_H_
#define GRADWATCH_ENGINE_SPEC_DEFAULTS_H_

#include <cstdint>

#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// Returns a copy of a valid spec with every "0 = default" and unset
/// optional field replaced by its documented default, so that the engine
/// reads explicit values only. This is the one place defaults live.
/// Also fills `training.steps` from `training.epochs` (epochs *
/// floor(train_rows / batch_size)), which needs the training-set size, and
/// the rule defaults of DESIGN.md. Thread-safe (pure function).
gradwatch::v1::JobSpec WithDefaults(const gradwatch::v1::JobSpec& spec,
                                    int64_t train_rows);

/// Number of examples the data spec yields (before the validation split),
/// or -1 for CSV (known only after parsing).
int64_t DeclaredExampleCount(const gradwatch::v1::DataSpec& data);

/// Input width the data spec yields, or -1 for CSV.
int DeclaredFeatureCount(const gradwatch::v1::DataSpec& data);

/// Trainable parameters of the model for `input_features` inputs (weights,
/// biases, batch-norm scale and shift), saturating at INT64_MAX.
int64_t CountParameters(const gradwatch::v1::ModelSpec& model,
                        int64_t input_features);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_SPEC_DEFAULTS_H_

#ifndef GRADWATCH_ENGINE_LR_SCHEDULE_H_
#define GRADWATCH_ENGINE_LR_SCHEDULE_H_

#include <cstdint>

#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// Learning rate at 1-based `step` of `total_steps`: linear warm-up over
/// the first warmup_steps steps (lr * step / warmup_steps), then the
/// schedule of `spec` (defaults filled) counted from the end of warm-up:
/// CONSTANT lr; STEP lr * gamma^floor(s / step_size); COSINE
/// lr * (f + (1 - f) * (1 + cos(pi * s / S)) / 2) with f = min_lr_fraction,
/// s the steps after warm-up - 1 and S = total_steps - warmup_steps - 1
/// (S <= 0: lr). Thread-safe (pure function).
double LearningRateAt(const gradwatch::v1::OptimizerSpec& spec, uint64_t step,
                      uint64_t total_steps);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_LR_SCHEDULE_H_

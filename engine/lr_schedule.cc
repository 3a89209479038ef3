#include "engine/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace gradwatch::engine {

using gradwatch::v1::Schedule;

double LearningRateAt(const gradwatch::v1::OptimizerSpec& spec, uint64_t step,
                      uint64_t total_steps) {
  const double lr = spec.learning_rate();
  const Schedule& schedule = spec.schedule();
  const uint64_t warmup = schedule.warmup_steps();
  if (warmup > 0 && step <= warmup) {
    return lr * static_cast<double>(step) / static_cast<double>(warmup);
  }
  // 0 on the first step after warm-up, as PyTorch's schedulers count epochs
  // (step 0, before the first step, reads as step 1).
  const uint64_t s = step > warmup ? step - warmup - 1 : 0;
  switch (schedule.kind()) {
    case Schedule::STEP: {
      // A valid spec has step_size >= 1; max() only guards the division.
      const uint64_t step_size =
          std::max<uint64_t>(schedule.step_size(), uint64_t{1});
      return lr *
             std::pow(schedule.gamma(), static_cast<double>(s / step_size));
    }
    case Schedule::COSINE: {
      if (total_steps <= warmup + 1) return lr;
      const auto span = static_cast<double>(total_steps - warmup - 1);
      // Past the last step the rate stays at its floor instead of rising.
      const double progress = std::min(static_cast<double>(s) / span, 1.0);
      const double f = schedule.min_lr_fraction();
      return lr * (f + (1.0 - f) * 0.5 * (1.0 + std::cos(M_PI * progress)));
    }
    default:  // CONSTANT, KIND_UNSPECIFIED
      return lr;
  }
}

}  // namespace gradwatch::engine

#ifndef GRADWATCH_TESTS_SPIRALS_SPEC_H_
#define GRADWATCH_TESTS_SPIRALS_SPEC_H_

#include <cstdint>

#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::testing {

// The small job the server and end-to-end tests submit: SPIRALS (200
// samples, 3 classes, data seed 7) on a 2-16-3 ReLU net, 2*16+16 + 16*3+3
// = 99 parameters; cross-entropy, SGD at learning rate 0.1, batch 20,
// seed 1, one thread, statistics every step. 30 steps take a few
// milliseconds.
gradwatch::v1::JobSpec SmallSpiralsSpec(uint64_t steps);

}  // namespace gradwatch::testing

#endif  // GRADWATCH_TESTS_SPIRALS_SPEC_H_

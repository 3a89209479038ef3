#ifndef GRADWATCH_TESTS_ENGINE_ALLOCATION_COUNTER_H_
#define GRADWATCH_TESTS_ENGINE_ALLOCATION_COUNTER_H_

#include <cstdint>

namespace gradwatch::testing {

/// Heap allocations (calls of the global operator new) made by this process
/// so far. Linking allocation_counter.cc replaces operator new/delete with
/// counting versions; tests take the difference around the code that must
/// not allocate. Thread-safe.
int64_t AllocationCount();

}  // namespace gradwatch::testing

#endif  // GRADWATCH_TESTS_ENGINE_ALLOCATION_COUNTER_H_

#ifndef GRADWATCH_ENGINE_ONEDNN_UTIL_H_
#define GRADWATCH_ENGINE_ONEDNN_UTIL_H_

#include <exception>
#include <new>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace gradwatch::engine {

/// The one place where oneDNN's exceptions become absl::Status: the
/// engine's entry points run their oneDNN work through this.
template <typename Fn>
absl::Status CatchDnnlErrors(const char* what, Fn&& fn) {
  try {
    std::forward<Fn>(fn)();
    return absl::OkStatus();
  } catch (const dnnl::error& e) {
    return absl::InternalError(std::string(what) + ": oneDNN error " +
                               std::to_string(e.status) + ": " + e.what());
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(std::string(what) + ": out of memory");
  }
}

/// Pointer to a CPU memory object's data.
inline float* Data(const dnnl::memory& mem) {
  return static_cast<float*>(mem.get_data_handle());
}

/// Number of f32 elements a memory descriptor occupies (padding included).
inline int64_t Elements(const dnnl::memory::desc& md) {
  return static_cast<int64_t>(md.get_size() / sizeof(float));
}

/// Sets the calling thread's OpenMP thread count (which oneDNN uses for the
/// primitives this thread executes) and its denormal mode, and applies the
/// same denormal mode to the threads of its OpenMP team. Returns whether
/// FTZ/DAZ are in effect on the calling thread afterwards.
bool ConfigureComputeThreads(int threads, bool flush_denormals);

/// How many of a job's `budget` threads its steps use. oneDNN starts an
/// OpenMP team for every primitive it executes; below about 4 MFLOP per
/// step and thread that start costs more than the thread saves (measured
/// with 2 threads on the 2-64-64-2 net, 1.7 MFLOP per step: 41 us a step
/// on one thread, 50-70 us on two), so small nets run on fewer threads.
/// `flops_per_step` is 6 x batch x weights (forward and both backward
/// products).
int ThreadsForStep(int budget, double flops_per_step);

/// True if oneDNN can run bf16 inner products on this CPU (AVX-512 core;
/// native bf16 instructions from avx512_core_bf16 on).
bool CpuSupportsBf16();

/// oneDNN's version, e.g. "2.6.3".
std::string OneDnnVersion();

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_ONEDNN_UTIL_H_

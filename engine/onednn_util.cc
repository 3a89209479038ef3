#include "engine/onednn_util.h"

#include <omp.h>
#include <pmmintrin.h>
#include <xmmintrin.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace gradwatch::engine {
namespace {

constexpr double kFlopsPerThread = 4e6;

constexpr unsigned kFtzDaz = _MM_FLUSH_ZERO_ON | _MM_DENORMALS_ZERO_ON;

void SetDenormalMode(bool flush) {
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(flush ? (csr | kFtzDaz) : (csr & ~kFtzDaz));
}

}  // namespace

bool ConfigureComputeThreads(int threads, bool flush_denormals) {
  omp_set_num_threads(threads);
  // MXCSR is per thread: the primitives' work runs on this thread's OpenMP
  // team, whose threads libgomp keeps and reuses for later parallel regions
  // of the same size started from this thread.
#pragma omp parallel num_threads(threads)
  SetDenormalMode(flush_denormals);
  SetDenormalMode(flush_denormals);
  return (_mm_getcsr() & kFtzDaz) == kFtzDaz;
}

int ThreadsForStep(int budget, double flops_per_step) {
  const double useful = std::floor(flops_per_step / kFlopsPerThread);
  return static_cast<int>(
      std::clamp(useful, 1.0, static_cast<double>(std::max(budget, 1))));
}

bool CpuSupportsBf16() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto core = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
  // The ISA values are feature bit sets: avx512_core's bits are a subset of
  // every newer ISA's.
  return (isa & core) == core;
}

std::string OneDnnVersion() {
  const dnnl_version_t* v = dnnl_version();
  return absl::StrCat(v->major, ".", v->minor, ".", v->patch);
}

}  // namespace gradwatch::engine

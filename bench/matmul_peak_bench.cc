// The machine's attainable f32 and bf16 matrix-multiply rate through
// oneDNN, measured in the same run as the training steps so that
// torch_compare.py can state each step's GFLOP/s as a fraction of it.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

namespace gradwatch::bench {
namespace {

constexpr int kThreads = 2;
constexpr dnnl::memory::dim kSize = 1024;

void BM_MatmulPeak(benchmark::State& state, dnnl::memory::data_type dt) {
  using dnnl::memory;
  omp_set_num_threads(kThreads);
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::desc a_md({kSize, kSize}, dt, memory::format_tag::ab);
  const memory::desc b_md({kSize, kSize}, dt, memory::format_tag::any);
  const memory::desc c_md({kSize, kSize}, memory::data_type::f32,
                          memory::format_tag::ab);
  dnnl::matmul::primitive_desc pd({a_md, b_md, c_md}, engine);
  memory a(a_md, engine), b(pd.weights_desc(), engine), c(c_md, engine);
  // Defined inputs; the values do not affect the timing.
  std::vector<char> zeros(a_md.get_size(), 0);
  std::copy(zeros.begin(), zeros.end(),
            static_cast<char*>(a.get_data_handle()));
  dnnl::matmul prim(pd);
  const std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
  prim.execute(stream, args);  // JIT and OpenMP warm-up
  stream.wait();
  for (auto _ : state) {
    prim.execute(stream, args);
    stream.wait();
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2.0 * kSize *
                             kSize * kSize * 1e-9,
                         benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_MatmulPeak, f32, dnnl::memory::data_type::f32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_MatmulPeak, bf16, dnnl::memory::data_type::bf16)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace gradwatch::bench

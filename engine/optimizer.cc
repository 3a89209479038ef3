#include "engine/optimizer.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "engine/simd_clones.h"

namespace gradwatch::engine {
namespace {

using gradwatch::v1::OptimizerSpec;

// The norms are reduced in kLanes independent f32 accumulators, each
// element going to lane i % kLanes, as vectors of kLanes floats (GCC's
// vector extensions): a sum into one accumulator would need -ffast-math to
// vectorize, as vectorizing it reorders the additions. Written as plain
// arrays, GCC kept two of the accumulators on the stack, and the store of
// one iteration and the load of the next made a 512-bit store-to-load
// forward per 16 entries (on Zen 4 the loop took 1.5x as long in cache). Every
// kChunk elements the lanes are added into double, which keeps a
// million-element sum accurate to better than 1e-6.
constexpr int kLanes = 16;
constexpr int64_t kChunk = 1024;
// Tensors from this size on are updated by the job's OpenMP threads, each
// taking a contiguous run of chunks: the loops are bound by memory
// bandwidth, which one core does not saturate. Below it, starting the
// team costs more than it saves.
constexpr int64_t kParallelMinElements = int64_t{1} << 16;
constexpr int kMaxThreads = 64;

using LaneFloats [[gnu::vector_size(kLanes * sizeof(float))]] = float;
using LaneBits [[gnu::vector_size(kLanes * sizeof(uint32_t))]] = uint32_t;

struct LaneSums {
  LaneFloats weight_sq = {};
  LaneFloats weight_sq_after = {};
  LaneFloats update_sq = {};
  // Bitwise OR of before ^ after: zero iff every value is bit-identical,
  // including updates too small for their square to be representable.
  LaneBits changed_bits = {};

  void Add(const LaneFloats& before, const LaneFloats& after) {
    const LaneFloats delta = after - before;
    weight_sq += before * before;
    weight_sq_after += after * after;
    update_sq += delta * delta;
    LaneBits before_bits;
    LaneBits after_bits;
    std::memcpy(&before_bits, &before, sizeof(before_bits));
    std::memcpy(&after_bits, &after, sizeof(after_bits));
    changed_bits |= before_bits ^ after_bits;
  }

  // One element into lane 0 (a chunk's tail).
  void AddOne(float before, float after) {
    const float delta = after - before;
    weight_sq[0] += before * before;
    weight_sq_after[0] += after * after;
    update_sq[0] += delta * delta;
    uint32_t before_bits;
    uint32_t after_bits;
    std::memcpy(&before_bits, &before, sizeof(before_bits));
    std::memcpy(&after_bits, &after, sizeof(after_bits));
    changed_bits[0] |= before_bits ^ after_bits;
  }

  void AddTo(UpdateResult& result, uint32_t& changed) const {
    for (int k = 0; k < kLanes; ++k) {
      result.weight_sq_before += weight_sq[k];
      result.weight_sq_after += weight_sq_after[k];
      result.update_sq += update_sq[k];
      changed |= changed_bits[k];
    }
  }
};

// Runs `update(i)`, which writes w[i] and returns {before, after}, for i in
// [start, end), and gathers the statistics of the values it returns.
// Always inlined: the clone of each rule's function must hold the loop.
template <typename Update>
[[gnu::always_inline]] inline UpdateResult UpdateRange(int64_t start,
                                                       int64_t end,
                                                       const Update& update) {
  UpdateResult result;
  uint32_t changed = 0;
  for (int64_t chunk = start; chunk < end; chunk += kChunk) {
    const int64_t chunk_end = std::min(end, chunk + kChunk);
    LaneSums sums;
    int64_t i = chunk;
    for (; i + kLanes <= chunk_end; i += kLanes) {
      LaneFloats before;
      LaneFloats after;
      for (int k = 0; k < kLanes; ++k) {
        const std::pair<float, float> w = update(i + k);
        before[k] = w.first;
        after[k] = w.second;
      }
      sums.Add(before, after);
    }
    for (; i < chunk_end; ++i) {
      const std::pair<float, float> w = update(i);
      sums.AddOne(w.first, w.second);
    }
    sums.AddTo(result, changed);
  }
  result.unchanged = changed == 0;
  return result;
}

// Runs `update_range(start, end)`, an UpdateRange over [start, end), over
// [0, n), split among the calling thread's OpenMP threads for large
// tensors. Every element is updated by the same arithmetic whatever the
// split, so the weights do not depend on the thread count; the partial
// sums are merged in a fixed order.
template <typename RangeUpdate>
inline UpdateResult ForEachRange(int64_t n, const RangeUpdate& update_range) {
  const int threads = n >= kParallelMinElements
                          ? std::min(omp_get_max_threads(), kMaxThreads)
                          : 1;
  if (threads <= 1) return update_range(0, n);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  UpdateResult parts[kMaxThreads];
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num();
    const int64_t team = omp_get_num_threads();
    const int64_t start = chunks * t / team * kChunk;
    const int64_t end = std::min(n, chunks * (t + 1) / team * kChunk);
    parts[t] = update_range(start, end);
  }
  UpdateResult result;
  for (int t = 0; t < threads; ++t) {
    result.weight_sq_before += parts[t].weight_sq_before;
    result.weight_sq_after += parts[t].weight_sq_after;
    result.update_sq += parts[t].update_sq;
    result.unchanged = result.unchanged && parts[t].unchanged;
  }
  return result;
}

// The step's constants in the precision of the arithmetic (f32, as the
// parameters), computed once outside the loops.
struct Coefficients {
  float lr;
  float grad_scale;
  float weight_decay;  // coupled L2
  float decay;         // 1 - lr * decoupled_weight_decay
  float momentum;
  float beta1;
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float adam_step_size;  // lr / (1 - beta1^t)
  float adam_bc2_sqrt;   // sqrt(1 - beta2^t)
  float rms_alpha;
  float one_minus_rms_alpha;
  float epsilon;
};

// One function per rule updates a range of a tensor: it holds the loop, so
// it is the one built for several instruction sets (simd_clones.h), and it
// stays out of line so that its loop is vectorized with the restrict
// qualifiers of its parameters intact. Within one process every element is
// updated by the same machine code, whatever the thread count.
//
// The decoupled decay scales the old weight and the rule's update is then
// subtracted (PyTorch's AdamW order): w' = w (1 - lr λ) - lr u(g'(w)).
GRADWATCH_WIDE_CLONES
[[gnu::noinline]] UpdateResult SgdRange(const Coefficients& c,
                                        float* __restrict w,
                                        const float* __restrict g,
                                        int64_t start, int64_t end) {
  return UpdateRange(start, end, [&](int64_t i) {
    const float before = w[i];
    const float gp = c.grad_scale * g[i] + c.weight_decay * before;
    const float after = before * c.decay - c.lr * gp;
    w[i] = after;
    return std::make_pair(before, after);
  });
}

template <bool kNesterov>
[[gnu::always_inline]] inline UpdateResult MomentumRange(
    const Coefficients& c, float* __restrict w, const float* __restrict g,
    float* __restrict v, int64_t start, int64_t end) {
  return UpdateRange(start, end, [&](int64_t i) {
    const float before = w[i];
    const float gp = c.grad_scale * g[i] + c.weight_decay * before;
    const float vi = c.momentum * v[i] + gp;
    v[i] = vi;
    const float direction = kNesterov ? gp + c.momentum * vi : vi;
    const float after = before * c.decay - c.lr * direction;
    w[i] = after;
    return std::make_pair(before, after);
  });
}

GRADWATCH_WIDE_CLONES
[[gnu::noinline]] UpdateResult HeavyBallRange(const Coefficients& c,
                                              float* __restrict w,
                                              const float* __restrict g,
                                              float* __restrict v,
                                              int64_t start, int64_t end) {
  return MomentumRange<false>(c, w, g, v, start, end);
}

GRADWATCH_WIDE_CLONES
[[gnu::noinline]] UpdateResult NesterovRange(const Coefficients& c,
                                             float* __restrict w,
                                             const float* __restrict g,
                                             float* __restrict v, int64_t start,
                                             int64_t end) {
  return MomentumRange<true>(c, w, g, v, start, end);
}

// The moments are non-negative, so sqrt never sets errno; compiled with
// -fno-math-errno, GCC then vectorizes it (sqrtps) instead of branching to
// the library call for negative arguments.
GRADWATCH_WIDE_CLONES
[[gnu::noinline]] UpdateResult AdamRange(
    const Coefficients& c, float* __restrict w, const float* __restrict g,
    float* __restrict m, float* __restrict s, int64_t start, int64_t end) {
  return UpdateRange(start, end, [&](int64_t i) {
    const float before = w[i];
    const float gp = c.grad_scale * g[i] + c.weight_decay * before;
    const float mi = c.beta1 * m[i] + c.one_minus_beta1 * gp;
    const float si = c.beta2 * s[i] + c.one_minus_beta2 * gp * gp;
    m[i] = mi;
    s[i] = si;
    const float denom = std::sqrt(si) / c.adam_bc2_sqrt + c.epsilon;
    const float after = before * c.decay - c.adam_step_size * mi / denom;
    w[i] = after;
    return std::make_pair(before, after);
  });
}

GRADWATCH_WIDE_CLONES
[[gnu::noinline]] UpdateResult RmsPropRange(const Coefficients& c,
                                            float* __restrict w,
                                            const float* __restrict g,
                                            float* __restrict s, int64_t start,
                                            int64_t end) {
  return UpdateRange(start, end, [&](int64_t i) {
    const float before = w[i];
    const float gp = c.grad_scale * g[i] + c.weight_decay * before;
    const float si = c.rms_alpha * s[i] + c.one_minus_rms_alpha * gp * gp;
    s[i] = si;
    const float after =
        before * c.decay - c.lr * gp / (std::sqrt(si) + c.epsilon);
    w[i] = after;
    return std::make_pair(before, after);
  });
}

bool IsAdam(OptimizerSpec::Kind kind) {
  return kind == OptimizerSpec::ADAM || kind == OptimizerSpec::ADAMW;
}

}  // namespace

Optimizer::Optimizer(const gradwatch::v1::OptimizerSpec& spec,
                     std::vector<ParamTensor> tensors)
    : spec_(spec), tensors_(std::move(tensors)) {
  const OptimizerSpec::Kind kind = spec_.kind();
  const bool sgd_momentum =
      (kind == OptimizerSpec::SGD || kind == OptimizerSpec::KIND_UNSPECIFIED) &&
      spec_.momentum() > 0;
  const bool has_first = sgd_momentum || IsAdam(kind);
  const bool has_second = IsAdam(kind) || kind == OptimizerSpec::RMSPROP;
  first_.resize(tensors_.size());
  second_.resize(tensors_.size());
  for (size_t k = 0; k < tensors_.size(); ++k) {
    const auto size = static_cast<size_t>(tensors_[k].size);
    if (has_first) first_[k].assign(size, 0.0f);
    if (has_second) second_[k].assign(size, 0.0f);
  }
}

void Optimizer::Step(double lr, float grad_scale,
                     std::vector<UpdateResult>& results) {
  ++t_;
  const OptimizerSpec::Kind kind = spec_.kind();
  Coefficients c{};
  c.lr = static_cast<float>(lr);
  c.grad_scale = grad_scale;
  c.weight_decay = static_cast<float>(spec_.weight_decay());
  c.decay = static_cast<float>(1.0 - lr * spec_.decoupled_weight_decay());
  c.momentum = static_cast<float>(spec_.momentum());
  c.epsilon = static_cast<float>(spec_.epsilon());
  if (IsAdam(kind)) {
    const double b1 = spec_.beta1();
    const double b2 = spec_.beta2();
    const auto t = static_cast<double>(t_);
    c.beta1 = static_cast<float>(b1);
    c.one_minus_beta1 = static_cast<float>(1.0 - b1);
    c.beta2 = static_cast<float>(b2);
    c.one_minus_beta2 = static_cast<float>(1.0 - b2);
    c.adam_step_size = static_cast<float>(lr / (1.0 - std::pow(b1, t)));
    c.adam_bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(b2, t)));
  } else if (kind == OptimizerSpec::RMSPROP) {
    const double alpha = spec_.rmsprop_alpha();
    c.rms_alpha = static_cast<float>(alpha);
    c.one_minus_rms_alpha = static_cast<float>(1.0 - alpha);
  }

  results.resize(tensors_.size());
  for (size_t k = 0; k < tensors_.size(); ++k) {
    const ParamTensor& p = tensors_[k];
    float* const w = p.value;
    const float* const g = p.grad;
    float* const first = first_[k].data();
    float* const second = second_[k].data();
    switch (kind) {
      case OptimizerSpec::ADAM:
      case OptimizerSpec::ADAMW:
        results[k] = ForEachRange(p.size, [&](int64_t start, int64_t end) {
          return AdamRange(c, w, g, first, second, start, end);
        });
        break;
      case OptimizerSpec::RMSPROP:
        results[k] = ForEachRange(p.size, [&](int64_t start, int64_t end) {
          return RmsPropRange(c, w, g, second, start, end);
        });
        break;
      default:  // SGD, KIND_UNSPECIFIED
        if (first_[k].empty()) {
          results[k] = ForEachRange(p.size, [&](int64_t start, int64_t end) {
            return SgdRange(c, w, g, start, end);
          });
        } else if (spec_.nesterov()) {
          results[k] = ForEachRange(p.size, [&](int64_t start, int64_t end) {
            return NesterovRange(c, w, g, first, start, end);
          });
        } else {
          results[k] = ForEachRange(p.size, [&](int64_t start, int64_t end) {
            return HeavyBallRange(c, w, g, first, start, end);
          });
        }
        break;
    }
  }
}

}  // namespace gradwatch::engine

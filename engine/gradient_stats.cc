#include "engine/gradient_stats.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/block_sweep_avx512.h"
#include "engine/exponent_counting.h"
#include "engine/simd_clones.h"

namespace gradwatch::engine {
namespace {

constexpr uint32_t kAbsMask = 0x7fffffffu;
constexpr uint32_t kInfBits = 0x7f800000u;
constexpr uint32_t kMinNormalBits = 0x00800000u;
constexpr int kSubnormalBins = 23;  // exponents -149 .. -127
static_assert(sizeof(GradientSummary::subnormal_scratch) ==
              kSubnormalBins * sizeof(uint64_t));
static_assert(sizeof(GradientSummary::field_scratch) ==
              kFieldValues * sizeof(uint64_t));
// Exponent histogram index of the biased exponent field f of a normal
// value: (f - 127) - kMinExponent.
constexpr int kNormalIndexOffset = -127 - kMinExponent;

// A block and its exponent bytes stay in L1 between the passes over it.
constexpr int kBlock = kFieldBlock;
constexpr int kMaxSweepThreads = 256;

uint32_t Bits(const float* p) {
  uint32_t bits;
  std::memcpy(&bits, p, sizeof(bits));
  return bits;
}

float FromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

struct BlockSums {
  double sum_squares;
  double sum_abs;
  uint32_t max_abs_bits;
  uint32_t zeros;
};

// The maximum is taken over |g|'s bit patterns, which order like the
// values for non-NaN entries and put NaN above Inf.
template <typename Sum>
inline void SumBlockIn(const float* g, int n, BlockSums* out) {
  Sum sum_squares = 0, sum_abs = 0;
  uint32_t max_abs_bits = 0, zeros = 0;
#pragma omp simd reduction(+ : sum_squares, sum_abs, zeros) \
    reduction(max : max_abs_bits)
  for (int i = 0; i < n; ++i) {
    const uint32_t abs_bits = Bits(g + i) & kAbsMask;
    const Sum a = FromBits(abs_bits);
    sum_squares += a * a;
    sum_abs += a;
    max_abs_bits = max_abs_bits > abs_bits ? max_abs_bits : abs_bits;
    zeros += abs_bits == 0;
  }
  *out = {static_cast<double>(sum_squares), static_cast<double>(sum_abs),
          max_abs_bits, zeros};
}

// f32 sums: twice the throughput of double ones.
GRADWATCH_WIDE_CLONES
void SumBlockFloat(const float* g, int n, BlockSums* out) {
  SumBlockIn<float>(g, n, out);
}

GRADWATCH_WIDE_CLONES
void SumBlockDouble(const float* g, int n, BlockSums* out) {
  SumBlockIn<double>(g, n, out);
}

// A block's f32 sums are kept when its largest |g| lies in [2^-50, 2^50)
// (no square overflows, and the squares that fall below f32's normal range
// are under 2^-26 of the largest), or is 0, Inf or NaN (the sums are then
// exact or non-finite anyway). Other blocks are summed again in double.
bool FloatSumsSuffice(uint32_t max_abs_bits) {
  constexpr uint32_t kLowBits = (127u - 50u) << 23;   // 2^-50
  constexpr uint32_t kHighBits = (127u + 50u) << 23;  // 2^50
  return max_abs_bits == 0 || max_abs_bits >= kInfBits ||
         (max_abs_bits >= kLowBits && max_abs_bits < kHighBits);
}

// The sweep of a part of the buffer. Integer counts merge exactly; the
// floating-point sums are merged in a fixed order by the caller. The
// counts live in the caller's arrays, zero when the sweep starts.
struct Partial {
  Partial(uint64_t* fields, uint64_t* subnormals)
      : field_counts(fields), subnormal_counts(subnormals) {}

  double sum_squares = 0;
  double sum_abs = 0;
  uint32_t max_abs_bits = 0;
  int64_t zeros = 0;
  int64_t nans = 0;
  // Range of the normal entries' fields (min > max: none), and whether
  // subnormal_counts holds anything: the occupied part of the histogram.
  uint8_t min_field = 255;
  uint8_t max_field = 0;
  bool has_subnormals = false;
  uint64_t* field_counts;  // kFieldValues
  // By the bit length of the mantissa: index = exponent - kMinExponent.
  uint64_t* subnormal_counts;  // kSubnormalBins

  void MergeCounts(const Partial& other) {
    max_abs_bits = std::max(max_abs_bits, other.max_abs_bits);
    min_field = std::min(min_field, other.min_field);
    max_field = std::max(max_field, other.max_field);
    has_subnormals = has_subnormals || other.has_subnormals;
    zeros += other.zeros;
    nans += other.nans;
    for (int f = 0; f < kFieldValues; ++f) {
      field_counts[f] += other.field_counts[f];
    }
    for (int s = 0; s < kSubnormalBins; ++s) {
      subnormal_counts[s] += other.subnormal_counts[s];
    }
  }
};

// Entries per bit of SubnormalChunks' mask: a block's chunks fit in 64 bits.
constexpr int kSubnormalChunk = 64;
static_assert(kBlock / kSubnormalChunk <= 64, "one mask bit per chunk");

// Bit c is set when g[64c, 64c + 64) holds a subnormal. Subnormals are
// usually a sparse tail of a block: this vectorized pass lets
// CountSubnormals look at the few chunks that hold them.
GRADWATCH_WIDE_CLONES
uint64_t SubnormalChunks(const float* g, int n) {
  uint64_t mask = 0;
  for (int c = 0; c * kSubnormalChunk < n; ++c) {
    const int end = std::min(n, (c + 1) * kSubnormalChunk);
    uint32_t any = 0;
#pragma omp simd reduction(| : any)
    for (int i = c * kSubnormalChunk; i < end; ++i) {
      any |= (Bits(g + i) & kAbsMask) - 1u < kMinNormalBits - 1u;
    }
    mask |= uint64_t{any} << c;
  }
  return mask;
}

// A subnormal m * 2^-149 (0 < m < 2^23) has floor(log2) = -149 + the index
// of m's highest set bit. Only run on blocks that hold subnormals, and only
// over their chunks that do, where they are often interleaved with normal
// entries: the bin is chosen without a branch (kSubnormalBins takes every
// other entry) and counted in interleaved tables (see CountFieldsDirect).
void CountSubnormals(const float* g, int n, Partial& p) {
  uint32_t tables[4][kSubnormalBins + 1] = {};
  auto bin = [g](int i) {
    const uint32_t abs_bits = Bits(g + i) & kAbsMask;
    const int top = 31 - __builtin_clz(abs_bits | 1u);
    return abs_bits - 1u < kMinNormalBits - 1u ? top : kSubnormalBins;
  };
  for (uint64_t chunks = SubnormalChunks(g, n); chunks != 0;
       chunks &= chunks - 1) {
    const int begin = __builtin_ctzll(chunks) * kSubnormalChunk;
    const int end = std::min(n, begin + kSubnormalChunk);
    int i = begin;
    for (; i + 4 <= end; i += 4) {
      ++tables[0][bin(i)];
      ++tables[1][bin(i + 1)];
      ++tables[2][bin(i + 2)];
      ++tables[3][bin(i + 3)];
    }
    for (; i < end; ++i) ++tables[0][bin(i)];
  }
  for (int s = 0; s < kSubnormalBins; ++s) {
    p.subnormal_counts[s] +=
        tables[0][s] + tables[1][s] + tables[2][s] + tables[3][s];
  }
}

// Only run on blocks that hold a non-finite entry.
int64_t CountNans(const float* g, int n) {
  int64_t nans = 0;
  for (int i = 0; i < n; ++i) nans += (Bits(g + i) & kAbsMask) > kInfBits;
  return nans;
}

// The field of the largest finite |g|, for a first guess at a range's
// exponent window.
GRADWATCH_WIDE_CLONES
int HighestFiniteField(const float* g, int n) {
  uint32_t high = 0;
#pragma omp simd reduction(max : high)
  for (int i = 0; i < n; ++i) {
    const uint32_t abs_bits = Bits(g + i) & kAbsMask;
    const uint32_t finite = abs_bits < kInfBits ? abs_bits : 0;
    high = high > finite ? high : finite;
  }
  return static_cast<int>(high >> 23);
}

// Ranges shorter than this take the compact pass and the count (the three
// passes without AVX-512): the fused pass's windows and tail cost a little
// per call, which a one-block tensor (tiny's 64 x 64 weights) does not
// earn back (measured in its step on a Zen 4 CPU: 4.8-5.2 us against
// 5.2-5.4 for its gradient figures; on a Zen 5 CPU, faster in cache but
// not in tiny's step).
constexpr int64_t kMinFusedRange = 2 * kBlock;

// A further window of the fused pass costs a few vector operations per 16
// entries; an entry left in the tail costs far more in a step (the
// pass's compress branch mispredicts, then the entry is counted alone).
// Measured in wide's and mnist_mlp's steps, their sweeps were fastest
// (about 15 % faster than at 1/25) when a window is added wherever it held
// 1/1000 of the entries.
constexpr int kWindowShareInverse = 1000;

// The fused pass's windows, from the last sweep into `last` (the same
// tensor a step earlier, usually): the top is the highest normal field it
// found, and each further window of 32 fields below is added while it
// would have held 1/kWindowShareInverse of that sweep's nonzero entries.
// top 0: no sweep yet.
ExponentWindows WindowsAfter(const GradientSummary& last) {
  const int top = last.end_bin - 1 - kNormalIndexOffset;
  if (last.first_bin >= last.end_bin || top < 1 || top > 254) return {0, 1};
  const auto nonzero = static_cast<uint64_t>(last.size - last.zeros);
  int count = 1;
  for (; count < kMaxWindows; ++count) {
    const int high = top - 32 * count;
    const int low = std::max(1, high - 31);
    uint64_t held = 0;
    for (int f = low; f <= high; ++f) {
      held += last.exponent_counts[f + kNormalIndexOffset];
    }
    if (held * kWindowShareInverse < nonzero) break;
  }
  return {top, count};
}

// Adds a block's sums, after checking that its f32 sums suffice.
void AddSums(const float* block, int n, BlockSums sums, Partial& p) {
  if (!FloatSumsSuffice(sums.max_abs_bits)) SumBlockDouble(block, n, &sums);
  p.sum_squares += sums.sum_squares;
  p.sum_abs += sums.sum_abs;
  p.max_abs_bits = std::max(p.max_abs_bits, sums.max_abs_bits);
}

void AddFieldBounds(uint8_t lo, uint8_t hi, Partial& p) {
  p.min_field = std::min(p.min_field, lo);
  p.max_field = std::max(p.max_field, hi);
}

// The fused pass over g[0, n), n <= kFusedSpan; returns the highest normal
// field it found (0: none).
int SweepSpan(const float* g, int n, ExponentWindows windows, Partial& p) {
  const uint64_t nonfinite_before = p.field_counts[255];
  if (windows.top == 0) {
    windows.top = std::clamp(HighestFiniteField(g, n), 1, 254);
  }
  SpanFigures figures;
  SweepSpanFused(g, n, windows, p.field_counts, p.subnormal_counts, &figures);
  for (int b = 0; b * kBlock < n; ++b) {
    const BlockFigures& f = figures.blocks[b];
    AddSums(g + b * kBlock, std::min(kBlock, n - b * kBlock),
            {f.sum_squares, f.sum_abs, f.max_abs_bits, 0}, p);
  }
  p.zeros += figures.span.zeros;
  if (figures.span.subnormals > 0) p.has_subnormals = true;
  AddFieldBounds(figures.span.lo, figures.span.hi, p);
  if (p.field_counts[255] > nonfinite_before) p.nans += CountNans(g, n);
  return figures.span.lo <= figures.span.hi ? figures.span.hi : 0;
}

// The compact pass and the count (the three passes without AVX-512) over
// one block, n <= kBlock.
void SweepBlock(const float* block, int n, Partial& p) {
  alignas(64) uint8_t fields[kBlock + 16];
  const uint64_t nonfinite_before = p.field_counts[255];
  // Field 0 holds the zeros and the subnormals.
  const uint64_t tiny_before = p.field_counts[0];
  BlockSums sums;
  uint8_t lo, hi;
  if (BlockSweepFusedSupported()) {
    BlockFigures figures;
    const int nonzero = SweepBlockCompact(block, n, fields, &figures);
    sums = {figures.sum_squares, figures.sum_abs, figures.max_abs_bits,
            figures.zeros};
    lo = figures.lo;
    hi = figures.hi;
    p.field_counts[0] += static_cast<uint64_t>(n - nonzero);
    CountExponentFields(fields, nonzero, lo, hi, p.field_counts);
  } else {
    SumBlockFloat(block, n, &sums);
    ExponentFields(block, n, fields, &lo, &hi);
    CountExponentFields(fields, n, lo, hi, p.field_counts);
  }
  if (p.field_counts[0] - tiny_before > sums.zeros) {
    p.has_subnormals = true;
    CountSubnormals(block, n, p);
  }
  AddSums(block, n, sums, p);
  p.zeros += sums.zeros;
  AddFieldBounds(lo, hi, p);
  if (p.field_counts[255] > nonfinite_before) p.nans += CountNans(block, n);
}

// windows: the fused pass's guess (top 0: none yet); its top follows each
// span's highest field.
void SweepRange(const float* g, int64_t begin, int64_t end,
                ExponentWindows windows, Partial& p) {
  const bool fused =
      BlockSweepFusedSupported() && end - begin >= kMinFusedRange;
  for (int64_t b = begin; b < end;) {
    const int64_t left = end - b;
    if (fused && left >= kMinFusedBlock) {
      const int n = static_cast<int>(std::min<int64_t>(kFusedSpan, left));
      const int top = SweepSpan(g + b, n, windows, p);
      if (top > 0) windows.top = top;
      b += n;
    } else {
      const int n = static_cast<int>(std::min<int64_t>(kBlock, left));
      SweepBlock(g + b, n, p);
      b += n;
    }
  }
}

GRADWATCH_WIDE_CLONES
double SumOfSquaresKernel(const float* x, int64_t n) {
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    sum += v * v;
  }
  return sum;
}

}  // namespace

double GradientSummary::l2_norm() const { return std::sqrt(sum_squares); }

double GradientSummary::mean_abs() const {
  return size > 0 ? sum_abs / static_cast<double>(size) : 0.0;
}

double GradientSummary::zero_fraction() const {
  return size > 0 ? static_cast<double>(zeros) / static_cast<double>(size)
                  : 0.0;
}

void SweepGradient(const float* grad, int64_t n, int64_t padding,
                   GradientSummary& out) {
  // Only the fused pass uses windows.
  const ExponentWindows windows =
      n >= kMinFusedRange ? WindowsAfter(out) : ExponentWindows{};
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  int threads = 1;
  if (n >= kParallelSweepElements) {
    threads = static_cast<int>(
        std::min<int64_t>({omp_get_max_threads(), blocks, kMaxSweepThreads}));
  }
  Partial total(out.field_scratch.data(), out.subnormal_scratch.data());
  if (threads <= 1) {
    SweepRange(grad, 0, n, windows, total);
  } else {
    // Contiguous ranges of whole blocks per thread, and the sums added in
    // thread order: the same buffer always gives the same figures.
    double sum_squares[kMaxSweepThreads];
    double sum_abs[kMaxSweepThreads];
    int team = 1;
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      const int size = omp_get_num_threads();
      if (t == 0) team = size;
      const int64_t begin = blocks * t / size * kBlock;
      const int64_t end = std::min(n, blocks * (t + 1) / size * kBlock);
      std::array<uint64_t, kFieldValues> fields{};
      std::array<uint64_t, kSubnormalBins> subnormals{};
      Partial mine(fields.data(), subnormals.data());
      SweepRange(grad, begin, end, windows, mine);
      sum_squares[t] = mine.sum_squares;
      sum_abs[t] = mine.sum_abs;
#pragma omp critical(gradwatch_gradient_sweep)
      total.MergeCounts(mine);
    }
    for (int t = 0; t < team; ++t) {
      total.sum_squares += sum_squares[t];
      total.sum_abs += sum_abs[t];
    }
  }

  out.size = n - padding;
  out.sum_squares = total.sum_squares;
  out.sum_abs = total.sum_abs;
  out.max_abs = FromBits(total.max_abs_bits);
  out.zeros = total.zeros - padding;
  out.subnormals = static_cast<int64_t>(total.field_counts[0]) - total.zeros;
  out.nans = total.nans;
  out.infs = static_cast<int64_t>(total.field_counts[255]) - total.nans;

  // Only the previous and the new occupied ranges are written: most
  // tensors occupy a few dozen of the 277 bins.
  auto& counts = out.exponent_counts;
  std::fill(counts.begin() + out.first_bin, counts.begin() + out.end_bin, 0);
  const bool has_normals = total.min_field <= total.max_field;
  int first = has_normals ? total.min_field + kNormalIndexOffset : 0;
  int end = has_normals ? total.max_field + kNormalIndexOffset + 1 : 0;
  uint64_t* const fields = total.field_counts;
  uint64_t* const subnormals = total.subnormal_counts;
  if (total.has_subnormals) {
    std::copy(subnormals, subnormals + kSubnormalBins, counts.begin());
    std::fill(subnormals, subnormals + kSubnormalBins, 0);
    first = 0;
    end = std::max(end, kSubnormalBins);
  }
  if (has_normals) {
    for (int f = total.min_field; f <= total.max_field; ++f) {
      counts[f + kNormalIndexOffset] = fields[f];
    }
    std::fill(fields + total.min_field, fields + total.max_field + 1, 0);
  }
  // Every other field holds 0: counts are only ever added to the fields
  // of entries.
  fields[0] = fields[255] = 0;
  while (first < end && counts[first] == 0) ++first;
  while (end > first && counts[end - 1] == 0) --end;
  out.first_bin = first;
  out.end_bin = end;
}

double SumOfSquares(const float* x, int64_t n) {
  const int threads = n >= kParallelSweepElements
                          ? static_cast<int>(std::min<int64_t>(
                                omp_get_max_threads(), kMaxSweepThreads))
                          : 1;
  if (threads <= 1) return SumOfSquaresKernel(x, n);
  // Fixed ranges per thread, added in thread order: deterministic.
  double partial[kMaxSweepThreads];
  int team = 1;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int size = omp_get_num_threads();
    if (t == 0) team = size;
    const int64_t begin = n * t / size;
    const int64_t end = n * (t + 1) / size;
    partial[t] = SumOfSquaresKernel(x + begin, end - begin);
  }
  double sum = 0;
  for (int t = 0; t < team; ++t) sum += partial[t];
  return sum;
}

void FillGradientStats(const GradientSummary& summary, v1::TensorStats* stats) {
  stats->set_size(static_cast<uint64_t>(summary.size));
  stats->set_grad_l2_norm(summary.l2_norm());
  stats->set_grad_mean_abs(summary.mean_abs());
  stats->set_grad_max_abs(summary.max_abs);
  stats->set_grad_zero_fraction(summary.zero_fraction());
  stats->set_grad_subnormal_count(static_cast<uint64_t>(summary.subnormals));
  stats->set_grad_nan_count(static_cast<uint64_t>(summary.nans));
  stats->set_grad_inf_count(static_cast<uint64_t>(summary.infs));

  v1::ExponentHistogram* hist = stats->mutable_grad_exponents();
  auto* counts = hist->mutable_counts();
  if (summary.first_bin >= summary.end_bin) {
    hist->set_first_exponent(0);
    counts->Clear();
    return;
  }
  hist->set_first_exponent(summary.first_bin + kMinExponent);
  counts->Resize(summary.end_bin - summary.first_bin, 0);
  std::copy(summary.exponent_counts.begin() + summary.first_bin,
            summary.exponent_counts.begin() + summary.end_bin,
            counts->mutable_data());
}

}  // namespace gradwatch::engine

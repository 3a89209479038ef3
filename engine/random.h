#ifndef GRADWATCH_ENGINE_RANDOM_H_
#define GRADWATCH_ENGINE_RANDOM_H_

#include <cmath>
#include <cstdint>

namespace gradwatch::engine {

/// A small, fully specified pseudo-random generator (SplitMix64 seeding a
/// xoshiro256**), so that data, initialization and shuffling are
/// bit-identical for a given seed on every platform and standard library
/// (std::normal_distribution is implementation-defined).
///
/// Not thread-safe: one instance per thread.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t x = seed;
    for (uint64_t& s : state_) s = SplitMix64(x);
  }

  /// Uniform 64-bit value.
  uint64_t Next() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }

  /// Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  /// Uniform in [lo, hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }

  /// Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; the
  /// negligible bias is irrelevant for shuffling and sampling here).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >>
                                 64);
  }

  /// Standard normal by the Box-Muller transform (no cached second value,
  /// so that the stream position depends only on the number of calls).
  double Normal() {
    double u1 = Uniform();
    while (u1 <= 0.0) u1 = Uniform();
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

  double Normal(double mean, double stddev) { return mean + stddev * Normal(); }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t SplitMix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  uint64_t state_[4];
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_RANDOM_H_

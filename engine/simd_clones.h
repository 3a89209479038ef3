#ifndef GRADWATCH_ENGINE_SIMD_CLONES_H_
#define GRADWATCH_ENGINE_SIMD_CLONES_H_

// The engine's own hot loops (optimizer updates, statistics sweeps) are
// plain loops that GCC vectorizes. The project builds for baseline x86-64,
// so on x86-64 each is also built for AVX-512 and AVX2, and the loader
// picks the best one the CPU supports (function multiversioning); other
// targets and compilers get the portable loops only.
//
// Put the attribute on the function that holds the loop, not on one that
// opens an OpenMP parallel region: GCC outlines the region's body into a
// function of its own, built for the baseline.
//
// ThreadSanitizer builds leave the clones out (cmake/GradwatchOptions.cmake
// defines GRADWATCH_THREAD_SANITIZER): GCC instruments the ifunc
// resolvers, which the dynamic loader runs before the TSan runtime is
// initialized, a crash before main.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_THREAD__) && !defined(GRADWATCH_THREAD_SANITIZER)
#define GRADWATCH_WIDE_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
// Counting bytes by comparison is faster with AVX2's compare-to-vector than
// with AVX-512's mask registers (measured on Zen 4), so AVX-512 CPUs run
// the AVX2 build of such loops.
#define GRADWATCH_AVX2_CLONES \
  __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define GRADWATCH_WIDE_CLONES
#define GRADWATCH_AVX2_CLONES
#endif

#endif  // GRADWATCH_ENGINE_SIMD_CLONES_H_

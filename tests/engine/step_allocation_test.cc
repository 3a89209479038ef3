// A training step allocates nothing of its own: every primitive, buffer and
// statistics message is created before the loop (STYLE.md, the engine's
// contract). oneDNN 2.6 itself allocates inside dnnl_primitive_execute (its
// execution context copies the arguments into a hash map), which no caller
// can avoid; so the test measures a bare Net::Forward + Backward first and
// requires a whole trainer step (batching, loss, optimizer, every statistic,
// rules, the event) to allocate exactly as much, and no more.
#include <atomic>
#include <cstdlib>
#include <new>

#include "engine/model.h"
#include "engine/spec_defaults.h"
#include "engine/spec_validation.h"
#include "engine/trainer.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace {
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace gradwatch::engine {
namespace {

TEST(StepAllocationTest, StepsAllocateNothingBeyondOneDnnItself) {
  for (const char* precision : {"F32", "BF16"}) {
    v1::JobSpec spec;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        std::string(R"pb(
          data { synthetic { kind: SPIRALS samples: 512 classes: 3 seed: 1 } }
          model {
            layers { units: 32 activation: RELU batch_norm: BEFORE_ACTIVATION }
            layers { units: 32 activation: TANH }
            layers { units: 3 }
          }
          loss: CROSS_ENTROPY
          optimizer { kind: ADAM learning_rate: 0.01 clip_grad_norm: 1 }
          monitoring {
            stats_every: 1
            histograms { enabled: true }
            rules {
              dead_relu { disabled: true }
              saturated_activation { disabled: true }
              vanishing_gradient { disabled: true }
              weight_update_ratio { disabled: true }
              unchanged_weights { disabled: true }
              loss_not_decreasing { disabled: true }
              poor_weight_initialization { disabled: true }
            }
          }
          training { steps: 60 batch_size: 64 seed: 1 precision:)pb") +
            precision + " }",
        &spec));
    ASSERT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
    // oneDNN's own allocations per bare forward + backward pass.
    long per_pass = 0;
    {
      const v1::JobSpec filled = WithDefaults(spec, 512);
      auto model = Model::Create(filled, 2, 64);
      ASSERT_TRUE(model.ok()) << model.status();
      Net& net = (*model)->train_net();
      for (int i = 0; i < 3; ++i) net.Forward(), net.Backward();
      const long before = allocations.load();
      for (int i = 0; i < 30; ++i) net.Forward(), net.Backward();
      per_pass = (allocations.load() - before) / 30;
      EXPECT_EQ((allocations.load() - before) % 30, 0);
    }
    auto trainer = Trainer::Create(spec, {.threads = 1});
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    long at_step_20 = -1, at_step_50 = -1;
    CancellationToken cancel;
    (*trainer)->Run(
        [&](const v1::JobEvent& event) {
          if (!event.has_stats()) return;
          if (event.stats().step() == 20) at_step_20 = allocations.load();
          if (event.stats().step() == 50) at_step_50 = allocations.load();
        },
        cancel);
    ASSERT_GE(at_step_20, 0);
    EXPECT_EQ(at_step_50 - at_step_20, 30 * per_pass)
        << precision << ": allocations in 30 steps, oneDNN's own " << per_pass
        << " per pass";
  }
}

}  // namespace
}  // namespace gradwatch::engine

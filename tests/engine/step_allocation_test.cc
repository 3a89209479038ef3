// A training step allocates nothing of its own: every primitive, buffer and
// statistics message is created before the loop (STYLE.md, the engine's
// contract). oneDNN 2.6 itself allocates inside dnnl_primitive_execute (its
// execution context copies the arguments into a hash map), which no caller
// can avoid; so the test measures a bare forward and backward pass first
// (the forward pass of a collected step, which the spec's stats_every 1
// makes every step) and requires a whole trainer step (batching, loss,
// optimizer, every statistic, rules, the event) to allocate exactly as
// much, and no more.
#include <cstdint>
#include <string>

#include "engine/model.h"
#include "engine/spec_defaults.h"
#include "engine/spec_validation.h"
#include "engine/stats_collector.h"
#include "engine/trainer.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/engine/allocation_counter.h"

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
    int64_t per_pass = 0;
    {
      const v1::JobSpec filled = WithDefaults(spec, 512);
      auto model = Model::Create(filled, 2, 64);
      ASSERT_TRUE(model.ok()) << model.status();
      Net& net = (*model)->train_net();
      StatsCollector collector(filled.monitoring(), **model);
      auto pass = [&] {
        net.ForwardActivating(collector);
        net.Backward();
      };
      for (int i = 0; i < 3; ++i) pass();
      const int64_t before = gradwatch::testing::AllocationCount();
      for (int i = 0; i < 30; ++i) pass();
      per_pass = (gradwatch::testing::AllocationCount() - before) / 30;
      EXPECT_EQ((gradwatch::testing::AllocationCount() - before) % 30, 0);
    }
    auto trainer = Trainer::Create(spec, {.threads = 1});
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    int64_t at_step_20 = -1, at_step_50 = -1;
    CancellationToken cancel;
    (*trainer)->Run(
        [&](const v1::JobEvent& event) {
          if (!event.has_stats()) return;
          if (event.stats().step() == 20)
            at_step_20 = gradwatch::testing::AllocationCount();
          if (event.stats().step() == 50)
            at_step_50 = gradwatch::testing::AllocationCount();
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

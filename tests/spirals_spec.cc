#include "tests/spirals_spec.h"

namespace gradwatch::testing {

gradwatch::v1::JobSpec SmallSpiralsSpec(uint64_t steps) {
  gradwatch::v1::JobSpec spec;
  gradwatch::v1::SyntheticData& data =
      *spec.mutable_data()->mutable_synthetic();
  data.set_kind(gradwatch::v1::SyntheticData::SPIRALS);
  data.set_samples(200);
  data.set_classes(3);
  data.set_seed(7);
  gradwatch::v1::LayerSpec& hidden = *spec.mutable_model()->add_layers();
  hidden.set_units(16);
  hidden.set_activation(gradwatch::v1::RELU);
  spec.mutable_model()->add_layers()->set_units(3);
  spec.set_loss(gradwatch::v1::CROSS_ENTROPY);
  spec.mutable_optimizer()->set_learning_rate(0.1);
  gradwatch::v1::TrainingSpec& training = *spec.mutable_training();
  training.set_steps(steps);
  training.set_batch_size(20);
  training.set_seed(1);
  training.set_threads(1);
  return spec;
}

}  // namespace gradwatch::testing

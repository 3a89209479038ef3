#include "engine/initializer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace gradwatch::engine {

using gradwatch::v1::InitSpec;

void InitializeLayer(const gradwatch::v1::LayerSpec& layer, int fan_in,
                     Rng& rng, float* weights, float* bias) {
  const InitSpec& init = layer.init();
  const int fan_out = static_cast<int>(layer.units());
  const int64_t count = static_cast<int64_t>(fan_in) * fan_out;
  const double gain = init.has_gain() ? init.gain() : 1.0;
  const double fan_sum = static_cast<double>(fan_in) + fan_out;

  // One draw per weight, weights[0] first, so that a seed fixes every value
  // whatever the scheme's distribution.
  const auto fill_normal = [&](double stddev) {
    for (int64_t i = 0; i < count; ++i) {
      weights[i] = static_cast<float>(rng.Normal(0.0, stddev));
    }
  };
  const auto fill_uniform = [&](double bound) {
    for (int64_t i = 0; i < count; ++i) {
      weights[i] = static_cast<float>(rng.Uniform(-bound, bound));
    }
  };

  switch (init.scheme()) {
    case InitSpec::HE_UNIFORM:
      fill_uniform(gain * std::sqrt(6.0 / fan_in));
      break;
    case InitSpec::XAVIER_NORMAL:
      fill_normal(gain * std::sqrt(2.0 / fan_sum));
      break;
    case InitSpec::XAVIER_UNIFORM:
      fill_uniform(gain * std::sqrt(6.0 / fan_sum));
      break;
    case InitSpec::LECUN_NORMAL:
      fill_normal(gain * std::sqrt(1.0 / fan_in));
      break;
    case InitSpec::ZEROS:
      std::fill(weights, weights + count, 0.0f);
      break;
    case InitSpec::CONSTANT:
      std::fill(weights, weights + count, static_cast<float>(gain));
      break;
    default:  // HE_NORMAL (WithDefaults resolves SCHEME_UNSPECIFIED)
      fill_normal(gain * std::sqrt(2.0 / fan_in));
      break;
  }
  std::fill(bias, bias + fan_out, static_cast<float>(init.bias()));
}

}  // namespace gradwatch::engine

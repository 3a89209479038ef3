#ifndef GRADWATCH_ENGINE_INITIALIZER_H_
#define GRADWATCH_ENGINE_INITIALIZER_H_

#include "engine/random.h"
#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

/// Fills `weights` (row-major [fan_in][fan_out], Z = X W + b) and `bias`
/// ([fan_out]) per the layer's InitSpec (see spec.proto for each scheme),
/// drawing from `rng` in row-major order. `layer` must have its defaults
/// filled (scheme and gain set).
void InitializeLayer(const gradwatch::v1::LayerSpec& layer, int fan_in,
                     Rng& rng, float* weights, float* bias);

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_INITIALIZER_H_

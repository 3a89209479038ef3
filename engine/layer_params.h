#ifndef GRADWATCH_ENGINE_LAYER_PARAMS_H_
#define GRADWATCH_ENGINE_LAYER_PARAMS_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "gradwatch/v1/spec.pb.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace gradwatch::engine {

/// The parameters of one dense layer and their gradients, in oneDNN memory.
/// Weights use the layout the inner-product primitive chose (`weights_md`,
/// possibly blocked and zero-padded); their gradient uses the same layout,
/// so that optimizer and statistics work element by element. Everything
/// else is plain. Owned by Model; not synchronized.
struct LayerParams {
  gradwatch::v1::LayerSpec spec;  // defaults filled
  int inputs = 0;
  int units = 0;
  bool has_bn = false;

  dnnl::memory::desc weights_md;
  // BF16 precision: the layout of the bf16 copy of the weights that the
  // inner products read (each Net refreshes its copy from the f32 master
  // weights at the start of Forward). Zero (empty) for F32.
  bool bf16 = false;
  dnnl::memory::desc weights_bf16_md;
  // Elements of the weights buffer beyond inputs * units (zero padding of
  // a blocked layout): always exactly 0 in weights and gradients.
  int64_t weights_padding = 0;
  // Where that padding lies: [begin, end) offsets into the weights buffer,
  // in increasing order (empty without padding).
  std::vector<std::pair<int64_t, int64_t>> weights_padding_ranges;

  dnnl::memory weights, bias;                    // trained
  dnnl::memory diff_weights, diff_bias;          // dL/d(weights), dL/d(bias)
  dnnl::memory bn_scale, bn_shift;               // trained, [units]
  dnnl::memory diff_bn_scale, diff_bn_shift;     // [units]
  dnnl::memory bn_running_mean, bn_running_var;  // inference, [units]
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_ENGINE_LAYER_PARAMS_H_

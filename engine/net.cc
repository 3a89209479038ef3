#include "engine/net.h"

#include <cstring>
#include <unordered_map>
#include <utility>

#include "engine/onednn_util.h"
#include "engine/relu_backward.h"

namespace gradwatch::engine {
namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using tag = memory::format_tag;
using dt = memory::data_type;
using ArgMap = std::unordered_map<int, memory>;
using v1::Activation;

constexpr float kBatchNormEpsilon = 1e-5f;

// oneDNN's eltwise algorithm for an activation, or undef where the engine
// computes it itself (LINEAR: identity; STEP: no oneDNN algorithm).
algorithm EltwiseAlgorithm(Activation activation) {
  switch (activation) {
    case v1::RELU:
    case v1::LEAKY_RELU:
      return algorithm::eltwise_relu;
    case v1::ELU:
      return algorithm::eltwise_elu;
    case v1::GELU:
      return algorithm::eltwise_gelu_erf;
    case v1::SIGMOID:
      return algorithm::eltwise_logistic;
    case v1::TANH:
      return algorithm::eltwise_tanh;
    default:
      return algorithm::undef;
  }
}

float EltwiseAlpha(const v1::LayerSpec& spec) {
  switch (spec.activation()) {
    case v1::LEAKY_RELU:
      return spec.negative_slope();
    case v1::ELU:
      return spec.elu_alpha();
    default:
      return 0.0f;
  }
}

}  // namespace

Net::Net(dnnl::engine engine, int batch)
    : engine_(std::move(engine)), stream_(engine_), batch_(batch) {}

absl::StatusOr<std::unique_ptr<Net>> Net::Create(
    const dnnl::engine& engine, std::vector<LayerParams>& params,
    int input_features, int batch, Mode mode) {
  std::unique_ptr<Net> net(new Net(engine, batch));
  absl::Status status = CatchDnnlErrors("building the network", [&] {
    net->Build(params, input_features, mode);
  });
  if (!status.ok()) return status;
  return net;
}

const float* Net::output() const { return Data(layers_.back().out); }

float* Net::diff_output() { return Data(layers_.back().diff_out); }

void Net::Forward() {
  for (const auto& op : forward_ops_) op();
  stream_.wait();
  z_written_ = true;
}

void Net::ForwardFused() {
  for (const auto& op : fused_forward_ops_) op();
  stream_.wait();
  z_written_ = false;
}

void Net::ForwardActivating(ActivationWriter& writer) {
  activation_writer_ = &writer;
  for (const auto& op : activating_forward_ops_) op();
  stream_.wait();
  activation_writer_ = nullptr;
  z_written_ = true;
}

void Net::Backward() {
  for (const auto& op : backward_ops_) op();
  stream_.wait();
}

void Net::Build(std::vector<LayerParams>& params, int input_features,
                Mode mode) {
  const bool training = mode == Mode::kTraining;
  const prop_kind fwd_kind =
      training ? prop_kind::forward_training : prop_kind::forward_inference;
  const memory::dim batch = batch_;
  auto plain_md = [&](int width) {
    return memory::desc({batch, width}, dt::f32, tag::nc);
  };
  auto new_mem = [&](const memory::desc& md) { return memory(md, engine_); };
  // The C++ API's execute() converts its argument map into a fresh vector
  // on every call; the C arguments are built here once instead, so that a
  // step allocates nothing. The memories stay alive in `keep`.
  auto add = [](std::vector<std::function<void()>>& ops, dnnl::primitive prim,
                ArgMap args, dnnl::stream& stream) {
    std::vector<dnnl_exec_arg_t> c_args;
    for (const auto& [arg, mem] : args) c_args.push_back({arg, mem.get()});
    ops.push_back([prim = std::move(prim), keep = std::move(args),
                   c_args = std::move(c_args), &stream] {
      dnnl::error::wrap_c_api(
          dnnl_primitive_execute(prim.get(), stream.get(),
                                 static_cast<int>(c_args.size()),
                                 c_args.data()),
          "could not execute a primitive");
    });
  };

  input_ = new_mem(plain_md(input_features));
  layers_.resize(params.size());
  // Backward ops are collected per layer, then appended in reverse order.
  std::vector<std::vector<std::function<void()>>> layer_backward(params.size());

  memory x = input_;
  for (size_t l = 0; l < params.size(); ++l) {
    LayerParams& p = params[l];
    LayerActivations& la = layers_[l];
    const auto& spec = p.spec;
    const memory fc_src = x;
    const memory::desc x_md = fc_src.get_desc();
    const memory::desc y_md = plain_md(p.units);
    const memory::desc bias_md({p.units}, dt::f32, tag::x);
    const bool bn_before =
        spec.batch_norm() == v1::LayerSpec::BEFORE_ACTIVATION;
    const bool bn_after = spec.batch_norm() == v1::LayerSpec::AFTER_ACTIVATION;
    const algorithm act_alg = EltwiseAlgorithm(spec.activation());
    const bool is_step = spec.activation() == v1::STEP;
    // ReLU (leaky or not) right after the inner product runs as its
    // post-op in ForwardFused, which then writes A but not Z.
    const bool fuse_relu =
        training && act_alg == algorithm::eltwise_relu && !bn_before;
    // ReLU's A comes from the caller's ActivationWriter in
    // ForwardActivating.
    const bool write_relu = training && act_alg == algorithm::eltwise_relu;
    // This layer's forward ops: `fwd` for Forward; `fused` for
    // ForwardFused and `activating` for ForwardActivating, the same ops
    // but for the inner product and the activation.
    std::vector<std::function<void()>> fwd;
    std::vector<std::function<void()>> fused;
    std::vector<std::function<void()>> activating;
    auto also_fused = [&] { fused.push_back(fwd.back()); };
    auto also_activating = [&] { activating.push_back(fwd.back()); };
    auto also_both = [&] {
      also_fused();
      also_activating();
    };

    // ---- forward
    // What the inner products read: the f32 tensors themselves, or in BF16
    // their bf16 copies, refreshed by a reorder before each use.
    memory fc_in = fc_src;
    memory::desc fc_in_md = x_md;
    memory fc_weights = p.weights;
    memory::desc fc_weights_md = p.weights_md;
    auto add_reorder = [&](std::vector<std::function<void()>>& ops,
                           const memory& from, const memory& to) {
      add(ops, dnnl::reorder(from, to),
          {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}, stream_);
    };
    if (p.bf16) {
      fc_in_md = memory::desc({batch, p.inputs}, dt::bf16, tag::nc);
      fc_in = new_mem(fc_in_md);
      add_reorder(fwd, fc_src, fc_in);
      also_both();
      fc_weights_md = p.weights_bf16_md;
      fc_weights = new_mem(fc_weights_md);
      add_reorder(fwd, p.weights, fc_weights);
      also_both();
    }
    auto add_inner_product =
        [&](std::vector<std::function<void()>>& ops,
            const dnnl::inner_product_forward::primitive_desc& pd,
            const memory& dst) {
          add(ops, dnnl::inner_product_forward(pd),
              {{DNNL_ARG_SRC, fc_in},
               {DNNL_ARG_WEIGHTS, fc_weights},
               {DNNL_ARG_BIAS, p.bias},
               {DNNL_ARG_DST, dst}},
              stream_);
        };
    dnnl::inner_product_forward::primitive_desc fc_pd(
        {fwd_kind, fc_in_md, fc_weights_md, bias_md, y_md}, engine_);
    la.fc_dst = new_mem(y_md);
    add_inner_product(fwd, fc_pd, la.fc_dst);
    also_activating();
    if (!fuse_relu) also_fused();

    auto bn_flags = dnnl::normalization_flags::use_scale |
                    dnnl::normalization_flags::use_shift;
    if (!training)
      bn_flags = bn_flags | dnnl::normalization_flags::use_global_stats;
    dnnl::batch_normalization_forward::primitive_desc bn_pd;
    if (bn_before || bn_after) {
      bn_pd = dnnl::batch_normalization_forward::primitive_desc(
          {fwd_kind, y_md, kBatchNormEpsilon, bn_flags}, engine_);
      if (training) {
        la.bn_mean = new_mem(bn_pd.mean_desc());
        la.bn_var = new_mem(bn_pd.variance_desc());
      } else {
        la.bn_mean = p.bn_running_mean;
        la.bn_var = p.bn_running_var;
      }
    }
    auto add_bn_forward = [&](const memory& src, const memory& dst) {
      add(fwd, dnnl::batch_normalization_forward(bn_pd),
          {{DNNL_ARG_SRC, src},
           {DNNL_ARG_DST, dst},
           {DNNL_ARG_SCALE, p.bn_scale},
           {DNNL_ARG_SHIFT, p.bn_shift},
           {DNNL_ARG_MEAN, la.bn_mean},
           {DNNL_ARG_VARIANCE, la.bn_var}},
          stream_);
      also_both();
    };

    la.z = la.fc_dst;
    if (bn_before) {
      la.z = new_mem(y_md);
      add_bn_forward(la.fc_dst, la.z);
    }

    dnnl::eltwise_forward::primitive_desc act_pd;
    if (act_alg != algorithm::undef) {
      act_pd = dnnl::eltwise_forward::primitive_desc(
          {fwd_kind, act_alg, y_md, EltwiseAlpha(spec), 0.0f}, engine_);
      la.act = new_mem(y_md);
      add(fwd, dnnl::eltwise_forward(act_pd),
          {{DNNL_ARG_SRC, la.z}, {DNNL_ARG_DST, la.act}}, stream_);
      if (write_relu) {
        const int layer = static_cast<int>(l);
        activating.push_back(
            [this, layer] { activation_writer_->WriteActivation(layer); });
      } else {
        also_activating();
      }
      if (fuse_relu) {
        dnnl::post_ops relu;
        relu.append_eltwise(1.0f, act_alg, EltwiseAlpha(spec), 0.0f);
        dnnl::primitive_attr attr;
        attr.set_post_ops(relu);
        const dnnl::inner_product_forward::primitive_desc fused_pd(
            {fwd_kind, fc_in_md, fc_weights_md, bias_md, y_md}, attr, engine_);
        add_inner_product(fused, fused_pd, la.act);
      } else {
        also_fused();
      }
    } else if (is_step) {
      la.act = new_mem(y_md);
      const float* z = Data(la.z);
      float* a = Data(la.act);
      const int64_t n = batch * p.units;
      fwd.push_back([z, a, n] {
        for (int64_t i = 0; i < n; ++i) a[i] = z[i] > 0.0f ? 1.0f : 0.0f;
      });
      also_both();
    } else {
      la.act = la.z;  // LINEAR
    }

    la.out = la.act;
    if (bn_after) {
      la.out = new_mem(y_md);
      add_bn_forward(la.act, la.out);
    }
    x = la.out;
    for (auto& op : fwd) forward_ops_.push_back(std::move(op));
    for (auto& op : fused) fused_forward_ops_.push_back(std::move(op));
    for (auto& op : activating) {
      activating_forward_ops_.push_back(std::move(op));
    }

    if (!training) continue;

    // ---- backward, in reverse within the layer
    auto& ops = layer_backward[l];
    la.diff_out = new_mem(y_md);
    la.diff_act = la.diff_out;
    auto add_bn_backward = [&](const memory& src, const memory& diff_dst,
                               const memory& diff_src) {
      dnnl::batch_normalization_backward::primitive_desc bwd_pd(
          {prop_kind::backward, y_md, y_md, kBatchNormEpsilon, bn_flags},
          engine_, bn_pd);
      add(ops, dnnl::batch_normalization_backward(bwd_pd),
          {{DNNL_ARG_SRC, src},
           {DNNL_ARG_MEAN, la.bn_mean},
           {DNNL_ARG_VARIANCE, la.bn_var},
           {DNNL_ARG_DIFF_DST, diff_dst},
           {DNNL_ARG_SCALE, p.bn_scale},
           {DNNL_ARG_SHIFT, p.bn_shift},
           {DNNL_ARG_DIFF_SRC, diff_src},
           {DNNL_ARG_DIFF_SCALE, p.diff_bn_scale},
           {DNNL_ARG_DIFF_SHIFT, p.diff_bn_shift}},
          stream_);
    };
    if (bn_after) {
      la.diff_act = new_mem(y_md);
      add_bn_backward(la.act, la.diff_out, la.diff_act);
    }

    if (act_alg == algorithm::eltwise_relu) {
      // The sign comes from Z after Forward, from A after ForwardFused
      // (which does not write Z): A > 0 exactly where Z > 0, NaN aside.
      la.diff_z = new_mem(y_md);
      const float* z = Data(la.z);
      const float* a = Data(la.act);
      const float* diff_act = Data(la.diff_act);
      float* diff_z = Data(la.diff_z);
      const int64_t n = batch * p.units;
      const float slope = EltwiseAlpha(spec);
      const bool* z_written = &z_written_;
      ops.push_back([z, a, z_written, diff_act, diff_z, n, slope] {
        ReluBackward(*z_written ? z : a, diff_act, diff_z, n, slope);
      });
    } else if (act_alg != algorithm::undef) {
      la.diff_z = new_mem(y_md);
      dnnl::eltwise_backward::primitive_desc act_bwd_pd(
          {act_alg, y_md, y_md, EltwiseAlpha(spec), 0.0f}, engine_, act_pd);
      add(ops, dnnl::eltwise_backward(act_bwd_pd),
          {{DNNL_ARG_SRC, la.z},
           {DNNL_ARG_DIFF_DST, la.diff_act},
           {DNNL_ARG_DIFF_SRC, la.diff_z}},
          stream_);
    } else if (is_step) {
      // f' = 0 everywhere: the buffer is zeroed once and never written.
      la.diff_z = new_mem(y_md);
      std::memset(la.diff_z.get_data_handle(), 0, y_md.get_size());
    } else {
      la.diff_z = la.diff_act;  // LINEAR
    }

    la.diff_fc_dst = la.diff_z;
    if (bn_before) {
      la.diff_fc_dst = new_mem(y_md);
      add_bn_backward(la.fc_dst, la.diff_z, la.diff_fc_dst);
    }

    memory fc_diff_dst = la.diff_fc_dst;
    memory::desc fc_diff_dst_md = y_md;
    if (p.bf16) {
      fc_diff_dst_md = memory::desc({batch, p.units}, dt::bf16, tag::nc);
      fc_diff_dst = new_mem(fc_diff_dst_md);
      add_reorder(ops, la.diff_fc_dst, fc_diff_dst);
    }
    dnnl::inner_product_backward_weights::primitive_desc fc_bwd_w_pd(
        {fc_in_md, p.weights_md, bias_md, fc_diff_dst_md}, engine_, fc_pd);
    add(ops, dnnl::inner_product_backward_weights(fc_bwd_w_pd),
        {{DNNL_ARG_SRC, fc_in},
         {DNNL_ARG_DIFF_DST, fc_diff_dst},
         {DNNL_ARG_DIFF_WEIGHTS, p.diff_weights},
         {DNNL_ARG_DIFF_BIAS, p.diff_bias}},
        stream_);

    if (l > 0) {  // nobody needs the input's gradient
      dnnl::inner_product_backward_data::primitive_desc fc_bwd_d_pd(
          {x_md, fc_weights_md, fc_diff_dst_md}, engine_, fc_pd);
      add(ops, dnnl::inner_product_backward_data(fc_bwd_d_pd),
          {{DNNL_ARG_DIFF_DST, fc_diff_dst},
           {DNNL_ARG_WEIGHTS, fc_weights},
           {DNNL_ARG_DIFF_SRC, layers_[l - 1].diff_out}},
          stream_);
    }
  }
  for (size_t l = params.size(); l-- > 0;) {
    for (auto& op : layer_backward[l]) backward_ops_.push_back(std::move(op));
  }
}

}  // namespace gradwatch::engine

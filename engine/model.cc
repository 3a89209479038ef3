#include "engine/model.h"

#include <algorithm>
#include <cstring>

#include "engine/initializer.h"
#include "engine/onednn_util.h"
#include "engine/random.h"

namespace gradwatch::engine {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

constexpr float kRunningStatsMomentum = 0.1f;

memory ZeroedMemory(const memory::desc& md, const dnnl::engine& engine) {
  memory mem(md, engine);
  std::memset(mem.get_data_handle(), 0, md.get_size());
  return mem;
}

memory::desc PlainWeightsMd(const LayerParams& p) {
  // oneDNN weight dims are {units, inputs}; "io" puts inputs outermost:
  // element (unit j, input i) at i * units + j, as LayerParameters.
  return memory::desc({p.units, p.inputs}, dt::f32, tag::io);
}

void Reorder(const dnnl::engine& engine, const memory& src, const memory& dst) {
  dnnl::stream stream(engine);
  dnnl::reorder(src, dst).execute(stream, const_cast<memory&>(src),
                                  const_cast<memory&>(dst));
  stream.wait();
}

// The padding of a layer's weights buffer: a plain all-ones matrix
// reordered into the layer's layout is 1 exactly on real weights.
std::vector<std::pair<int64_t, int64_t>> PaddingRanges(
    const dnnl::engine& engine, const LayerParams& p) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  if (p.weights_padding == 0) return ranges;
  memory plain(PlainWeightsMd(p), engine);
  std::fill_n(Data(plain), static_cast<int64_t>(p.units) * p.inputs, 1.0f);
  const memory blocked = ZeroedMemory(p.weights_md, engine);
  Reorder(engine, plain, blocked);
  const float* ones = Data(blocked);
  const int64_t n = Elements(p.weights_md);
  for (int64_t i = 0; i < n;) {
    if (ones[i] != 0.0f) {
      ++i;
      continue;
    }
    const int64_t begin = i;
    while (i < n && ones[i] == 0.0f) ++i;
    ranges.emplace_back(begin, i);
  }
  return ranges;
}

void CopyIn(const memory& mem, const float* values, int64_t n) {
  std::memcpy(mem.get_data_handle(), values, n * sizeof(float));
}

void Fill(const memory& mem, float value, int64_t n) {
  std::fill_n(Data(mem), n, value);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> Model::Create(const v1::JobSpec& spec,
                                                     int input_features,
                                                     int train_batch) {
  std::unique_ptr<Model> model(new Model());
  model->input_features_ = input_features;
  absl::Status status = model->Build(spec, train_batch);
  if (!status.ok()) return status;
  return model;
}

absl::Status Model::Build(const v1::JobSpec& spec, int train_batch) {
  const auto& layers = spec.model().layers();
  const bool bf16 = spec.training().precision() == v1::TrainingSpec::BF16;
  params_.resize(layers.size());
  absl::Status status = CatchDnnlErrors("allocating parameters", [&] {
    Rng rng(spec.training().seed());
    int inputs = input_features_;
    for (int l = 0; l < layers.size(); ++l) {
      LayerParams& p = params_[l];
      p.spec = layers[l];
      p.inputs = inputs;
      p.units = static_cast<int>(layers[l].units());
      p.has_bn = layers[l].batch_norm() == v1::LayerSpec::BEFORE_ACTIVATION ||
                 layers[l].batch_norm() == v1::LayerSpec::AFTER_ACTIVATION;
      inputs = p.units;

      // Let the inner products choose the weights layout for the training
      // batch; every Net then uses that layout explicitly. In BF16 the f32
      // master weights take the layout of the bf16 backward-weights
      // product's f32 output, so that optimizer and statistics read
      // weights and gradients element by element.
      const memory::desc bias_md({p.units}, dt::f32, tag::x);
      if (bf16) {
        p.bf16 = true;
        const memory::desc x_md({train_batch, p.inputs}, dt::bf16, tag::nc);
        const memory::desc y_md({train_batch, p.units}, dt::f32, tag::nc);
        const memory::desc dy_md({train_batch, p.units}, dt::bf16, tag::nc);
        dnnl::inner_product_forward::primitive_desc fwd_pd(
            {dnnl::prop_kind::forward_training, x_md,
             memory::desc({p.units, p.inputs}, dt::bf16, tag::any), bias_md,
             y_md},
            engine_);
        p.weights_bf16_md = fwd_pd.weights_desc();
        dnnl::inner_product_backward_weights::primitive_desc bwd_pd(
            {x_md, memory::desc({p.units, p.inputs}, dt::f32, tag::any),
             bias_md, dy_md},
            engine_, fwd_pd);
        p.weights_md = bwd_pd.diff_weights_desc();
      } else {
        const memory::desc x_md({train_batch, p.inputs}, dt::f32, tag::nc);
        const memory::desc y_md({train_batch, p.units}, dt::f32, tag::nc);
        dnnl::inner_product_forward::primitive_desc pd(
            {dnnl::prop_kind::forward_training, x_md,
             memory::desc({p.units, p.inputs}, dt::f32, tag::any), bias_md,
             y_md},
            engine_);
        p.weights_md = pd.weights_desc();
      }
      p.weights_padding =
          Elements(p.weights_md) - static_cast<int64_t>(p.units) * p.inputs;
      p.weights_padding_ranges = PaddingRanges(engine_, p);
      p.weights = ZeroedMemory(p.weights_md, engine_);
      p.diff_weights = ZeroedMemory(p.weights_md, engine_);
      p.bias = ZeroedMemory(bias_md, engine_);
      p.diff_bias = ZeroedMemory(bias_md, engine_);

      memory plain_weights(PlainWeightsMd(p), engine_);
      if (l < spec.model().initial_weights_size()) {
        const auto& init = spec.model().initial_weights(l);
        CopyIn(plain_weights, init.weights().data(), init.weights_size());
        CopyIn(p.bias, init.bias().data(), init.bias_size());
      } else {
        InitializeLayer(p.spec, p.inputs, rng, Data(plain_weights),
                        Data(p.bias));
      }
      Reorder(engine_, plain_weights, p.weights);

      if (p.has_bn) {
        p.bn_scale = ZeroedMemory(bias_md, engine_);
        p.bn_shift = ZeroedMemory(bias_md, engine_);
        p.diff_bn_scale = ZeroedMemory(bias_md, engine_);
        p.diff_bn_shift = ZeroedMemory(bias_md, engine_);
        p.bn_running_mean = ZeroedMemory(bias_md, engine_);
        p.bn_running_var = ZeroedMemory(bias_md, engine_);
        Fill(p.bn_scale, 1.0f, p.units);
        Fill(p.bn_running_var, 1.0f, p.units);
        if (l < spec.model().initial_weights_size()) {
          const auto& init = spec.model().initial_weights(l);
          auto copy_if_set = [&](const memory& mem, const auto& values) {
            if (!values.empty()) CopyIn(mem, values.data(), values.size());
          };
          copy_if_set(p.bn_scale, init.bn_scale());
          copy_if_set(p.bn_shift, init.bn_shift());
          copy_if_set(p.bn_running_mean, init.bn_running_mean());
          copy_if_set(p.bn_running_var, init.bn_running_var());
        }
      }
    }
  });
  if (!status.ok()) return status;
  auto net = Net::Create(engine_, params_, input_features_, train_batch,
                         Net::Mode::kTraining);
  if (!net.ok()) return net.status();
  train_net_ = *std::move(net);
  return absl::OkStatus();
}

std::vector<ParamTensor> Model::ParamTensors() {
  std::vector<ParamTensor> tensors;
  for (LayerParams& p : params_) {
    tensors.push_back(
        {Data(p.weights), Data(p.diff_weights), Elements(p.weights_md)});
    tensors.push_back({Data(p.bias), Data(p.diff_bias), p.units});
    if (p.has_bn) {
      tensors.push_back({Data(p.bn_scale), Data(p.diff_bn_scale), p.units});
      tensors.push_back({Data(p.bn_shift), Data(p.diff_bn_shift), p.units});
    }
  }
  return tensors;
}

void Model::UpdateRunningStats() {
  const float m = kRunningStatsMomentum;
  const int batch = train_net_->batch();
  const float unbias = batch > 1 ? static_cast<float>(batch) / (batch - 1) : 1;
  for (size_t l = 0; l < params_.size(); ++l) {
    LayerParams& p = params_[l];
    if (!p.has_bn) continue;
    const LayerActivations& la = train_net_->layer(static_cast<int>(l));
    const float* mean = Data(la.bn_mean);
    const float* var = Data(la.bn_var);
    float* running_mean = Data(p.bn_running_mean);
    float* running_var = Data(p.bn_running_var);
    for (int j = 0; j < p.units; ++j) {
      running_mean[j] = (1 - m) * running_mean[j] + m * mean[j];
      running_var[j] = (1 - m) * running_var[j] + m * var[j] * unbias;
    }
  }
}

absl::Status Model::ForEachInferenceChunk(
    const float* x, int64_t rows,
    const std::function<void(const Net&, int64_t, int)>& visit) {
  if (inference_net_ == nullptr) {
    auto net = Net::Create(engine_, params_, input_features_, kInferenceChunk,
                           Net::Mode::kInference);
    if (!net.ok()) return net.status();
    inference_net_ = *std::move(net);
  }
  Net& net = *inference_net_;
  return CatchDnnlErrors("running inference", [&] {
    for (int64_t row0 = 0; row0 < rows; row0 += kInferenceChunk) {
      const int n =
          static_cast<int>(std::min<int64_t>(kInferenceChunk, rows - row0));
      float* in = net.input();
      std::memcpy(in, x + row0 * input_features_,
                  sizeof(float) * n * input_features_);
      std::fill(in + static_cast<int64_t>(n) * input_features_,
                in + static_cast<int64_t>(kInferenceChunk) * input_features_,
                0.0f);
      net.Forward();
      visit(net, row0, n);
    }
  });
}

absl::StatusOr<v1::Model> Model::Export() const {
  v1::Model out;
  const dnnl::engine& engine = engine_;
  absl::Status status = CatchDnnlErrors("exporting the model", [&] {
    for (const LayerParams& p : params_) {
      v1::LayerParameters* lp = out.add_layers();
      lp->set_inputs(p.inputs);
      lp->set_units(p.units);
      memory plain(PlainWeightsMd(p), engine);
      Reorder(engine, p.weights, plain);
      const float* w = Data(plain);
      lp->mutable_weights()->Assign(
          w, w + static_cast<int64_t>(p.units) * p.inputs);
      auto assign = [&](auto* field, const memory& mem) {
        const float* v = Data(mem);
        field->Assign(v, v + p.units);
      };
      assign(lp->mutable_bias(), p.bias);
      if (p.has_bn) {
        assign(lp->mutable_bn_scale(), p.bn_scale);
        assign(lp->mutable_bn_shift(), p.bn_shift);
        assign(lp->mutable_bn_running_mean(), p.bn_running_mean);
        assign(lp->mutable_bn_running_var(), p.bn_running_var);
      }
    }
  });
  if (!status.ok()) return status;
  return out;
}

}  // namespace gradwatch::engine

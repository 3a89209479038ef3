#include "tests/engine/reference_mlp.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <utility>

namespace gradwatch::engine {
namespace {

namespace v1 = ::gradwatch::v1;

constexpr double kPi = 3.14159265358979323846;

// Batch norm over the columns of x [batch][units]: normalizes with `mean`
// and `var` and writes scale * x_hat + shift to `y`.
void BatchNormApply(const std::vector<double>& x, int batch, int units,
                    const std::vector<double>& mean,
                    const std::vector<double>& var,
                    const std::vector<double>& scale,
                    const std::vector<double>& shift, std::vector<double>& y) {
  y.assign(x.size(), 0.0);
  for (int b = 0; b < batch; ++b) {
    for (int j = 0; j < units; ++j) {
      const double x_hat = (x[b * units + j] - mean[j]) /
                           std::sqrt(var[j] + kReferenceBatchNormEpsilon);
      y[b * units + j] = scale[j] * x_hat + shift[j];
    }
  }
}

void BatchStatistics(const std::vector<double>& x, int batch, int units,
                     std::vector<double>& mean, std::vector<double>& var) {
  mean.assign(units, 0.0);
  var.assign(units, 0.0);
  for (int j = 0; j < units; ++j) {
    for (int b = 0; b < batch; ++b) mean[j] += x[b * units + j];
    mean[j] /= batch;
    for (int b = 0; b < batch; ++b) {
      const double d = x[b * units + j] - mean[j];
      var[j] += d * d;
    }
    var[j] /= batch;  // biased, as batch norm normalizes with it
  }
}

// Training-mode batch-norm backward: y = scale * x_hat + shift with x_hat
// from the batch statistics, which themselves depend on x.
void BatchNormBackward(const std::vector<double>& x, int batch, int units,
                       const std::vector<double>& mean,
                       const std::vector<double>& var,
                       const std::vector<double>& scale,
                       const std::vector<double>& diff_y,
                       std::vector<double>& diff_x,
                       std::vector<double>& diff_scale,
                       std::vector<double>& diff_shift) {
  diff_x.assign(x.size(), 0.0);
  diff_scale.assign(units, 0.0);
  diff_shift.assign(units, 0.0);
  for (int j = 0; j < units; ++j) {
    const double inv_std = 1.0 / std::sqrt(var[j] + kReferenceBatchNormEpsilon);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int b = 0; b < batch; ++b) {
      const double x_hat = (x[b * units + j] - mean[j]) * inv_std;
      sum_dy += diff_y[b * units + j];
      sum_dy_xhat += diff_y[b * units + j] * x_hat;
    }
    diff_shift[j] = sum_dy;
    diff_scale[j] = sum_dy_xhat;
    for (int b = 0; b < batch; ++b) {
      const double x_hat = (x[b * units + j] - mean[j]) * inv_std;
      diff_x[b * units + j] = scale[j] * inv_std *
                              (diff_y[b * units + j] - sum_dy / batch -
                               x_hat * sum_dy_xhat / batch);
    }
  }
}

std::vector<double> ToDouble(const google::protobuf::RepeatedField<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

}  // namespace

bool ReferenceLayer::has_bn() const { return bn_before() || bn_after(); }
bool ReferenceLayer::bn_before() const {
  return spec.batch_norm() == v1::LayerSpec::BEFORE_ACTIVATION;
}
bool ReferenceLayer::bn_after() const {
  return spec.batch_norm() == v1::LayerSpec::AFTER_ACTIVATION;
}

std::vector<double>& ReferenceLayerGradients::Get(ParamKind kind) {
  switch (kind) {
    case ParamKind::kWeights:
      return weights;
    case ParamKind::kBias:
      return bias;
    case ParamKind::kBnScale:
      return bn_scale;
    case ParamKind::kBnShift:
      return bn_shift;
  }
  std::abort();
}

const std::vector<double>& ReferenceLayerGradients::Get(ParamKind kind) const {
  return const_cast<ReferenceLayerGradients*>(this)->Get(kind);
}

double Activate(const v1::LayerSpec& spec, double z) {
  switch (spec.activation()) {
    case v1::RELU:
      return z > 0 ? z : 0.0;
    case v1::LEAKY_RELU:
      return z > 0 ? z : spec.negative_slope() * z;
    case v1::ELU:
      return z > 0 ? z : spec.elu_alpha() * (std::exp(z) - 1.0);
    case v1::GELU:
      return 0.5 * z * (1.0 + std::erf(z / std::sqrt(2.0)));
    case v1::SIGMOID:
      return 1.0 / (1.0 + std::exp(-z));
    case v1::TANH:
      return std::tanh(z);
    case v1::STEP:
      return z > 0 ? 1.0 : 0.0;
    default:  // LINEAR, or an output layer left unspecified
      return z;
  }
}

double ActivationDerivative(const v1::LayerSpec& spec, double z) {
  switch (spec.activation()) {
    case v1::RELU:
      return z > 0 ? 1.0 : 0.0;
    case v1::LEAKY_RELU:
      return z > 0 ? 1.0 : spec.negative_slope();
    case v1::ELU:
      return z > 0 ? 1.0 : spec.elu_alpha() * std::exp(z);
    case v1::GELU:
      return 0.5 * (1.0 + std::erf(z / std::sqrt(2.0))) +
             z * std::exp(-0.5 * z * z) / std::sqrt(2.0 * kPi);
    case v1::SIGMOID: {
      const double s = 1.0 / (1.0 + std::exp(-z));
      return s * (1.0 - s);
    }
    case v1::TANH: {
      const double t = std::tanh(z);
      return 1.0 - t * t;
    }
    case v1::STEP:
      return 0.0;
    default:
      return 1.0;
  }
}

bool HasKinkAtZero(v1::Activation activation) {
  return activation == v1::RELU || activation == v1::LEAKY_RELU ||
         activation == v1::ELU || activation == v1::STEP;
}

double ReferenceLoss(v1::Loss loss, const std::vector<double>& out, int batch,
                     int width, const ReferenceTargets& targets,
                     std::vector<double>* d_out) {
  if (d_out != nullptr) d_out->assign(out.size(), 0.0);
  double total = 0;
  for (int b = 0; b < batch; ++b) {
    const double* o = &out[b * width];
    switch (loss) {
      case v1::CROSS_ENTROPY: {
        const double max = *std::max_element(o, o + width);
        double sum = 0;
        for (int j = 0; j < width; ++j) sum += std::exp(o[j] - max);
        const int label = targets.labels[b];
        total += max + std::log(sum) - o[label];
        if (d_out != nullptr) {
          for (int j = 0; j < width; ++j) {
            const double p = std::exp(o[j] - max) / sum;
            (*d_out)[b * width + j] = (p - (j == label ? 1.0 : 0.0)) / batch;
          }
        }
        break;
      }
      case v1::BINARY_CROSS_ENTROPY: {
        const double y = targets.labels[b];
        const double softplus =
            std::max(o[0], 0.0) + std::log1p(std::exp(-std::abs(o[0])));
        total += softplus - y * o[0];
        if (d_out != nullptr) {
          (*d_out)[b] = (1.0 / (1.0 + std::exp(-o[0])) - y) / batch;
        }
        break;
      }
      default: {  // MSE
        for (int j = 0; j < width; ++j) {
          const double d = o[j] - targets.targets[b * width + j];
          total += d * d / width;
          if (d_out != nullptr) {
            (*d_out)[b * width + j] = 2.0 * d / (batch * width);
          }
        }
        break;
      }
    }
  }
  return total / batch;
}

ReferenceMlp::ReferenceMlp(int input_features,
                           std::vector<ReferenceLayer> layers)
    : input_features_(input_features), layers_(std::move(layers)) {}

ReferenceMlp ReferenceMlp::FromModelSpec(const v1::ModelSpec& model,
                                         int input_features) {
  std::vector<ReferenceLayer> layers;
  int inputs = input_features;
  for (int l = 0; l < model.layers_size(); ++l) {
    const v1::LayerParameters& init = model.initial_weights(l);
    ReferenceLayer layer;
    layer.spec = model.layers(l);
    layer.inputs = inputs;
    layer.units = static_cast<int>(layer.spec.units());
    layer.weights = ToDouble(init.weights());
    layer.bias = ToDouble(init.bias());
    if (layer.has_bn()) {
      auto or_default = [&](const google::protobuf::RepeatedField<float>& v,
                            double value) {
        return v.empty() ? std::vector<double>(layer.units, value)
                         : ToDouble(v);
      };
      layer.bn_scale = or_default(init.bn_scale(), 1.0);
      layer.bn_shift = or_default(init.bn_shift(), 0.0);
      layer.bn_running_mean = or_default(init.bn_running_mean(), 0.0);
      layer.bn_running_var = or_default(init.bn_running_var(), 1.0);
    }
    inputs = layer.units;
    layers.push_back(std::move(layer));
  }
  return ReferenceMlp(input_features, std::move(layers));
}

std::vector<double>& ReferenceMlp::Param(int layer, ParamKind kind) {
  ReferenceLayer& p = layers_[layer];
  switch (kind) {
    case ParamKind::kWeights:
      return p.weights;
    case ParamKind::kBias:
      return p.bias;
    case ParamKind::kBnScale:
      return p.bn_scale;
    case ParamKind::kBnShift:
      return p.bn_shift;
  }
  std::abort();
}

ReferenceTrace ReferenceMlp::Forward(const std::vector<double>& x, int batch,
                                     BatchNormStats stats) const {
  ReferenceTrace trace;
  trace.batch = batch;
  trace.input = x;
  const std::vector<double>* src = &trace.input;
  trace.layers.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    const ReferenceLayer& p = layers_[l];
    ReferenceLayerTrace& t = trace.layers[l];
    const int n = p.inputs, m = p.units;

    t.fc_dst.assign(static_cast<size_t>(batch) * m, 0.0);
    for (int b = 0; b < batch; ++b) {
      for (int j = 0; j < m; ++j) {
        double sum = p.bias[j];
        for (int i = 0; i < n; ++i)
          sum += (*src)[b * n + i] * p.weights[i * m + j];
        t.fc_dst[b * m + j] = sum;
      }
    }

    // Batch norm of `in` into `result`, recording the statistics used.
    auto normalize = [&](const std::vector<double>& in,
                         std::vector<double>& result) {
      if (stats == BatchNormStats::kBatch) {
        BatchStatistics(in, batch, m, t.bn_mean, t.bn_var);
      } else {
        t.bn_mean = p.bn_running_mean;
        t.bn_var = p.bn_running_var;
      }
      BatchNormApply(in, batch, m, t.bn_mean, t.bn_var, p.bn_scale, p.bn_shift,
                     result);
    };

    if (p.bn_before()) {
      normalize(t.fc_dst, t.z);
    } else {
      t.z = t.fc_dst;
    }
    t.act.resize(t.z.size());
    for (size_t k = 0; k < t.z.size(); ++k) t.act[k] = Activate(p.spec, t.z[k]);
    if (p.bn_after()) {
      normalize(t.act, t.out);
    } else {
      t.out = t.act;
    }
    src = &t.out;
  }
  return trace;
}

std::vector<ReferenceLayerGradients> ReferenceMlp::Backward(
    const ReferenceTrace& trace, const std::vector<double>& diff_output) const {
  const int batch = trace.batch;
  std::vector<ReferenceLayerGradients> grads(layers_.size());
  std::vector<double> diff_out = diff_output;
  for (size_t l = layers_.size(); l-- > 0;) {
    const ReferenceLayer& p = layers_[l];
    const ReferenceLayerTrace& t = trace.layers[l];
    ReferenceLayerGradients& g = grads[l];
    const int n = p.inputs, m = p.units;
    const std::vector<double>& src =
        l == 0 ? trace.input : trace.layers[l - 1].out;
    g.diff_out = diff_out;

    std::vector<double> diff_act;
    if (p.bn_after()) {
      BatchNormBackward(t.act, batch, m, t.bn_mean, t.bn_var, p.bn_scale,
                        diff_out, diff_act, g.bn_scale, g.bn_shift);
    } else {
      diff_act = diff_out;
    }
    g.diff_z.resize(diff_act.size());
    for (size_t k = 0; k < diff_act.size(); ++k) {
      g.diff_z[k] = diff_act[k] * ActivationDerivative(p.spec, t.z[k]);
    }
    std::vector<double> diff_fc;
    if (p.bn_before()) {
      BatchNormBackward(t.fc_dst, batch, m, t.bn_mean, t.bn_var, p.bn_scale,
                        g.diff_z, diff_fc, g.bn_scale, g.bn_shift);
    } else {
      diff_fc = g.diff_z;
    }

    g.weights.assign(static_cast<size_t>(n) * m, 0.0);
    g.bias.assign(m, 0.0);
    for (int b = 0; b < batch; ++b) {
      for (int j = 0; j < m; ++j) {
        const double d = diff_fc[b * m + j];
        g.bias[j] += d;
        for (int i = 0; i < n; ++i) g.weights[i * m + j] += src[b * n + i] * d;
      }
    }

    diff_out.assign(static_cast<size_t>(batch) * n, 0.0);
    for (int b = 0; b < batch; ++b) {
      for (int i = 0; i < n; ++i) {
        double sum = 0;
        for (int j = 0; j < m; ++j)
          sum += diff_fc[b * m + j] * p.weights[i * m + j];
        diff_out[b * n + i] = sum;
      }
    }
  }
  return grads;
}

double ReferenceMlp::BatchLoss(v1::Loss loss, const std::vector<double>& x,
                               int batch,
                               const ReferenceTargets& targets) const {
  const ReferenceTrace trace = Forward(x, batch, BatchNormStats::kBatch);
  return ReferenceLoss(loss, trace.output(), batch, output_units(), targets,
                       nullptr);
}

std::vector<bool> ReferenceMlp::KinkPattern(const std::vector<double>& x,
                                            int batch) const {
  const ReferenceTrace trace = Forward(x, batch, BatchNormStats::kBatch);
  std::vector<bool> pattern;
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (!HasKinkAtZero(layers_[l].spec.activation())) continue;
    for (double z : trace.layers[l].z) pattern.push_back(z > 0);
  }
  return pattern;
}

}  // namespace gradwatch::engine

#include "engine/curvature.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/loss.h"
#include "engine/onednn_util.h"
#include "engine/random.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace gradwatch::engine {
namespace {

using dnnl::memory;

// w + step * v in f32, the one expression for setting a perturbed parameter
// and for recomputing it, so that both give the same bits.
inline float Perturbed(float w, float step, float v) { return w + step * v; }

// Sums over one tensor of the finite difference, which replaces g_plus by
// dg = g_plus - g_minus: d.dg, d.d and dg.dg with d = w+ - w- as stored
// (exact in double, as is each product).
struct DifferenceSums {
  double d_dot_dg = 0, d_sq = 0, dg_sq = 0;
};

void AddDifference(const float* w, const float* v, float step,
                   const float* w_minus, const float* g_minus, float* g_plus,
                   int64_t n, DifferenceSums& sums) {
  double d_dot_dg = 0, d_sq = 0, dg_sq = 0;
#pragma omp simd reduction(+ : d_dot_dg, d_sq, dg_sq)
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(Perturbed(w[i], step, v[i])) -
                     static_cast<double>(w_minus[i]);
    const float dg = g_plus[i] - g_minus[i];
    g_plus[i] = dg;
    d_dot_dg += d * dg;
    d_sq += d * d;
    dg_sq += static_cast<double>(dg) * dg;
  }
  sums.d_dot_dg += d_dot_dg;
  sums.d_sq += d_sq;
  sums.dg_sq += dg_sq;
}

double SumSquares(const std::vector<float>& x) {
  double sum = 0;
  const float* p = x.data();
  const int64_t n = static_cast<int64_t>(x.size());
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(p[i]) * p[i];
  return sum;
}

// Activations whose derivative (STEP: value) jumps at z = 0.
bool HasKink(v1::Activation activation) {
  return activation == v1::RELU || activation == v1::LEAKY_RELU ||
         activation == v1::ELU || activation == v1::STEP;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CurvatureEstimator>> CurvatureEstimator::Create(
    Model& model, double relative_step) {
  if (!(relative_step > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "curvature: relative step must be > 0, got ", relative_step));
  }
  for (const LayerParams& p : model.params()) {
    if (p.bf16) {
      // An 8-bit mantissa cannot resolve w +- h v for any h small enough
      // for a difference quotient (measured: sign flips at h = 1e-5, 4%
      // off at 1e-3 where f32 is already 1% off).
      return absl::FailedPreconditionError(
          "curvature: the finite-difference Hessian needs training.precision "
          "F32; bf16 products cannot resolve the perturbation");
    }
  }
  std::unique_ptr<CurvatureEstimator> c(new CurvatureEstimator());
  c->model_ = &model;
  c->relative_step_ = relative_step;
  c->tensors_ = model.ParamTensors();
  for (const ParamTensor& t : c->tensors_) c->size_ += t.size;
  absl::Status status = CatchDnnlErrors("preparing the curvature", [&] {
    // Flat offsets follow Model::ParamTensors' order: weights, bias, then
    // the batch-norm scale and shift of each layer.
    int64_t offset = 0;
    for (const LayerParams& p : model.params()) {
      for (const auto& [begin, end] : p.weights_padding_ranges) {
        c->padding_.emplace_back(offset + begin, offset + end);
      }
      offset += Elements(p.weights_md) + p.units * (p.has_bn ? 3 : 1);
    }
    c->weights_.resize(c->size_);
    c->grads_.resize(c->size_);
    c->v_.resize(c->size_);
    c->g_plus_.resize(c->size_);

    const Net& net = model.train_net();
    for (int l = 0; l < net.num_layers(); ++l) {
      const LayerActivations& la = net.layer(l);
      for (const memory* mem :
           {&la.fc_dst, &la.z, &la.act, &la.out, &la.bn_mean, &la.bn_var,
            &la.diff_out, &la.diff_act, &la.diff_z, &la.diff_fc_dst}) {
        if (!*mem) continue;
        float* data = Data(*mem);
        // Several names may share one buffer (net.h); save it once.
        const bool seen =
            std::any_of(c->activations_.begin(), c->activations_.end(),
                        [&](const Snapshot& s) { return s.data == data; });
        if (seen) continue;
        c->activations_.push_back(
            {data, std::vector<float>(Elements(mem->get_desc()))});
      }
    }
    for (int l = 0; l < net.num_layers(); ++l) {
      const v1::Activation activation = model.params()[l].spec.activation();
      if (!HasKink(activation)) continue;
      float* z = Data(net.layer(l).z);
      for (const Snapshot& s : c->activations_) {
        if (s.data != z) continue;
        c->kinks_.push_back({z, s.copy.data(),
                             static_cast<int64_t>(s.copy.size()),
                             activation == v1::STEP});
      }
    }
  });
  if (!status.ok()) return status;
  return c;
}

void CurvatureEstimator::Save() {
  int64_t offset = 0;
  for (const ParamTensor& t : tensors_) {
    std::memcpy(weights_.data() + offset, t.value, t.size * sizeof(float));
    std::memcpy(grads_.data() + offset, t.grad, t.size * sizeof(float));
    offset += t.size;
  }
  for (Snapshot& s : activations_) {
    std::memcpy(s.copy.data(), s.data, s.copy.size() * sizeof(float));
  }
}

void CurvatureEstimator::Restore() {
  int64_t offset = 0;
  for (const ParamTensor& t : tensors_) {
    std::memcpy(t.value, weights_.data() + offset, t.size * sizeof(float));
    // The optimizer only reads gradients; the net writes them.
    std::memcpy(const_cast<float*>(t.grad), grads_.data() + offset,
                t.size * sizeof(float));
    offset += t.size;
  }
  for (const Snapshot& s : activations_) {
    std::memcpy(s.data, s.copy.data(), s.copy.size() * sizeof(float));
  }
}

void CurvatureEstimator::SetWeights(float step) {
  const float* w = weights_.data();
  const float* v = v_.data();
  int64_t offset = 0;
  for (const ParamTensor& t : tensors_) {
    float* value = t.value;
    for (int64_t i = 0; i < t.size; ++i) {
      value[i] = Perturbed(w[offset + i], step, v[offset + i]);
    }
    offset += t.size;
  }
}

void CurvatureEstimator::FillRandomDirection(uint64_t seed) {
  // Uniform entries suffice for power iteration (any start with a
  // component along the top eigenvector) and cost far less than normals.
  Rng rng(seed);
  for (float& x : v_) x = static_cast<float>(rng.Uniform(-1.0, 1.0));
  ZeroPadding(v_);
  const float scale = static_cast<float>(1.0 / std::sqrt(SumSquares(v_)));
  for (float& x : v_) x *= scale;
}

void CurvatureEstimator::ZeroPadding(std::vector<float>& x) const {
  for (const auto& [begin, end] : padding_) {
    std::fill(x.begin() + begin, x.begin() + end, 0.0f);
  }
}

bool CurvatureEstimator::LossAndBackward(Model& model, v1::Loss loss,
                                         const int32_t* labels,
                                         const float* targets) {
  Net& net = model.train_net();
  const LossResult r =
      ComputeLoss(loss, net.output(), net.batch(), model.output_units(), labels,
                  targets, net.diff_output());
  net.Backward();
  return std::isfinite(r.loss);
}

bool CurvatureEstimator::StepCrossed() const {
  for (const KinkLayer& k : kinks_) {
    if (!k.step) continue;
    int crossed = 0;
#pragma omp simd reduction(| : crossed)
    for (int64_t i = 0; i < k.size; ++i) {
      crossed |= (k.z[i] > 0.0f) != (k.z_saved[i] > 0.0f);
    }
    if (crossed != 0) return true;
  }
  return false;
}

int64_t CurvatureEstimator::PinKinks() {
  int64_t pinned = 0;
  for (const KinkLayer& k : kinks_) {
    if (k.step) continue;
    float* z = k.z;
    const float* z_saved = k.z_saved;
#pragma omp simd reduction(+ : pinned)
    for (int64_t i = 0; i < k.size; ++i) {
      const bool crossed = (z[i] > 0.0f) != (z_saved[i] > 0.0f);
      z[i] = crossed ? z_saved[i] : z[i];
      pinned += crossed;
    }
  }
  return pinned;
}

bool CurvatureEstimator::GradientPair(Model& model, v1::Loss loss,
                                      const int32_t* labels,
                                      const float* targets, float& step) {
  Net& net = model.train_net();
  for (;;) {
    SetWeights(step);
    net.Forward();
    if (halvings_ < kMaxHalvings && StepCrossed()) {
      step *= 0.5f;
      ++halvings_;
      continue;
    }
    pinned_ += PinKinks();
    const bool plus_finite = LossAndBackward(model, loss, labels, targets);
    int64_t offset = 0;
    for (const ParamTensor& t : tensors_) {
      std::memcpy(g_plus_.data() + offset, t.grad, t.size * sizeof(float));
      offset += t.size;
    }
    SetWeights(-step);
    net.Forward();
    if (halvings_ < kMaxHalvings && StepCrossed()) {
      step *= 0.5f;
      ++halvings_;
      continue;
    }
    pinned_ += PinKinks();
    return LossAndBackward(model, loss, labels, targets) && plus_finite;
  }
}

absl::StatusOr<double> CurvatureEstimator::LargestEigenvalue(
    Model& model, v1::Loss loss, const int32_t* labels, const float* targets,
    int iterations, uint64_t seed) {
  if (&model != model_) {
    return absl::InvalidArgumentError(
        "curvature: the model is not the one the estimator was created for");
  }
  if (iterations < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "curvature: iterations must be at least 1, got ", iterations));
  }
  if (loss == v1::MSE ? targets == nullptr : labels == nullptr) {
    return absl::InvalidArgumentError(
        "curvature: the batch's labels (or targets for MSE) are missing");
  }
  Save();
  float step = static_cast<float>(
      relative_step_ * std::max(1.0, std::sqrt(SumSquares(weights_))));
  halvings_ = 0;
  pinned_ = 0;
  FillRandomDirection(seed);

  double eigenvalue = 0;
  absl::Status failure;
  const absl::Status status = CatchDnnlErrors("estimating curvature", [&] {
    for (int k = 0; k < iterations; ++k) {
      const bool finite = GradientPair(model, loss, labels, targets, step);
      DifferenceSums sums;
      int64_t offset = 0;
      for (const ParamTensor& t : tensors_) {
        AddDifference(weights_.data() + offset, v_.data() + offset, step,
                      t.value, t.grad, g_plus_.data() + offset, t.size, sums);
        offset += t.size;
      }
      if (!finite || !std::isfinite(sums.d_dot_dg) ||
          !std::isfinite(sums.dg_sq)) {
        failure = absl::FailedPreconditionError(absl::StrCat(
            "curvature: non-finite loss or gradient at power iteration ",
            k + 1));
        return;
      }
      if (sums.d_sq == 0 || sums.dg_sq == 0) {  // H v = 0: flat along v
        eigenvalue = 0;
        return;
      }
      eigenvalue = sums.d_dot_dg / sums.d_sq;  // Rayleigh quotient of d
      const float scale = static_cast<float>(1.0 / std::sqrt(sums.dg_sq));
      for (int64_t j = 0; j < size_; ++j) v_[j] = g_plus_[j] * scale;
      ZeroPadding(v_);
    }
  });
  Restore();
  if (!status.ok()) return status;
  if (!failure.ok()) return failure;
  return eigenvalue;
}

}  // namespace gradwatch::engine

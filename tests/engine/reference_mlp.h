#ifndef GRADWATCH_TESTS_ENGINE_REFERENCE_MLP_H_
#define GRADWATCH_TESTS_ENGINE_REFERENCE_MLP_H_

#include <cstdint>
#include <vector>

#include "gradwatch/v1/spec.pb.h"

namespace gradwatch::engine {

// A naive double-precision multilayer perceptron written as plain loops,
// the yardstick for the oneDNN engine in tests. It follows spec.proto
// literally: Z = X W + b with W row-major [inputs][units], batch norm in
// training mode with the batch mean and the biased batch variance (epsilon
// 1e-5), every Activation with its exact derivative, and the losses as
// documented in engine/loss.h. Slow on purpose: every value is one obvious
// formula. Not synchronized; a plain value type.

inline constexpr double kReferenceBatchNormEpsilon = 1e-5;

// One dense layer's parameters in LayerParameters' plain layout.
struct ReferenceLayer {
  gradwatch::v1::LayerSpec spec;  // activation, slope, alpha, batch_norm
  int inputs = 0;
  int units = 0;
  std::vector<double> weights;  // [inputs][units]
  std::vector<double> bias;     // [units]
  // [units] each when the layer has batch norm, empty otherwise.
  std::vector<double> bn_scale, bn_shift, bn_running_mean, bn_running_var;

  bool has_bn() const;
  bool bn_before() const;
  bool bn_after() const;
};

// The parameter tensors of a layer, in the engine's ParamTensors order.
enum class ParamKind { kWeights, kBias, kBnScale, kBnShift };

// One layer's values in a forward pass, [batch][units] row-major, named as
// engine/net.h's LayerActivations.
struct ReferenceLayerTrace {
  std::vector<double> fc_dst;  // X W + b
  std::vector<double> z;       // the activation's input
  std::vector<double> act;     // f(z)
  std::vector<double> out;     // what the next layer reads
  // The batch-norm statistics used: the batch's (biased variance) in
  // training mode, the running ones in inference mode.
  std::vector<double> bn_mean, bn_var;
};

struct ReferenceTrace {
  int batch = 0;
  std::vector<double> input;  // [batch][input_features]
  std::vector<ReferenceLayerTrace> layers;

  const std::vector<double>& output() const { return layers.back().out; }
};

// Gradients of the loss for one layer, plain layout as ReferenceLayer.
struct ReferenceLayerGradients {
  std::vector<double> weights, bias, bn_scale, bn_shift;
  // dL/d(out) and dL/d(z) of the layer, [batch][units].
  std::vector<double> diff_out, diff_z;

  std::vector<double>& Get(ParamKind kind);
  const std::vector<double>& Get(ParamKind kind) const;
};

// What the loss compares the output with: class labels (CROSS_ENTROPY,
// BINARY_CROSS_ENTROPY) or targets [batch][width] (MSE).
struct ReferenceTargets {
  std::vector<int32_t> labels;
  std::vector<double> targets;
};

enum class BatchNormStats { kBatch, kRunning };

// f(z) and f'(z) of a layer's activation (ACTIVATION_UNSPECIFIED is LINEAR).
double Activate(const gradwatch::v1::LayerSpec& spec, double z);
double ActivationDerivative(const gradwatch::v1::LayerSpec& spec, double z);

// True for activations whose derivative jumps at z = 0 (RELU, LEAKY_RELU,
// ELU, STEP): finite differences are meaningless across that point.
bool HasKinkAtZero(gradwatch::v1::Activation activation);

// Mean loss of `out` ([batch][width]) and, if `d_out` is not null, dL/d(out),
// by engine/loss.h's formulas.
double ReferenceLoss(gradwatch::v1::Loss loss, const std::vector<double>& out,
                     int batch, int width, const ReferenceTargets& targets,
                     std::vector<double>* d_out);

class ReferenceMlp {
 public:
  ReferenceMlp(int input_features, std::vector<ReferenceLayer> layers);

  // The model of `model.layers` starting from `model.initial_weights` (one
  // entry per layer; omitted bn_* take 1, 0, 0, 1 as spec.proto says).
  static ReferenceMlp FromModelSpec(const gradwatch::v1::ModelSpec& model,
                                    int input_features);

  int input_features() const { return input_features_; }
  int output_units() const { return layers_.back().units; }
  std::vector<ReferenceLayer>& layers() { return layers_; }
  const std::vector<ReferenceLayer>& layers() const { return layers_; }
  std::vector<double>& Param(int layer, ParamKind kind);

  ReferenceTrace Forward(const std::vector<double>& x, int batch,
                         BatchNormStats stats) const;

  // Back-propagates `diff_output` (dL/d(output)) through a training-mode
  // trace of this model.
  std::vector<ReferenceLayerGradients> Backward(
      const ReferenceTrace& trace,
      const std::vector<double>& diff_output) const;

  // The batch loss as a function of the current parameters (training-mode
  // batch norm), for finite differences.
  double BatchLoss(gradwatch::v1::Loss loss, const std::vector<double>& x,
                   int batch, const ReferenceTargets& targets) const;

  // For every unit and sample of the layers with a kinked activation,
  // whether z > 0: two parameter values with the same pattern lie on the
  // same smooth piece of the loss.
  std::vector<bool> KinkPattern(const std::vector<double>& x, int batch) const;

 private:
  int input_features_;
  std::vector<ReferenceLayer> layers_;
};

}  // namespace gradwatch::engine

#endif  // GRADWATCH_TESTS_ENGINE_REFERENCE_MLP_H_

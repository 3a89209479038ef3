#include "engine/stats_collector.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/onednn_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gradwatch::engine {
namespace {

using ::testing::ElementsAre;

// A spec with every field the model and the collector read set explicitly.
struct LayerDef {
  const char* name;
  int units;
  v1::Activation activation;
  v1::LayerSpec::BatchNorm batch_norm = v1::LayerSpec::NONE;
};

v1::JobSpec MakeSpec(const std::vector<LayerDef>& layers, int dead_window) {
  v1::JobSpec spec;
  for (const LayerDef& def : layers) {
    v1::LayerSpec* layer = spec.mutable_model()->add_layers();
    layer->set_name(def.name);
    layer->set_units(def.units);
    layer->set_activation(def.activation);
    layer->set_batch_norm(def.batch_norm);
    layer->mutable_init()->set_scheme(v1::InitSpec::XAVIER_UNIFORM);
    layer->mutable_init()->set_gain(1.0);
  }
  spec.mutable_training()->set_seed(5);
  v1::MonitoringSpec* monitoring = spec.mutable_monitoring();
  monitoring->set_dead_window(dead_window);
  monitoring->set_saturation_eps(1e-3);
  monitoring->mutable_histograms()->set_bins(8);
  monitoring->mutable_histograms()->set_min(-4.0f);
  monitoring->mutable_histograms()->set_max(4.0f);
  return spec;
}

std::unique_ptr<Model> MakeModel(const v1::JobSpec& spec, int inputs,
                                 int batch) {
  auto model = Model::Create(spec, inputs, batch);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *std::move(model) : nullptr;
}

// One real step's forward and backward pass on seeded inputs.
void ForwardBackward(Model& model, uint32_t seed) {
  Net& net = model.train_net();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  for (int i = 0; i < net.batch() * model.input_features(); ++i) {
    net.input()[i] = uniform(rng);
  }
  net.Forward();
  for (int i = 0; i < net.batch() * model.output_units(); ++i) {
    net.diff_output()[i] = uniform(rng) - 0.5f;
  }
  net.Backward();
}

// Layer 0 of a RELU layer: the units in `dead` get z = -1 on every row,
// the others z = 1 on row 0 only.
void PlantDeadUnits(Model& model, const std::set<int>& dead) {
  const Net& net = model.train_net();
  const int units = model.params()[0].units;
  float* z = Data(net.layer(0).z);
  float* a = Data(net.layer(0).act);
  for (int r = 0; r < net.batch(); ++r) {
    for (int j = 0; j < units; ++j) {
      const float v = dead.count(j) == 0 && r == 0 ? 1.0f : -1.0f;
      z[r * units + j] = v;
      a[r * units + j] = v > 0 ? v : 0.0f;
    }
  }
}

// A collected step's forward pass writes ReLU layers' A in the collector
// (Net::ForwardActivating): the same A as oneDNN's primitive, and the same
// figures as the statistics of Forward's buffers, for every placement of
// batch norm, on one thread and split.
TEST(StatsCollectorTest, WritingTheActivationGivesTheSameBuffersAndFigures) {
  for (const int batch : {5, 300}) {  // 300 x 256 entries split the work
    SCOPED_TRACE(testing::Message() << "batch " << batch);
    const v1::JobSpec spec = MakeSpec(
        {{"relu", 256, v1::RELU, v1::LayerSpec::BEFORE_ACTIVATION},
         {"leaky", 256, v1::LEAKY_RELU, v1::LayerSpec::AFTER_ACTIVATION},
         {"plain", 256, v1::RELU},
         {"tanh", 16, v1::TANH},
         {"out", 3, v1::LINEAR}},
        4);
    v1::JobSpec leaky = spec;
    leaky.mutable_model()->mutable_layers(1)->set_negative_slope(0.1f);
    auto model = MakeModel(leaky, 7, batch);
    ASSERT_NE(model, nullptr);
    Net& net = model->train_net();
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int i = 0; i < batch * 7; ++i) net.input()[i] = normal(rng);

    v1::StepStats stats[2];
    std::vector<std::vector<float>> activations[2];
    for (const bool writing : {false, true}) {
      StatsCollector collector(leaky.monitoring(), *model);
      if (writing) {
        net.ForwardActivating(collector);
      } else {
        net.Forward();
      }
      collector.CollectActivations();
      collector.Collect(*model, {}, &stats[writing ? 1 : 0]);
      for (int l = 0; l < net.num_layers(); ++l) {
        const dnnl::memory& act = net.layer(l).act;
        const float* data = Data(act);
        activations[writing ? 1 : 0].emplace_back(
            data, data + act.get_desc().get_size() / sizeof(float));
      }
    }
    // Bit for bit (-0 and +0 differ).
    for (int l = 0; l < net.num_layers(); ++l) {
      ASSERT_EQ(activations[0][l].size(), activations[1][l].size());
      EXPECT_EQ(0,
                std::memcmp(activations[0][l].data(), activations[1][l].data(),
                            activations[0][l].size() * sizeof(float)))
          << "layer " << l;
    }
    EXPECT_EQ(stats[0].SerializeAsString(), stats[1].SerializeAsString());
    // Both sides of the kink in A: positive entries, and zeros (ReLU) or
    // negative ones (leaky).
    for (const int l : {0, 1, 2}) {
      const std::vector<float>& a = activations[1][l];
      const auto positive =
          std::count_if(a.begin(), a.end(), [](float v) { return v > 0; });
      const auto other = l == 1 ? std::count_if(a.begin(), a.end(),
                                                [](float v) { return v < 0; })
                                : std::count(a.begin(), a.end(), 0.0f);
      EXPECT_GT(positive, 0) << "layer " << l;
      EXPECT_GT(other, 0) << "layer " << l;
    }
  }
}

TEST(StatsCollectorTest, WindowRevivedAndNewlyDeadOverSteps) {
  const int kWindow = 3;
  const v1::JobSpec spec =
      MakeSpec({{"hidden", 4, v1::RELU}, {"out", 2, v1::LINEAR}}, kWindow);
  auto model = MakeModel(spec, 2, 3);
  ASSERT_NE(model, nullptr);
  ForwardBackward(*model, 1);
  StatsCollector collector(spec.monitoring(), *model);

  const std::vector<std::set<int>> dead = {
      {0, 1}, {0, 1}, {0, 1, 2}, {0, 2}, {0, 2}, {}, {3}, {3}, {3}};
  const std::vector<int> want_window = {0, 0, 2, 1, 2, 0, 0, 0, 1};
  const std::vector<int> want_newly = {0, 0, 2, 0, 1, 0, 0, 0, 1};
  const std::vector<int> want_revived = {0, 0, 0, 1, 0, 2, 0, 0, 0};
  v1::StepStats stats;
  std::set<int> previous_window;
  for (size_t t = 0; t < dead.size(); ++t) {
    PlantDeadUnits(*model, dead[t]);
    collector.Collect(*model, {}, &stats);
    const v1::LayerStats& layer = stats.layers(0);
    SCOPED_TRACE(t);
    EXPECT_EQ(layer.dead_units(), dead[t].size());
    EXPECT_DOUBLE_EQ(layer.dead_ratio(), dead[t].size() / 4.0);
    EXPECT_EQ(layer.dead_window_units(), want_window[t]);
    EXPECT_DOUBLE_EQ(layer.dead_window_ratio(), want_window[t] / 4.0);
    EXPECT_EQ(layer.newly_dead_units(), want_newly[t]);
    EXPECT_EQ(layer.revived_units(), want_revived[t]);

    // Naive: the units dead in each of the last W steps.
    std::set<int> window;
    if (t + 1 >= kWindow) {
      for (int j = 0; j < 4; ++j) {
        bool all = true;
        for (size_t s = t + 1 - kWindow; s <= t; ++s) {
          all = all && dead[s].count(j) > 0;
        }
        if (all) window.insert(j);
      }
    }
    int revived = 0, newly = 0;
    for (int j : previous_window) revived += window.count(j) == 0;
    for (int j : window) newly += previous_window.count(j) == 0;
    EXPECT_EQ(layer.dead_window_units(), window.size());
    EXPECT_EQ(layer.revived_units(), revived);
    EXPECT_EQ(layer.newly_dead_units(), newly);
    EXPECT_EQ(collector.dead_window_units(0), static_cast<int>(window.size()));
    previous_window = window;
  }
}

// Claim 1 of DESIGN.md measured on a real pass: a ReLU layer whose
// pre-activations are negative for every input is dead, and its weights
// (and those of the next layer, which only see zeros) get exactly zero
// gradient.
TEST(StatsCollectorTest, DeadLayerHasExactlyZeroGradients) {
  v1::JobSpec spec =
      MakeSpec({{"hidden", 5, v1::RELU}, {"out", 2, v1::LINEAR}}, 10);
  v1::LayerParameters* hidden = spec.mutable_model()->add_initial_weights();
  for (int i = 0; i < 3 * 5; ++i) hidden->add_weights(0.1f * (i % 4) - 0.1f);
  for (int j = 0; j < 5; ++j) hidden->add_bias(-10.0f);
  v1::LayerParameters* out = spec.mutable_model()->add_initial_weights();
  for (int i = 0; i < 5 * 2; ++i) out->add_weights(0.3f);
  out->add_bias(0.0f);
  out->add_bias(0.0f);
  auto model = MakeModel(spec, 3, 8);
  ASSERT_NE(model, nullptr);
  ForwardBackward(*model, 2);
  StatsCollector collector(spec.monitoring(), *model);
  v1::StepStats stats;
  collector.Collect(*model, {}, &stats);

  ASSERT_EQ(stats.layers_size(), 2);
  const v1::LayerStats& layer = stats.layers(0);
  EXPECT_EQ(layer.index(), 0u);
  EXPECT_EQ(layer.name(), "hidden");
  EXPECT_EQ(layer.activation(), v1::RELU);
  EXPECT_EQ(layer.units(), 5u);
  EXPECT_EQ(layer.dead_units(), 5u);
  EXPECT_DOUBLE_EQ(layer.dead_ratio(), 1.0);
  EXPECT_DOUBLE_EQ(layer.a_mean(), 0.0);
  EXPECT_DOUBLE_EQ(layer.a_std(), 0.0);
  EXPECT_DOUBLE_EQ(layer.z_negative_fraction(), 1.0);
  EXPECT_LT(layer.z_max(), -8.0);
  EXPECT_FALSE(layer.has_z_histogram());
  EXPECT_FALSE(layer.has_dead_dataset_ratio());
  ASSERT_EQ(layer.params_size(), 2);
  for (const v1::TensorStats& t : layer.params()) {
    EXPECT_DOUBLE_EQ(t.grad_zero_fraction(), 1.0) << t.name();
    EXPECT_DOUBLE_EQ(t.grad_l2_norm(), 0.0) << t.name();
    EXPECT_EQ(t.grad_exponents().counts_size(), 0) << t.name();
  }
  EXPECT_EQ(layer.params(0).name(), "weights");
  EXPECT_EQ(layer.params(0).size(), 15u);  // padding of the layout excluded
  EXPECT_EQ(layer.params(1).name(), "bias");
  EXPECT_EQ(layer.params(1).size(), 5u);

  const v1::LayerStats& output = stats.layers(1);
  EXPECT_EQ(output.dead_units(), 0u);  // LINEAR never dies
  EXPECT_DOUBLE_EQ(output.params(0).grad_zero_fraction(), 1.0);
  // The output bias still learns: its gradient is the batch sum of dL/dZ.
  const LayerParams& p = model->params()[1];
  double sum_squares = 0;
  for (int j = 0; j < 2; ++j) {
    const double g = Data(p.diff_bias)[j];
    sum_squares += g * g;
  }
  EXPECT_GT(sum_squares, 0.0);
  EXPECT_NEAR(output.params(1).grad_l2_norm(), std::sqrt(sum_squares),
              1e-6 * std::sqrt(sum_squares));
}

TEST(StatsCollectorTest, GradientAndUpdateFiguresPerTensor) {
  const v1::JobSpec spec =
      MakeSpec({{"a", 7, v1::TANH}, {"b", 3, v1::LINEAR}}, 10);
  auto model = MakeModel(spec, 5, 6);
  ASSERT_NE(model, nullptr);
  // Both weights buffers are padded (blocked layouts): their gradients are
  // swept from a copy of the real entries.
  ASSERT_GT(model->params()[0].weights_padding, 0);
  ASSERT_GT(model->params()[1].weights_padding, 0);
  ForwardBackward(*model, 3);
  StatsCollector collector(spec.monitoring(), *model);
  // The weight norm is the one the optimizer summed as it wrote the
  // weights: given here as a figure no other pass would produce.
  std::vector<UpdateResult> updates(4);
  updates[0] = {4.0, 6.25, 0.01, false};  // ratio 0.1 / 2
  updates[1] = {0.0, 0.5, 0.25, false};   // zero weights: ratio 0
  updates[2] = {9.0, 9.0, 0.0, true};
  updates[3] = {1.0, 4.0, 1.0, false};
  v1::StepStats stats;
  collector.Collect(*model, updates, &stats);
  for (int k = 0; k < 4; ++k) {
    EXPECT_DOUBLE_EQ(stats.layers(k / 2).params(k % 2).weight_l2_norm(),
                     std::sqrt(updates[k].weight_sq_after))
        << k;
  }
  // Without the optimizer's figures, the norm is summed from the weights.
  v1::StepStats no_update_stats;
  collector.Collect(*model, {}, &no_update_stats);

  const std::vector<ParamTensor> tensors = model->ParamTensors();
  const auto plain = model->Export();
  ASSERT_TRUE(plain.ok());
  int k = 0;
  for (int l = 0; l < 2; ++l) {
    const LayerParams& p = model->params()[l];
    for (int t = 0; t < 2; ++t, ++k) {
      const v1::TensorStats& s = stats.layers(l).params(t);
      // Naive figures over the real entries (the padding is all zero).
      const ParamTensor& tensor = tensors[k];
      double g_sq = 0, g_abs = 0, g_max = 0, w_sq = 0;
      for (int64_t i = 0; i < tensor.size; ++i) {
        const double g = tensor.grad[i];
        g_sq += g * g;
        g_abs += std::fabs(g);
        g_max = std::max(g_max, std::fabs(g));
      }
      const auto& w =
          t == 0 ? plain->layers(l).weights() : plain->layers(l).bias();
      for (float v : w) w_sq += static_cast<double>(v) * v;
      const int64_t real = t == 0 ? int64_t{p.inputs} * p.units : p.units;
      int64_t zeros = t == 0 ? -p.weights_padding : 0;
      for (int64_t i = 0; i < tensor.size; ++i) zeros += tensor.grad[i] == 0;
      uint64_t binned = 0;
      for (uint64_t count : s.grad_exponents().counts()) binned += count;
      SCOPED_TRACE(k);
      EXPECT_EQ(s.size(), static_cast<uint64_t>(real));
      EXPECT_DOUBLE_EQ(s.grad_zero_fraction(),
                       static_cast<double>(zeros) / real);
      EXPECT_EQ(binned, static_cast<uint64_t>(real - zeros));
      // The sweep sums in f32 within blocks: ~1e-7 relative.
      EXPECT_NEAR(s.grad_l2_norm(), std::sqrt(g_sq), 1e-6 * std::sqrt(g_sq));
      EXPECT_NEAR(s.grad_mean_abs(), g_abs / real, 1e-6 * g_abs / real);
      EXPECT_DOUBLE_EQ(s.grad_max_abs(), g_max);
      EXPECT_NEAR(no_update_stats.layers(l).params(t).weight_l2_norm(),
                  std::sqrt(w_sq), 1e-9);
    }
  }
  EXPECT_DOUBLE_EQ(stats.layers(0).params(0).update_ratio(), 0.05);
  EXPECT_DOUBLE_EQ(stats.layers(0).params(1).update_ratio(), 0.0);
  EXPECT_DOUBLE_EQ(stats.layers(1).params(0).update_ratio(), 0.0);
  EXPECT_DOUBLE_EQ(stats.layers(1).params(1).update_ratio(), 1.0);
  EXPECT_FALSE(stats.layers(0).params(0).unchanged());
  EXPECT_TRUE(stats.layers(1).params(0).unchanged());
  // TANH with small weights: nothing dead or saturated.
  EXPECT_EQ(stats.layers(0).dead_units(), 0u);
  EXPECT_EQ(stats.layers(0).saturated_units(), 0u);
}

// The split collection (gradients before the update, the rest after it)
// fills the same message as Collect, and returns the global gradient norm.
TEST(StatsCollectorTest, CollectGradientsReturnsTheGlobalNorm) {
  const v1::JobSpec spec =
      MakeSpec({{"bn", 6, v1::RELU, v1::LayerSpec::BEFORE_ACTIVATION},
                {"out", 3, v1::LINEAR}},
               10);
  auto model = MakeModel(spec, 4, 8);
  ASSERT_NE(model, nullptr);
  ForwardBackward(*model, 8);
  double sum_squares = 0;
  for (const ParamTensor& t : model->ParamTensors()) {
    for (int64_t i = 0; i < t.size; ++i) {
      sum_squares += static_cast<double>(t.grad[i]) * t.grad[i];
    }
  }
  const std::vector<UpdateResult> updates(6,
                                          UpdateResult{2.0, 3.0, 0.5, false});

  StatsCollector split(spec.monitoring(), *model);
  v1::StepStats split_stats;
  const double norm = split.CollectGradients(&split_stats);
  EXPECT_GT(norm, 0.0);
  EXPECT_NEAR(norm, std::sqrt(sum_squares), 1e-6 * norm);
  EXPECT_EQ(split_stats.layers(0).params_size(), 4);
  EXPECT_EQ(split_stats.layers(0).params(2).name(), "bn_scale");
  split.CollectLayers(*model, updates, &split_stats);

  StatsCollector whole(spec.monitoring(), *model);
  v1::StepStats whole_stats;
  whole.Collect(*model, updates, &whole_stats);
  EXPECT_EQ(split_stats.SerializeAsString(), whole_stats.SerializeAsString());
  EXPECT_DOUBLE_EQ(whole_stats.layers(1).params(0).update_ratio(),
                   std::sqrt(0.5 / 2.0));
}

// CollectActivations keeps the figures of the Forward it followed, whatever
// the net's buffers hold by the time CollectLayers reports them; once
// reported, the next CollectLayers computes its own.
TEST(StatsCollectorTest, CollectActivationsReportsTheForwardItFollowed) {
  const v1::JobSpec spec =
      MakeSpec({{"hidden", 5, v1::RELU}, {"out", 2, v1::LINEAR}}, 4);
  auto model = MakeModel(spec, 3, 6);
  ASSERT_NE(model, nullptr);
  ForwardBackward(*model, 3);
  StatsCollector collector(spec.monitoring(), *model);

  PlantDeadUnits(*model, {0, 2, 4});
  collector.CollectActivations();
  PlantDeadUnits(*model, {});
  v1::StepStats stats;
  collector.CollectLayers(*model, {}, &stats);
  EXPECT_EQ(stats.layers(0).dead_units(), 3u);
  EXPECT_DOUBLE_EQ(stats.layers(0).z_max(), 1.0);
  EXPECT_DOUBLE_EQ(stats.layers(0).z_negative_fraction(), 1.0 - 2.0 / 30.0);

  collector.CollectLayers(*model, {}, &stats);
  EXPECT_EQ(stats.layers(0).dead_units(), 0u);
  EXPECT_DOUBLE_EQ(stats.layers(0).z_negative_fraction(), 1.0 - 5.0 / 30.0);
}

// A net large enough for CollectActivations to split every layer among the
// threads: the figures are those of one thread, layer for layer.
TEST(StatsCollectorTest, ActivationFiguresDoNotDependOnTheThreadCount) {
  const v1::JobSpec spec = MakeSpec({{"a", 384, v1::RELU},
                                     {"b", 256, v1::TANH},
                                     {"c", 300, v1::SIGMOID},
                                     {"d", 200, v1::ELU},
                                     {"out", 7, v1::LINEAR}},
                                    4);
  auto model = MakeModel(spec, 16, 96);
  ASSERT_NE(model, nullptr);
  ForwardBackward(*model, 11);

  std::string serialized[3];
  for (int threads : {1, 2, 3}) {
    ConfigureComputeThreads(threads, /*flush_denormals=*/false);
    StatsCollector collector(spec.monitoring(), *model);
    collector.CollectActivations();
    v1::StepStats stats;
    collector.CollectLayers(*model, {}, &stats);
    ASSERT_EQ(stats.layers_size(), 5);
    EXPECT_GT(stats.layers(3).a_std(), 0.0);
    EXPECT_GT(stats.layers(4).z_std(), 0.0);
    // Without updates the weight norms are summed afresh, split among the
    // threads from 65,536 entries: only the activation figures are
    // compared.
    for (v1::LayerStats& layer : *stats.mutable_layers()) layer.clear_params();
    serialized[threads - 1] = stats.SerializeAsString();
  }
  ConfigureComputeThreads(1, /*flush_denormals=*/false);
  EXPECT_EQ(serialized[0], serialized[1]);
  EXPECT_EQ(serialized[0], serialized[2]);
}

TEST(StatsCollectorTest, BatchNormTensorsAndNormalizedZ) {
  const v1::JobSpec spec =
      MakeSpec({{"bn", 6, v1::RELU, v1::LayerSpec::BEFORE_ACTIVATION},
                {"out", 2, v1::LINEAR}},
               10);
  auto model = MakeModel(spec, 4, 16);
  ASSERT_NE(model, nullptr);
  ForwardBackward(*model, 4);
  StatsCollector collector(spec.monitoring(), *model);
  v1::StepStats stats;
  collector.Collect(*model, {}, &stats);
  const v1::LayerStats& layer = stats.layers(0);
  std::vector<std::string> names;
  for (const auto& t : layer.params()) names.push_back(t.name());
  EXPECT_THAT(names, ElementsAre("weights", "bias", "bn_scale", "bn_shift"));
  // Z is the normalized value (scale 1, shift 0): mean 0, std ~1.
  EXPECT_NEAR(layer.z_mean(), 0.0, 1e-5);
  EXPECT_NEAR(layer.z_std(), 1.0, 1e-3);
  EXPECT_EQ(stats.layers(1).params_size(), 2);
  // Every unit is positive on some sample after normalization.
  EXPECT_EQ(layer.dead_units(), 0u);
}

TEST(StatsCollectorTest, HistogramAndMessageReuse) {
  v1::JobSpec spec =
      MakeSpec({{"h", 4, v1::SIGMOID}, {"out", 2, v1::LINEAR}}, 10);
  spec.mutable_monitoring()->mutable_histograms()->set_enabled(true);
  auto model = MakeModel(spec, 3, 5);
  ASSERT_NE(model, nullptr);
  ForwardBackward(*model, 5);
  StatsCollector collector(spec.monitoring(), *model);
  v1::StepStats stats;
  collector.Collect(*model, {}, &stats);
  const v1::LayerStats* first_layer = &stats.layers(0);
  const v1::TensorStats* first_tensor = &stats.layers(0).params(0);

  const v1::Histogram& h = stats.layers(0).z_histogram();
  EXPECT_EQ(h.min(), -4.0f);
  EXPECT_EQ(h.max(), 4.0f);
  ASSERT_EQ(h.counts_size(), 8);
  uint64_t total = 0;
  for (uint64_t c : h.counts()) total += c;
  EXPECT_EQ(total, 5u * 4);

  // The caller clears and refills one message: the entries are reused.
  stats.Clear();
  ForwardBackward(*model, 6);
  collector.Collect(*model, {}, &stats);
  EXPECT_EQ(&stats.layers(0), first_layer);
  EXPECT_EQ(&stats.layers(0).params(0), first_tensor);
  EXPECT_EQ(stats.layers(0).z_histogram().counts_size(), 8);
}

// Unit 2 is inactive on every real example but active on the zero rows
// that pad the last inference chunk: only real rows may count.
TEST(StatsCollectorTest, SweepDatasetCountsOnlyRealRows) {
  v1::JobSpec spec = MakeSpec({{"h", 4, v1::RELU}, {"out", 2, v1::LINEAR}}, 10);
  v1::LayerParameters* hidden = spec.mutable_model()->add_initial_weights();
  // weights[i * units + j]: input i to unit j.
  for (float w : {1.0f, 1.0f, -10.0f, 0.0f,   // input 0
                  1.0f, 0.0f, 0.0f, 1.0f}) {  // input 1
    hidden->add_weights(w);
  }
  for (float b : {-100.0f, 0.0f, 1.0f, -0.5f}) hidden->add_bias(b);
  auto model = MakeModel(spec, 2, 4);
  ASSERT_NE(model, nullptr);

  Dataset train;
  train.rows = Model::kInferenceChunk + 44;
  train.features = 2;
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> x0(0.2f, 1.0f), x1(0.0f, 1.0f);
  for (int64_t r = 0; r < train.rows; ++r) {
    train.x.push_back(x0(rng));
    train.x.push_back(x1(rng));
    train.labels.push_back(0);
  }
  // Naive: units whose z = x W + b is <= 0 on every example.
  const float w[2][4] = {{1, 1, -10, 0}, {1, 0, 0, 1}};
  const float b[4] = {-100, 0, 1, -0.5f};
  int naive_dead = 0;
  for (int j = 0; j < 4; ++j) {
    bool dead = true;
    for (int64_t r = 0; r < train.rows; ++r) {
      const float z =
          train.x[2 * r] * w[0][j] + train.x[2 * r + 1] * w[1][j] + b[j];
      dead = dead && z <= 0;
    }
    naive_dead += dead;
  }
  EXPECT_EQ(naive_dead, 2);

  StatsCollector collector(spec.monitoring(), *model);
  v1::StepStats stats;
  ASSERT_TRUE(collector.SweepDataset(*model, train, &stats).ok());
  ASSERT_EQ(stats.layers_size(), 2);
  EXPECT_EQ(stats.layers(0).name(), "h");
  EXPECT_EQ(stats.layers(0).units(), 4u);
  EXPECT_DOUBLE_EQ(stats.layers(0).dead_dataset_ratio(), naive_dead / 4.0);
  EXPECT_DOUBLE_EQ(stats.layers(1).dead_dataset_ratio(), 0.0);

  // A later Collect clears the sweep's figure; a sweep after it sets it.
  ForwardBackward(*model, 7);
  collector.Collect(*model, {}, &stats);
  EXPECT_FALSE(stats.layers(0).has_dead_dataset_ratio());
  ASSERT_TRUE(collector.SweepDataset(*model, train, &stats).ok());
  EXPECT_DOUBLE_EQ(stats.layers(0).dead_dataset_ratio(), 0.5);
  EXPECT_EQ(stats.layers(0).params_size(), 2);  // Collect's figures kept

  Dataset wrong = train;
  wrong.features = 3;
  EXPECT_EQ(collector.SweepDataset(*model, wrong, &stats).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gradwatch::engine

#include "engine/synthetic_data.h"

#include <cmath>
#include <cstdint>
#include <new>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/random.h"

namespace gradwatch::engine {
namespace {

using gradwatch::v1::SyntheticData;

constexpr double kPi = 3.14159265358979323846;
constexpr int kTeacherHidden = 32;

// The spec with every default applied and every range checked.
struct Params {
  SyntheticData::Kind kind;
  int64_t samples;
  int features;
  int classes;
  double noise;
  uint64_t seed;
};

// `got` is int64_t or double; StrCat prints a double with six digits only,
// which would misquote large integers.
template <typename T>
absl::Status OutOfRange(absl::string_view field, absl::string_view range,
                        T got) {
  return absl::InvalidArgumentError(absl::StrCat(
      "data.synthetic.", field, " must be in ", range, ", got ", got));
}

bool IsPlanar(SyntheticData::Kind kind) {
  return kind == SyntheticData::SPIRALS || kind == SyntheticData::XOR ||
         kind == SyntheticData::MOONS || kind == SyntheticData::CIRCLES;
}

absl::StatusOr<Params> Resolve(const SyntheticData& spec) {
  Params p;
  p.kind = spec.kind();
  if (p.kind == SyntheticData::KIND_UNSPECIFIED ||
      !SyntheticData::Kind_IsValid(p.kind)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data.synthetic.kind must be one of SPIRALS, XOR, MOONS, CIRCLES, "
        "BLOBS, TEACHER_STUDENT, got ",
        static_cast<int>(p.kind)));
  }
  p.samples = spec.samples() == 0 ? 1000 : spec.samples();
  if (p.samples < 4 || p.samples > 1000000) {
    return OutOfRange("samples", "[4, 1000000]", p.samples);
  }
  const uint32_t features = spec.features();
  if (IsPlanar(p.kind)) {
    if (features != 0 && features != 2) {
      return OutOfRange("features", "{0, 2} for this kind", int64_t{features});
    }
    p.features = 2;
  } else {
    if (features > 4096) {
      return OutOfRange("features", "[1, 4096]", int64_t{features});
    }
    p.features = features == 0 ? 2 : static_cast<int>(features);
  }
  const uint32_t classes = spec.classes();
  switch (p.kind) {
    case SyntheticData::SPIRALS:
    case SyntheticData::BLOBS:
      if (classes == 1 || classes > 1000) {
        return OutOfRange("classes", "[2, 1000]", int64_t{classes});
      }
      p.classes = classes == 0 ? 3 : static_cast<int>(classes);
      break;
    case SyntheticData::TEACHER_STUDENT:
      if (classes > 1024) {
        return OutOfRange("classes", "[1, 1024]", int64_t{classes});
      }
      p.classes = classes == 0 ? 1 : static_cast<int>(classes);
      break;
    default:
      if (classes != 0 && classes != 2) {
        return OutOfRange("classes", "{0, 2} for this kind", int64_t{classes});
      }
      p.classes = 2;
      break;
  }
  p.noise = spec.noise();
  if (!(p.noise >= 0.0 && p.noise <= 10.0)) {
    return OutOfRange("noise", "[0, 10]", p.noise);
  }
  p.seed = spec.seed();
  return p;
}

// Rows of class k when row i has class i % classes.
int64_t ClassRows(const Params& p, int k) {
  return p.samples / p.classes + (k < p.samples % p.classes ? 1 : 0);
}

void Spirals(const Params& p, Dataset& d) {
  for (int64_t i = 0; i < p.samples; ++i) {
    const int k = d.labels[i];
    const double t = static_cast<double>(i / p.classes) / ClassRows(p, k);
    const double angle = 4.0 * t + 2.0 * kPi * k / p.classes;
    d.x[2 * i] = static_cast<float>(t * std::sin(angle));
    d.x[2 * i + 1] = static_cast<float>(t * std::cos(angle));
  }
}

void Xor(const Params& p, Dataset& d) {
  Rng rng(p.seed);
  for (int64_t i = 0; i < p.samples; ++i) {
    // A zero coordinate would put the point on the class boundary.
    double x0;
    do {
      x0 = rng.Uniform(-1.0, 1.0);
    } while (x0 == 0.0);
    double x1;
    do {
      x1 = rng.Uniform(-1.0, 1.0);
    } while (x1 == 0.0);
    if ((x0 * x1 > 0.0) != (d.labels[i] == 1)) x1 = -x1;
    d.x[2 * i] = static_cast<float>(x0);
    d.x[2 * i + 1] = static_cast<float>(x1);
  }
}

void Moons(const Params& p, Dataset& d) {
  for (int64_t i = 0; i < p.samples; ++i) {
    const int k = d.labels[i];
    const int64_t n = ClassRows(p, k);
    const double a = n > 1 ? kPi * static_cast<double>(i / 2) / (n - 1) : 0.0;
    if (k == 0) {
      d.x[2 * i] = static_cast<float>(std::cos(a));
      d.x[2 * i + 1] = static_cast<float>(std::sin(a));
    } else {
      d.x[2 * i] = static_cast<float>(1.0 - std::cos(a));
      d.x[2 * i + 1] = static_cast<float>(0.5 - std::sin(a));
    }
  }
}

void Circles(const Params& p, Dataset& d) {
  for (int64_t i = 0; i < p.samples; ++i) {
    const int k = d.labels[i];
    const double a = 2.0 * kPi * static_cast<double>(i / 2) / ClassRows(p, k);
    const double r = k == 0 ? 1.0 : 0.5;
    d.x[2 * i] = static_cast<float>(r * std::cos(a));
    d.x[2 * i + 1] = static_cast<float>(r * std::sin(a));
  }
}

void Blobs(const Params& p, Dataset& d) {
  Rng rng(p.seed);
  std::vector<double> centers(static_cast<size_t>(p.classes) * p.features);
  for (double& c : centers) c = rng.Uniform(-5.0, 5.0);
  for (int64_t i = 0; i < p.samples; ++i) {
    const double* center =
        &centers[static_cast<size_t>(d.labels[i]) * p.features];
    float* row = &d.x[i * p.features];
    for (int f = 0; f < p.features; ++f) {
      row[f] = static_cast<float>(center[f] + rng.Normal());
    }
  }
}

void TeacherStudent(const Params& p, Dataset& d) {
  Rng rng(p.seed);
  const int in = p.features;
  const int out = p.classes;
  std::vector<double> w1(static_cast<size_t>(in) * kTeacherHidden);
  std::vector<double> b1(kTeacherHidden);
  std::vector<double> w2(static_cast<size_t>(kTeacherHidden) * out);
  for (double& w : w1) w = rng.Normal(0.0, std::sqrt(1.0 / in));
  for (double& b : b1) b = rng.Normal(0.0, 0.1);
  for (double& w : w2) w = rng.Normal(0.0, std::sqrt(1.0 / kTeacherHidden));
  for (float& v : d.x) v = static_cast<float>(rng.Normal());

  std::vector<double> hidden(kTeacherHidden);
  for (int64_t i = 0; i < p.samples; ++i) {
    const float* row = &d.x[i * in];
    for (int u = 0; u < kTeacherHidden; ++u) {
      double z = b1[u];
      for (int f = 0; f < in; ++f) {
        z += static_cast<double>(row[f]) *
             w1[static_cast<size_t>(f) * kTeacherHidden + u];
      }
      hidden[u] = std::tanh(z);
    }
    float* target = &d.targets[i * out];
    for (int o = 0; o < out; ++o) {
      double y = 0.0;
      for (int u = 0; u < kTeacherHidden; ++u) {
        y += hidden[u] * w2[static_cast<size_t>(u) * out + o];
      }
      target[o] = static_cast<float>(y);
    }
  }
}

void AddNoise(double noise, uint64_t seed, std::vector<float>& values) {
  Rng rng(seed ^ kNoiseSeedMask);
  for (float& v : values) {
    v = static_cast<float>(static_cast<double>(v) + noise * rng.Normal());
  }
}

}  // namespace

absl::StatusOr<Dataset> GenerateSynthetic(const SyntheticData& spec) {
  absl::StatusOr<Params> params = Resolve(spec);
  if (!params.ok()) return params.status();
  const Params& p = *params;

  Dataset d;
  d.rows = p.samples;
  d.features = p.features;
  const bool regression = p.kind == SyntheticData::TEACHER_STUDENT;
  try {
    d.x.resize(static_cast<size_t>(p.samples) * p.features);
    if (regression) {
      d.target_width = p.classes;
      d.targets.resize(static_cast<size_t>(p.samples) * p.classes);
    } else {
      d.labels.resize(p.samples);
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("data.synthetic: cannot allocate ", p.samples, " x ",
                     p.features, " examples"));
  }
  for (int64_t i = 0; i < static_cast<int64_t>(d.labels.size()); ++i) {
    d.labels[i] = static_cast<int32_t>(i % p.classes);
  }

  switch (p.kind) {
    case SyntheticData::SPIRALS:
      Spirals(p, d);
      break;
    case SyntheticData::XOR:
      Xor(p, d);
      break;
    case SyntheticData::MOONS:
      Moons(p, d);
      break;
    case SyntheticData::CIRCLES:
      Circles(p, d);
      break;
    case SyntheticData::BLOBS:
      Blobs(p, d);
      break;
    case SyntheticData::TEACHER_STUDENT:
      TeacherStudent(p, d);
      break;
    default:
      break;  // rejected by Resolve
  }
  if (p.noise > 0.0) AddNoise(p.noise, p.seed, regression ? d.targets : d.x);
  return d;
}

}  // namespace gradwatch::engine

#include "client/plot.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace gradwatch::client {
namespace {

namespace v1 = ::gradwatch::v1;

constexpr double kWidth = 960;
constexpr double kPanelHeight = 230;
constexpr double kTop = 50;
constexpr double kLeft = 80;
constexpr double kRight = 170;  // room for the legend
constexpr double kGap = 40;     // between panels, for each panel's title
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                   "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                   "#bcbd22", "#17becf"};

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (step, value)
};

struct Panel {
  std::string title;
  bool log_y = false;
  std::vector<Series> series;
  std::optional<double> threshold;
};

std::string Escape(const std::string& text) {
  return absl::StrReplaceAll(
      text, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

std::string TickLabel(double value, bool log_y) {
  if (log_y) return absl::StrFormat("1e%d", static_cast<int>(value));
  return absl::StrFormat("%.3g", value);
}

// One panel at vertical offset `top`, the steps spanning [x_min, x_max].
std::string DrawPanel(const Panel& panel, double top, double x_min,
                      double x_max) {
  const double plot_width = kWidth - kLeft - kRight;
  // The y range: linear from 0 (or the minimum, if negative); log over the
  // decades of the positive values, zeros drawn on the floor.
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  bool has_zero = false;
  for (const Series& series : panel.series) {
    for (const auto& [step, value] : series.points) {
      if (!std::isfinite(value)) continue;
      if (panel.log_y && value <= 0) {
        has_zero = true;
        continue;
      }
      const double y = panel.log_y ? std::log10(value) : value;
      lo = std::min(lo, y);
      hi = std::max(hi, y);
    }
  }
  if (panel.threshold.has_value()) {
    lo = std::min(lo, *panel.threshold);
    hi = std::max(hi, *panel.threshold);
  }
  if (!std::isfinite(lo)) lo = hi = 0;
  if (panel.log_y) {
    lo = std::floor(lo) - (has_zero ? 1 : 0);
    hi = std::max(std::ceil(hi), lo + 1);
  } else {
    lo = std::min(lo, 0.0);
    if (hi <= lo) hi = lo + 1;
  }
  auto x_of = [&](double step) {
    return kLeft + (x_max > x_min ? (step - x_min) / (x_max - x_min) : 0.5) *
                       plot_width;
  };
  auto y_of = [&](double value) {
    double y = value;
    if (panel.log_y) y = value > 0 ? std::log10(value) : lo;
    return top + kPanelHeight - (y - lo) / (hi - lo) * kPanelHeight;
  };
  auto y_of_axis = [&](double axis) {
    return top + kPanelHeight - (axis - lo) / (hi - lo) * kPanelHeight;
  };

  std::string svg = absl::StrFormat(
      "<text x=\"%g\" y=\"%g\" class=\"title\">%s%s</text>\n", kLeft, top - 8,
      Escape(panel.title),
      has_zero ? " (exact zeros on the bottom line, marked 0)" : "");
  absl::StrAppend(&svg, absl::StrFormat("<rect x=\"%g\" y=\"%g\" width=\"%g\" "
                                        "height=\"%g\" class=\"frame\"/>\n",
                                        kLeft, top, plot_width, kPanelHeight));
  // y ticks: every decade on a log scale, five steps on a linear one.
  const int ticks = panel.log_y ? static_cast<int>(hi - lo) : 4;
  const int stride = std::max(1, ticks / 8);
  for (int i = 0; i <= ticks; i += stride) {
    const double axis = lo + (hi - lo) * i / ticks;
    const double y = y_of_axis(axis);
    absl::StrAppend(
        &svg,
        absl::StrFormat("<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" "
                        "class=\"grid\"/>\n<text x=\"%g\" y=\"%.1f\" "
                        "class=\"tick\" text-anchor=\"end\">%s</text>\n",
                        kLeft, y, kLeft + plot_width, y, kLeft - 6, y + 4,
                        // Only zeros sit on a log panel's floor.
                        (panel.log_y && has_zero && i == 0)
                            ? std::string("0")
                            : TickLabel(axis, panel.log_y)));
  }
  for (int i = 0; i <= 4; ++i) {
    const double step = x_min + (x_max - x_min) * i / 4;
    absl::StrAppend(&svg,
                    absl::StrFormat("<text x=\"%.1f\" y=\"%g\" class=\"tick\" "
                                    "text-anchor=\"middle\">%.0f</text>\n",
                                    x_of(step), top + kPanelHeight + 16, step));
  }
  if (panel.threshold.has_value()) {
    const double y = y_of(*panel.threshold);
    absl::StrAppend(
        &svg,
        absl::StrFormat("<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" "
                        "class=\"threshold\"/>\n<text x=\"%g\" y=\"%.1f\" "
                        "class=\"legend\" fill=\"#d62728\">alert threshold "
                        "%.3g</text>\n",
                        kLeft, y, kLeft + plot_width, y, kLeft + plot_width + 8,
                        y + 4, *panel.threshold));
  }
  for (size_t s = 0; s < panel.series.size(); ++s) {
    const Series& series = panel.series[s];
    const char* color = kColors[s % std::size(kColors)];
    std::string points;
    for (const auto& [step, value] : series.points) {
      if (!std::isfinite(value)) continue;
      absl::StrAppend(&points,
                      absl::StrFormat("%.1f,%.1f ", x_of(step), y_of(value)));
    }
    absl::StrAppend(&svg,
                    absl::StrFormat("<polyline points=\"%s\" stroke=\"%s\" "
                                    "class=\"series\"/>\n",
                                    points, color));
    absl::StrAppend(&svg,
                    absl::StrFormat("<text x=\"%g\" y=\"%g\" class=\"legend\" "
                                    "fill=\"%s\">%s</text>\n",
                                    kLeft + plot_width + 8, top + 14 + 16.0 * s,
                                    color, Escape(series.name)));
  }
  return svg;
}

}  // namespace

std::string PlotJobSvg(const std::vector<v1::JobEvent>& events,
                       const PlotOptions& options) {
  Panel loss{"loss (batch)", false, {{"loss", {}}}, std::nullopt};
  Panel dead{"dead ratio (units inactive on the whole batch)",
             false,
             {},
             options.dead_threshold};
  Panel grad{"weight gradient L2 norm (log scale)", true, {}, std::nullopt};
  Panel update{
      "update ratio ||dW|| / ||W|| (log scale)", true, {}, std::nullopt};
  // Per layer index: its series in each panel.
  std::map<uint32_t, std::string> names;
  std::map<uint32_t, Series> dead_of, grad_of, update_of;
  double x_min = std::numeric_limits<double>::infinity();
  double x_max = -std::numeric_limits<double>::infinity();
  for (const v1::JobEvent& event : events) {
    if (!event.has_stats()) continue;
    const v1::StepStats& stats = event.stats();
    const double step = static_cast<double>(stats.step());
    x_min = std::min(x_min, step);
    x_max = std::max(x_max, step);
    loss.series[0].points.emplace_back(step, stats.loss());
    for (const v1::LayerStats& layer : stats.layers()) {
      names[layer.index()] = layer.name().empty()
                                 ? absl::StrCat("layer ", layer.index())
                                 : absl::StrCat("layer ", layer.name());
      dead_of[layer.index()].points.emplace_back(step, layer.dead_ratio());
      for (const v1::TensorStats& tensor : layer.params()) {
        if (tensor.name() != "weights") continue;
        grad_of[layer.index()].points.emplace_back(step, tensor.grad_l2_norm());
        update_of[layer.index()].points.emplace_back(step,
                                                     tensor.update_ratio());
      }
    }
  }
  if (!std::isfinite(x_min)) x_min = x_max = 0;
  for (auto* group : {&dead_of, &grad_of, &update_of}) {
    for (auto& [index, series] : *group) series.name = names[index];
  }
  for (auto& [index, series] : dead_of) dead.series.push_back(series);
  for (auto& [index, series] : grad_of) grad.series.push_back(series);
  for (auto& [index, series] : update_of) update.series.push_back(series);

  const Panel* panels[] = {&loss, &dead, &grad, &update};
  const double height =
      kTop + std::size(panels) * (kPanelHeight + kGap + 20) + 20;
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
      "viewBox=\"0 0 %g %g\" font-family=\"sans-serif\">\n"
      "<style>.title{font-size:14px;font-weight:bold}.tick{font-size:11px;"
      "fill:#444}.legend{font-size:12px}.frame{fill:none;stroke:#888}"
      ".grid{stroke:#e4e4e4}.series{fill:none;stroke-width:1.5}"
      ".threshold{stroke:#d62728;stroke-dasharray:6 4}</style>\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      "<text x=\"%g\" y=\"28\" font-size=\"18px\">%s</text>\n",
      kWidth, height, kWidth, height, kLeft, Escape(options.title));
  double top = kTop + kGap;
  for (const Panel* panel : panels) {
    absl::StrAppend(&svg, DrawPanel(*panel, top, x_min, x_max));
    top += kPanelHeight + kGap + 20;
  }
  absl::StrAppend(
      &svg, absl::StrFormat("<text x=\"%g\" y=\"%g\" class=\"tick\" "
                            "text-anchor=\"middle\">step</text>\n</svg>\n",
                            kLeft + (kWidth - kLeft - kRight) / 2, top - 22));
  return svg;
}

}  // namespace gradwatch::client

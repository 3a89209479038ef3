#include "client/plot.h"

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gradwatch::client {
namespace {

using ::testing::HasSubstr;

int Count(const std::string& text, const std::string& what) {
  int count = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1)) {
    ++count;
  }
  return count;
}

// 100 steps of a 3-layer net whose first layer is dead from the start: its
// weight gradient and update are exactly zero.
std::vector<v1::JobEvent> DeadFirstLayerRun() {
  std::vector<v1::JobEvent> events;
  v1::JobEvent started;
  started.mutable_started()->set_steps_total(100);
  events.push_back(started);
  for (int step = 1; step <= 100; ++step) {
    v1::JobEvent event;
    event.set_step(step);
    v1::StepStats* stats = event.mutable_stats();
    stats->set_step(step);
    stats->set_loss(1.0986 - 0.5 * step / 100.0);
    for (int index = 0; index < 3; ++index) {
      v1::LayerStats* layer = stats->add_layers();
      layer->set_index(index);
      layer->set_name(index == 2 ? "output"
                                 : absl::StrCat("hidden", index + 1));
      layer->set_dead_ratio(index == 0 ? 1.0 : 0.1);
      v1::TensorStats* weights = layer->add_params();
      weights->set_name("weights");
      weights->set_grad_l2_norm(index == 0 ? 0.0
                                           : 0.5 * std::exp(-step / 50.0));
      weights->set_update_ratio(index == 0 ? 0.0 : 1e-3);
    }
    events.push_back(event);
  }
  return events;
}

TEST(PlotTest, DrawsFourPanelsWithASeriesPerLayer) {
  const std::string svg = PlotJobSvg(
      DeadFirstLayerRun(), {.title = "j-1 - dead", .dead_threshold = 0.5});
  EXPECT_THAT(svg,
              testing::StartsWith("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_THAT(svg, testing::EndsWith("</svg>\n"));
  EXPECT_THAT(svg, HasSubstr(">j-1 - dead</text>"));
  EXPECT_THAT(svg, HasSubstr("loss (batch)"));
  EXPECT_THAT(svg, HasSubstr("dead ratio"));
  EXPECT_THAT(svg, HasSubstr("weight gradient L2 norm (log scale)"));
  EXPECT_THAT(svg, HasSubstr("update ratio"));
  // The loss, then 3 layers in each of the other three panels.
  EXPECT_EQ(Count(svg, "<polyline "), 1 + 3 * 3);
  EXPECT_EQ(Count(svg, ">layer hidden1</text>"), 3);
  EXPECT_THAT(svg, HasSubstr("alert threshold 0.5</text>"));
  // The dead layer's zeros cannot sit on a log axis: both log panels say
  // where they are drawn.
  EXPECT_EQ(Count(svg, "(exact zeros on the bottom line, marked 0)"), 2);
}

TEST(PlotTest, ZerosOnALogScaleSitOnThePanelFloor) {
  const std::string svg = PlotJobSvg(DeadFirstLayerRun(), {});
  // Panel 3 (gradient norm) is the third frame; its bottom edge is
  // y + height of that rect.
  size_t frame = 0;
  for (int i = 0; i < 3; ++i) frame = svg.find("class=\"frame\"", frame + 1);
  const size_t rect = svg.rfind("<rect", frame);
  double x = 0, y = 0, width = 0, height = 0;
  ASSERT_EQ(
      std::sscanf(svg.c_str() + rect,
                  "<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"", &x,
                  &y, &width, &height),
      4);
  // The first series after that frame is hidden1's gradient norm: all 0.
  const size_t points = svg.find("points=\"", frame) + 8;
  double px = 0, py = 0;
  ASSERT_EQ(std::sscanf(svg.c_str() + points, "%lf,%lf", &px, &py), 2);
  EXPECT_DOUBLE_EQ(px, x);  // step 1 at the left edge
  EXPECT_NEAR(py, y + height, 0.05);
}

TEST(PlotTest, EmptyHistoryStillMakesADocument) {
  const std::string svg = PlotJobSvg({}, {.title = "nothing yet"});
  EXPECT_THAT(svg, HasSubstr("nothing yet"));
  EXPECT_THAT(svg, testing::EndsWith("</svg>\n"));
}

}  // namespace
}  // namespace gradwatch::client

#ifndef GRADWATCH_CLIENT_PLOT_H_
#define GRADWATCH_CLIENT_PLOT_H_

#include <string>
#include <vector>

#include "gradwatch/v1/events.pb.h"

namespace gradwatch::client {

struct PlotOptions {
  /// Shown at the top of the figure (e.g. the job id and spec name).
  std::string title;
  /// The DEAD_RELU rule's threshold, drawn across the dead-ratio panel.
  double dead_threshold = 0.5;
};

/// Draws a job's statistics as a self-contained SVG document (no scripts,
/// no external resources): the loss, each hidden layer's dead ratio with
/// the alert threshold, each layer's weight-gradient L2 norm (log scale)
/// and update ratio ||dW||/||W|| (log scale), all against the step. On the
/// log scales exact zeros, which cannot be drawn, sit on the panel's floor
/// and the panel says so. Thread-safe (pure function).
std::string PlotJobSvg(const std::vector<gradwatch::v1::JobEvent>& events,
                       const PlotOptions& options);

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_PLOT_H_

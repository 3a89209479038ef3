#ifndef GRADWATCH_TESTS_SERVER_EXPOSITION_H_
#define GRADWATCH_TESTS_SERVER_EXPOSITION_H_

#include <optional>
#include <string>

#include "server/metrics_exporter.h"

namespace gradwatch::server::testing {

// The exporter's series in Prometheus' text exposition format, as a
// scrape of /metrics would return them.
std::string Scrape(MetricsExporter& exporter);

// The value of the series written exactly as `series` (name and labels in
// the exposition's order: labels sorted by name), or nullopt if absent.
std::optional<double> Value(const std::string& text, const std::string& series);

}  // namespace gradwatch::server::testing

#endif  // GRADWATCH_TESTS_SERVER_EXPOSITION_H_

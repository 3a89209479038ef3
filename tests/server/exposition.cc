#include "tests/server/exposition.h"

#include <prometheus/text_serializer.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gradwatch::server::testing {

std::string Scrape(MetricsExporter& exporter) {
  return prometheus::TextSerializer().Serialize(exporter.Collect());
}

std::optional<double> Value(const std::string& text,
                            const std::string& series) {
  const std::string prefix = absl::StrCat(series, " ");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, prefix)) {
      const std::string number(line.substr(prefix.size()));
      return std::strtod(number.c_str(), nullptr);
    }
  }
  return std::nullopt;
}

}  // namespace gradwatch::server::testing

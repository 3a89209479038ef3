#ifndef GRADWATCH_CLIENT_EXPORT_H_
#define GRADWATCH_CLIENT_EXPORT_H_

#include <ostream>

#include "gradwatch/v1/events.pb.h"

namespace gradwatch::client {

/// Writes the statistics of a job's event stream as CSV: a header, then one
/// row per (step, layer) with the step's figures repeated on each of its
/// layers' rows, so that the file loads as one table. Optional figures
/// (validation, dataset sweep) are empty where the step has none. Events
/// other than statistics are skipped. Not thread-safe.
class StatsCsvWriter {
 public:
  explicit StatsCsvWriter(std::ostream& out);
  void Write(const gradwatch::v1::JobEvent& event);

 private:
  std::ostream& out_;
};

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_EXPORT_H_

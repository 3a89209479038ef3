#ifndef GRADWATCH_CLIENT_COMMANDS_H_
#define GRADWATCH_CLIENT_COMMANDS_H_

#include <ostream>

#include "client/cli_args.h"

namespace gradwatch::client {

/// Runs one parsed gradwatch command: results go to `out`, errors to `err`
/// ("error: INVALID_ARGUMENT: ...", "cannot reach gradwatch server at
/// ..."). `out_is_terminal` selects live text output for --output auto.
/// Returns the process exit code (ExitCode). Thread-compatible; train
/// --local installs a SIGINT handler for the duration of the run.
int RunCommand(const CommandLine& line, std::ostream& out, std::ostream& err,
               bool out_is_terminal);

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_COMMANDS_H_

#ifndef GRADWATCH_CLIENT_COMMANDS_H_
#define GRADWATCH_CLIENT_COMMANDS_H_

#include <ostream>

#include "client/cli_args.h"

namespace gradwatch::client {

/// Runs one parsed gradwatch command: results go to `out`, errors to `err`
/// ("error: INVALID_ARGUMENT: ...", "cannot reach gradwatch server at
/// ..."). `out_is_terminal` selects live text output for --output auto;
/// `terminal_width` (columns, 0 = unknown) keeps the live lines unwrapped.
/// Returns the process exit code (ExitCode). Thread-compatible; train
/// --local installs a SIGINT handler for the duration of the run.
int RunCommand(const CommandLine& line, std::ostream& out, std::ostream& err,
               bool out_is_terminal, int terminal_width = 0);

}  // namespace gradwatch::client

#endif  // GRADWATCH_CLIENT_COMMANDS_H_

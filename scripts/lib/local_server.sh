# Sourced by scripts that run gradwatch-server for themselves on a free
# loopback port (scripts/demo.sh, scripts/seed-plots.sh).
#
#   start_local_server NAME BINARY WORKDIR LOG [SERVER FLAGS...]
#     Starts BINARY on 127.0.0.1 port 0 with --port_file WORKDIR/port and
#     the given flags, its output going to LOG, and waits until it reports
#     its port. Sets local_server_pid and local_server_address (HOST:PORT).
#     If the server exits or stays silent for 30 s, prints its log and
#     exits the script with status 1; NAME prefixes the messages.
#   stop_local_server
#     Sends SIGTERM to the started server (if still running) and waits.

local_server_pid=""
local_server_address=""

start_local_server() {
  local name="$1" binary="$2" workdir="$3" log="$4"
  shift 4
  # Port 0: the kernel picks a free port; the server writes it to the file.
  "$binary" --listen 127.0.0.1:0 --port_file "$workdir/port" "$@" \
    >"$log" 2>&1 &
  local_server_pid=$!
  for _ in $(seq 1 300); do
    [[ -s "$workdir/port" ]] && break
    if ! kill -0 "$local_server_pid" 2>/dev/null; then
      echo "$name: gradwatch-server did not start; its log:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  if [[ ! -s "$workdir/port" ]]; then
    echo "$name: gradwatch-server did not report its port within 30 s" >&2
    exit 1
  fi
  local_server_address="127.0.0.1:$(cat "$workdir/port")"
}

stop_local_server() {
  if [[ -n "$local_server_pid" ]] && kill -0 "$local_server_pid" 2>/dev/null; then
    kill -TERM "$local_server_pid"
    wait "$local_server_pid" 2>/dev/null || true
  fi
}

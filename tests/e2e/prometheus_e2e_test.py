#!/usr/bin/python3
"""End-to-end test of gradwatch's monitoring against the real servers.

Starts a real gradwatch-server (--metrics_listen), Debian's `prometheus`
and `prometheus-alertmanager` on free loopback ports, and a webhook
receiver in this process. Prometheus runs the project's own
deploy/prometheus/prometheus.yml and gradwatch.rules.yml, Alertmanager
deploy/alertmanager/alertmanager.yml, each copied with only the test's
changes: scrape and evaluation interval 1 s, the dead-neuron alert's `for`
5 s, Alertmanager's group waits 1 s, and the ports of this run.

Then, with the `gradwatch` CLI:
  - examples/dead_init.json: GradwatchDeadNeuronRatioHigh fires in
    Prometheus for its job_id and layers 0 and 1, and reaches the webhook
    with those labels;
  - examples/spirals.json (healthy): no dead-neuron alert for its job_id,
    pending or firing, at any time;
  - every expression of every panel of deploy/grafana/dashboards/
    gradwatch.json, with $job_id set to the dead-init job, returns data
    through Prometheus's HTTP API, and the job_id variable lists both jobs;
  - RPC counts and the store size reach Prometheus, and the live /metrics
    passes `promtool check metrics`;
  - the dashboard type-checks against npm's @grafana/schema (skipped, with
    a message, when npm or its registry is unavailable).

Usage: prometheus_e2e_test.py --server BIN --cli BIN --source REPO_DIR
"""

import argparse
import http.server
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grafana_schema_check  # noqa: E402

DEAD_ALERT = "GradwatchDeadNeuronRatioHigh"
DEAD_ALERT_FOR = "5s"
# How long any one wait may take before the test gives up.
WAIT_SECONDS = 90


class TestFailure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise TestFailure(message)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(description, probe, timeout=WAIT_SECONDS, interval=0.5):
    """Calls probe() until it returns a true value, which is returned."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (OSError, ValueError, KeyError) as e:
            last_error = e
        time.sleep(interval)
    raise TestFailure("timed out after %ds waiting for %s%s" %
                      (timeout, description,
                       " (last error: %s)" % last_error if last_error else ""))


def http_get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


class Webhook:
    """Alertmanager's webhook receiver: keeps every POSTed payload."""

    def __init__(self):
        self.payloads = []
        self.lock = threading.Lock()
        webhook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with webhook.lock:
                    webhook.payloads.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def alerts(self):
        """(path, groupLabels, alert) for every alert received so far."""
        with self.lock:
            return [(path, payload.get("groupLabels", {}), alert)
                    for path, payload in self.payloads
                    for alert in payload.get("alerts", [])]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Processes:
    """Child processes, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, directory):
        self.directory = directory
        self.children = []

    def start(self, name, argv):
        log = open(os.path.join(self.directory, name + ".log"), "w")
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        self.children.append((name, child, log))
        return child

    def check_running(self):
        for name, child, _ in self.children:
            check(child.poll() is None,
                  "%s exited early with status %s" % (name, child.returncode))

    def stop_all(self):
        for _, child, _ in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for _, child, log in reversed(self.children):
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            log.close()

    def print_logs(self, lines=30):
        for name, _, _ in self.children:
            path = os.path.join(self.directory, name + ".log")
            with open(path, errors="replace") as f:
                tail = f.readlines()[-lines:]
            print("---- last lines of %s ----\n%s" % (name, "".join(tail)))


class Prometheus:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def query(self, expr):
        url = "%s/api/v1/query?%s" % (self.base,
                                     urllib.parse.urlencode({"query": expr}))
        answer = http_get_json(url)
        check(answer.get("status") == "success",
              "query %r failed: %s" % (expr, answer))
        return answer["data"]["result"]

    def alerts(self):
        return http_get_json(self.base + "/api/v1/alerts")["data"]["alerts"]

    def label_values(self, label, match):
        url = "%s/api/v1/label/%s/values?%s" % (
            self.base, label, urllib.parse.urlencode({"match[]": match}))
        return http_get_json(url)["data"]


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def write_yaml(path, data):
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)


def write_configs(source, directory, metrics_port, alertmanager_port,
                  webhook_port):
    """The project's configs with the test's intervals and ports."""
    rules = load_yaml(os.path.join(source, "deploy/prometheus/"
                                   "gradwatch.rules.yml"))
    found = False
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == DEAD_ALERT:
                rule["for"] = DEAD_ALERT_FOR
                found = True
    check(found, "gradwatch.rules.yml has no %s" % DEAD_ALERT)
    write_yaml(os.path.join(directory, "gradwatch.rules.yml"), rules)

    config = load_yaml(os.path.join(source, "deploy/prometheus/"
                                    "prometheus.yml"))
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    check(config["rule_files"] == ["gradwatch.rules.yml"],
          "prometheus.yml loads %s" % config["rule_files"])
    for manager in config["alerting"]["alertmanagers"]:
        for static in manager["static_configs"]:
            static["targets"] = ["127.0.0.1:%d" % alertmanager_port]
    jobs = [job for job in config["scrape_configs"]
            if job["job_name"] == "gradwatch"]
    check(len(jobs) == 1, "prometheus.yml has no scrape job 'gradwatch'")
    for static in jobs[0]["static_configs"]:
        static["targets"] = ["127.0.0.1:%d" % metrics_port]
    write_yaml(os.path.join(directory, "prometheus.yml"), config)

    manager = load_yaml(os.path.join(source, "deploy/alertmanager/"
                                     "alertmanager.yml"))
    manager["route"]["group_wait"] = "1s"
    manager["route"]["group_interval"] = "1s"
    for receiver in manager["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            path = urllib.parse.urlparse(hook["url"]).path
            hook["url"] = "http://127.0.0.1:%d%s" % (webhook_port, path)
    write_yaml(os.path.join(directory, "alertmanager.yml"), manager)


def read_port(path, child, name):
    def probe():
        check(child.poll() is None, "%s exited with %s" % (name,
                                                           child.returncode))
        if os.path.exists(path):
            with open(path) as f:
                text = f.read().strip()
            return int(text) if text else None
        return None
    return wait_for("%s's port file" % name, probe, timeout=60)


def cli(args, binary, server_address, expect_ok=True):
    result = subprocess.run(
        [binary, "--server", server_address, "--output", "jsonl"] + args,
        capture_output=True, text=True, timeout=60)
    if expect_ok:
        check(result.returncode == 0, "gradwatch %s failed (%d): %s" %
              (" ".join(args), result.returncode, result.stderr))
    return result


def panel_expressions(dashboard):
    """(panel title, target refId, expr) of every panel, rows included."""
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    found = []
    for panel in panels:
        if panel["type"] == "row":
            continue
        check(panel.get("targets"), "panel %r has no query" % panel["title"])
        for target in panel["targets"]:
            found.append((panel["title"], target["refId"], target["expr"]))
    return found


def finite_values(result):
    return [float(sample["value"][1]) for sample in result
            if not math.isnan(float(sample["value"][1]))]


def run(args, work):
    processes = Processes(work)
    webhook = Webhook()
    try:
        scenario(args, work, processes, webhook)
    except Exception:
        processes.print_logs()
        raise
    finally:
        processes.stop_all()
        webhook.stop()


def scenario(args, work, processes, webhook):
    started = time.monotonic()
    for tool in ("prometheus", "prometheus-alertmanager"):
        check(shutil.which(tool), "%s is not installed "
              "(scripts/install-deps.sh installs it)" % tool)

    # The server first: Prometheus needs its metrics port.
    server = processes.start("gradwatch-server", [
        args.server, "--listen=127.0.0.1:0",
        "--port_file=" + os.path.join(work, "port"),
        "--metrics_listen=127.0.0.1:0",
        "--metrics_port_file=" + os.path.join(work, "metrics_port"),
        "--data_dir=" + os.path.join(work, "data"),
        "--max_concurrent_jobs=2", "--job_threads=1"])
    metrics_port = read_port(os.path.join(work, "metrics_port"), server,
                             "gradwatch-server")
    grpc_port = read_port(os.path.join(work, "port"), server,
                          "gradwatch-server")
    address = "127.0.0.1:%d" % grpc_port

    alertmanager_port = free_port()
    prometheus_port = free_port()
    write_configs(args.source, work, metrics_port, alertmanager_port,
                  webhook.port)
    processes.start("alertmanager", [
        "prometheus-alertmanager",
        "--config.file=" + os.path.join(work, "alertmanager.yml"),
        "--storage.path=" + os.path.join(work, "alertmanager-data"),
        "--web.listen-address=127.0.0.1:%d" % alertmanager_port,
        "--cluster.listen-address="])
    processes.start("prometheus", [
        "prometheus",
        "--config.file=" + os.path.join(work, "prometheus.yml"),
        "--storage.tsdb.path=" + os.path.join(work, "prometheus-data"),
        "--web.listen-address=127.0.0.1:%d" % prometheus_port])
    prometheus = Prometheus(prometheus_port)

    def ready(port):
        with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port,
                                    timeout=5) as response:
            return response.status == 200
    wait_for("Alertmanager to be ready", lambda: ready(alertmanager_port))
    wait_for("Prometheus to be ready", lambda: ready(prometheus_port))
    wait_for("Prometheus to scrape gradwatch-server", lambda: any(
        s["value"][1] == "1" for s in prometheus.query('up{job="gradwatch"}')))
    processes.check_running()

    dead = json.loads(cli(["submit", os.path.join(args.source,
                                                  "examples/dead_init.json")],
                          args.cli, address).stdout)["id"]
    healthy = json.loads(cli(["submit", os.path.join(args.source,
                                                     "examples/spirals.json")],
                             args.cli, address).stdout)["id"]
    print("dead-init job %s, healthy job %s" % (dead, healthy))

    # The alert fires in Prometheus for both hidden layers of the dead job.
    def firing_layers(job_id):
        return {a["labels"].get("layer") for a in prometheus.alerts()
                if a["labels"].get("alertname") == DEAD_ALERT and
                a["labels"].get("job_id") == job_id and a["state"] == "firing"}
    layers = wait_for("%s to fire for %s" % (DEAD_ALERT, dead),
                      lambda: firing_layers(dead) == {"0", "1"} and
                      firing_layers(dead))
    print("%s firing in Prometheus for %s, layers %s (%.1fs)" %
          (DEAD_ALERT, dead, sorted(layers), time.monotonic() - started))

    # ... and reaches the webhook, grouped by job_id, with job and layer.
    def webhook_layers():
        return {alert["labels"].get("layer")
                for path, group, alert in webhook.alerts()
                if alert["labels"].get("alertname") == DEAD_ALERT and
                alert["labels"].get("job_id") == dead and
                alert["status"] == "firing" and
                group == {"job_id": dead} and path == "/gradwatch/alerts"}
    wait_for("the webhook to receive %s for %s layers 0 and 1" %
             (DEAD_ALERT, dead), lambda: webhook_layers() == {"0", "1"})
    print("webhook received %s for %s, layers 0 and 1 (%.1fs)" %
          (DEAD_ALERT, dead, time.monotonic() - started))

    # Both jobs end; an unknown job is asked for twice, a scrape apart, so
    # that the error counter has a rate.
    def job_state(job_id):
        return json.loads(cli(["get", job_id], args.cli, address).stdout)[
            "state"]
    for job_id in (dead, healthy):
        state = wait_for("job %s to end" % job_id,
                         lambda: (lambda s: s if s not in ("QUEUED", "RUNNING")
                                  else None)(job_state(job_id)))
        check(state == "SUCCEEDED", "job %s ended %s" % (job_id, state))
    missing = "j-00000000deadbeef"
    for _ in range(2):
        result = cli(["get", missing], args.cli, address, expect_ok=False)
        check(result.returncode == 1 and "NOT_FOUND" in result.stderr.upper()
              .replace(" ", "_"), "gradwatch get %s: %d %s" %
              (missing, result.returncode, result.stderr))
        time.sleep(2.5)

    # The healthy job has been scraped for longer than the alert's `for`
    # since it ended (its series stay for --metrics_retention), and never
    # had a dead-neuron alert, pending or firing.
    wait_for("the healthy job's series to be scraped 10 times", lambda: all(
        float(s["value"][1]) >= 10 for s in prometheus.query(
            'count_over_time(gradwatch_dead_neuron_ratio{job_id="%s"}[5m])' %
            healthy)) and len(prometheus.query(
                'gradwatch_dead_neuron_ratio{job_id="%s"}' % healthy)) == 3)
    history = prometheus.query(
        'count_over_time(ALERTS{alertname="%s",job_id="%s"}[10m])' %
        (DEAD_ALERT, healthy))
    check(history == [], "the healthy job %s had a dead-neuron alert: %s" %
          (healthy, history))
    check(not [a for a in prometheus.alerts()
               if a["labels"].get("job_id") == healthy and
               a["labels"].get("alertname") == DEAD_ALERT],
          "the healthy job %s has a dead-neuron alert" % healthy)
    check(not [a for _, _, a in webhook.alerts()
               if a["labels"].get("job_id") == healthy and
               a["labels"].get("alertname") == DEAD_ALERT],
          "the webhook received a dead-neuron alert for %s" % healthy)
    check(prometheus.query('count_over_time(ALERTS{alertname="%s",'
                           'job_id="%s",alertstate="firing"}[10m])' %
                           (DEAD_ALERT, dead)) != [],
          "ALERTS has no firing history for the dead-init job")
    worst = prometheus.query(
        'max(max_over_time(gradwatch_dead_neuron_ratio{job_id="%s"}[10m]))' %
        healthy)
    print("healthy job %s: no dead-neuron alert (its worst dead ratio %s)" %
          (healthy, worst[0]["value"][1]))

    # The RPC and store metrics.
    submits = prometheus.query('gradwatch_rpcs_total{method='
                               '"gradwatch.v1.Trainer/SubmitJob",code="OK"}')
    check([s["value"][1] for s in submits] == ["2"],
          "SubmitJob OK count: %s" % submits)
    not_found = prometheus.query(
        'gradwatch_rpcs_total{method="gradwatch.v1.Trainer/GetJob",'
        'code="NOT_FOUND"}')
    check([s["value"][1] for s in not_found] == ["2"],
          "GetJob NOT_FOUND count: %s" % not_found)
    # The live endpoint, RPC and store metrics included, passes promtool.
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port,
                                timeout=10) as response:
        exposition = response.read()
    check(b"gradwatch_rpcs_total{" in exposition and
          b"gradwatch_store_bytes " in exposition,
          "/metrics lacks the RPC or store metrics")
    lint = subprocess.run(["promtool", "check", "metrics"], input=exposition,
                          capture_output=True, timeout=60)
    check(lint.returncode == 0 and not lint.stdout.strip() and
          not lint.stderr.strip(), "promtool check metrics: %s %s" %
          (lint.stdout, lint.stderr))
    store = prometheus.query("gradwatch_store_bytes")
    check(len(store) == 1 and float(store[0]["value"][1]) > 4096,
          "gradwatch_store_bytes: %s" % store)

    # The dashboard: its variable lists both jobs, and every panel's
    # expression returns data for the dead-init job.
    with open(os.path.join(args.source,
                           "deploy/grafana/dashboards/gradwatch.json")) as f:
        dashboard = json.load(f)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    query = variables["job_id"]["query"]
    query = query["query"] if isinstance(query, dict) else query
    check(query == "label_values(gradwatch_steps_total, job_id)",
          "job_id variable query: %r" % query)
    job_ids = prometheus.label_values("job_id", "gradwatch_steps_total")
    check(dead in job_ids and healthy in job_ids,
          "label_values(gradwatch_steps_total, job_id) = %s" % job_ids)

    expressions = panel_expressions(dashboard)
    for title, ref, expr in expressions:
        resolved = (expr.replace("${job_id}", dead).replace("$job_id", dead)
                    .replace("$__rate_interval", "1m"))
        check("$" not in resolved, "panel %r: unresolved variable in %r" %
              (title, expr))
        result = prometheus.query(resolved)
        check(finite_values(result), "panel %r query %s returned no data: %s"
              " -> %s" % (title, ref, resolved, result))
    print("%d expressions of %d panels return data" %
          (len(expressions), len({t for t, _, _ in expressions})))

    threshold = prometheus.query(
        'gradwatch_dead_neuron_alert_threshold and on (instance) '
        'gradwatch_steps_total{job_id="%s"}' % dead)
    check([s["value"][1] for s in threshold] == ["0.5"],
          "threshold line: %s" % threshold)
    errors = prometheus.query(
        'sum by (method, code) (rate(gradwatch_rpcs_total{code!="OK"}[1m]))')
    check(any(s["metric"] == {"method": "gradwatch.v1.Trainer/GetJob",
                              "code": "NOT_FOUND"} and
              float(s["value"][1]) > 0 for s in errors),
          "RPC errors panel: %s" % errors)
    processes.check_running()
    print("Prometheus part done in %.1fs" % (time.monotonic() - started))

    status, message = grafana_schema_check.check(
        os.path.join(args.source, "deploy/grafana/dashboards/gradwatch.json"))
    print(message)
    check(status in (0, grafana_schema_check.SKIPPED), message)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True,
                        help="the gradwatch-server binary")
    parser.add_argument("--cli", required=True, help="the gradwatch binary")
    parser.add_argument("--source", required=True,
                        help="the repository's root")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="gradwatch_prometheus_e2e_")
    started = time.monotonic()
    try:
        run(args, work)
    except TestFailure as e:
        print("FAILED: %s" % e)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("PASSED in %.1fs" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())

// Checks deploy/docker-compose.yml against the files it wires together,
// without a container engine: every bind mount exists; each service's
// configuration flags, Grafana's home dashboard and its provisioning paths
// resolve through the mounts to files of deploy/; the addresses in
// deploy/prometheus/prometheus.yml and deploy/grafana/datasources/ reach a
// port that a service of the shared network namespace listens on; every
// published port is on 127.0.0.1 by default; images are official and pinned.
//
//   node compose.mjs DEPLOY_DIR [COMPOSE_FILE]   (default DEPLOY_DIR/docker-compose.yml)
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, posix, relative } from "node:path";
import { parse } from "yaml";

const deploy = process.argv[2];
const compose = parse(readFileSync(process.argv[3] ?? join(deploy, "docker-compose.yml"), "utf8"));
const errors = [];
const services = compose.services ?? {};

// Ports each service listens on inside the shared namespace.
const listens = { gradwatch: [50051, 9464], prometheus: [9090], alertmanager: [9093], grafana: [3000] };
const images = { prometheus: "prom/prometheus:", alertmanager: "prom/alertmanager:", grafana: "grafana/grafana:" };

for (const name of Object.keys(listens)) {
  if (!services[name]) errors.push(`missing service ${name}`);
}
for (const [name, prefix] of Object.entries(images)) {
  const image = services[name]?.image ?? "";
  if (!image.startsWith(prefix) || image.endsWith(":latest")) {
    errors.push(`${name}: image ${image} is not a pinned ${prefix}TAG`);
  }
}
if (!services.gradwatch?.build) errors.push("gradwatch: not built from the Dockerfile");
const dockerfile = join(deploy, services.gradwatch?.build?.context ?? ".", services.gradwatch?.build?.dockerfile ?? "Dockerfile");
if (!existsSync(dockerfile)) errors.push(`gradwatch: no Dockerfile at ${dockerfile}`);

// --- one network namespace, owned by prometheus ------------------------------
for (const [name, service] of Object.entries(services)) {
  if (name === "prometheus") continue;
  if (service.network_mode !== "service:prometheus") {
    errors.push(`${name}: network_mode is ${service.network_mode}, not service:prometheus`);
  }
  if (service.ports) errors.push(`${name}: publishes ports; the namespace owner publishes them all`);
}
const published = new Set();
for (const port of services.prometheus?.ports ?? []) {
  // "${GRADWATCH_BIND:-127.0.0.1}:HOST:CONTAINER" with the default applied.
  const spec = String(port).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, "$1");
  const [ip, , container] = spec.split(":");
  if (ip !== "127.0.0.1") errors.push(`port ${port} is not bound to 127.0.0.1 by default`);
  published.add(Number(container));
}
const listening = new Set(Object.values(listens).flat());
for (const port of listening) {
  if (!published.has(port)) errors.push(`port ${port} is not published`);
}
const reachable = (address, where) => {
  const port = Number(String(address).replace(/^[a-z]+:\/\//, "").split("/")[0].split(":")[1]);
  const host = String(address).replace(/^[a-z]+:\/\//, "").split(":")[0];
  if (!["127.0.0.1", "localhost"].includes(host) || !listening.has(port)) {
    errors.push(`${where}: ${address} is not a port of the shared namespace`);
  }
};

// --- container paths resolved through bind mounts -----------------------------
function hostPath(serviceName, containerPath) {
  for (const volume of services[serviceName]?.volumes ?? []) {
    const [source, target] = String(volume).split(":");
    if (!source.startsWith(".")) continue;  // a named volume
    if (containerPath === target || containerPath.startsWith(`${target}/`)) {
      return join(deploy, source, posix.relative(target, containerPath));
    }
  }
  return undefined;
}
function expectFile(serviceName, containerPath, what) {
  const path = hostPath(serviceName, containerPath);
  if (path === undefined || !existsSync(path)) {
    errors.push(`${serviceName}: ${what} ${containerPath} is not a mounted file of deploy/`);
    return undefined;
  }
  return path;
}
const flag = (serviceName, name) =>
  (services[serviceName]?.command ?? []).find((a) => a.startsWith(`--${name}=`))?.split("=")[1];

for (const [name, service] of Object.entries(services)) {
  for (const volume of service.volumes ?? []) {
    const source = String(volume).split(":")[0];
    if (source.startsWith(".") && !existsSync(join(deploy, source))) {
      errors.push(`${name}: mount source ${source} does not exist`);
    }
  }
}

const promConfig = expectFile("prometheus", flag("prometheus", "config.file") ?? "", "--config.file");
if (promConfig) {
  if (relative(deploy, promConfig) !== join("prometheus", "prometheus.yml")) {
    errors.push(`prometheus: config is ${promConfig}, not deploy/prometheus/prometheus.yml`);
  }
  const config = parse(readFileSync(promConfig, "utf8"));
  for (const rules of config.rule_files ?? []) {
    if (!existsSync(join(dirname(promConfig), rules))) errors.push(`prometheus: rule file ${rules} missing`);
  }
  for (const job of config.scrape_configs ?? []) {
    for (const sc of job.static_configs ?? []) for (const t of sc.targets ?? []) reachable(t, `scrape job ${job.job_name}`);
  }
  for (const am of config.alerting?.alertmanagers ?? []) {
    for (const sc of am.static_configs ?? []) for (const t of sc.targets ?? []) reachable(t, "alertmanager target");
  }
}
expectFile("alertmanager", flag("alertmanager", "config.file") ?? "", "--config.file");

// Grafana: provisioning files, the dashboards they point at, the home page.
const provisioning = hostPath("grafana", "/etc/grafana/provisioning");
if (provisioning === undefined || !existsSync(provisioning)) {
  errors.push("grafana: /etc/grafana/provisioning is not mounted from deploy/");
} else {
  const yamls = (dir) => (existsSync(dir) ? readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)) : []);
  const sources = yamls(join(provisioning, "datasources")).flatMap(
    (f) => parse(readFileSync(join(provisioning, "datasources", f), "utf8")).datasources ?? []);
  if (sources.length === 0) errors.push("grafana: no data source provisioned");
  for (const s of sources) reachable(s.url, `grafana data source ${s.name}`);
  const providers = yamls(join(provisioning, "dashboards")).flatMap(
    (f) => parse(readFileSync(join(provisioning, "dashboards", f), "utf8")).providers ?? []);
  if (providers.length === 0) errors.push("grafana: no dashboard provider provisioned");
  for (const p of providers) {
    const dir = hostPath("grafana", p.options?.path ?? "");
    if (dir === undefined || !statSync(dir, { throwIfNoEntry: false })?.isDirectory()
        || !readdirSync(dir).some((f) => f.endsWith(".json"))) {
      errors.push(`grafana: provider ${p.name} path ${p.options?.path} holds no mounted dashboard`);
    }
  }
  const home = services.grafana?.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? "";
  const homeFile = expectFile("grafana", home, "home dashboard");
  if (homeFile && !Array.isArray(JSON.parse(readFileSync(homeFile, "utf8")).panels)) {
    errors.push(`grafana: home dashboard ${home} has no panels`);
  }
}

// Longer than the server's default --shutdown_grace (30s).
const grace = String(services.gradwatch?.stop_grace_period ?? "10s");
if (!/^\d+s$/.test(grace) || parseInt(grace, 10) <= 30) {
  errors.push(`gradwatch: stop_grace_period ${grace} does not exceed --shutdown_grace (30s)`);
}

if (errors.length > 0) {
  console.error(`docker-compose.yml: ${errors.length} error(s):`);
  for (const e of errors) console.error(`  ${e}`);
  process.exit(1);
}
console.log(`docker-compose.yml: ${Object.keys(services).length} services wired to deploy/ correctly`);

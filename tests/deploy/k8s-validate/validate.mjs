// Validates rendered Kubernetes manifests offline: every object against its
// schema (kubernetes-models; @kubernetes-models/prometheus-operator for
// ServiceMonitor and PrometheusRule), then the references between objects
// that no schema checks (selectors, named ports, claims, probes).
//
//   node validate.mjs RENDERED.yaml [--expect Kind/name ...]
//
// Prints one line per object and exits 1 on the first file with errors,
// listing all of them.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const args = process.argv.slice(2);
const file = args.shift();
const expected = [];
while (args.length > 0) {
  const flag = args.shift();
  if (flag !== "--expect" || args.length === 0) {
    console.error("usage: node validate.mjs RENDERED.yaml [--expect Kind/name ...]");
    process.exit(2);
  }
  expected.push(args.shift());
}

const errors = [];
const objects = [];
for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
  if (doc.errors.length > 0) {
    errors.push(...doc.errors.map((e) => `YAML: ${e.message}`));
    continue;
  }
  const object = doc.toJS();
  if (object !== null) objects.push(object);
}

// apiVersion "apps/v1" -> module "apps/v1/Deployment"; core "v1" -> "v1/Service".
async function modelFor(apiVersion, kind) {
  const path = `${apiVersion}/${kind}`;
  const pkg = apiVersion.startsWith("monitoring.coreos.com/")
    ? "@kubernetes-models/prometheus-operator"
    : "kubernetes-models";
  try {
    const module = await import(`${pkg}/${path}`);
    return module[kind];
  } catch {
    return undefined;
  }
}

const id = (o) => `${o.kind}/${o.metadata?.name}`;
for (const object of objects) {
  const Model = await modelFor(object.apiVersion, object.kind);
  if (Model === undefined) {
    errors.push(`${id(object)}: no schema for ${object.apiVersion} ${object.kind}`);
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok   ${object.apiVersion} ${id(object)}`);
  } catch (e) {
    errors.push(`${id(object)}: ${e.message}`);
  }
}

// --- references between objects -------------------------------------------
const byKind = (kind) => objects.filter((o) => o.kind === kind);
const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

for (const name of expected) {
  if (!objects.some((o) => id(o) === name)) errors.push(`missing object ${name}`);
}

const claims = new Set(byKind("PersistentVolumeClaim").map((o) => o.metadata.name));
const pods = byKind("Deployment").map((d) => ({ owner: d, spec: d.spec.template.spec,
  labels: d.spec.template.metadata?.labels }));

for (const { owner, spec, labels } of pods) {
  const selector = owner.spec.selector?.matchLabels;
  if (!selector || Object.keys(selector).length === 0 || !matches(selector, labels)) {
    errors.push(`${id(owner)}: selector does not select its own pod template`);
  }
  const security = spec.securityContext ?? {};
  for (const c of spec.containers) {
    const where = `${id(owner)} container ${c.name}`;
    const ports = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
    const portNumbers = new Set(ports.values());
    for (const probe of ["readinessProbe", "livenessProbe"]) {
      const port = c[probe]?.grpc?.port;
      if (port === undefined) errors.push(`${where}: ${probe} is not a gRPC probe`);
      else if (!portNumbers.has(port)) errors.push(`${where}: ${probe} port ${port} is not a container port`);
    }
    if (!c.resources?.requests || !c.resources?.limits) {
      errors.push(`${where}: resource requests and limits are required`);
    }
    const runAsNonRoot = c.securityContext?.runAsNonRoot ?? security.runAsNonRoot;
    const runAsUser = c.securityContext?.runAsUser ?? security.runAsUser;
    if (runAsNonRoot !== true || !(runAsUser > 0)) {
      errors.push(`${where}: must run as a non-root user`);
    }
    if (c.securityContext?.allowPrivilegeEscalation !== false) {
      errors.push(`${where}: allowPrivilegeEscalation must be false`);
    }
    const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
    for (const mount of c.volumeMounts ?? []) {
      if (!volumes.has(mount.name)) errors.push(`${where}: mounts unknown volume ${mount.name}`);
    }
  }
  for (const v of spec.volumes ?? []) {
    const claim = v.persistentVolumeClaim?.claimName;
    if (claim !== undefined && !claims.has(claim)) {
      errors.push(`${id(owner)}: volume ${v.name} names unknown claim ${claim}`);
    }
  }
}

const services = byKind("Service");
for (const service of services) {
  const selected = pods.filter((p) => matches(service.spec.selector, p.labels));
  if (!service.spec.selector || selected.length === 0) {
    errors.push(`${id(service)}: selects no pod template`);
    continue;
  }
  for (const port of service.spec.ports) {
    const target = port.targetPort;
    const found = selected.some((p) => p.spec.containers.some((c) => (c.ports ?? []).some(
      (cp) => cp.name === target || cp.containerPort === target)));
    if (!found) errors.push(`${id(service)}: port ${port.name} targets ${target}, which no container has`);
  }
}

for (const monitor of byKind("ServiceMonitor")) {
  const selected = services.filter((s) => matches(monitor.spec.selector?.matchLabels, s.metadata.labels));
  if (selected.length === 0) errors.push(`${id(monitor)}: selects no Service`);
  for (const endpoint of monitor.spec.endpoints ?? []) {
    if (!selected.some((s) => s.spec.ports.some((p) => p.name === endpoint.port))) {
      errors.push(`${id(monitor)}: endpoint port ${endpoint.port} is not a port of the selected Service`);
    }
  }
  const jobLabel = monitor.spec.jobLabel;
  if (jobLabel !== undefined && !selected.every((s) => s.metadata.labels?.[jobLabel] !== undefined)) {
    errors.push(`${id(monitor)}: jobLabel ${jobLabel} is not a label of the selected Service`);
  }
}

for (const rule of byKind("PrometheusRule")) {
  const alerts = (rule.spec.groups ?? []).flatMap((g) => g.rules ?? []).filter((r) => r.alert);
  if (alerts.length === 0) errors.push(`${id(rule)}: has no alerting rule`);
}

for (const map of byKind("ConfigMap").filter((m) => m.metadata.labels?.grafana_dashboard)) {
  for (const [key, text] of Object.entries(map.data ?? {})) {
    try {
      const dashboard = JSON.parse(text);
      if (!Array.isArray(dashboard.panels) || dashboard.panels.length === 0) {
        errors.push(`${id(map)}: ${key} has no panels`);
      }
    } catch (e) {
      errors.push(`${id(map)}: ${key} is not JSON: ${e.message}`);
    }
  }
}

if (errors.length > 0) {
  console.error(`${file}: ${errors.length} error(s):`);
  for (const e of errors) console.error(`  ${e}`);
  process.exit(1);
}
console.log(`${file}: ${objects.length} objects valid`);

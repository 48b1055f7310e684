/**
 * The deployment files (docker-compose.yml, deploy/compose/, deploy/kubernetes/) checked
 * statically: the configurations they carry pass the real schema with the environment the
 * manifests supply, the ports and hosts agree between configuration, containers, Service and
 * compose mappings, the pod runs hardened with the key from a Secret and the configuration from
 * the ConfigMap, and no key or passphrase is written in any file. Every check is a function that
 * lists problems; the last part mutates the real files' objects and expects each check to object,
 * so that none of them can pass vacuously.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { ConfigError, parseConfig, type Config } from '../../src/config.js';
import { compilePolicies } from '../../src/policy/names.js';

const ROOT = resolve(import.meta.dirname, '../..');
const KUBE_DIR = 'deploy/kubernetes';
const COMPOSE_FILE = 'docker-compose.yml';

// ---------------------------------------------------------------- the shapes read from YAML

interface Meta { name?: string; namespace?: string; labels?: Record<string, string> }
interface Doc { apiVersion?: string; kind?: string; metadata?: Meta; [k: string]: unknown }
interface Probe { httpGet?: { path?: string; port?: string | number } }
interface EnvVar { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }
interface Mount { name: string; mountPath: string; readOnly?: boolean }
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { drop?: string[] };
}
interface Resources { requests?: Record<string, string | number>; limits?: Record<string, string | number> }
interface Container {
  name: string;
  args?: string[];
  command?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  resources?: Resources;
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  securityContext?: SecurityContext;
  volumeMounts?: Mount[];
}
interface Volume {
  name: string;
  secret?: { secretName: string; items?: { key: string; path: string }[] };
  configMap?: { name: string; items?: { key: string; path: string }[] };
  emptyDir?: object;
}
interface PodSpec {
  containers: Container[];
  volumes?: Volume[];
  securityContext?: SecurityContext;
  terminationGracePeriodSeconds?: number;
}
interface Deployment extends Doc {
  spec: { replicas?: number; selector: { matchLabels: Record<string, string> }; template: { metadata: Meta; spec: PodSpec } };
}
interface Service extends Doc {
  spec: { selector: Record<string, string>; ports: { name?: string; port: number; targetPort?: string | number }[] };
}
interface ConfigMapDoc extends Doc { data?: Record<string, string> }
interface SecretDoc extends Doc { stringData?: Record<string, string>; data?: Record<string, string> }
interface Pdb extends Doc { spec: { minAvailable?: number; maxUnavailable?: number; selector: { matchLabels: Record<string, string> } } }
interface Kustomization { namespace?: string; resources?: string[] }

interface ComposeService {
  image?: string;
  build?: string | { context?: string };
  command?: string[] | string;
  environment?: Record<string, string> | string[];
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test?: string[] | string };
  depends_on?: Record<string, { condition?: string }> | string[];
  read_only?: boolean;
  cap_drop?: string[];
}
interface Compose { services: Record<string, ComposeService>; volumes?: Record<string, unknown> }

// ---------------------------------------------------------------- reading

function readText(rel: string): string {
  return readFileSync(join(ROOT, rel), 'utf8');
}

/** Every document of a (multi-document) YAML file; a syntax error fails the test. */
function readDocs(rel: string): Doc[] {
  const docs = parseAllDocuments(readText(rel));
  const list = Array.isArray(docs) ? docs : [docs];
  for (const d of list) assert.deepEqual(d.errors.map((e) => e.message), [], `${rel} is valid YAML`);
  return list.map((d) => d.toJS() as Doc | null).filter((d): d is Doc => d !== null && typeof d === 'object');
}

interface Kube {
  files: Record<string, Doc[]>;
  kustomization: Kustomization;
  namespace: Doc;
  configMap: ConfigMapDoc;
  deployment: Deployment;
  service: Service;
  pdb: Pdb;
  secrets: SecretDoc[];
}

function only<T extends Doc>(docs: Doc[], kind: string): T {
  const found = docs.filter((d) => d.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind} under ${KUBE_DIR}`);
  return found[0] as T;
}

function readKube(): Kube {
  const names = readdirSync(join(ROOT, KUBE_DIR)).filter((n) => /\.ya?ml$/.test(n) && n !== 'kustomization.yaml');
  const files = Object.fromEntries(names.map((n) => [n, readDocs(`${KUBE_DIR}/${n}`)]));
  const all = Object.values(files).flat();
  return {
    files,
    kustomization: parseYaml(readText(`${KUBE_DIR}/kustomization.yaml`)) as Kustomization,
    namespace: only(all, 'Namespace'),
    configMap: all.find((d) => d.kind === 'ConfigMap' && (d as ConfigMapDoc).data?.['config.yaml'] !== undefined) as ConfigMapDoc,
    deployment: only(all, 'Deployment'),
    service: only(all, 'Service'),
    pdb: only(all, 'PodDisruptionBudget'),
    secrets: all.filter((d) => d.kind === 'Secret'),
  };
}

function readCompose(): { compose: Compose; configText: (hostPath: string) => string } {
  const [compose] = readDocs(COMPOSE_FILE);
  return { compose: compose as unknown as Compose, configText: (hostPath) => readText(hostPath) };
}

// ---------------------------------------------------------------- helpers

const cores = (q: string | number | undefined): number => {
  if (q === undefined) return NaN;
  const s = String(q);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
};

const matches = (selector: Record<string, string>, labels: Record<string, string> | undefined) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

const anyHost = (h: string) => h === '0.0.0.0' || h === '::';

/** The value after `--config` in an argument list. */
function configArg(args: string[] | undefined): string | undefined {
  const i = (args ?? []).indexOf('--config');
  return i >= 0 ? args?.[i + 1] : undefined;
}

/** The mount (and volume) that holds a file path inside the container, and the item key it is. */
function fileSource(pod: PodSpec, container: Container, file: string): { volume: Volume; key: string | undefined } | undefined {
  const mount = (container.volumeMounts ?? [])
    .filter((m) => file.startsWith(`${m.mountPath.replace(/\/+$/, '')}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  const volume = mount && pod.volumes?.find((v) => v.name === mount.name);
  if (!mount || !volume) return undefined;
  const inside = posix.relative(mount.mountPath, file);
  const items = volume.secret?.items ?? volume.configMap?.items;
  return { volume, key: items ? items.find((i) => i.path === inside)?.key : inside };
}

/** Compose interpolation (`${X}`, `${X:-d}`, `${X:?msg}`) with a stand-in value for each variable. */
const composeValue = (v: string) =>
  v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}/g, (_m, name: string) => `stand-in-${name.toLowerCase()}`);

function composeEnv(s: ComposeService): Record<string, string> {
  const env = s.environment ?? {};
  const pairs = Array.isArray(env) ? env.map((e) => e.split(/=(.*)/s).slice(0, 2) as [string, string]) : Object.entries(env);
  return Object.fromEntries(pairs.map(([k, v]) => [k, String(v)]));
}

/** `127.0.0.1:8080:8080` → {ip, host, container}; a short form has no ip. */
function portMapping(p: string): { ip: string | undefined; host: number; container: number } {
  const parts = String(p).replace(/\/(tcp|udp)$/, '').split(':');
  const container = Number(parts.pop());
  const host = Number(parts.pop() ?? container);
  return { ip: parts.length ? parts.join(':') : undefined, host, container };
}

/** The configuration as start-up reads it: the schema, then the policy compiler (patterns). */
function tryConfig(raw: unknown, baseDir: string, env: NodeJS.ProcessEnv): { config?: Config; problem?: string } {
  try {
    const config = parseConfig(raw, { baseDir, env });
    compilePolicies(config.policies, { reservedNames: config.server.tls.mode === 'auto' ? config.server.tls.names : [] });
    return { config };
  } catch (err) {
    return { problem: `config does not parse: ${err instanceof ConfigError ? err.message : String(err)}` };
  }
}

/** Admins bound to an issuer (API.md "Identity and policy"): no other issuer's template can mint them. */
function adminProblems(config: Config): string[] {
  return config.auth.admins.identities.flatMap((a) =>
    typeof a === 'string' ? [`auth.admins.identities: "${a}" is not bound to an issuer ({ issuer, identity })`] : [],
  );
}

// ---------------------------------------------------------------- Kubernetes

/** The environment the container gets: literal values, and Secret keys as the template holds them. */
function kubeEnv(k: Kube, c: Container): { env: Record<string, string>; problems: string[] } {
  const env: Record<string, string> = {};
  const problems: string[] = [];
  for (const e of c.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) {
      const secret = k.secrets.find((s) => s.metadata?.name === ref.name);
      const v = secret?.stringData?.[ref.key] ?? secret?.data?.[ref.key];
      if (v === undefined) problems.push(`env ${e.name}: Secret ${ref.name} key ${ref.key} is not in the Secret template`);
      else env[e.name] = v;
    } else if (e.value !== undefined) env[e.name] = e.value;
  }
  return { env, problems };
}

function kubeConfig(k: Kube): { config?: Config; problems: string[] } {
  const c = k.deployment.spec.template.spec.containers[0];
  if (!c) return { problems: ['the Deployment has no container'] };
  const path = configArg(c.args) ?? configArg(c.command);
  if (!path) return { problems: ['the container is not started with --config FILE'] };
  const text = k.configMap?.data?.['config.yaml'];
  if (text === undefined) return { problems: ['no ConfigMap holds config.yaml'] };
  const { env, problems } = kubeEnv(k, c);
  const { config, problem } = tryConfig(parseYaml(text), posix.dirname(path), env);
  return { config, problems: problem ? [...problems, problem] : problems };
}

function kubernetesProblems(k: Kube): string[] {
  const { config, problems } = kubeConfig(k);
  const p = (s: string) => problems.push(s);
  const dep = k.deployment;
  const pod = dep.spec.template.spec;
  const c = pod.containers[0]!;
  const portOf = (port: string | number | undefined) =>
    typeof port === 'number' ? port : c.ports?.find((x) => x.name === port)?.containerPort;

  // Replicas, probes, shutdown, resources.
  if (dep.spec.replicas !== 2) p(`Deployment replicas is ${dep.spec.replicas}, not 2`);
  if (!matches(dep.spec.selector.matchLabels, dep.spec.template.metadata.labels)) p('Deployment selector does not match its pod labels');
  if (c.livenessProbe?.httpGet?.path !== '/healthz') p('liveness probe is not GET /healthz');
  if (c.readinessProbe?.httpGet?.path !== '/readyz') p('readiness probe is not GET /readyz');
  for (const [name, probe] of [['liveness', c.livenessProbe], ['readiness', c.readinessProbe], ['startup', c.startupProbe]] as const) {
    if (probe && (config === undefined || portOf(probe.httpGet?.port) !== config.public.port)) p(`${name} probe is not on the public port`);
  }
  if ((pod.terminationGracePeriodSeconds ?? 30) < 15) p(`terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} is below 15`);
  for (const r of ['cpu', 'memory']) {
    if (c.resources?.requests?.[r] === undefined || c.resources?.limits?.[r] === undefined) p(`resources: ${r} request or limit missing`);
  }

  // Non-root and hardened.
  const sc = { ...pod.securityContext, ...c.securityContext };
  if (sc.runAsNonRoot !== true) p('the pod does not run as non-root (runAsNonRoot)');
  if (typeof sc.runAsUser !== 'number' || sc.runAsUser === 0) p('runAsUser is not a numeric non-root uid (the image says USER node, which runAsNonRoot cannot verify)');
  if (c.securityContext?.allowPrivilegeEscalation !== false) p('allowPrivilegeEscalation is not false');
  if (c.securityContext?.readOnlyRootFilesystem !== true) p('readOnlyRootFilesystem is not true');
  if (!c.securityContext?.capabilities?.drop?.includes('ALL')) p('capabilities are not all dropped');
  if (!(c.volumeMounts ?? []).some((m) => m.mountPath === '/tmp' && pod.volumes?.find((v) => v.name === m.name)?.emptyDir)) {
    p('no emptyDir at /tmp on a read-only root filesystem');
  }

  // Environment: secrets come from Secrets.
  for (const name of ['DATABASE_URL', 'CA_KEY_PASSPHRASE']) {
    const e = c.env?.find((x) => x.name === name);
    if (!e?.valueFrom?.secretKeyRef) p(`env ${name} does not come from a Secret`);
  }

  // The configuration file from the ConfigMap; the CA files from the Secret.
  const configPath = configArg(c.args) ?? configArg(c.command);
  const configSource = configPath ? fileSource(pod, c, configPath) : undefined;
  if (configSource?.volume.configMap?.name !== k.configMap?.metadata?.name || configSource?.key !== 'config.yaml') {
    p('the --config file is not config.yaml mounted from the ConfigMap');
  }
  if (config) {
    const key = fileSource(pod, c, config.ca.key);
    if (!key?.volume.secret || key.key === undefined) p(`ca.key ${config.ca.key} is not mounted from a Secret`);
    else {
      const secret = k.secrets.find((s) => s.metadata?.name === key.volume.secret?.secretName);
      if (!secret || !Object.keys({ ...secret.stringData, ...secret.data }).includes(key.key)) {
        p(`ca.key: Secret ${key.volume.secret.secretName} (template) has no key ${key.key}`);
      }
    }
    for (const [what, file] of [['ca.certificate', config.ca.certificate], ['ca.chain', config.ca.chain]] as const) {
      const s = file === undefined ? undefined : fileSource(pod, c, file);
      if (!s || (!s.volume.secret && !s.volume.configMap) || s.key === undefined) p(`${what} ${file} is not mounted from a Secret or ConfigMap`);
    }
    const dbEnv = kubeEnv(k, c).env.DATABASE_URL;
    if (!config.database.url || config.database.url !== dbEnv) p('database.url is not DATABASE_URL: replicas need a shared Postgres');

    // Listeners: reachable in the pod, the same ports as the container and the Service.
    if (!anyHost(config.server.host)) p(`server.host ${config.server.host} is not 0.0.0.0 inside a container`);
    if (!anyHost(config.public.host)) p(`public.host ${config.public.host} is not 0.0.0.0 inside a container`);
    if (portOf('api') !== config.server.port) p(`container port "api" ${portOf('api')} is not server.port ${config.server.port}`);
    if (portOf('public') !== config.public.port) p(`container port "public" ${portOf('public')} is not public.port ${config.public.port}`);
    const targets = k.service.spec.ports.map((sp) => portOf(sp.targetPort ?? sp.port));
    if ([...targets].sort().join() !== [config.server.port, config.public.port].sort().join()) {
      p(`Service ports reach ${targets.join(', ')}, not server.port and public.port`);
    }
    if (!matches(k.service.spec.selector, dep.spec.template.metadata.labels)) p('Service selector does not match the pod labels');
    const svcHost = `${k.service.metadata?.name}.${k.service.metadata?.namespace}.svc`;
    const publicSvcPort = k.service.spec.ports.find((sp) => portOf(sp.targetPort ?? sp.port) === config.public.port)?.port;
    const url = new URL(config.publicUrl);
    if (!(url.hostname === svcHost || url.hostname === `${svcHost}.cluster.local`) || Number(url.port || 80) !== publicSvcPort) {
      p(`publicUrl ${config.publicUrl} is not the Service's public port (${svcHost}:${publicSvcPort})`);
    }
    if (config.server.tls.mode === 'auto' && !config.server.tls.names.includes(svcHost)) p(`server.tls.names lacks ${svcHost}`);

    // Workers, CPU, identity.
    if (typeof config.server.workers !== 'number') p('server.workers is not set explicitly (auto counts the node\'s cores)');
    else if (cores(c.resources?.requests?.cpu) !== config.server.workers) {
      p(`server.workers ${config.server.workers} does not match the CPU request ${c.resources?.requests?.cpu}`);
    }
    const k8s = config.auth.issuers.find((i) => i.issuer.startsWith('https://kubernetes.default.svc'));
    if (!k8s) p('no Kubernetes service-account issuer');
    else if (!k8s.identity.startsWith('spiffe://')) p('the Kubernetes issuer does not build SPIFFE identities');
    if (!config.policies.some((pol) => pol.identity.startsWith('spiffe://') && pol.identity.includes('{ns}') && pol.identity.includes('{sa}'))) {
      p('no SPIFFE-style policy (spiffe://…/ns/{ns}/sa/{sa})');
    }
    adminProblems(config).forEach(p);
  }

  // Disruption budget, namespaces, kustomization.
  const pdb = k.pdb.spec;
  if (!matches(pdb.selector.matchLabels, dep.spec.template.metadata.labels)) p('PodDisruptionBudget selector does not match the pods');
  if (pdb.minAvailable === undefined ? pdb.maxUnavailable === undefined : pdb.minAvailable < 1 || pdb.minAvailable >= (dep.spec.replicas ?? 1)) {
    p('PodDisruptionBudget neither keeps one pod nor allows one to go');
  }
  const ns = k.namespace.metadata?.name;
  if (k.kustomization.namespace !== ns) p(`kustomization namespace ${k.kustomization.namespace} is not the Namespace ${ns}`);
  for (const d of [k.configMap, dep, k.service, k.pdb, ...k.secrets]) {
    if (d?.metadata?.namespace !== ns) p(`${d?.kind} ${d?.metadata?.name} is not in namespace ${ns}`);
  }
  const listed = k.kustomization.resources ?? [];
  const expected = Object.keys(k.files).filter((f) => !f.includes('.template.')).sort();
  if ([...listed].sort().join() !== expected.join()) p(`kustomization resources ${listed.join(', ')} are not ${expected.join(', ')}`);
  if (listed.some((f) => f.includes('.template.') || (k.files[f] ?? []).some((d) => d.kind === 'Secret'))) {
    p('kustomization applies a Secret template: it would overwrite the real keys with placeholders');
  }
  return problems;
}

// ---------------------------------------------------------------- docker compose

function composeProblems(compose: Compose, configText: (hostPath: string) => string): string[] {
  const problems: string[] = [];
  const p = (s: string) => problems.push(s);
  const services = Object.entries(compose.services ?? {});
  const [pgName, pg] = services.find(([, s]) => /^postgres(:|$)/.test(s.image ?? '')) ?? [];
  const [caName, ca] = services.find(([, s]) => s.build !== undefined) ?? [];
  if (!pg || !pgName) return ['no service runs the official postgres image'];
  if (!ca || !caName) return ['no service is built from the Dockerfile'];

  const hc = pg.healthcheck?.test;
  if (!(Array.isArray(hc) ? hc.join(' ') : (hc ?? '')).includes('pg_isready')) p('postgres has no pg_isready healthcheck');
  const pgVolume = (pg.volumes ?? []).map((v) => v.split(':')).find(([src, dst]) => dst === '/var/lib/postgresql/data' && src && !src.startsWith('.') && !src.startsWith('/'));
  if (!pgVolume || compose.volumes?.[pgVolume[0]!] === undefined) p('postgres data is not on a named volume');
  const buildContext = typeof ca.build === 'string' ? ca.build : ca.build?.context;
  if (buildContext !== '.') p(`service-ca is not built from ./Dockerfile (context ${buildContext})`);
  const dep = Array.isArray(ca.depends_on) ? undefined : ca.depends_on?.[pgName];
  if (dep?.condition !== 'service_healthy') p('service-ca does not depend on postgres being healthy (condition: service_healthy)');

  for (const [name, s] of services) {
    for (const m of (s.ports ?? []).map(portMapping)) {
      if (m.ip !== '127.0.0.1') p(`${name} publishes port ${m.host} on ${m.ip ?? 'every address'}, not 127.0.0.1`);
    }
  }

  // Configuration: mounted read-only from a local folder, parsed with compose's environment.
  const command = Array.isArray(ca.command) ? ca.command : String(ca.command ?? '').split(/\s+/);
  const configPath = configArg(command) ?? '/etc/service-ca/config.yaml';
  const mount = (ca.volumes ?? []).map((v) => v.split(':')).find(([, dst]) => dst && configPath.startsWith(`${dst.replace(/\/+$/, '')}/`));
  if (!mount) return [...problems, `${configPath} is not in a mounted folder`];
  const [src = '', dst = '', mode] = mount;
  if (mode !== 'ro') p(`${src} is not mounted read-only`);
  if (!src.startsWith('./')) p(`${src} is not a local folder`);
  const hostConfig = posix.join(src, posix.relative(dst, configPath));
  let text: string;
  try {
    text = configText(hostConfig);
  } catch {
    return [...problems, `${hostConfig} does not exist`];
  }
  const env = Object.fromEntries(Object.entries(composeEnv(ca)).map(([k, v]) => [k, composeValue(v)]));
  const { config, problem } = tryConfig(parseYaml(text), posix.dirname(configPath), env);
  if (problem || !config) return [...problems, problem ?? 'no config'];

  const dbUrl = composeEnv(ca).DATABASE_URL;
  if (!dbUrl || new URL(composeValue(dbUrl)).hostname !== pgName) p(`DATABASE_URL does not point at the ${pgName} service`);
  if (config.database.url !== env.DATABASE_URL) p('database.url does not come from DATABASE_URL');
  for (const [what, file] of [['ca.key', config.ca.key], ['ca.certificate', config.ca.certificate], ['ca.chain', config.ca.chain]] as const) {
    if (!file?.startsWith(`${dst}/`)) p(`${what} ${file} is not in the mounted folder ${dst}`);
  }
  if (!/^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(String((parseYaml(text) as { ca?: { keyPassphrase?: unknown } }).ca?.keyPassphrase))) {
    p('ca.keyPassphrase is not a ${VAR} reference');
  }
  if (!anyHost(config.server.host)) p(`server.host ${config.server.host} is not 0.0.0.0 inside a container`);
  if (!anyHost(config.public.host)) p(`public.host ${config.public.host} is not 0.0.0.0 inside a container`);
  const mappings = (ca.ports ?? []).map(portMapping);
  const published = mappings.map((m) => m.container).sort().join();
  if (published !== [config.server.port, config.public.port].sort().join()) p(`published container ports ${published} are not server.port and public.port`);
  const pub = mappings.find((m) => m.container === config.public.port);
  const url = new URL(config.publicUrl);
  if (!pub || !['127.0.0.1', 'localhost'].includes(url.hostname) || Number(url.port || 80) !== pub.host) {
    p(`publicUrl ${config.publicUrl} is not where compose publishes the public listener`);
  }
  adminProblems(config).forEach(p);
  return problems;
}

// ---------------------------------------------------------------- secrets in files

const PRIVATE_KEY = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----/;
const PLACEHOLDER = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}$|PLACEHOLDER/;

/** Every string value at a key named like a secret, and every password inside a URL. */
function secretValues(value: unknown, path: string[] = []): { path: string; value: string }[] {
  if (typeof value === 'string') {
    const key = path.at(-1) ?? '';
    const found: { path: string; value: string }[] = [];
    if (/pass(word|phrase)|^secret$/i.test(key)) found.push({ path: path.join('.'), value });
    const url = /^[a-z][a-z0-9+.-]*:\/\/[^/:@\s]*:(.*)@[^@]*$/i.exec(value);
    if (url) found.push({ path: `${path.join('.')} (URL password)`, value: url[1]! });
    return found;
  }
  if (Array.isArray(value)) return value.flatMap((v, i) => secretValues(v, [...path, String(i)]));
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const secretData = obj.kind === 'Secret';
    return Object.entries(obj).flatMap(([k, v]) => {
      if (secretData && (k === 'stringData' || k === 'data') && v && typeof v === 'object') {
        return Object.entries(v).map(([dk, dv]) => ({ path: [...path, k, dk].join('.'), value: String(dv) }));
      }
      return secretValues(v, [...path, k]);
    });
  }
  return [];
}

/** Literal keys or passphrases in the deployment files (name → text). */
function secretProblems(files: Record<string, string>): string[] {
  const problems: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    if (PRIVATE_KEY.test(text)) problems.push(`${name}: contains a PEM private key`);
    if (!/\.ya?ml$/.test(name)) continue;
    const docs = parseAllDocuments(text);
    for (const d of Array.isArray(docs) ? docs : [docs]) {
      const js = d.toJS() as unknown;
      for (const s of secretValues(js)) {
        if (!PLACEHOLDER.test(s.value)) problems.push(`${name}: ${s.path} is a literal, not a \${VAR} reference or a PLACEHOLDER`);
      }
      // A configuration embedded in a ConfigMap is text: read it too.
      const data = (js as ConfigMapDoc | null)?.kind === 'ConfigMap' ? (js as ConfigMapDoc).data ?? {} : {};
      for (const [k, v] of Object.entries(data)) {
        if (!/\.ya?ml$/.test(k)) continue;
        for (const s of secretValues(parseYaml(v))) {
          if (!PLACEHOLDER.test(s.value)) problems.push(`${name}: ${k}: ${s.path} is a literal, not a \${VAR} reference`);
        }
      }
    }
  }
  return problems;
}

/** The deployment files that would be committed: tracked or not ignored (never deploy/compose/ca). */
function committableFiles(): string[] {
  try {
    const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', COMPOSE_FILE, 'deploy'], { cwd: ROOT, encoding: 'utf8' });
    return out.split('\n').filter((f) => f && existsSync(join(ROOT, f)));
  } catch {
    const walk = (d: string): string[] =>
      readdirSync(join(ROOT, d)).flatMap((n) => {
        const rel = `${d}/${n}`;
        if (rel === 'deploy/compose/ca') return [];
        return statSync(join(ROOT, rel)).isDirectory() ? walk(rel) : [rel];
      });
    return [COMPOSE_FILE, ...walk('deploy')];
  }
}

// ---------------------------------------------------------------- the tests

describe('Kubernetes manifests (deploy/kubernetes)', () => {
  it('parse, and the configuration in the ConfigMap passes the schema with the Deployment\'s environment', () => {
    const { config, problems } = kubeConfig(readKube());
    assert.deepEqual(problems, []);
    assert.equal(config?.server.workers, 2);
  });

  it('agree with each other and with the configuration: replicas, probes, non-root, Secret and ConfigMap mounts, ports', () => {
    assert.deepEqual(kubernetesProblems(readKube()), []);
  });
});

describe('docker compose (docker-compose.yml, deploy/compose)', () => {
  it('runs Postgres with a healthcheck and service-ca after it, with a read-only configuration that passes the schema', () => {
    const { compose, configText } = readCompose();
    assert.deepEqual(composeProblems(compose, configText), []);
  });
});

describe('no key material in committed files', () => {
  it('the deployment files hold no private key and no literal passphrase or password', () => {
    const files = committableFiles();
    assert.ok(files.includes(COMPOSE_FILE) && files.some((f) => f.startsWith(`${KUBE_DIR}/`)), `found the deployment files: ${files.join(', ')}`);
    assert.deepEqual(secretProblems(Object.fromEntries(files.map((f) => [f, readText(f)]))), []);
  });

  it('git ignores the CA folder that the compose instructions create', (t) => {
    try {
      execFileSync('git', ['rev-parse', '--git-dir'], { cwd: ROOT, stdio: 'ignore' });
    } catch {
      t.skip('not a git checkout');
      return;
    }
    for (const f of ['deploy/compose/ca/intermediate.key', 'deploy/compose/ca/root.pem']) {
      const ignored = (() => {
        try {
          execFileSync('git', ['check-ignore', '-q', f], { cwd: ROOT, stdio: 'ignore' });
          return true;
        } catch {
          return false;
        }
      })();
      assert.ok(ignored, `${f} is ignored by git`);
    }
  });
});

/** Each check objects to a broken copy of the real files: no check passes vacuously. */
describe('the checks fail on broken manifests', () => {
  const kube = (mutate: (k: Kube) => void) => {
    const k = structuredClone(readKube());
    mutate(k);
    return kubernetesProblems(k).join('\n');
  };
  const container = (k: Kube) => k.deployment.spec.template.spec.containers[0]!;
  const editConfig = (k: Kube, from: string | RegExp, to: string) => {
    const text = k.configMap.data!['config.yaml']!;
    const next = text.replace(from, to);
    assert.notEqual(next, text, `the ConfigMap's config.yaml contains ${from}`);
    k.configMap.data!['config.yaml'] = next;
  };
  const volume = (k: Kube, name: string) => k.deployment.spec.template.spec.volumes!.find((v) => v.name === name)!;

  const kubeCases: [string, (k: Kube) => void, RegExp][] = [
    ['one replica', (k) => (k.deployment.spec.replicas = 1), /replicas is 1/],
    ['liveness on /', (k) => (container(k).livenessProbe!.httpGet!.path = '/'), /liveness probe is not GET \/healthz/],
    ['readiness on /healthz', (k) => (container(k).readinessProbe!.httpGet!.path = '/healthz'), /readiness probe is not GET \/readyz/],
    ['readiness on the API port', (k) => (container(k).readinessProbe!.httpGet!.port = 'api'), /readiness probe is not on the public port/],
    ['root', (k) => {
      delete k.deployment.spec.template.spec.securityContext!.runAsNonRoot;
      delete container(k).securityContext!.runAsNonRoot;
    }, /non-root/],
    ['uid 0', (k) => (k.deployment.spec.template.spec.securityContext!.runAsUser = 0), /runAsUser/],
    ['writable root filesystem', (k) => (container(k).securityContext!.readOnlyRootFilesystem = false), /readOnlyRootFilesystem/],
    ['capabilities kept', (k) => (container(k).securityContext!.capabilities = { drop: [] }), /capabilities/],
    ['key from a ConfigMap', (k) => {
      const v = volume(k, 'ca');
      v.configMap = { name: 'service-ca-files', ...(v.secret?.items ? { items: v.secret.items } : {}) };
      delete v.secret;
    }, /ca\.key .* is not mounted from a Secret/],
    ['key file not in the Secret', (k) => editConfig(k, '/etc/service-ca/ca/intermediate.key', '/etc/service-ca/ca/other.key'), /ca\.key .* not mounted from a Secret/],
    ['config from another ConfigMap', (k) => (volume(k, 'config').configMap!.name = 'other'), /--config file is not config\.yaml mounted from the ConfigMap/],
    ['passphrase as a literal', (k) => {
      const e = container(k).env!.find((x) => x.name === 'CA_KEY_PASSPHRASE')!;
      delete e.valueFrom;
      e.value = 'stand-in';
    }, /CA_KEY_PASSPHRASE does not come from a Secret/],
    ['passphrase variable missing', (k) => {
      container(k).env = container(k).env!.filter((x) => x.name !== 'CA_KEY_PASSPHRASE');
    }, /environment variable CA_KEY_PASSPHRASE is not set/],
    ['public listener on 127.0.0.1', (k) => editConfig(k, /public: \{ host: 0\.0\.0\.0/, 'public: { host: 127.0.0.1'), /public\.host 127\.0\.0\.1/],
    ['public port not the container\'s', (k) => editConfig(k, 'port: 8080 }', 'port: 9090 }'), /container port "public" 8080 is not public\.port 9090/],
    ['Service to a wrong port', (k) => (k.service.spec.ports[0]!.targetPort = 9999), /Service ports reach/],
    ['publicUrl elsewhere', (k) => editConfig(k, 'publicUrl: http://service-ca.service-ca.svc:8080', 'publicUrl: http://ca.example.com'), /publicUrl/],
    ['workers auto', (k) => editConfig(k, /workers: 2/, 'workers: auto'), /server\.workers is not set explicitly/],
    ['workers above the CPU request', (k) => editConfig(k, /workers: 2/, 'workers: 4'), /server\.workers 4 does not match/],
    ['no database', (k) => {
      container(k).env = container(k).env!.filter((x) => x.name !== 'DATABASE_URL');
    }, /environment variable DATABASE_URL is not set[\s\S]*env DATABASE_URL does not come from a Secret/],
    ['short grace period', (k) => (k.deployment.spec.template.spec.terminationGracePeriodSeconds = 10), /terminationGracePeriodSeconds 10/],
    ['no memory limit', (k) => delete container(k).resources!.limits!.memory, /memory request or limit missing/],
    ['PDB for other pods', (k) => (k.pdb.spec.selector.matchLabels = { app: 'other' }), /PodDisruptionBudget selector/],
    ['PDB that blocks every drain', (k) => (k.pdb.spec.minAvailable = 2), /PodDisruptionBudget neither/],
    ['Secret template applied', (k) => k.kustomization.resources!.push('secret.template.yaml'), /overwrite the real keys/],
    ['a manifest left out', (k) => (k.kustomization.resources = k.kustomization.resources!.filter((r) => r !== 'pdb.yaml')), /kustomization resources/],
    ['Service in another namespace', (k) => (k.service.metadata!.namespace = 'default'), /Service service-ca is not in namespace/],
    ['identity from sub', (k) => editConfig(k, /identity: "spiffe:\/\/cluster\.local\/ns\/\{kubernetes[^"]*"/, 'identity: "{sub}"'), /does not build SPIFFE identities/],
    ['an admin any issuer can claim', (k) => editConfig(k, /identities: \[\{ issuer: k8s, identity: ("[^"]*") \}\]/, 'identities: [$1]'), /"spiffe:\/\/cluster\.local\/ns\/service-ca\/sa\/service-ca-admin" is not bound to an issuer/],
    ['an admin bound to an issuer that is not configured', (k) => editConfig(k, '{ issuer: k8s, identity:', '{ issuer: oidc, identity:'), /auth\.admins\.identities\.0\.issuer: "oidc" is not the name of an issuer/],
    ['a policy pattern with an unknown capture', (k) => editConfig(k, 'dns: ["{sa}.{ns}.svc"', 'dns: ["{app}.{ns}.svc"'), /config: policies\.0\.dns\.0: "\{app\}" is neither/],
  ];
  for (const [name, mutate, expected] of kubeCases) {
    it(`Kubernetes: ${name}`, () => assert.match(kube(mutate), expected));
  }

  const compose = (mutate: (c: Compose) => void, configEdit?: [string | RegExp, string]) => {
    const { compose: original, configText } = readCompose();
    const c = structuredClone(original);
    mutate(c);
    const text = (hostPath: string) => {
      const t = configText(hostPath);
      if (!configEdit) return t;
      const next = t.replace(configEdit[0], configEdit[1]);
      assert.notEqual(next, t, `the compose config contains ${configEdit[0]}`);
      return next;
    };
    return composeProblems(c, text).join('\n');
  };
  const svc = (c: Compose, image: RegExp | 'built') =>
    Object.values(c.services).find((s) => (image === 'built' ? s.build !== undefined : image.test(s.image ?? '')))!;
  const composeCases: [string, (c: Compose) => void, RegExp, [string | RegExp, string]?][] = [
    ['no healthcheck', (c) => delete svc(c, /^postgres/).healthcheck, /pg_isready/],
    ['started, not healthy', (c) => {
      const d = svc(c, 'built').depends_on as Record<string, { condition?: string }>;
      for (const k of Object.keys(d)) d[k] = { condition: 'service_started' };
    }, /service_healthy/],
    ['data in a bind mount', (c) => (svc(c, /^postgres/).volumes = ['./pgdata:/var/lib/postgresql/data']), /named volume/],
    ['port on every address', (c) => (svc(c, 'built').ports![0] = '8443:8443'), /on every address, not 127\.0\.0\.1/],
    ['configuration writable', (c) => (svc(c, 'built').volumes = svc(c, 'built').volumes!.map((v) => v.replace(/:ro$/, ''))), /not mounted read-only/],
    ['passphrase variable not passed', (c) => {
      const env = svc(c, 'built').environment as Record<string, string>;
      delete env.CA_KEY_PASSPHRASE;
    }, /environment variable CA_KEY_PASSPHRASE is not set/],
    ['database elsewhere', (c) => {
      const env = svc(c, 'built').environment as Record<string, string>;
      env.DATABASE_URL = env.DATABASE_URL!.replace('@postgres:', '@db.example.com:');
    }, /DATABASE_URL does not point at the postgres service/],
    ['API listener on 127.0.0.1 in the container', () => {}, /server\.host 127\.0\.0\.1/, [/host: 0\.0\.0\.0 /, 'host: 127.0.0.1 ']],
    ['public port not published', () => {}, /published container ports/, [/port: 8080 \}/, 'port: 9090 }']],
    ['passphrase literal in the configuration', () => {}, /keyPassphrase is not a \$\{VAR\}/, ['keyPassphrase: ${CA_KEY_PASSPHRASE}', 'keyPassphrase: hunter2hunter2']],
    ['an admin any issuer can claim', () => {}, /"spiffe:\/\/example\.org\/admin" is not bound to an issuer/, [/identities: \[\{ issuer: oidc, identity: ("[^"]*") \}\]/, 'identities: [$1]']],
    ['a policy pattern joining two captures ambiguously', () => {}, /config: policies\.0\.dns\.0: .*could be filled two ways/, ['"{sa}.{ns}.svc",', '"{sa}-{ns}.svc",']],
  ];
  for (const [name, mutate, expected, edit] of composeCases) {
    it(`compose: ${name}`, () => assert.match(compose(mutate, edit), expected));
  }

  it('secrets: a PEM private key, a literal passphrase, a literal Secret value and a URL password are found', () => {
    const pem = ['-----BEGIN', 'ENCRYPTED PRIVATE KEY-----'].join(' ');
    const problems = secretProblems({
      'a.md': `text\n${pem}\nMIIB\n`,
      'b.yaml': 'services:\n  x:\n    environment:\n      CA_KEY_PASSPHRASE: hunter2hunter2\n',
      'c.yaml': 'apiVersion: v1\nkind: Secret\nstringData:\n  keyPassphrase: hunter2hunter2\n',
      'd.yaml': 'env:\n  DATABASE_URL: postgres://u:hunter2@db:5432/x\n',
      'e.yaml': 'kind: ConfigMap\ndata:\n  config.yaml: |\n    ca:\n      keyPassphrase: hunter2hunter2\n',
      'ok.yaml': 'a:\n  password: ${PW:?set it}\n  url: postgres://u:${PW}@db/x\nkind: Secret\nstringData:\n  key: "<PLACEHOLDER>"\n',
    });
    assert.deepEqual(problems.map((p) => p.split(':')[0]), ['a.md', 'b.yaml', 'c.yaml', 'd.yaml', 'e.yaml']);
  });

});

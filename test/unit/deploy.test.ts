/**
 * The deployment files (Dockerfile, docker-compose.yml, deploy/compose/, deploy/kubernetes/ and
 * its examples/workload/) checked statically: the configurations they carry pass the real schema
 * with the environment the manifests supply, the ports and hosts agree between configuration,
 * containers, Service and compose mappings, the pod runs hardened with the key from a Secret and
 * the configuration from the ConfigMap, the image runs on a maintained Node LTS line with a
 * HEALTHCHECK that reads the configuration serve reads, the example workload agrees with the CA
 * (token, URL, files, PID file, names the policy grants) and the NetworkPolicy lets it in, and no
 * key or passphrase is written in any file. Two things are run rather than read: the compose
 * commands of README.md and deploy/README.md (with bash, in a scratch copy of the repository,
 * docker stubbed), which must leave every file the compose configuration needs; and the agent's
 * own option parsing of the workload's arguments. Every check is a function that lists
 * problems; the last part mutates the real files' objects and expects each check to object, so
 * that none of them can pass vacuously.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { renderIdentity } from '../../src/auth/identity-template.js';
import { ConfigError, caIssuers, parseConfig, type Config } from '../../src/config.js';
import { ensureDevCa } from '../../src/dev-ca.js';
import { CaError } from '../../src/errors.js';
import type { SubjectAltNames } from '../../src/model.js';
import { authorizeNames, compilePolicies } from '../../src/policy/names.js';
import { runCli } from '../setup/cli-run.js';
import { CLI, TSX_LOADER, cleanEnv } from '../setup/processes.js';

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
  runAsGroup?: number;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { drop?: string[] };
}
interface Resources { requests?: Record<string, string | number>; limits?: Record<string, string | number> }
interface Container {
  name: string;
  image?: string;
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
interface ServiceAccountTokenProjection { audience?: string; expirationSeconds?: number; path: string }
interface Volume {
  name: string;
  secret?: { secretName: string; items?: { key: string; path: string }[] };
  configMap?: { name: string; items?: { key: string; path: string }[] };
  emptyDir?: object;
  projected?: { sources: { serviceAccountToken?: ServiceAccountTokenProjection }[] };
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  shareProcessNamespace?: boolean;
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
interface Kustomization { namespace?: string; resources?: string[]; images?: { name: string; newName?: string; newTag?: string }[] }
interface PolicyPeer { namespaceSelector?: { matchLabels?: Record<string, string> }; podSelector?: { matchLabels?: Record<string, string> } }
interface NetworkPolicyDoc extends Doc {
  spec: {
    podSelector: { matchLabels?: Record<string, string> };
    policyTypes?: string[];
    ingress?: { from?: PolicyPeer[]; ports?: { port?: string | number; protocol?: string }[] }[];
  };
}

interface ComposeService {
  image?: string;
  build?: string | { context?: string };
  command?: string[] | string;
  user?: string;
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
  networkPolicy: NetworkPolicyDoc;
  secrets: SecretDoc[];
}

function only<T extends Doc>(docs: Doc[], kind: string, dir = KUBE_DIR): T {
  const found = docs.filter((d) => d.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind} under ${dir}`);
  return found[0] as T;
}

/** The YAML files of a kustomization folder (not its subfolders), by name, and its kustomization. */
function readKustomized(dir: string): { files: Record<string, Doc[]>; all: Doc[]; kustomization: Kustomization } {
  const names = readdirSync(join(ROOT, dir)).filter((n) => /\.ya?ml$/.test(n) && n !== 'kustomization.yaml');
  const files = Object.fromEntries(names.map((n) => [n, readDocs(`${dir}/${n}`)]));
  return { files, all: Object.values(files).flat(), kustomization: parseYaml(readText(`${dir}/kustomization.yaml`)) as Kustomization };
}

function readKube(): Kube {
  const { files, all, kustomization } = readKustomized(KUBE_DIR);
  return {
    files,
    kustomization,
    namespace: only(all, 'Namespace'),
    configMap: all.find((d) => d.kind === 'ConfigMap' && (d as ConfigMapDoc).data?.['config.yaml'] !== undefined) as ConfigMapDoc,
    deployment: only(all, 'Deployment'),
    service: only(all, 'Service'),
    pdb: only(all, 'PodDisruptionBudget'),
    networkPolicy: only(all, 'NetworkPolicy'),
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

/**
 * The mount (and volume) that holds a file path inside the container, the path inside the
 * volume, and the item key it is (for a projected volume, the path of the projection).
 */
function fileSource(pod: PodSpec, container: Container, file: string): { volume: Volume; mount: Mount; inside: string; key: string | undefined } | undefined {
  const mount = (container.volumeMounts ?? [])
    .filter((m) => file.startsWith(`${m.mountPath.replace(/\/+$/, '')}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  const volume = mount && pod.volumes?.find((v) => v.name === mount.name);
  if (!mount || !volume) return undefined;
  const inside = posix.relative(mount.mountPath, file);
  const items = volume.secret?.items ?? volume.configMap?.items;
  if (volume.projected) return { volume, mount, inside, key: volume.projected.sources.find((s) => s.serviceAccountToken?.path === inside)?.serviceAccountToken?.path };
  return { volume, mount, inside, key: items ? items.find((i) => i.path === inside)?.key : inside };
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

/** Admins bound to an issuer (docs/api.md "Identity and policy"): no other issuer's template can mint them. */
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
    const caKey = caIssuers(config.ca).find((i) => i.active)!.key;
    const key = fileSource(pod, c, caKey);
    if (!key?.volume.secret || key.key === undefined) p(`ca.key ${caKey} is not mounted from a Secret`);
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
  for (const d of [k.configMap, dep, k.service, k.pdb, k.networkPolicy, ...k.secrets]) {
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
  const configPath = composeConfigPath(ca);
  if (!configPath) return [...problems, 'serve is given no configuration file (--config or SERVICE_CA_CONFIG): it would make a development CA'];
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

// ---------------------------------------------------------------- the image (Dockerfile)

/** The Node.js LTS lines the image may use, and the day each one's maintenance ends (the Node.js release schedule). */
const NODE_END_OF_LIFE: Record<number, string> = { 20: '2026-04-30', 22: '2027-04-30', 24: '2028-04-30' };

interface Image {
  /** The FROM image of every stage, in order. */
  from: string[];
  /** ENV of the last stage. */
  env: Record<string, string>;
  /** HEALTHCHECK's command: its exec form (undefined for the shell form) and its text. */
  healthcheck: { exec: string[] | undefined; text: string } | undefined;
  cmd: string[];
}

/** The Dockerfile's instructions as docker reads them: continuations joined, comments dropped. */
function readImage(text: string): Image {
  const image: Image = { from: [], env: {}, healthcheck: undefined, cmd: [] };
  const execForm = (s: string): string[] | undefined => {
    try {
      const v = JSON.parse(s) as unknown;
      return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
    } catch {
      return undefined;
    }
  };
  const lines = text.replace(/\\\r?\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const line of lines) {
    const [, word = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    switch (word.toUpperCase()) {
      case 'FROM':
        image.from.push(rest.split(/\s+/)[0]!);
        image.env = {};
        break;
      case 'ENV':
        for (const m of rest.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)) image.env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
        break;
      case 'HEALTHCHECK': {
        const command = /\bCMD\s+(.*)$/.exec(rest)?.[1];
        image.healthcheck = command === undefined ? undefined : { exec: execForm(command), text: command };
        break;
      }
      case 'CMD':
        image.cmd = execForm(rest) ?? ['/bin/sh', '-c', rest];
        break;
    }
  }
  return image;
}

const commandOf = (s: ComposeService | undefined): string[] | undefined =>
  s?.command === undefined ? undefined : Array.isArray(s.command) ? s.command : String(s.command).split(/\s+/);

/** The configuration file `serve` reads in the image (its --config, else SERVICE_CA_CONFIG), under compose when a service is given. */
function serveConfigPath(image: Image, service?: ComposeService): string | undefined {
  return configArg(commandOf(service) ?? image.cmd) ?? (service && composeEnv(service).SERVICE_CA_CONFIG) ?? image.env.SERVICE_CA_CONFIG;
}

/** The configuration file the image's HEALTHCHECK reads, likewise. */
function healthcheckConfigPath(image: Image, service?: ComposeService): string | undefined {
  return configArg(image.healthcheck?.exec) ?? (service && composeEnv(service).SERVICE_CA_CONFIG) ?? image.env.SERVICE_CA_CONFIG;
}

/** The compose service's configuration file, as the image runs it. */
const composeConfigPath = (ca: ComposeService): string | undefined => serveConfigPath(readImage(readText('Dockerfile')), ca);

/**
 * The image: both stages on one maintained Node LTS line, and a HEALTHCHECK that runs the
 * healthcheck command on the configuration file serve reads (in the image, and under compose).
 */
function imageProblems(image: Image, compose: Compose, today: Date): string[] {
  const problems: string[] = [];
  const p = (s: string) => problems.push(s);
  const lines = image.from.map((f) => /^node:(\d+)-bookworm-slim$/.exec(f)?.[1]);
  if (lines.length === 0 || lines.some((l) => l === undefined)) p(`the stages are not all node:<version>-bookworm-slim: ${image.from.join(', ')}`);
  else if (new Set(lines).size !== 1) p(`the stages build and run on different Node lines: ${image.from.join(', ')}`);
  else {
    const major = Number(lines[0]);
    const end = NODE_END_OF_LIFE[major];
    if (!end) p(`node ${major} is not an LTS line this test knows (add it to NODE_END_OF_LIFE)`);
    else if (Date.parse(end) <= today.getTime()) p(`node ${major} reached its end of life on ${end}: move the image to a maintained LTS line`);
  }

  const hc = image.healthcheck?.exec;
  const runsHealthcheck =
    hc?.[0] === 'node' && (hc[1] === 'dist/src/cli/healthcheck.js' || (hc[1] === 'dist/src/cli/index.js' && hc[2] === 'healthcheck')) && existsSync(join(ROOT, 'src/cli/healthcheck.ts'));
  if (!runsHealthcheck) p(`the HEALTHCHECK does not run the healthcheck command (node dist/src/cli/healthcheck.js): ${image.healthcheck?.text ?? 'none'}`);
  if (image.cmd[0] !== 'serve') p(`the image's CMD is not serve: ${image.cmd.join(' ')}`);
  const serves = serveConfigPath(image);
  const checks = healthcheckConfigPath(image);
  if (!serves) p('the image\'s serve is given no configuration file (it would make a development CA)');
  else if (checks !== serves) p(`the HEALTHCHECK reads ${checks}, serve reads ${serves}`);
  const ca = Object.values(compose.services ?? {}).find((s) => s.build !== undefined);
  if (ca && healthcheckConfigPath(image, ca) !== serveConfigPath(image, ca)) {
    p(`under compose the HEALTHCHECK reads ${healthcheckConfigPath(image, ca)}, serve reads ${serveConfigPath(image, ca)}`);
  }
  return problems;
}

// ---------------------------------------------------------------- the compose commands of the READMEs

/** Where the READMEs give the compose commands: the file and the section. */
const COMPOSE_DOCS: [string, string][] = [['README.md', '## Deployment'], ['deploy/README.md', '## Docker Compose']];

/** The fenced sh blocks of a Markdown section (from its heading to the next heading of that level or above). */
function sectionShBlocks(markdown: string, heading: string): string[] {
  const level = heading.indexOf(' ');
  const blocks: string[] = [];
  let inSection = false;
  let fence: { sh: boolean; lines: string[] } | undefined;
  for (const line of markdown.split('\n')) {
    if (fence) {
      if (/^```\s*$/.test(line)) {
        if (inSection && fence.sh) blocks.push(fence.lines.join('\n'));
        fence = undefined;
      } else fence.lines.push(line);
      continue;
    }
    if (line.startsWith('```')) fence = { sh: /^```(sh|bash|shell)\s*$/.test(line), lines: [] };
    else if (line.trim() === heading) inSection = true;
    else if ((/^(#+) /.exec(line)?.[1]?.length ?? Infinity) <= level) inSection = false;
  }
  return blocks;
}

/** The one sh block of a README's section that runs `docker compose up`. */
function composeCommands(file: string, heading: string): string {
  const found = sectionShBlocks(readText(file), heading).filter((b) => /^\s*docker compose up\b/m.test(b));
  assert.equal(found.length, 1, `one sh block with docker compose up under "${heading}" in ${file}`);
  return found[0]!;
}

interface CommandsRun {
  scratch: string;
  /** The scratch copy of the repository the commands ran in. */
  repo: string;
  code: number | null;
  output: string;
  /** The environment after the last command (what the commands exported). */
  env: Record<string, string>;
  /** The arguments of every `docker` command. */
  docker: string[];
}

/**
 * Runs a README's compose commands as written, with bash, in a scratch copy of the files that a
 * clone has under docker-compose.yml and deploy/compose/, to which the quick start's `npm start`
 * has added the development CA under data/ (`devData`: what dev-ca.ts makes before the server
 * listens). `npm run -s service-ca -- ARGS` runs this checkout's command line, `docker` only
 * records its arguments, and the variables the CA needs come from the commands alone.
 */
function runComposeCommands(commands: string, devData: string): CommandsRun {
  const scratch = mkdtempSync(join(tmpdir(), 'service-ca-compose-commands-'));
  const repo = join(scratch, 'repo');
  for (const f of committableFiles([COMPOSE_FILE, 'deploy/compose'])) {
    mkdirSync(dirname(join(repo, f)), { recursive: true });
    cpSync(join(ROOT, f), join(repo, f));
  }
  cpSync(devData, join(repo, 'data'), { recursive: true });
  const calls = join(scratch, 'docker-calls');
  const envAfter = join(scratch, 'env-after');
  const script = [
    'set -eu',
    'npm() { if [ "$#" -gt 4 ] && [ "$1 $2 $3 $4" = "run -s service-ca --" ]; then shift 4; node --import "$TSX_LOADER" "$SERVICE_CA_CLI" "$@"; else echo "not a command these steps may run: npm $*" >&2; return 97; fi; }',
    'docker() { printf "%s\\n" "$*" >> "$DOCKER_CALLS"; }',
    commands,
    'env -0 > "$ENV_AFTER"',
  ].join('\n');
  // HOME in the scratch folder: the commands keep the root key under ~, outside the clone.
  const env = cleanEnv({ TSX_LOADER, SERVICE_CA_CLI: CLI, DOCKER_CALLS: calls, ENV_AFTER: envAfter, HOME: join(scratch, 'home') });
  for (const k of ['CA_KEY_PASSPHRASE', 'POSTGRES_PASSWORD', 'SERVICE_CA_UID', 'SERVICE_CA_GID', 'OIDC_ISSUER']) delete env[k];
  const r = spawnSync('bash', ['-c', script], { cwd: repo, env, encoding: 'utf8', timeout: 90_000 });
  const pairs = existsSync(envAfter) ? readFileSync(envAfter, 'utf8').split('\0').filter(Boolean).map((kv) => kv.split(/=(.*)/s).slice(0, 2) as [string, string]) : [];
  return {
    scratch,
    repo,
    code: r.status,
    output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`,
    env: Object.fromEntries(pairs),
    docker: existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean) : [],
  };
}

/** Compose's interpolation with real values; `${X:?…}` and `${X?…}` without a value add X to `missing`. */
function interpolate(value: string, env: Record<string, string>, missing: Set<string>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g, (_m, name: string, colon: string | undefined, op: string | undefined, arg: string | undefined) => {
    const v = env[name];
    if (v !== undefined && !(colon === ':' && v === '')) return v;
    if (op === '-') return arg ?? '';
    if (op === '?') missing.add(name);
    return '';
  });
}

/** Whether uid:gid may read file, and search every folder from `top` down to it (by mode bits; uid 0 may). */
function readableBy(file: string, top: string, uid: number, gid: number): boolean {
  if (uid === 0) return true;
  const may = (path: string, bit: number) => {
    const s = statSync(path);
    const shift = s.uid === uid ? 6 : s.gid === gid ? 3 : 0;
    return ((s.mode >> shift) & bit) !== 0;
  };
  if (!may(file, 4)) return false;
  for (let d = dirname(file); d.startsWith(top); d = dirname(d)) {
    if (!may(d, 1)) return false;
    if (d === top) break;
  }
  return true;
}

/**
 * What `docker compose up` would miss after the commands: a variable it requires, the
 * configuration file, or a file the configuration names under the mounted folder (CA files,
 * JWKS files, TLS files), each present and readable by the user the container runs as; a JWKS
 * file must hold keys.
 */
function composeCommandProblems(run: CommandsRun): string[] {
  if (run.code !== 0) return [`the commands failed (exit ${run.code}):\n${run.output}`];
  const problems: string[] = [];
  const p = (s: string) => problems.push(s);
  if (!run.docker.some((c) => /^compose up\b/.test(c))) p('the commands never run docker compose up');
  const compose = parseYaml(readFileSync(join(run.repo, COMPOSE_FILE), 'utf8')) as Compose;
  const ca = Object.values(compose.services ?? {}).find((s) => s.build !== undefined);
  if (!ca) return ['no service is built from the Dockerfile'];
  const missing = new Set<string>();
  const env = Object.fromEntries(Object.entries(composeEnv(ca)).map(([k, v]) => [k, interpolate(v, run.env, missing)]));
  const [uid = NaN, gid = NaN] = interpolate(ca.user ?? '', run.env, missing).split(':').map(Number);
  for (const name of missing) p(`docker compose needs ${name}, which the commands do not set`);
  const configPath = composeConfigPath(ca);
  const mount = (ca.volumes ?? []).map((v) => v.split(':')).find(([, dst]) => dst && configPath?.startsWith(`${dst.replace(/\/+$/, '')}/`));
  if (!configPath || !mount) return [...problems, `the configuration ${configPath} is not in a mounted folder`];
  const [src = '', dst = ''] = mount;
  const onHost = (file: string) => posix.join(src, posix.relative(dst, file));
  const configOnHost = join(run.repo, onHost(configPath));
  if (!existsSync(configOnHost)) return [...problems, `${onHost(configPath)} (the configuration) is not there`];
  const { config, problem } = tryConfig(parseYaml(readFileSync(configOnHost, 'utf8')), posix.dirname(configPath), env);
  if (!config) return [...problems, problem ?? 'the configuration does not parse'];
  const jwksFiles = config.auth.issuers.flatMap((i) => (i.jwks && 'file' in i.jwks ? [[`auth.issuers ${i.name} jwks`, i.jwks.file] as [string, string]] : []));
  const tls = config.server.tls.mode === 'files' ? [['server.tls.certificate', config.server.tls.certificate], ['server.tls.key', config.server.tls.key]] as [string, string][] : [];
  const needed: [string, string | undefined][] = [['the configuration', configPath], ['ca.certificate', config.ca.certificate], ['ca.key', config.ca.key], ['ca.chain', config.ca.chain], ...tls, ...jwksFiles];
  for (const [what, file] of needed) {
    if (file === undefined) continue;
    if (!file.startsWith(`${dst}/`)) {
      p(`${what} ${file} is not in the mounted folder ${dst}`);
      continue;
    }
    const rel = onHost(file);
    const host = join(run.repo, rel);
    if (!existsSync(host)) p(`${rel} (${what}) is neither committed nor made by the commands`);
    else if (!Number.isInteger(uid) || !Number.isInteger(gid) || !readableBy(host, join(run.repo, src), uid, gid)) {
      p(`${rel} (${what}) is not readable by uid ${uid}, gid ${gid}, the user the container runs as`);
    }
  }
  for (const [what, file] of jwksFiles) {
    const host = join(run.repo, onHost(file));
    if (!existsSync(host)) continue;
    try {
      const keys = (JSON.parse(readFileSync(host, 'utf8')) as { keys?: unknown[] }).keys;
      if (!Array.isArray(keys) || keys.length === 0) p(`${onHost(file)} (${what}) holds no keys`);
    } catch {
      p(`${onHost(file)} (${what}) is not JSON`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------- the example workload

const WORKLOAD_DIR = `${KUBE_DIR}/examples/workload`;

interface Workload {
  files: Record<string, Doc[]>;
  kustomization: Kustomization;
  namespace: Doc;
  serviceAccount: Doc;
  deployment: Deployment;
  services: Service[];
  configMaps: ConfigMapDoc[];
}

function readWorkload(): Workload {
  const { files, all, kustomization } = readKustomized(WORKLOAD_DIR);
  return {
    files,
    kustomization,
    namespace: only(all, 'Namespace', WORKLOAD_DIR),
    serviceAccount: only(all, 'ServiceAccount', WORKLOAD_DIR),
    deployment: only(all, 'Deployment', WORKLOAD_DIR),
    services: all.filter((d): d is Service => d.kind === 'Service'),
    configMaps: all.filter((d): d is ConfigMapDoc => d.kind === 'ConfigMap'),
  };
}

/** Every value of a flag (`--name VALUE` or `--name=VALUE`). */
function flagValues(args: string[] | undefined, name: string): string[] {
  const list = args ?? [];
  return list.flatMap((a, i) => (a === `--${name}` && list[i + 1] !== undefined ? [list[i + 1]!] : a.startsWith(`--${name}=`) ? [a.slice(name.length + 3)] : []));
}
const flagValue = (args: string[] | undefined, name: string) => flagValues(args, name).at(-1);
const hasFlag = (args: string[] | undefined, name: string) => (args ?? []).includes(`--${name}`);

/** A container's literal environment values. */
const literalEnv = (c: Container): Record<string, string> => Object.fromEntries((c.env ?? []).flatMap((e) => (e.value === undefined ? [] : [[e.name, e.value]])));

/** Where an agent finds the CA: its flags first, then SERVICE_CA_URL, SERVICE_CA_ROOT, SERVICE_CA_TOKEN_FILE (src/cli/context.ts). */
function agentConnection(c: Container): { server?: string; root?: string; tokenFile?: string } {
  const env = literalEnv(c);
  return {
    server: flagValue(c.args, 'server') ?? env.SERVICE_CA_URL,
    root: flagValue(c.args, 'ca') ?? env.SERVICE_CA_ROOT,
    tokenFile: flagValue(c.args, 'token-file') ?? env.SERVICE_CA_TOKEN_FILE,
  };
}

const requestedNames = (c: Container): SubjectAltNames => ({
  dns: flagValues(c.args, 'dns'),
  ip: flagValues(c.args, 'ip'),
  uri: flagValues(c.args, 'uri'),
  email: flagValues(c.args, 'email'),
});

const isAgent = (c: Container) => c.args?.[0] === 'agent';

/** The CA container's port number for a port name or number (undefined when it has no such port). */
function caPort(k: Kube, port: string | number | undefined): number | undefined {
  const ports = k.deployment.spec.template.spec.containers[0]?.ports ?? [];
  return ports.find((x) => x.name === port || x.containerPort === port)?.containerPort;
}

/** nginx's directives (`name value;`), first value of each, comments dropped. */
function nginxDirectives(text: string): Map<string, string> {
  const statements = text.replace(/#[^\n]*/g, '').split(/[;{}]/).map((s) => s.trim().split(/\s+/));
  return new Map(statements.filter((w) => w.length >= 2 && w[0]).map((w) => [w[0]!, w[1]!]));
}

/** The agent's outputs nginx may read, per directive: its full chain, its key, the CA's root, the intermediates. */
const NGINX_FILES: [string, string[]][] = [
  ['ssl_certificate', ['.fullchain.pem']],
  ['ssl_certificate_key', ['.key']],
  ['ssl_client_certificate', ['.ca.pem']],
  ['ssl_trusted_certificate', ['.chain.pem', '.ca.pem']],
];

/**
 * The example workload against the CA's manifests: an init container running `agent --once`
 * and a sidecar running `agent` from the CA's image; a projected token for the CA's Kubernetes
 * issuer (its audience, at most its maxTokenAge) mounted in both; the CA's URL its Service's API
 * port under a name its TLS certificate carries; both writing the same files into one emptyDir
 * that nginx reads; the sidecar signalling the PID nginx writes into a shared emptyDir, in one
 * process namespace and as one uid; names the CA's policy grants the service account's identity.
 */
function workloadProblems(k: Kube, w: Workload): string[] {
  const problems: string[] = [];
  const p = (s: string) => problems.push(s);
  const { config } = kubeConfig(k);
  if (!config) return ['the CA\'s configuration does not parse'];
  const pod = w.deployment.spec.template.spec;
  const ns = w.namespace.metadata?.name ?? '';

  if (w.kustomization.namespace !== ns) p(`the example's kustomization namespace ${w.kustomization.namespace} is not the Namespace ${ns}`);
  for (const d of Object.values(w.files).flat()) {
    if (d.kind !== 'Namespace' && d.metadata?.namespace !== ns) p(`${d.kind} ${d.metadata?.name} is not in namespace ${ns}`);
  }
  const listed = [...(w.kustomization.resources ?? [])].sort().join(', ');
  if (listed !== Object.keys(w.files).sort().join(', ')) p(`the example's kustomization resources ${listed} are not its files ${Object.keys(w.files).sort().join(', ')}`);
  const image = (kz: Kustomization) => JSON.stringify(kz.images?.find((i) => i.name === 'service-ca') ?? null);
  if (image(w.kustomization) !== image(k.kustomization)) p(`the example's kustomization sets the service-ca image to ${image(w.kustomization)}, the CA's to ${image(k.kustomization)}`);

  if (pod.serviceAccountName !== w.serviceAccount.metadata?.name) p(`the pods run as service account ${pod.serviceAccountName}, not ${w.serviceAccount.metadata?.name}`);
  if (pod.automountServiceAccountToken !== false) p('the pods mount the Kubernetes API token (automountServiceAccountToken is not false)');
  if (pod.shareProcessNamespace !== true) p('shareProcessNamespace is not true: the sidecar cannot signal nginx');

  const init = (pod.initContainers ?? []).filter(isAgent);
  const sidecar = pod.containers.filter(isAgent);
  if (init.length !== 1 || !hasFlag(init[0]!.args, 'once')) p('no init container runs service-ca agent --once');
  if (sidecar.length !== 1 || hasFlag(sidecar[0]!.args, 'once')) p('no sidecar runs service-ca agent (without --once)');
  if (init.length !== 1 || sidecar.length !== 1) return problems;
  const agents = [init[0]!, sidecar[0]!] as const;
  const caImage = k.deployment.spec.template.spec.containers[0]?.image;
  for (const c of agents) {
    if (c.image !== caImage) p(`${c.name} runs ${c.image}, not the CA's image ${caImage}`);
    if (c.command) p(`${c.name} replaces the image's entrypoint`);
  }

  // Identity: a projected token for the CA's Kubernetes issuer.
  const issuer = config.auth.issuers.find((i) => i.issuer.startsWith('https://kubernetes.default.svc'));
  if (!issuer) return [...problems, 'the CA has no Kubernetes service-account issuer'];
  const maxAge = Math.min(3600, issuer.maxTokenAge ?? 3600);
  const apiPort = k.service.spec.ports.find((sp) => caPort(k, sp.targetPort ?? sp.port) === config.server.port)?.port;
  const svcHost = `${k.service.metadata?.name}.${k.service.metadata?.namespace}.svc`;
  for (const c of agents) {
    const { server, root, tokenFile } = agentConnection(c);
    const token = tokenFile === undefined ? undefined : fileSource(pod, c, tokenFile);
    const projection = token?.volume.projected?.sources.find((s) => s.serviceAccountToken?.path === token.inside)?.serviceAccountToken;
    if (!projection) p(`${c.name}: the token file ${tokenFile} is not a projected service-account token`);
    else {
      if (![issuer.audience].flat().includes(projection.audience ?? '')) p(`${c.name}: the token's audience ${projection.audience} is not the CA issuer's (${[issuer.audience].flat().join(', ')})`);
      const seconds = projection.expirationSeconds ?? 3600;
      if (seconds < 600 || seconds > maxAge) p(`${c.name}: the token's expirationSeconds ${seconds} is not between 600 (Kubernetes' least) and ${maxAge} (the CA issuer's maxTokenAge)`);
    }
    const r = root === undefined ? undefined : fileSource(pod, c, root);
    if (!r || !(r.volume.configMap || r.volume.secret) || r.key === undefined) p(`${c.name}: the root ${root} is not a file of a mounted ConfigMap or Secret`);
    let url: URL | undefined;
    try {
      url = new URL(server ?? '');
    } catch {
      url = undefined;
    }
    if (!url || url.protocol !== 'https:' || ![svcHost, `${svcHost}.cluster.local`].includes(url.hostname) || Number(url.port || 443) !== apiPort) {
      p(`${c.name}: the CA's URL ${server} is not https://${svcHost}:${apiPort}, the CA Service's API port`);
    } else if (config.server.tls.mode === 'auto' && !config.server.tls.names.includes(url.hostname)) p(`${c.name}: ${url.hostname} is not in the CA's server.tls.names`);
  }

  // One set of files, in one emptyDir.
  const outs = agents.map((c) => flagValue(c.args, 'out'));
  const outSources = agents.map((c, i) => (outs[i] === undefined ? undefined : fileSource(pod, c, outs[i]!)));
  agents.forEach((c, i) => {
    if (!outSources[i]?.volume.emptyDir || outSources[i]?.mount.readOnly) p(`${c.name}: --out ${outs[i]} is not in a writable emptyDir`);
  });
  if (outSources[0]?.volume.name !== outSources[1]?.volume.name || outSources[0]?.inside !== outSources[1]?.inside) {
    p('the init container and the sidecar do not write the same files (not the same volume and path)');
  }

  // The names: the same in both, and granted to the service account's identity by the CA's policy.
  const names = requestedNames(agents[0]);
  const sorted = (n: SubjectAltNames) => JSON.stringify(Object.values(n).map((v: string[]) => [...v].sort()));
  if (sorted(names) !== sorted(requestedNames(agents[1]))) p('the init container and the sidecar ask for different names (the sidecar would replace the first certificate at once)');
  try {
    const identity = renderIdentity(issuer.identity, { 'kubernetes.io': { namespace: ns, serviceaccount: { name: pod.serviceAccountName } } });
    try {
      const reservedNames = config.server.tls.mode === 'auto' ? config.server.tls.names : [];
      authorizeNames(compilePolicies(config.policies, { reservedNames }), identity, undefined, names, issuer.name);
    } catch (err) {
      p(`the names ${Object.values(names).flat().join(', ')} are not granted to ${identity}: ${err instanceof CaError ? err.detail : String(err)}`);
    }
  } catch (err) {
    p(`no identity for service account ${pod.serviceAccountName}: ${err instanceof CaError ? err.detail : String(err)}`);
  }
  for (const dns of names.dns) {
    const service = w.services.find((s) => [`${s.metadata?.name}.${ns}.svc`, `${s.metadata?.name}.${ns}.svc.cluster.local`].includes(dns));
    if (!service || !matches(service.spec.selector, w.deployment.spec.template.metadata.labels)) p(`${dns} is not the name of a Service of these pods`);
  }

  // nginx: its files from the agent's volume, its PID file the sidecar's --pid-file, one uid.
  const nginx = pod.containers.find((c) => [...(c.command ?? []), ...(c.args ?? [])].includes('-c'));
  const argv = [...(nginx?.command ?? []), ...(nginx?.args ?? [])];
  const confSource = nginx && fileSource(pod, nginx, argv[argv.indexOf('-c') + 1] ?? '');
  const conf = confSource?.key && w.configMaps.find((m) => m.metadata?.name === confSource.volume.configMap?.name)?.data?.[confSource.key];
  if (!nginx || !conf) return [...problems, 'no nginx container reads its -c configuration from a ConfigMap of the example'];
  const directives = nginxDirectives(conf);
  const pidFile = flagValue(agents[1].args, 'pid-file');
  const agentPid = pidFile === undefined ? undefined : fileSource(pod, agents[1], pidFile);
  const nginxPid = fileSource(pod, nginx, directives.get('pid') ?? '');
  if (!agentPid?.volume.emptyDir || agentPid.volume.name !== nginxPid?.volume.name || agentPid.inside !== nginxPid.inside) {
    p(`the sidecar's --pid-file ${pidFile} is not the file nginx writes its PID to (pid ${directives.get('pid')}) in an emptyDir both mount`);
  }
  if (flagValue(agents[1].args, 'signal') !== 'SIGHUP') p('the sidecar does not send SIGHUP (nginx reloads on SIGHUP)');
  if (directives.get('ssl_verify_client') !== 'on') p('nginx does not require client certificates (ssl_verify_client on)');
  const out = outSources[1];
  for (const [directive, suffixes] of NGINX_FILES) {
    const file = directives.get(directive);
    if (file === undefined) {
      if (directive !== 'ssl_trusted_certificate') p(`nginx has no ${directive}`);
      continue;
    }
    const s = fileSource(pod, nginx, file);
    if (!s || !out || s.volume.name !== out.volume.name || !suffixes.some((x) => s.inside === `${out.inside}${x}`)) {
      p(`nginx's ${directive} ${file} is not the agent's PREFIX${suffixes.join(' or PREFIX')} (PREFIX ${outs[1]})`);
    }
  }
  const uidOf = (c: Container) => c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
  const uids = new Set([...agents, nginx].map(uidOf));
  if (uids.size !== 1 || uids.has(undefined) || uids.has(0)) {
    p(`the agents and nginx do not run as one non-root uid (${[...uids].join(', ')}): the agent could not signal nginx, nor nginx read the 0600 key`);
  }
  return problems;
}

/** Whether an ingress rule's peers admit pods of a namespace with these labels (`own`: the policy's namespace). */
function admits(from: PolicyPeer[] | undefined, namespaceLabels: Record<string, string>, own: boolean): boolean {
  const selects = (sel: Record<string, string> | undefined) => Object.entries(sel ?? {}).every(([key, v]) => namespaceLabels[key] === v);
  const anyPod = (peer: PolicyPeer) => Object.keys(peer.podSelector?.matchLabels ?? {}).length === 0;
  if (!from || from.length === 0) return true;
  return from.some((peer) => (peer.namespaceSelector ? selects(peer.namespaceSelector.matchLabels) && anyPod(peer) : own && peer.podSelector !== undefined && anyPod(peer)));
}

/** Whether the CA's NetworkPolicy lets pods of such a namespace reach the CA's port. */
function portOpen(k: Kube, port: number, namespaceLabels: Record<string, string>, own: boolean): boolean {
  return (k.networkPolicy.spec.ingress ?? []).some(
    (rule) => (!rule.ports || rule.ports.some((x) => x.port === undefined || caPort(k, x.port) === port)) && admits(rule.from, namespaceLabels, own),
  );
}

/**
 * The CA's NetworkPolicy: it selects the CA's pods; the API port is open to the example
 * workload's namespace (by its labels) and the CA's own, not to every namespace; the public port
 * (CRL, CA certificates) to every namespace; every port it names is the CA container's.
 */
function networkPolicyProblems(k: Kube, w: Workload): string[] {
  const problems: string[] = [];
  const p = (s: string) => problems.push(s);
  const np = k.networkPolicy;
  const { config } = kubeConfig(k);
  if (!config) return ['the CA\'s configuration does not parse'];
  if (!matches(np.spec.podSelector.matchLabels ?? {}, k.deployment.spec.template.metadata.labels)) p('the NetworkPolicy does not select the CA pods');
  if (!(np.spec.policyTypes ?? ['Ingress']).includes('Ingress')) p('the NetworkPolicy does not govern ingress');
  for (const rule of np.spec.ingress ?? []) {
    for (const x of rule.ports ?? []) if (x.port !== undefined && caPort(k, x.port) === undefined) p(`the NetworkPolicy names port ${x.port}, which the CA container does not have`);
  }
  const named = (d: Doc) => ({ 'kubernetes.io/metadata.name': d.metadata?.name ?? '', ...d.metadata?.labels });
  const elsewhere = { 'kubernetes.io/metadata.name': 'elsewhere' };
  const api = config.server.port;
  if (!portOpen(k, api, named(w.namespace), false)) p(`the API port ${api} is closed to the example's namespace ${w.namespace.metadata?.name}`);
  if (!portOpen(k, api, named(k.namespace), true)) p(`the API port ${api} is closed to the CA's own namespace (admin tools)`);
  if (portOpen(k, api, elsewhere, false)) p(`the API port ${api} is open to every namespace, not only to those labelled for it`);
  if (!portOpen(k, config.public.port, elsewhere, false)) p(`the public port ${config.public.port} (CRL, CA certificates) is closed to other namespaces`);
  return problems;
}

/**
 * In-cluster paths moved under `scratch`: a path inside a container's mount becomes the same
 * path inside scratch/<volume name> (created), the way the kubelet puts volumes there.
 */
function localPaths(c: Container, scratch: string): (value: string) => string {
  const mounts = [...(c.volumeMounts ?? [])].sort((a, b) => b.mountPath.length - a.mountPath.length);
  for (const m of mounts) mkdirSync(join(scratch, m.name), { recursive: true });
  return (value) => {
    const m = mounts.find((x) => value === x.mountPath || value.startsWith(`${x.mountPath.replace(/\/+$/, '')}/`));
    return m ? join(scratch, m.name, posix.relative(m.mountPath, value)) : value;
  };
}

/**
 * The agent's own reading of a container's arguments and environment: run with --once (added
 * when absent) against a port where nothing listens, with in-cluster paths under scratch (the
 * root file holding rootPem, the token file a stand-in), it gets past its usage checks and
 * fails to reach the CA (exit 1), never exit 2 (bad usage).
 */
async function agentArgumentProblems(c: Container, scratch: string, rootPem: string): Promise<string[]> {
  const local = localPaths(c, scratch);
  const env = Object.fromEntries(Object.entries(literalEnv(c)).map(([key, v]) => [key, key === 'SERVICE_CA_URL' ? 'https://127.0.0.1:1' : local(v)]));
  const args = (c.args ?? []).map(local);
  const { root, tokenFile } = agentConnection({ ...c, args, env: Object.entries(env).map(([name, value]) => ({ name, value })) });
  if (root !== undefined) writeFileSync(root, rootPem);
  if (tokenFile !== undefined) writeFileSync(tokenFile, 'stand-in\n');
  const r = await runCli(hasFlag(args, 'once') ? args : [...args, '--once'], { env, cwd: scratch, timeoutMs: 60_000 });
  return r.code === 1 && !r.stderr.includes('Usage:') ? [] : [`${c.name}: the agent refuses its arguments (exit ${r.code}): ${r.stderr.trim().split('\n')[0]}`];
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

/**
 * The files under these paths that would be committed: tracked or not ignored (never
 * deploy/compose/ca, deploy/compose/jwks.json or keys).
 */
function committableFiles(paths = [COMPOSE_FILE, 'deploy']): string[] {
  try {
    const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', ...paths], { cwd: ROOT, encoding: 'utf8' });
    return out.split('\n').filter((f) => f && existsSync(join(ROOT, f)));
  } catch {
    const ignored = (rel: string) => rel === 'deploy/compose/ca' || rel === 'deploy/compose/jwks.json' || rel.endsWith('.key');
    const walk = (rel: string): string[] => {
      if (ignored(rel)) return [];
      if (!statSync(join(ROOT, rel)).isDirectory()) return [rel];
      return readdirSync(join(ROOT, rel)).flatMap((n) => walk(`${rel}/${n}`));
    };
    return paths.flatMap(walk);
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

describe('the image (Dockerfile)', () => {
  it('builds and runs on one maintained Node LTS line, and its HEALTHCHECK runs the healthcheck command on the file serve reads', () => {
    assert.deepEqual(imageProblems(readImage(readText('Dockerfile')), readCompose().compose, new Date()), []);
  });
});

/** The development CA that the quick start's `npm start` makes under data/ (dev-ca.ts), made once for this file. */
let devData: Promise<string> | undefined;
const scratchFolders: string[] = [];
const developmentCa = () => {
  devData ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'service-ca-quickstart-data-'));
    scratchFolders.push(dir);
    await ensureDevCa(join(dir, 'data'));
    return join(dir, 'data');
  })();
  return devData;
};
after(() => {
  for (const d of scratchFolders) rmSync(d, { recursive: true, force: true });
});
const runCommands = async (commands: string) => {
  const run = runComposeCommands(commands, await developmentCa());
  scratchFolders.push(run.scratch);
  return run;
};

describe('the compose commands of README.md and deploy/README.md', () => {
  it('come after the quick start, whose npm start makes the development CA they copy from data/', () => {
    const quickStart = sectionShBlocks(readText('README.md'), '## Quick start').join('\n');
    assert.match(quickStart, /\bnpm start\b/);
  });
  for (const [file, heading] of COMPOSE_DOCS) {
    it(`${file}: run as written, they leave every file the compose configuration needs, readable by the container's user`, async () => {
      const run = await runCommands(composeCommands(file, heading));
      assert.deepEqual(composeCommandProblems(run), []);
    });
  }
});

describe('the example workload (deploy/kubernetes/examples/workload) and the CA\'s NetworkPolicy', () => {
  it('agrees with the CA: token, URL, root, image, shared files and PID file, names the policy grants its identity', () => {
    assert.deepEqual(workloadProblems(readKube(), readWorkload()), []);
  });

  it('the NetworkPolicy selects the CA pods and lets the example\'s namespace reach the API port', () => {
    assert.deepEqual(networkPolicyProblems(readKube(), readWorkload()), []);
  });

  it('the init container\'s and the sidecar\'s arguments are the agent\'s', async () => {
    const pod = readWorkload().deployment.spec.template.spec;
    const scratch = mkdtempSync(join(tmpdir(), 'service-ca-workload-args-'));
    scratchFolders.push(scratch);
    const agents = [...(pod.initContainers ?? []), ...pod.containers].filter(isAgent);
    assert.equal(agents.length, 2, 'an init container and a sidecar run the agent');
    const rootPem = readFileSync(join(await developmentCa(), 'ca', 'root.pem'), 'utf8');
    for (const c of agents) assert.deepEqual(await agentArgumentProblems(c, join(scratch, c.name), rootPem), []);
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

  const images = (mutate: (i: Image, c: Compose) => void) => {
    const image = structuredClone(readImage(readText('Dockerfile')));
    const compose = structuredClone(readCompose().compose);
    mutate(image, compose);
    return imageProblems(image, compose, new Date('2026-12-04T00:00:00Z')).join('\n');
  };
  const imageCases: [string, (i: Image, c: Compose) => void, RegExp][] = [
    ['Node 20, past its end of life', (i) => (i.from = i.from.map(() => 'node:20-bookworm-slim')), /node 20 reached its end of life on 2026-04-30/],
    ['stages on two Node lines', (i) => (i.from[0] = 'node:22-bookworm-slim'), /different Node lines/],
    ['a base that is not slim Debian', (i) => (i.from[1] = 'node:24-alpine'), /not all node:<version>-bookworm-slim/],
    ['the PUBLIC_PORT healthcheck', (i) => (i.healthcheck = { exec: undefined, text: 'node -e "fetch(\'http://127.0.0.1:\' + (process.env.PUBLIC_PORT || 8080) + \'/healthz\')"' }), /HEALTHCHECK does not run the healthcheck command/],
    ['serve given another file in the image', (i) => (i.cmd = ['serve', '--config', '/etc/service-ca/other.yaml']), /HEALTHCHECK reads \/etc\/service-ca\/config\.yaml, serve reads \/etc\/service-ca\/other\.yaml/],
    ['serve given another file under compose', (_i, c) => {
      Object.values(c.services).find((s) => s.build !== undefined)!.command = ['serve', '--config', '/etc/service-ca/other.yaml'];
    }, /under compose the HEALTHCHECK reads \/etc\/service-ca\/config\.yaml, serve reads \/etc\/service-ca\/other\.yaml/],
    ['no configuration for serve', (i) => delete i.env.SERVICE_CA_CONFIG, /given no configuration file/],
  ];
  for (const [name, mutate, expected] of imageCases) {
    it(`image: ${name}`, () => assert.match(images(mutate), expected));
  }

  it('compose commands: README.md\'s without copying the JWKS and without the uid (the README before issue 15)', async () => {
    const lines = composeCommands('README.md', '## Deployment').split('\n');
    const kept = lines.filter((l) => !/^cp .*jwks\.json|SERVICE_CA_UID/.test(l));
    assert.equal(kept.length, lines.length - 2, 'the cp and the uid lines were there to remove');
    const problems = composeCommandProblems(await runCommands(kept.join('\n'))).join('\n');
    assert.match(problems, /deploy\/compose\/jwks\.json \(auth\.issuers oidc jwks\) is neither committed nor made by the commands/);
    if (process.getuid?.() !== 1000) assert.match(problems, /deploy\/compose\/ca\/intermediate\.key \(ca\.key\) is not readable by uid 1000, gid 1000/);
  });

  it('compose commands: a passphrase never exported', async () => {
    const commands = composeCommands('deploy/README.md', '## Docker Compose').replace(/CA_KEY_PASSPHRASE="[^"]*" /, '');
    const problems = composeCommandProblems(await runCommands(commands)).join('\n');
    assert.match(problems, /the commands failed|docker compose needs CA_KEY_PASSPHRASE/);
  });

  const workload = (mutate: (w: Workload, k: Kube) => void) => {
    const k = structuredClone(readKube());
    const w = structuredClone(readWorkload());
    mutate(w, k);
    return [...workloadProblems(k, w), ...networkPolicyProblems(k, w)].join('\n');
  };
  const wpod = (w: Workload) => w.deployment.spec.template.spec;
  const wc = (w: Workload, name: string) => [...(wpod(w).initContainers ?? []), ...wpod(w).containers].find((c) => c.name === name)!;
  const agentNames = (w: Workload) => [...(wpod(w).initContainers ?? []), ...wpod(w).containers].filter(isAgent).map((c) => c.name);
  const projection = (w: Workload) => wpod(w).volumes!.flatMap((v) => v.projected?.sources ?? []).find((s) => s.serviceAccountToken)!.serviceAccountToken!;
  const setArg = (c: Container, flag: string, value: string) => {
    const i = c.args!.indexOf(flag);
    assert.ok(i >= 0, `${c.name} has ${flag}`);
    c.args![i + 1] = value;
  };
  const setEnv = (c: Container, name: string, value: string) => {
    const e = c.env!.find((x) => x.name === name);
    assert.ok(e, `${c.name} has ${name}`);
    e.value = value;
  };
  const editNginx = (w: Workload, from: string, to: string) => {
    const m = w.configMaps.find((x) => x.data?.['nginx.conf'])!;
    const next = m.data!['nginx.conf']!.replace(from, to);
    assert.notEqual(next, m.data!['nginx.conf'], `nginx.conf contains ${from}`);
    m.data!['nginx.conf'] = next;
  };
  const sidecar = (w: Workload) => wpod(w).containers.find(isAgent)!;
  const initAgent = (w: Workload) => (wpod(w).initContainers ?? []).find(isAgent)!;
  const workloadCases: [string, (w: Workload, k: Kube) => void, RegExp][] = [
    ['a token for another audience', (w) => (projection(w).audience = 'kubernetes'), /token's audience kubernetes is not the CA issuer's \(service-ca\)/],
    ['a token valid for two hours', (w) => (projection(w).expirationSeconds = 7200), /expirationSeconds 7200 is not between 600 .* and 3600/],
    ['no token in the sidecar', (w) => (sidecar(w).volumeMounts = sidecar(w).volumeMounts!.filter((m) => !wpod(w).volumes!.find((v) => v.name === m.name)?.projected)), /certificate-agent: the token file .* is not a projected service-account token/],
    ['the Kubernetes API token mounted', (w) => delete wpod(w).automountServiceAccountToken, /automountServiceAccountToken is not false/],
    ['the sidecar on another image', (w) => (sidecar(w).image = 'service-ca:0.0.9'), /certificate-agent runs service-ca:0\.0\.9, not the CA's image/],
    ['another image in the kustomization', (w) => (w.kustomization.images![0]!.newTag = '0.0.9'), /sets the service-ca image to .*0\.0\.9/],
    ['a file left out of the kustomization', (w) => (w.kustomization.resources = w.kustomization.resources!.filter((r) => r !== 'service.yaml')), /kustomization resources/],
    ['the sidecar writes into an emptyDir of its own', (w) => {
      const mount = sidecar(w).volumeMounts!.find((m) => wpod(w).volumes!.find((v) => v.name === m.name)?.emptyDir && !m.readOnly)!;
      wpod(w).volumes!.push({ name: 'elsewhere', emptyDir: {} });
      mount.name = 'elsewhere';
    }, /do not write the same files/],
    ['names of another namespace', (w) => {
      for (const name of agentNames(w)) setArg(wc(w, name), '--dns', 'web.other.svc');
    }, /are not granted to spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web: outside the policy for this identity: web\.other\.svc/],
    ['another service account', (w) => (wpod(w).serviceAccountName = 'api'), /service account api, not web[\s\S]*not granted to spiffe:\/\/cluster\.local\/ns\/shop\/sa\/api/],
    ['the sidecar asks for one more name', (w) => sidecar(w).args!.push('--dns', 'web'), /ask for different names/],
    ['the CA\'s URL on its public port', (w) => {
      for (const name of agentNames(w)) setEnv(wc(w, name), 'SERVICE_CA_URL', 'https://service-ca.service-ca.svc:8080');
    }, /the CA's URL https:\/\/service-ca\.service-ca\.svc:8080 is not https:\/\/service-ca\.service-ca\.svc:8443/],
    ['the CA\'s URL over plain HTTP', (w) => setEnv(initAgent(w), 'SERVICE_CA_URL', 'http://service-ca.service-ca.svc:8443'), /certificate: the CA's URL http:/],
    ['a flag that overrides the URL', (w) => sidecar(w).args!.push('--server', 'https://ca.example.org'), /certificate-agent: the CA's URL https:\/\/ca\.example\.org/],
    ['the root not mounted', (w) => setEnv(sidecar(w), 'SERVICE_CA_ROOT', '/etc/ssl/certs/ca-certificates.crt'), /certificate-agent: the root .* is not a file of a mounted ConfigMap or Secret/],
    ['a PID file nginx does not write', (w) => setArg(sidecar(w), '--pid-file', '/var/run/nginx/other.pid'), /--pid-file \/var\/run\/nginx\/other\.pid is not the file nginx writes its PID to/],
    ['SIGTERM instead of SIGHUP', (w) => setArg(sidecar(w), '--signal', 'SIGTERM'), /does not send SIGHUP/],
    ['no shared process namespace', (w) => (wpod(w).shareProcessNamespace = false), /shareProcessNamespace is not true/],
    ['nginx serves the leaf without its chain', (w) => editNginx(w, 'web.fullchain.pem;', 'web.pem;'), /nginx's ssl_certificate \S+web\.pem is not the agent's PREFIX\.fullchain\.pem/],
    ['nginx trusts no client', (w) => editNginx(w, 'ssl_verify_client on;', 'ssl_verify_client optional;'), /does not require client certificates/],
    ['nginx as another uid', (w) => (wc(w, 'nginx').securityContext!.runAsUser = 101), /do not run as one non-root uid/],
    ['no init container', (w) => (wpod(w).initContainers = []), /no init container runs service-ca agent --once/],
    ['a name with no Service', (w) => (w.services[0]!.metadata!.name = 'www'), /web\.shop\.svc is not the name of a Service of these pods/],
    ['NetworkPolicy for other pods', (_w, k) => (k.networkPolicy.spec.podSelector.matchLabels = { app: 'other' }), /does not select the CA pods/],
    ['the workload\'s namespace not labelled', (w) => (w.namespace.metadata!.labels = {}), /API port 8443 is closed to the example's namespace shop/],
    ['the API port open to every namespace', (_w, k) => (k.networkPolicy.spec.ingress![0]!.from = [{ namespaceSelector: {} }]), /API port 8443 is open to every namespace/],
    ['the CA\'s own namespace shut out', (_w, k) => (k.networkPolicy.spec.ingress![0]!.from = k.networkPolicy.spec.ingress![0]!.from!.filter((f) => f.namespaceSelector)), /closed to the CA's own namespace/],
    ['the public port closed', (_w, k) => (k.networkPolicy.spec.ingress = k.networkPolicy.spec.ingress!.slice(0, 1)), /public port 8080 .* is closed to other namespaces/],
    ['a port the CA does not have', (_w, k) => (k.networkPolicy.spec.ingress![0]!.ports = [{ port: 'https' }]), /names port https, which the CA container does not have/],
  ];
  for (const [name, mutate, expected] of workloadCases) {
    it(`workload: ${name}`, () => assert.match(workload(mutate), expected));
  }

  it('workload: a flag the agent does not have', async () => {
    const c = structuredClone(sidecar(readWorkload()));
    c.args = c.args!.map((a) => (a === '--pid-file' ? '--pidfile' : a));
    const scratch = mkdtempSync(join(tmpdir(), 'service-ca-workload-args-'));
    scratchFolders.push(scratch);
    const rootPem = readFileSync(join(await developmentCa(), 'ca', 'root.pem'), 'utf8');
    assert.match((await agentArgumentProblems(c, scratch, rootPem)).join('\n'), /certificate-agent: the agent refuses its arguments \(exit 2\): service-ca: Unknown option '--pidfile'/);
  });

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

/**
 * The cert-manager example (deploy/kubernetes/examples/cert-manager) against the CA's manifests
 * and the commands of its own README: the kinds and API versions; the ClusterIssuer's ACME
 * server is the CA Service's API port, under a name the API certificate holds, at
 * /acme/directory, with the root as caBundle; its external account binding's Secret (name, key,
 * cert-manager's namespace) is the template's and the one the README creates; the identity it is
 * annotated with is the example service account's, whose token the README asks for (the CA
 * issuer's audience, within its maxTokenAge) and hands to `service-ca acme eab` (whose option
 * parsing is run); the Certificate's names are granted to that identity by the CA's policy, its
 * duration is the lifetime the CA grants and its key a kind the CA signs; every name leads to the
 * ingress controller whose class the http-01 solver uses, and the Ingress serves the
 * Certificate's Secret; every placeholder of the applied files is filled by the README's sed;
 * the kustomization applies every file but the Secret template and sets no namespace (the
 * ClusterIssuer is cluster-scoped); and the CA's NetworkPolicy admits cert-manager's namespace
 * once the README has labelled it, and not before. The last part breaks a copy of the files or
 * the README and expects each check to object.
 */
describe('the cert-manager example (deploy/kubernetes/examples/cert-manager)', () => {
  const CM_DIR = `${KUBE_DIR}/examples/cert-manager`;
  /** The namespace a ClusterIssuer's Secrets are read from (cert-manager's own, by default). */
  const CERT_MANAGER_NAMESPACE = 'cert-manager';
  const IDENTITY_ANNOTATION = 'service-ca/identity';

  type Annotated = Meta & { annotations?: Record<string, string> };
  interface SecretKeySelector { name?: string; key?: string }
  interface AcmeIssuerSpec {
    server?: string;
    caBundle?: string;
    skipTLSVerify?: boolean;
    privateKeySecretRef?: SecretKeySelector;
    externalAccountBinding?: { keyID?: string; keySecretRef?: SecretKeySelector };
    enableDurationFeature?: boolean;
    solvers?: { http01?: { ingress?: { ingressClassName?: string; class?: string } }; dns01?: unknown }[];
  }
  interface ClusterIssuerDoc extends Doc { metadata?: Annotated; spec?: { acme?: AcmeIssuerSpec } }
  interface CertificateDoc extends Doc {
    spec?: {
      secretName?: string;
      issuerRef?: { group?: string; kind?: string; name?: string };
      dnsNames?: string[];
      ipAddresses?: string[];
      uris?: string[];
      emailAddresses?: string[];
      duration?: string;
      renewBefore?: string;
      privateKey?: { algorithm?: string; size?: number };
    };
  }
  interface IngressBackend { service?: { name?: string; port?: { name?: string; number?: number } } }
  interface IngressDoc extends Doc {
    spec?: {
      ingressClassName?: string;
      tls?: { hosts?: string[]; secretName?: string }[];
      rules?: { host?: string; http?: { paths?: { backend?: IngressBackend }[] } }[];
    };
  }
  interface ServiceDoc extends Doc { spec?: { type?: string; externalName?: string; selector?: Record<string, string> } }

  interface Example {
    files: Record<string, Doc[]>;
    kustomization: Kustomization;
    readme: string;
  }

  const readExample = (): Example => {
    const { files, kustomization } = readKustomized(CM_DIR);
    return { files, kustomization, readme: readText(`${CM_DIR}/README.md`) };
  };

  /** The README's shell commands, one a line: continuations joined, comments dropped. */
  const readmeCommands = (readme: string): string[] =>
    [...readme.matchAll(/^```(?:sh|bash|shell)\n([\s\S]*?)^```/gm)]
      .flatMap((m) => m[1]!.replace(/\\\n\s*/g, ' ').split('\n'))
      .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
      .filter(Boolean);

  /** A Go duration of hours, minutes and seconds (`24h`, `1h30m`, `2160h0m0s`) in seconds, as cert-manager and kubectl read it. */
  const goDuration = (text: string | undefined): number | undefined => {
    const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text ?? '');
    return m && text ? Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) : undefined;
  };

  /** The private keys the CA signs (docs/api.md "Certificate profile"), as cert-manager names them. */
  const keyAccepted = (k: { algorithm?: string; size?: number } | undefined) => {
    const algorithm = k?.algorithm ?? 'RSA';
    if (algorithm === 'ECDSA') return [undefined, 256, 384].includes(k?.size);
    if (algorithm === 'RSA') return k?.size === undefined || (k.size >= 2048 && k.size <= 4096);
    return algorithm === 'Ed25519';
  };

  const API_VERSIONS: Record<string, string> = {
    ClusterIssuer: 'cert-manager.io/v1',
    Certificate: 'cert-manager.io/v1',
    Ingress: 'networking.k8s.io/v1',
    Namespace: 'v1',
    ServiceAccount: 'v1',
    Service: 'v1',
    Secret: 'v1',
  };

  /** The `service-ca acme eab` command of the README, its arguments after `service-ca`. */
  const eabArguments = (commands: string[]): string[] | undefined => {
    const line = commands.find((c) => /\bservice-ca(?: --)? acme eab\b/.test(c));
    return line?.replace(/^.*?\bservice-ca(?: --)? (acme eab\b)/, '$1').replace(/\s*>.*$/, '').split(/\s+/);
  };

  function certManagerProblems(k: Kube, ex: Example): string[] {
    const problems: string[] = [];
    const p = (s: string) => problems.push(s);
    const { config } = kubeConfig(k);
    if (!config) return ['the CA\'s configuration does not parse'];
    const all = Object.values(ex.files).flat();
    const commands = readmeCommands(ex.readme);
    const text = commands.join('\n');

    // Kinds and API versions; one of each of the parts that must be unique.
    for (const d of all) {
      const wanted = API_VERSIONS[d.kind ?? ''];
      if (!wanted) p(`${d.kind} ${d.metadata?.name} is not a kind this example should hold`);
      else if (d.apiVersion !== wanted) p(`${d.kind} ${d.metadata?.name} has apiVersion ${d.apiVersion}, not ${wanted}`);
    }
    const one = <T extends Doc>(kind: string): T | undefined => {
      const found = all.filter((d) => d.kind === kind);
      if (found.length !== 1) p(`the example has ${found.length} ${kind} documents, not one`);
      return found.length === 1 ? (found[0] as T) : undefined;
    };
    const issuer = one<ClusterIssuerDoc>('ClusterIssuer');
    const cert = one<CertificateDoc>('Certificate');
    const secret = one<SecretDoc>('Secret');
    const sa = one<Doc>('ServiceAccount');
    const namespace = one<Doc>('Namespace');
    const ingress = one<IngressDoc>('Ingress');
    const services = all.filter((d): d is ServiceDoc => d.kind === 'Service');
    if (!issuer || !cert || !secret || !sa || !namespace || !ingress) return problems;
    const acme = issuer.spec?.acme ?? {};
    const ns = namespace.metadata?.name;

    // The kustomization: every file but the template, no Secret, no namespace (kustomize would
    // write it into the cluster-scoped ClusterIssuer too).
    const applied = ex.kustomization.resources ?? [];
    const expected = Object.keys(ex.files).filter((f) => !f.includes('.template.')).sort();
    if ([...applied].sort().join(', ') !== expected.join(', ')) p(`the example's kustomization resources ${applied.join(', ')} are not ${expected.join(', ')}`);
    if (applied.some((f) => (ex.files[f] ?? []).some((d) => d.kind === 'Secret'))) p('the kustomization applies a Secret: it would replace the binding\'s key with a placeholder');
    if (ex.kustomization.namespace !== undefined) p(`the kustomization sets namespace ${ex.kustomization.namespace}: kustomize would write it into the cluster-scoped ClusterIssuer`);
    if (issuer.metadata?.namespace !== undefined) p(`the ClusterIssuer has namespace ${issuer.metadata.namespace}; it is cluster-scoped`);
    for (const d of applied.flatMap((f) => ex.files[f] ?? [])) {
      if (!['Namespace', 'ClusterIssuer'].includes(d.kind ?? '') && d.metadata?.namespace !== ns) p(`${d.kind} ${d.metadata?.name} is not in namespace ${ns}`);
    }

    // The ACME server: the CA Service's API port, a name of the API certificate, the directory.
    const apiPort = k.service.spec.ports.find((sp) => caPort(k, sp.targetPort ?? sp.port) === config.server.port)?.port;
    const svcHost = `${k.service.metadata?.name}.${k.service.metadata?.namespace}.svc`;
    let url: URL | undefined;
    try {
      url = new URL(acme.server ?? '');
    } catch {
      url = undefined;
    }
    if (!url || url.protocol !== 'https:' || ![svcHost, `${svcHost}.cluster.local`].includes(url.hostname) || Number(url.port || 443) !== apiPort || url.pathname !== '/acme/directory' || url.search) {
      p(`the issuer's server ${acme.server} is not https://${svcHost}:${apiPort}/acme/directory, the CA Service's API port and its ACME directory`);
    } else if (config.server.tls.mode === 'auto' && !config.server.tls.names.includes(url.hostname)) p(`${url.hostname} is not in the CA's server.tls.names`);
    if (!acme.caBundle || acme.skipTLSVerify) p('the issuer has no caBundle (or skips TLS verification): cert-manager must trust the CA\'s root');

    // The binding: its Secret is the template, in cert-manager's namespace, made by the README.
    const eab = acme.externalAccountBinding;
    if (!eab?.keyID) p('the issuer has no externalAccountBinding.keyID: the CA creates no account without a binding');
    const ref = eab?.keySecretRef;
    const secretName = secret.metadata?.name;
    const keys = Object.keys({ ...secret.stringData, ...secret.data });
    if (ref?.name !== secretName) p(`keySecretRef names Secret ${ref?.name}, not the template's ${secretName}`);
    if (!ref?.key || !keys.includes(ref.key)) p(`keySecretRef key ${ref?.key} is not a key of Secret ${secretName} (${keys.join(', ')})`);
    const cmNamespace = secret.metadata?.namespace;
    if (cmNamespace !== CERT_MANAGER_NAMESPACE) p(`the binding's Secret is in namespace ${cmNamespace}, not cert-manager's (${CERT_MANAGER_NAMESPACE}), where a ClusterIssuer's Secrets are read`);
    const accountKey = acme.privateKeySecretRef?.name;
    if (!accountKey || accountKey === secretName) p(`privateKeySecretRef ${accountKey} is missing or the binding's Secret`);
    const created = commands.map((c) => /kubectl -n (\S+) create secret generic (\S+)(.*)$/.exec(c)).find((m) => m?.[2] === secretName);
    if (!created) p(`the README's commands never create Secret ${secretName}`);
    else {
      const madeKeys = [...created[3]!.matchAll(/--from-(?:literal|file)=([\w.-]+)=/g)].map((m) => m[1]);
      if (created[1] !== cmNamespace) p(`the README's commands create Secret ${secretName} in namespace ${created[1]}, not ${cmNamespace}`);
      if (!ref?.key || !madeKeys.includes(ref.key)) p(`the README's commands create Secret ${secretName} with ${madeKeys.join(', ')}, without key ${ref?.key}`);
    }

    // The identity: the service account's, asked with its token, handed to `acme eab`.
    const k8s = config.auth.issuers.find((i) => i.issuer.startsWith('https://kubernetes.default.svc'));
    if (!k8s) return [...problems, 'the CA has no Kubernetes service-account issuer'];
    const saNs = sa.metadata?.namespace;
    const saName = sa.metadata?.name;
    let identity = '';
    try {
      identity = renderIdentity(k8s.identity, { 'kubernetes.io': { namespace: saNs, serviceaccount: { name: saName } } });
    } catch (err) {
      p(`no identity for service account ${saNs}/${saName}: ${err instanceof CaError ? err.detail : String(err)}`);
    }
    const annotated = issuer.metadata?.annotations?.[IDENTITY_ANNOTATION];
    if (annotated !== identity) p(`the ClusterIssuer's ${IDENTITY_ANNOTATION} ${annotated} is not ${identity}, the identity of service account ${saNs}/${saName}`);
    const tokenAt = commands.findIndex((c) => /kubectl -n \S+ create token /.test(c));
    const token = /kubectl -n (\S+) create token (\S+)(.*)$/.exec(commands[tokenAt] ?? '');
    if (!token || token[1] !== saNs || token[2] !== saName) p(`the README's commands do not create a token of service account ${saNs}/${saName} (kubectl -n NS create token SA)`);
    else {
      const audience = /--audience[ =](\S+)/.exec(token[3]!)?.[1];
      if (![k8s.audience].flat().includes(audience ?? '')) p(`the README's token is for audience ${audience}, not the CA issuer's (${[k8s.audience].flat().join(', ')})`);
      const seconds = goDuration(/--duration[ =](\S+)/.exec(token[3]!)?.[1]);
      if (seconds === undefined || seconds > (k8s.maxTokenAge ?? 3600)) p(`the README's token --duration is not set within the CA issuer's maxTokenAge (${k8s.maxTokenAge} s)`);
      const applies = commands.findIndex((c) => /kubectl apply .*serviceaccount\.yaml/.test(c));
      if (applies < 0 || applies > tokenAt) p('the README\'s commands do not apply serviceaccount.yaml before asking for its token');
      const tokenFile = />\s*(\S+)/.exec(token[3]!)?.[1];
      const eabArgs = eabArguments(commands);
      if (!eabArgs) p('the README\'s commands never run service-ca acme eab');
      else if (flagValue(eabArgs, 'token-file') !== tokenFile) p(`service-ca acme eab reads --token-file ${flagValue(eabArgs, 'token-file')}, not the token the README wrote (${tokenFile})`);
    }

    // Every placeholder of the applied files is filled in by the README's sed: the kid from
    // the binding, the caBundle from the root.
    const appliedText = applied.map((f) => readText(`${CM_DIR}/${f}`)).join('\n');
    if (!/kubectl kustomize \S*examples\/cert-manager\s*\|\s*sed .*\|\s*kubectl apply -f -/.test(text)) p('the README does not apply the example as kubectl kustomize … | sed … | kubectl apply -f -');
    if (/<PLACEHOLDER/.test(appliedText)) p('an applied file holds a <PLACEHOLDER…> that no command fills');
    for (const placeholder of new Set(appliedText.match(/PLACEHOLDER-[A-Z0-9-]+/g) ?? [])) {
      const filled = new RegExp(`s\\|${placeholder}\\|([^|]*)\\|`).exec(text)?.[1];
      if (filled === undefined) p(`${placeholder} is not filled in by the README's commands (sed -e "s|${placeholder}|…|")`);
      else if (placeholder === eab?.keyID && !/jq -r \.kid\b/.test(filled)) p(`the keyID ${placeholder} is filled with ${filled}, not the binding's kid`);
      else if (placeholder === acme.caBundle && !/base64 -A\s*<\s*\S*root\.pem/.test(filled)) p(`the caBundle ${placeholder} is filled with ${filled}, not the root in base64`);
    }
    if (created && !/jq -r \.hmacKey\b/.test(created[3]!)) p(`Secret ${secretName} is not made from the binding's hmacKey`);

    // The Certificate: this issuer, names the policy grants the identity, the CA's lifetime, a key it signs.
    const spec = cert.spec ?? {};
    const issuerRef = spec.issuerRef;
    if (issuerRef?.kind !== 'ClusterIssuer' || issuerRef.name !== issuer.metadata?.name || (issuerRef.group ?? 'cert-manager.io') !== 'cert-manager.io') {
      p(`the Certificate's issuerRef ${JSON.stringify(issuerRef)} is not ClusterIssuer ${issuer.metadata?.name}`);
    }
    if ((spec.uris ?? []).length > 0 || (spec.emailAddresses ?? []).length > 0) p('the Certificate asks for URI or email names, which ACME cannot order');
    const names: SubjectAltNames = { dns: spec.dnsNames ?? [], ip: spec.ipAddresses ?? [], uri: [], email: [] };
    let policyMaxTtl: number | undefined;
    try {
      const reservedNames = config.server.tls.mode === 'auto' ? config.server.tls.names : [];
      policyMaxTtl = authorizeNames(compilePolicies(config.policies, { reservedNames }), identity, undefined, names, k8s.name).maxTtl;
    } catch (err) {
      p(`the Certificate's names ${[...names.dns, ...names.ip].join(', ')} are not granted to ${identity}: ${err instanceof CaError ? err.detail : String(err)}`);
    }
    const cap = Math.min(config.issuance.maxTtl, policyMaxTtl ?? Infinity);
    const lifetime = Math.min(config.issuance.defaultTtl, cap);
    const duration = goDuration(spec.duration);
    if (spec.duration !== undefined && duration !== lifetime) p(`the Certificate's duration ${spec.duration} is not the lifetime the CA grants (${lifetime} s)`);
    if (acme.enableDurationFeature && (duration ?? 90 * 86400) + config.issuance.backdate > cap) {
      p(`enableDurationFeature asks for ${spec.duration ?? '2160h'} from now, which with the backdate (${config.issuance.backdate} s) is longer than the policy allows (${cap} s): newOrder is refused`);
    }
    const renewBefore = goDuration(spec.renewBefore);
    if (spec.renewBefore !== undefined && (renewBefore === undefined || renewBefore >= lifetime)) p(`renewBefore ${spec.renewBefore} is not shorter than the lifetime (${lifetime} s)`);
    if (!keyAccepted(spec.privateKey)) p(`the Certificate's privateKey ${JSON.stringify(spec.privateKey)} is not a key the CA signs (P-256, P-384, RSA 2048-4096, Ed25519)`);

    // http-01 through the ingress controller: each name an alias of the controller's Service,
    // a rule of the Ingress of the solver's class, which serves the Certificate's Secret.
    const solvers = (acme.solvers ?? []).map((s) => s.http01?.ingress).filter((s) => s !== undefined);
    if (solvers.length === 0) p('the issuer has no http-01 ingress solver');
    for (const s of solvers) {
      const solverClass = s.ingressClassName ?? s.class;
      if (solverClass !== ingress.spec?.ingressClassName) p(`the solver's ingress class ${solverClass} is not the Ingress's (${ingress.spec?.ingressClassName})`);
    }
    const serviceOf = (dns: string) => services.find((s) => [`${s.metadata?.name}.${s.metadata?.namespace}.svc`, `${s.metadata?.name}.${s.metadata?.namespace}.svc.cluster.local`].includes(dns));
    for (const dns of names.dns) {
      const alias = serviceOf(dns);
      if (alias?.spec?.type !== 'ExternalName' || !/\.svc\.cluster\.local$/.test(alias.spec.externalName ?? '')) {
        p(`${dns} is not an alias (ExternalName) of an in-cluster Service: the CA would not reach the ingress controller, and the solver behind it, at that name`);
      }
      if (!(ingress.spec?.rules ?? []).some((r) => r.host === dns)) p(`the Ingress has no rule for ${dns}`);
    }
    const tls = (ingress.spec?.tls ?? []).find((t) => t.secretName === spec.secretName);
    if (!spec.secretName || !tls || [...(tls.hosts ?? [])].sort().join() !== [...names.dns].sort().join()) p(`the Ingress does not serve ${names.dns.join(', ')} with the Certificate's Secret ${spec.secretName}`);
    for (const backend of (ingress.spec?.rules ?? []).flatMap((r) => r.http?.paths ?? []).map((x) => x.backend?.service?.name)) {
      const target = services.find((s) => s.metadata?.name === backend);
      if (!target || target.spec?.type === 'ExternalName') p(`the Ingress's backend ${backend} is not an ordinary Service of the example`);
    }

    // The CA's NetworkPolicy: cert-manager's namespace reaches the API port once the README
    // has labelled it, and not before.
    const labels: Record<string, string> = { 'kubernetes.io/metadata.name': cmNamespace ?? '' };
    for (const c of commands) {
      const m = /kubectl label (?:namespace|ns) (\S+) (.*)$/.exec(c);
      if (m?.[1] !== cmNamespace) continue;
      for (const [, key, value] of m![2]!.matchAll(/([\w./-]+)=(\S*)/g)) labels[key!] = value!;
    }
    const api = config.server.port;
    if (!portOpen(k, api, labels, false)) p(`the CA's API port ${api} stays closed to cert-manager's namespace ${cmNamespace}: the README's commands do not give it the label the NetworkPolicy asks for`);
    if (portOpen(k, api, { 'kubernetes.io/metadata.name': cmNamespace ?? '' }, false)) p(`the CA's API port ${api} is open to cert-manager's namespace without the label`);
    return problems;
  }

  it('agrees with the CA and with its README: issuer, binding Secret, identity, names, lifetime, ingress path, placeholders, NetworkPolicy', () => {
    assert.deepEqual(certManagerProblems(readKube(), readExample()), []);
  });

  /** The agent-style check for `service-ca acme eab`: its arguments pass the command's own parsing. */
  async function eabArgumentProblems(args: string[], scratch: string, rootPem: string): Promise<string[]> {
    mkdirSync(scratch, { recursive: true });
    const root = join(scratch, 'root.pem');
    const token = join(scratch, 'token.jwt');
    writeFileSync(root, rootPem);
    writeFileSync(token, 'stand-in\n');
    const local = args.map((a, i) => (args[i - 1] === '--server' ? 'https://127.0.0.1:1' : args[i - 1] === '--ca' ? root : args[i - 1] === '--token-file' ? token : a));
    const r = await runCli(local, { cwd: scratch, timeoutMs: 60_000 });
    return r.code === 1 && !r.stderr.includes('Usage:') ? [] : [`service-ca ${args.join(' ')}: refused (exit ${r.code}): ${r.stderr.trim().split('\n')[0]}`];
  }

  it('the README\'s service-ca acme eab arguments are the command\'s', async () => {
    const args = eabArguments(readmeCommands(readExample().readme));
    assert.ok(args, 'the README runs service-ca acme eab');
    const rootPem = readFileSync(join(await developmentCa(), 'ca', 'root.pem'), 'utf8');
    const scratch = mkdtempSync(join(tmpdir(), 'service-ca-cert-manager-args-'));
    scratchFolders.push(scratch);
    assert.deepEqual(await eabArgumentProblems(args, scratch, rootPem), []);
  });

  it('a flag the command does not have is refused', async () => {
    const args = eabArguments(readmeCommands(readExample().readme))!.map((a) => (a === '--token-file' ? '--tokenfile' : a));
    const rootPem = readFileSync(join(await developmentCa(), 'ca', 'root.pem'), 'utf8');
    const scratch = mkdtempSync(join(tmpdir(), 'service-ca-cert-manager-args-'));
    scratchFolders.push(scratch);
    assert.match((await eabArgumentProblems(args, scratch, rootPem)).join('\n'), /refused \(exit 2\): service-ca: Unknown option '--tokenfile'/);
  });

  // Each check objects to a broken copy of the files, the README or the CA's manifests.
  const broken = (mutate: (ex: Example, k: Kube) => void) => {
    const k = structuredClone(readKube());
    const ex = structuredClone(readExample());
    mutate(ex, k);
    return certManagerProblems(k, ex).join('\n');
  };
  const docOf = <T extends Doc>(ex: Example, kind: string) => Object.values(ex.files).flat().find((d) => d.kind === kind) as T;
  const acmeOf = (ex: Example) => docOf<ClusterIssuerDoc>(ex, 'ClusterIssuer').spec!.acme!;
  const certOf = (ex: Example) => docOf<CertificateDoc>(ex, 'Certificate').spec!;
  const editReadme = (ex: Example, from: string | RegExp, to: string) => {
    const next = ex.readme.replace(from, to);
    assert.notEqual(next, ex.readme, `the README contains ${from}`);
    ex.readme = next;
  };
  const cases: [string, (ex: Example, k: Kube) => void, RegExp][] = [
    ['the server on the public port', (ex) => (acmeOf(ex).server = 'https://service-ca.service-ca.svc:8080/acme/directory'), /server https:\/\/service-ca\.service-ca\.svc:8080\/acme\/directory is not https:\/\/service-ca\.service-ca\.svc:8443\/acme\/directory/],
    ['the server over plain HTTP', (ex) => (acmeOf(ex).server = 'http://service-ca.service-ca.svc:8443/acme/directory'), /is not https:\/\/service-ca\.service-ca\.svc:8443\/acme\/directory/],
    ['the server without the directory path', (ex) => (acmeOf(ex).server = 'https://service-ca.service-ca.svc:8443/directory'), /is not https:\/\/service-ca\.service-ca\.svc:8443\/acme\/directory/],
    ['a server name the API certificate lacks', (_ex, k) => {
      const text = k.configMap.data!['config.yaml']!;
      k.configMap.data!['config.yaml'] = text.replace(/^\s*- service-ca\.service-ca\.svc\n/m, '');
      assert.notEqual(k.configMap.data!['config.yaml'], text, 'server.tls.names lists service-ca.service-ca.svc');
    }, /service-ca\.service-ca\.svc is not in the CA's server\.tls\.names/],
    ['no caBundle', (ex) => delete acmeOf(ex).caBundle, /no caBundle/],
    ['no keyID', (ex) => delete acmeOf(ex).externalAccountBinding!.keyID, /no externalAccountBinding\.keyID/],
    ['keySecretRef to another Secret', (ex) => (acmeOf(ex).externalAccountBinding!.keySecretRef!.name = 'other'), /keySecretRef names Secret other, not the template's service-ca-store-frontend-eab/],
    ['keySecretRef to another key', (ex) => (acmeOf(ex).externalAccountBinding!.keySecretRef!.key = 'hmac'), /keySecretRef key hmac is not a key of Secret[\s\S]*without key hmac/],
    ['the Secret in the service\'s namespace', (ex) => (docOf<SecretDoc>(ex, 'Secret').metadata!.namespace = 'store'), /the binding's Secret is in namespace store, not cert-manager's/],
    ['the account key in the binding\'s Secret', (ex) => (acmeOf(ex).privateKeySecretRef!.name = 'service-ca-store-frontend-eab'), /privateKeySecretRef service-ca-store-frontend-eab is missing or the binding's Secret/],
    ['the README makes the Secret with another key', (ex) => editReadme(ex, '--from-literal=hmacKey=', '--from-literal=key='), /create Secret service-ca-store-frontend-eab with key, without key hmacKey/],
    ['the README makes the Secret elsewhere', (ex) => editReadme(ex, 'kubectl -n cert-manager create secret', 'kubectl -n store create secret'), /in namespace store, not cert-manager/],
    ['the Secret from the kid', (ex) => editReadme(ex, 'jq -r .hmacKey', 'jq -r .kid'), /not made from the binding's hmacKey/],
    ['the Secret template applied', (ex) => ex.kustomization.resources!.push('eab-secret.template.yaml'), /applies a Secret/],
    ['a file left out', (ex) => (ex.kustomization.resources = ex.kustomization.resources!.filter((r) => r !== 'ingress.yaml')), /kustomization resources/],
    ['a namespace in the kustomization', (ex) => (ex.kustomization.namespace = 'store'), /sets namespace store: kustomize would write it into the cluster-scoped ClusterIssuer/],
    ['another identity in the annotation', (ex) => (docOf<ClusterIssuerDoc>(ex, 'ClusterIssuer').metadata!.annotations![IDENTITY_ANNOTATION] = 'spiffe://cluster.local/ns/store/sa/web'), /is not spiffe:\/\/cluster\.local\/ns\/store\/sa\/frontend, the identity of service account store\/frontend/],
    ['a token of another service account', (ex) => editReadme(ex, 'create token frontend', 'create token web'), /do not create a token of service account store\/frontend/],
    ['a token for another audience', (ex) => editReadme(ex, '--audience service-ca', '--audience kubernetes'), /token is for audience kubernetes/],
    ['a token for two hours', (ex) => editReadme(ex, '--duration 10m', '--duration 2h'), /token --duration is not set within the CA issuer's maxTokenAge/],
    ['the binding asked with another file', (ex) => editReadme(ex, '--token-file frontend.jwt', '--token-file token.jwt'), /reads --token-file token\.jwt, not the token the README wrote \(frontend\.jwt\)/],
    ['the caBundle placeholder left in', (ex) => editReadme(ex, 's|PLACEHOLDER-CA-BUNDLE|', 's|PLACEHOLDER-CABUNDLE|'), /PLACEHOLDER-CA-BUNDLE is not filled in/],
    ['the keyID filled with the HMAC key', (ex) => editReadme(ex, /(PLACEHOLDER-EAB-KID\|\$\(jq -r )\.kid/, '$1.hmacKey'), /keyID PLACEHOLDER-EAB-KID is filled with .*not the binding's kid/],
    ['a name outside the policy', (ex) => certOf(ex).dnsNames!.push('api.store.svc'), /not granted to spiffe:\/\/cluster\.local\/ns\/store\/sa\/frontend: outside the policy for this identity: api\.store\.svc/],
    ['a SPIFFE ID asked for', (ex) => (certOf(ex).uris = ['spiffe://cluster.local/ns/store/sa/frontend']), /URI or email names/],
    ['a namespaced Issuer referenced', (ex) => (certOf(ex).issuerRef!.kind = 'Issuer'), /issuerRef .* is not ClusterIssuer service-ca-store-frontend/],
    ['a 90-day duration', (ex) => (certOf(ex).duration = '2160h'), /duration 2160h is not the lifetime the CA grants \(86400 s\)/],
    ['the duration sent', (ex) => (acmeOf(ex).enableDurationFeature = true), /enableDurationFeature .* newOrder is refused/],
    ['renewBefore as long as the lifetime', (ex) => (certOf(ex).renewBefore = '24h'), /renewBefore 24h is not shorter/],
    ['a P-521 key', (ex) => (certOf(ex).privateKey = { algorithm: 'ECDSA', size: 521 }), /privateKey .* is not a key the CA signs/],
    ['the solver on another ingress class', (ex) => (acmeOf(ex).solvers![0]!.http01!.ingress!.ingressClassName = 'traefik'), /solver's ingress class traefik is not the Ingress's \(nginx\)/],
    ['no http-01 solver', (ex) => (acmeOf(ex).solvers = []), /no http-01 ingress solver/],
    ['the name an ordinary Service', (ex) => {
      const alias = Object.values(ex.files).flat().find((d) => d.kind === 'Service' && (d as ServiceDoc).spec?.type === 'ExternalName') as ServiceDoc;
      alias.spec = { type: 'ClusterIP', selector: { 'app.kubernetes.io/name': 'frontend' } };
    }, /frontend\.store\.svc is not an alias \(ExternalName\)/],
    ['the Ingress with another Secret', (ex) => (docOf<IngressDoc>(ex, 'Ingress').spec!.tls![0]!.secretName = 'other'), /does not serve .* with the Certificate's Secret frontend-tls/],
    ['the Ingress back to the alias', (ex) => (docOf<IngressDoc>(ex, 'Ingress').spec!.rules![0]!.http!.paths![0]!.backend!.service!.name = 'frontend'), /backend frontend is not an ordinary Service/],
    ['cert-manager\'s namespace not labelled', (ex) => editReadme(ex, /^kubectl label namespace cert-manager .*\n/m, ''), /API port 8443 stays closed to cert-manager's namespace cert-manager/],
    ['the API port open to every namespace', (_ex, k) => (k.networkPolicy.spec.ingress![0]!.from = [{ namespaceSelector: {} }]), /open to cert-manager's namespace without the label/],
    ['the token asked before the service account exists', (ex) => editReadme(ex, /^kubectl apply -f \S*namespace\.yaml .*\n/m, ''), /do not apply serviceaccount\.yaml before asking for its token/],
  ];
  for (const [name, mutate, expected] of cases) {
    it(`breaks: ${name}`, () => assert.match(broken(mutate), expected));
  }
});

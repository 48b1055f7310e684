/**
 * The monitoring files (deploy/monitoring/, docs/monitoring.md). promtool, when installed
 * (Debian's prometheus package), checks the rules and runs their unit tests; the tests are then
 * shown to bite: each alert's expression made never to fire, and each alert's `for` removed, must
 * make `promtool test rules` fail on that alert. Without promtool those parts say they skipped.
 * Read statically: every alert has a severity, a summary, a description and a runbook_url whose
 * section docs/monitoring.md has, and test series that make it fire and that must keep it silent;
 * prometheusrule.yaml holds the rules file's groups (and is what prometheusrule.mjs makes of it);
 * the PodMonitor scrapes the Deployment's pods as the job the rules name; the CRL threshold is
 * crl.refresh + crl.maxDelay; the Grafana dashboard takes its data source as the DS_PROMETHEUS
 * input, lays its panels out without overlaps, uses only variables it defines, and covers the fleet,
 * issuance, latency, CRL and intermediate. Every metric, label and label value that the rules and
 * the dashboard's queries name exists in src/metrics.ts (read as text), or is one of the fleet
 * gauges issue 16 adds (NEW_GAUGES); label values are checked where the values are known. The
 * last part feeds each check a file that breaks it, so that none of them can pass vacuously.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { parseDuration } from '../../src/duration.js';

const ROOT = resolve(import.meta.dirname, '../..');
const DIR = 'deploy/monitoring';
const RULES = `${DIR}/service-ca.rules.yml`;
const RULE_TESTS = `${DIR}/service-ca.rules.test.yml`;
const PROMETHEUS_RULE = `${DIR}/prometheusrule.yaml`;
const POD_MONITOR = `${DIR}/podmonitor.yaml`;
const DASHBOARD = `${DIR}/grafana-dashboard.json`;
const RUNBOOK = 'docs/monitoring.md';

const readText = (rel: string) => readFileSync(join(ROOT, rel), 'utf8');

const PROMTOOL = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;
const NO_PROMTOOL = PROMTOOL ? false : 'promtool is not installed (Debian: apt-get install prometheus)';
const execFileAsync = promisify(execFile);

/** promtool's exit code and everything it printed. */
async function promtool(args: string[], cwd = ROOT): Promise<{ code: number; output: string }> {
  try {
    const r = await execFileAsync('promtool', args, { cwd, encoding: 'utf8', timeout: 60_000 });
    return { code: 0, output: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, output: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

const scratchFolders: string[] = [];
const scratch = () => {
  const d = mkdtempSync(join(tmpdir(), 'service-ca-monitoring-'));
  scratchFolders.push(d);
  return d;
};
after(() => {
  for (const d of scratchFolders) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------- the shapes read from the files

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleGroup { name: string; interval?: string; rules: Rule[] }
interface RulesFile { groups: RuleGroup[] }
interface AlertTest { eval_time: string; alertname: string; exp_alerts?: { exp_labels?: Record<string, string> }[] | null }
interface RuleTestFile { rule_files: string[]; tests: { alert_rule_test?: AlertTest[] }[] }
interface PrometheusRuleDoc { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string }; spec?: { groups?: unknown } }
interface PodMonitorDoc {
  apiVersion?: string;
  kind?: string;
  metadata?: { namespace?: string };
  spec: { jobLabel?: string; selector?: { matchLabels?: Record<string, string> }; podMetricsEndpoints?: { port?: string; path?: string }[] };
}
interface DeploymentDoc {
  metadata: { namespace?: string };
  spec: { template: { metadata: { labels?: Record<string, string> }; spec: { containers: { ports?: { name?: string; containerPort: number }[] }[] } } };
}
interface Target { expr?: string; refId?: string; datasource?: { type?: string; uid?: string } }
interface Panel { id?: number; type?: string; title?: string; datasource?: { type?: string; uid?: string }; targets?: Target[]; gridPos?: { x: number; y: number; w: number; h: number }; panels?: Panel[] }
interface Dashboard {
  __inputs?: { name?: string; type?: string; pluginId?: string }[];
  panels?: Panel[];
  templating?: { list?: { name: string; type?: string; datasource?: { uid?: string }; query?: unknown; definition?: string }[] };
}

const readRules = () => parseYaml(readText(RULES)) as RulesFile;
const readRuleTests = () => parseYaml(readText(RULE_TESTS)) as RuleTestFile;
const readDashboard = () => JSON.parse(readText(DASHBOARD)) as Dashboard;
const alertsOf = (rules: RulesFile) => rules.groups.flatMap((g) => g.rules).filter((r): r is Rule & { alert: string } => r.alert !== undefined);
const recordedOf = (rules: RulesFile) => new Set(rules.groups.flatMap((g) => g.rules).flatMap((r) => (r.record ? [r.record] : [])));

// ---------------------------------------------------------------- the metrics that exist

interface MetricInfo {
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'unknown';
  /** Label names, or undefined where src/metrics.ts makes the metric in a helper (not checked). */
  labels?: string[];
  /** Known values of some labels. */
  values?: Record<string, string[]>;
}
type Catalogue = Map<string, MetricInfo>;

/**
 * The gauges the rules and the dashboard lean on most (the fleet's, the intermediate's notAfter
 * and the served CRL's thisUpdate, which ServiceCaCrlStale reads): src/metrics.ts must declare
 * each with exactly this type and these labels.
 */
const NEW_GAUGES: Record<string, MetricInfo> = {
  service_ca_identities: { type: 'gauge', labels: ['state'], values: { state: ['healthy', 'renewalDue', 'missedRenewal', 'expired', 'revoked'] } },
  service_ca_certificates_expiring: { type: 'gauge', labels: ['severity'], values: { severity: ['none', 'warning', 'critical'] } },
  // One series per configured issuer (key id), `active` telling the one that signs certificates.
  service_ca_intermediate_expiration_timestamp_seconds: { type: 'gauge', labels: ['issuer', 'active'], values: { active: ['true', 'false'] } },
  service_ca_crl_last_generated_timestamp_seconds: { type: 'gauge', labels: ['issuer'] },
};
/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ['job', 'instance'];

/** The text of the object literal that opens at `start` (a `{`), strings skipped. */
function objectLiteral(text: string, start: number): string {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '"' || c === '`') {
      for (i++; i < text.length && text[i] !== c; i++) if (text[i] === '\\') i++;
    } else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return text.slice(start, i + 1);
  }
  return text.slice(start);
}

/**
 * The metrics src/metrics.ts defines, read from its text: `new Counter|Gauge|Histogram({ name:
 * '…', labelNames: […] })` with type and labels, and any other 'service_ca_…' string (a name handed
 * to a helper) with neither. The values of issuances' `result` are `issued`, `retried` and the
 * error kinds of src/errors.ts.
 */
function metricCatalogue(metricsSource: string, errorsSource: string): Catalogue {
  const catalogue: Catalogue = new Map();
  for (const m of metricsSource.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\s*\{/g)) {
    const body = objectLiteral(metricsSource, m.index + m[0].length - 1);
    const name = /^\{\s*name:\s*'([^']+)'/.exec(body)?.[1];
    if (!name) continue;
    const labelList = /labelNames:\s*\[([^\]]*)\]/.exec(body)?.[1] ?? '';
    catalogue.set(name, { type: m[1]!.toLowerCase() as MetricInfo['type'], labels: [...labelList.matchAll(/'([^']+)'/g)].map((l) => l[1]!) });
  }
  for (const m of metricsSource.matchAll(/'(service_ca_[a-z0-9_]+)'/g)) {
    if (!catalogue.has(m[1]!)) catalogue.set(m[1]!, { type: 'unknown' });
  }
  const kinds = /export type ErrorKind =([^;]+);/.exec(errorsSource)?.[1] ?? '';
  const issuances = catalogue.get('service_ca_issuances_total');
  if (issuances) issuances.values = { result: ['issued', 'retried', ...[...kinds.matchAll(/'(\w+)'/g)].map((k) => k[1]!)] };
  return catalogue;
}

/** What src/metrics.ts has, with the new gauges it does not have yet, and Prometheus's `up`. */
function knownMetrics(): Catalogue {
  const catalogue = metricCatalogue(readText('src/metrics.ts'), readText('src/errors.ts'));
  const known: Catalogue = new Map(catalogue);
  // Their labels and values as issue 16 gives them (the next test holds src/metrics.ts to these).
  for (const [name, info] of Object.entries(NEW_GAUGES)) known.set(name, info);
  known.set('up', { type: 'gauge', labels: [] });
  return known;
}

// ---------------------------------------------------------------- PromQL, read just enough

interface Matcher { label: string; op: string; value: string }
interface Selector { name: string; matchers: Matcher[] }

/** Aggregation operators (which take by/without after them) and keywords that are no metric. */
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2']);
const CLAUSES = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

type Token = { kind: 'ident' | 'string' | 'number' | 'var' | 'punct'; text: string };

function tokens(expr: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const rest = () => expr.slice(i);
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) i++;
    else if (c === '#') while (i < expr.length && expr[i] !== '\n') i++;
    else if (c === '[') {
      // A range or subquery ([10m], [$__rate_interval], [1h:5m]): no names inside.
      while (i < expr.length && expr[i] !== ']') i++;
      i++;
    } else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      let value = '';
      for (; j < expr.length && expr[j] !== c; j++) {
        if (expr[j] === '\\' && c !== '`') j++;
        value += expr[j];
      }
      out.push({ kind: 'string', text: value });
      i = j + 1;
    } else {
      const m =
        /^\$\{?\w+(?::\w+)?\}?/.exec(rest()) ??
        /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(rest()) ??
        /^(?:0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)/.exec(rest()) ??
        /^(?:=~|!~|!=|==|<=|>=|[-+*/%^<>=(){},@])/.exec(rest());
      if (!m) throw new Error(`cannot read PromQL at "${rest().slice(0, 20)}" in: ${expr}`);
      const text = m[0];
      const kind = text.startsWith('$') ? 'var' : /^[a-zA-Z_:]/.test(text) ? 'ident' : /^[\d.]/.test(text) ? 'number' : 'punct';
      out.push({ kind, text });
      i += text.length;
    }
  }
  return out;
}

/** The series selectors of an expression: metric names with their label matchers. */
function selectors(expr: string): Selector[] {
  const t = tokens(expr);
  const found: Selector[] = [];
  const readMatchers = (from: number): [Matcher[], number] => {
    const matchers: Matcher[] = [];
    let i = from + 1;
    while (i < t.length && t[i]!.text !== '}') {
      if (t[i]!.text === ',') {
        i++;
        continue;
      }
      const [label, op, value] = [t[i], t[i + 1], t[i + 2]];
      if (label?.kind !== 'ident' || op?.kind !== 'punct' || value?.kind !== 'string') throw new Error(`cannot read the label matchers of: ${expr}`);
      matchers.push({ label: label.text, op: op.text, value: value.text });
      i += 3;
    }
    return [matchers, i];
  };
  for (let i = 0; i < t.length; i++) {
    const tok = t[i]!;
    const next = t[i + 1];
    if (tok.kind === 'punct' && tok.text === '{') {
      const [matchers, end] = readMatchers(i);
      const name = matchers.find((m) => m.label === '__name__' && m.op === '=')?.value;
      if (name) found.push({ name, matchers: matchers.filter((m) => m.label !== '__name__') });
      i = end;
      continue;
    }
    if (tok.kind !== 'ident') continue;
    const word = tok.text.toLowerCase();
    if (CLAUSES.has(word)) {
      // by (…), on (…), group_left (…) name labels; group_left may stand alone.
      if (next?.text === '(') while (i < t.length && t[i]!.text !== ')') i++;
      continue;
    }
    if (KEYWORDS.has(word) || next?.text === '(' || AGGREGATIONS.has(word)) continue;
    let matchers: Matcher[] = [];
    if (next?.text === '{') [matchers, i] = readMatchers(i + 1);
    found.push({ name: tok.text, matchers });
  }
  return found;
}

/** The metric a selector names, with the label a histogram's series adds. */
function resolveMetric(name: string, known: Catalogue): MetricInfo | undefined {
  const direct = known.get(name);
  if (direct) return direct;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const base = m ? known.get(m[1]!) : undefined;
  if (!base || (base.type !== 'histogram' && base.type !== 'summary')) return undefined;
  return { ...base, labels: base.labels && m![2] === 'bucket' ? [...base.labels, 'le'] : base.labels };
}

/** Problems with the metrics, labels and label values one expression names. */
function expressionProblems(where: string, expr: string, known: Catalogue, recorded: Set<string> = new Set()): string[] {
  let found: Selector[];
  try {
    found = selectors(expr);
  } catch (err) {
    return [`${where}: ${(err as Error).message}`];
  }
  if (found.length === 0) return [`${where}: names no metric: ${expr}`];
  const problems: string[] = [];
  for (const s of found) {
    if (recorded.has(s.name)) continue;
    const info = resolveMetric(s.name, known);
    if (!info) {
      problems.push(`${where}: ${s.name} is not a metric of src/metrics.ts, nor a new gauge`);
      continue;
    }
    for (const m of s.matchers) {
      if (info.labels && !info.labels.includes(m.label) && !TARGET_LABELS.includes(m.label)) problems.push(`${where}: ${s.name} has no label ${m.label}`);
      const values = info.values?.[m.label];
      if (!values) continue;
      // Literal values, or alternatives of plain words (a|b) in a regular expression.
      const named = m.op === '=' || m.op === '!=' ? [m.value] : /^[\w|]+$/.test(m.value) ? m.value.split('|') : [];
      for (const v of named) if (!values.includes(v)) problems.push(`${where}: ${s.name}'s ${m.label} is never "${v}" (${values.join(', ')})`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------- the rules

/** GitHub's anchor for a heading. */
const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-');
const anchors = (markdown: string) => new Set([...markdown.matchAll(/^#{1,6}\s+(.+?)\s*$/gm)].map((m) => slug(m[1]!.replace(/`/g, ''))));

/** Alerts without severity, summary, description or a runbook section docs/monitoring.md has. */
function alertProblems(rules: RulesFile, runbook: string): string[] {
  const problems: string[] = [];
  const sections = anchors(runbook);
  const alerts = alertsOf(rules);
  if (alerts.length === 0) problems.push('the rules have no alert');
  for (const a of alerts) {
    if (!['warning', 'critical'].includes(a.labels?.severity ?? '')) problems.push(`${a.alert}: severity is ${a.labels?.severity}, not warning or critical`);
    for (const k of ['summary', 'description']) if (!a.annotations?.[k]?.trim()) problems.push(`${a.alert}: no ${k} annotation`);
    const runbookUrl = a.annotations?.runbook_url ?? '';
    const m = /^docs\/monitoring\.md#([\w-]+)$/.exec(runbookUrl);
    if (!m) problems.push(`${a.alert}: runbook_url "${runbookUrl}" is not docs/monitoring.md#<section>`);
    else if (!sections.has(m[1]!)) problems.push(`${a.alert}: runbook_url names #${m[1]}, a section docs/monitoring.md does not have`);
    else if (m[1] !== slug(a.alert)) problems.push(`${a.alert}: runbook_url names #${m[1]}, not the alert's own section #${slug(a.alert)}`);
    if (!a.for) problems.push(`${a.alert}: no for duration`);
  }
  return problems;
}

/** Alerts the unit tests never see firing, or never see silent. */
function coverageProblems(rules: RulesFile, ruleTests: RuleTestFile): string[] {
  const cases = ruleTests.tests.flatMap((t) => t.alert_rule_test ?? []);
  return alertsOf(rules).flatMap((a) => {
    const mine = cases.filter((c) => c.alertname === a.alert);
    const problems: string[] = [];
    if (!mine.some((c) => (c.exp_alerts ?? []).length > 0)) problems.push(`${a.alert}: no test case where it fires`);
    if (!mine.some((c) => (c.exp_alerts ?? []).length === 0)) problems.push(`${a.alert}: no test case where it stays silent`);
    return problems;
  });
}

/** Differences between the PrometheusRule and the rules file, and in its identity. */
function prometheusRuleProblems(rule: PrometheusRuleDoc, rules: RulesFile, namespace: string): string[] {
  const problems: string[] = [];
  if (rule.apiVersion !== 'monitoring.coreos.com/v1' || rule.kind !== 'PrometheusRule') problems.push(`${PROMETHEUS_RULE} is ${rule.apiVersion} ${rule.kind}, not a monitoring.coreos.com/v1 PrometheusRule`);
  if (rule.metadata?.namespace !== namespace) problems.push(`${PROMETHEUS_RULE} is in namespace ${rule.metadata?.namespace}, not the CA's (${namespace})`);
  try {
    assert.deepStrictEqual(rule.spec?.groups, rules.groups);
  } catch (err) {
    problems.push(`${PROMETHEUS_RULE} does not hold the groups of ${RULES}: ${(err as Error).message.split('\n').slice(0, 12).join('\n')}`);
  }
  return problems;
}

/** The job names the rules' `up` selectors name. */
const upJobs = (rules: RulesFile) =>
  new Set(rules.groups.flatMap((g) => g.rules).flatMap((r) => selectors(r.expr)).filter((s) => s.name === 'up').flatMap((s) => s.matchers.filter((m) => m.label === 'job' && m.op === '=').map((m) => m.value)));

/** Whether the PodMonitor scrapes the Deployment's public port as the job the rules watch. */
function podMonitorProblems(pm: PodMonitorDoc, deployment: DeploymentDoc, jobs: Set<string>): string[] {
  const problems: string[] = [];
  if (pm.apiVersion !== 'monitoring.coreos.com/v1' || pm.kind !== 'PodMonitor') problems.push(`${POD_MONITOR} is not a monitoring.coreos.com/v1 PodMonitor`);
  if (pm.metadata?.namespace !== deployment.metadata.namespace) problems.push(`${POD_MONITOR} is in namespace ${pm.metadata?.namespace}, not the CA's (${deployment.metadata.namespace})`);
  const podLabels = deployment.spec.template.metadata.labels ?? {};
  const wanted = Object.entries(pm.spec.selector?.matchLabels ?? {});
  if (wanted.length === 0 || wanted.some(([k, v]) => podLabels[k] !== v)) problems.push(`${POD_MONITOR}'s selector ${JSON.stringify(pm.spec.selector?.matchLabels)} does not select the CA's pods`);
  const ports = deployment.spec.template.spec.containers.flatMap((c) => c.ports ?? []);
  const publicPort = ports.find((p) => p.containerPort === 8080)?.name;
  const endpoints = pm.spec.podMetricsEndpoints ?? [];
  if (!endpoints.some((e) => e.port === publicPort && e.path === '/metrics')) problems.push(`${POD_MONITOR} does not scrape /metrics on the public port (${publicPort})`);
  const job = pm.spec.jobLabel ? podLabels[pm.spec.jobLabel] : undefined;
  if (jobs.size === 0) problems.push('the rules name no job in an up selector');
  for (const j of jobs) if (job !== j) problems.push(`the rules watch job ${j}, but ${POD_MONITOR} scrapes the pods as job ${job ?? '<namespace>/<name>'}`);
  return problems;
}

// ---------------------------------------------------------------- the dashboard

const DATASOURCE_INPUT = '${DS_PROMETHEUS}';
/** Grafana's own variables. */
const GRAFANA_VARIABLES = new Set(['__rate_interval', '__interval', '__interval_ms', '__range', '__range_s', '__range_ms', '__from', '__to', '__dashboard', '__org', '__user']);
/** What the dashboard must show, by the metric each shows it with. */
const DASHBOARD_COVERS = [
  'service_ca_identities',
  'service_ca_certificates_expiring',
  'service_ca_issuances_total',
  'service_ca_http_request_duration_seconds_bucket',
  'service_ca_crl_last_generated_timestamp_seconds',
  'service_ca_crl_bytes',
  'service_ca_crl_number',
  'service_ca_intermediate_expiration_timestamp_seconds',
];

const allPanels = (d: Dashboard): Panel[] => (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
/** Every query of the dashboard, where it is. */
const dashboardQueries = (d: Dashboard) =>
  allPanels(d).flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr ?? '' })));

function dashboardProblems(d: Dashboard, known: Catalogue): string[] {
  const problems: string[] = [];
  const input = d.__inputs?.find((i) => `\${${i.name}}` === DATASOURCE_INPUT);
  if (input?.type !== 'datasource' || input.pluginId !== 'prometheus') problems.push(`__inputs does not declare ${DATASOURCE_INPUT} as a Prometheus data source`);
  const variables = new Set([...(d.templating?.list ?? []).map((v) => v.name), ...(d.__inputs ?? []).map((i) => i.name ?? '')]);
  const panels = allPanels(d);
  const ids = panels.map((p) => p.id);
  if (new Set(ids).size !== ids.length || ids.some((id) => typeof id !== 'number')) problems.push(`panel ids are not unique numbers: ${ids.join(', ')}`);
  for (const p of panels) {
    const g = p.gridPos;
    if (!g || g.x < 0 || g.w < 1 || g.h < 1 || g.x + g.w > 24) problems.push(`panel ${p.id} "${p.title}": gridPos ${JSON.stringify(g)} is not inside the 24 columns`);
    if (p.type === 'row') continue;
    if (p.datasource?.uid !== DATASOURCE_INPUT) problems.push(`panel ${p.id} "${p.title}": data source ${JSON.stringify(p.datasource)}, not ${DATASOURCE_INPUT}`);
    if ((p.targets ?? []).length === 0) problems.push(`panel ${p.id} "${p.title}": no query`);
    for (const t of p.targets ?? []) {
      if (t.datasource && t.datasource.uid !== DATASOURCE_INPUT) problems.push(`panel ${p.id} "${p.title}" ${t.refId}: data source ${JSON.stringify(t.datasource)}, not ${DATASOURCE_INPUT}`);
    }
  }
  for (let i = 0; i < panels.length; i++) {
    for (let j = i + 1; j < panels.length; j++) {
      const [a, b] = [panels[i]!.gridPos, panels[j]!.gridPos];
      if (a && b && a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) problems.push(`panels ${panels[i]!.id} and ${panels[j]!.id} overlap`);
    }
  }
  for (const v of d.templating?.list ?? []) {
    if (v.datasource && v.datasource.uid !== DATASOURCE_INPUT) problems.push(`variable ${v.name}: data source ${JSON.stringify(v.datasource)}, not ${DATASOURCE_INPUT}`);
    const query = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query ?? v.definition ?? '';
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(query.trim());
    if (v.type === 'query') {
      if (!m) problems.push(`variable ${v.name}: query "${query}" is not label_values(metric, label)`);
      else problems.push(...expressionProblems(`variable ${v.name}`, m[1]!, known));
    }
  }
  const named = new Set<string>();
  for (const q of dashboardQueries(d)) {
    problems.push(...expressionProblems(q.where, q.expr, known));
    for (const m of q.expr.matchAll(/\$\{?(\w+)/g)) if (!variables.has(m[1]!) && !GRAFANA_VARIABLES.has(m[1]!)) problems.push(`${q.where}: $${m[1]} is not a variable of the dashboard`);
    try {
      for (const s of selectors(q.expr)) named.add(s.name);
    } catch {
      // reported above
    }
  }
  for (const metric of DASHBOARD_COVERS) if (!named.has(metric)) problems.push(`no panel shows ${metric}`);
  return problems;
}

/** The dashboard's queries as a rules file promtool can check: Grafana's variables given values. */
function dashboardAsRules(d: Dashboard): string {
  const rules = dashboardQueries(d).map((q, i) => ({
    record: `dashboard:query_${i}`,
    expr: q.expr.replace(/\$\{?__\w+\}?/g, '5m').replace(/\$\{?(\w+)\}?/g, 'value-of-$1'),
  }));
  return stringifyYaml({ groups: [{ name: 'dashboard', rules }] });
}

// ---------------------------------------------------------------- the deployment it watches

function readDeployment(): DeploymentDoc {
  return parseYaml(readText('deploy/kubernetes/deployment.yaml')) as DeploymentDoc;
}

/** Seconds of crl.refresh + crl.maxDelay by default (docs/config.schema.json). */
function crlStaleAfter(): number {
  const schema = JSON.parse(readText('docs/config.schema.json')) as { properties: { crl: { properties: Record<string, { default?: string }> } } };
  const crl = schema.properties.crl.properties;
  return parseDuration(crl.refresh!.default)! + parseDuration(crl.maxDelay!.default)!;
}

/** The threshold of ServiceCaCrlStale, in seconds (`> A + B` or `> N`). */
function crlThreshold(rules: RulesFile): number | undefined {
  const expr = alertsOf(rules).find((a) => a.alert === 'ServiceCaCrlStale')?.expr ?? '';
  const m = /service_ca_crl_last_generated_timestamp_seconds(?:\{[^}]*\})?\s*>\s*([\d\s+*]+)$/.exec(expr.trim());
  return m ? m[1]!.split('+').reduce((sum, term) => sum + term.split('*').reduce((p, f) => p * Number(f.trim()), 1), 0) : undefined;
}

// ---------------------------------------------------------------- the tests

const EXPECTED_ALERTS = [
  'ServiceCaMissedRenewals',
  'ServiceCaCertificatesExpiringCritical',
  'ServiceCaCrlStale',
  'ServiceCaIntermediateExpiresSoon',
  'ServiceCaIssuanceErrors',
  'ServiceCaRenewalReuse',
  'ServiceCaJwksStale',
  'ServiceCaInstanceDown',
  'ServiceCaDown',
];

describe('Prometheus rules (deploy/monitoring/service-ca.rules.yml)', () => {
  it('promtool check rules accepts them', { skip: NO_PROMTOOL }, async () => {
    const r = await promtool(['check', 'rules', RULES]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${readRules().groups.flatMap((g) => g.rules).length} rules found`));
  });

  it('promtool test rules passes their unit tests', { skip: NO_PROMTOOL }, async () => {
    const r = await promtool(['test', 'rules', RULE_TESTS]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  it('has the alerts docs/monitoring.md describes, each with severity, summary, description and its runbook section', () => {
    const rules = readRules();
    assert.deepEqual(alertsOf(rules).map((a) => a.alert).sort(), [...EXPECTED_ALERTS].sort());
    assert.deepEqual(alertProblems(rules, readText(RUNBOOK)), []);
  });

  it('every alert has test series that make it fire and that keep it silent', () => {
    assert.deepEqual(coverageProblems(readRules(), readRuleTests()), []);
    assert.deepEqual(readRuleTests().rule_files, ['service-ca.rules.yml']);
  });

  it('names only metrics, labels and label values that exist', () => {
    const rules = readRules();
    const known = knownMetrics();
    const recorded = recordedOf(rules);
    const problems = rules.groups.flatMap((g) => g.rules.flatMap((r) => expressionProblems(r.alert ?? r.record ?? '?', r.expr, known, recorded)));
    assert.deepEqual(problems, []);
  });

  it('src/metrics.ts declares the gauges the rules read, with the labels the rules use', () => {
    const catalogue = metricCatalogue(readText('src/metrics.ts'), readText('src/errors.ts'));
    assert.ok(catalogue.get('service_ca_crl_number')?.type === 'gauge' && catalogue.get('service_ca_issuances_total')?.labels?.includes('result'), 'src/metrics.ts is read');
    const missing = Object.keys(NEW_GAUGES).filter((name) => !catalogue.has(name));
    assert.deepEqual(missing, [], 'an alert on a gauge the service does not serve would stay silent');
    for (const [name, want] of Object.entries(NEW_GAUGES)) {
      const have = catalogue.get(name)!;
      // Made by a helper: type and labels cannot be read from the source.
      if (have.type === 'unknown') continue;
      assert.equal(have.type, 'gauge', name);
      assert.deepEqual(have.labels, want.labels, name);
    }
  });

  it('ServiceCaCrlStale fires past crl.refresh + crl.maxDelay (their defaults)', () => {
    assert.equal(crlThreshold(readRules()), crlStaleAfter());
  });

  it('prometheusrule.yaml holds the same groups, in the CA\'s namespace, as prometheusrule.mjs makes it', () => {
    const rule = parseYaml(readText(PROMETHEUS_RULE)) as PrometheusRuleDoc;
    assert.deepEqual(prometheusRuleProblems(rule, readRules(), readDeployment().metadata.namespace!), []);
    const r = spawnSync(process.execPath, [join(DIR, 'prometheusrule.mjs'), '--check'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  it('podmonitor.yaml scrapes the CA\'s pods on /metrics of the public port, as the job the rules watch', () => {
    const pm = parseYaml(readText(POD_MONITOR)) as PodMonitorDoc;
    assert.deepEqual(podMonitorProblems(pm, readDeployment(), upJobs(readRules())), []);
  });
});

describe('Grafana dashboard (deploy/monitoring/grafana-dashboard.json)', () => {
  it('parses, takes its data source as an input, and shows only metrics that exist', () => {
    assert.deepEqual(dashboardProblems(readDashboard(), knownMetrics()), []);
  });

  it('its queries are PromQL that promtool accepts', { skip: NO_PROMTOOL }, async () => {
    const d = readDashboard();
    const file = join(scratch(), 'dashboard.rules.yml');
    writeFileSync(file, dashboardAsRules(d));
    const r = await promtool(['check', 'rules', file]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${dashboardQueries(d).length} rules found`));
  });
});

describe('each check objects to files that break it', () => {
  /** The rules and their tests in a scratch folder, the rules mutated; promtool's verdict. */
  const testMutated = async (mutate: (rules: RulesFile) => void) => {
    const dir = scratch();
    cpSync(join(ROOT, RULE_TESTS), join(dir, 'service-ca.rules.test.yml'));
    const rules = readRules();
    mutate(rules);
    writeFileSync(join(dir, 'service-ca.rules.yml'), stringifyYaml(rules));
    return promtool(['test', 'rules', join(dir, 'service-ca.rules.test.yml')]);
  };
  const alertNamed = (rules: RulesFile, name: string) => rules.groups.flatMap((g) => g.rules).find((r) => r.alert === name)!;

  it('promtool test rules passes on an unchanged copy (the scratch folder is sound)', { skip: NO_PROMTOOL }, async () => {
    const r = await testMutated(() => {});
    assert.equal(r.code, 0, r.output);
  });

  for (const name of EXPECTED_ALERTS) {
    it(`promtool test rules: ${name} never firing fails its tests`, { skip: NO_PROMTOOL }, async () => {
      const r = await testMutated((rules) => (alertNamed(rules, name).expr = 'vector(0) > 1'));
      assert.notEqual(r.code, 0, r.output);
      assert.match(r.output, new RegExp(`alertname: ${name}, time: `));
    });
    it(`promtool test rules: ${name} without its for fails its tests`, { skip: NO_PROMTOOL }, async () => {
      const r = await testMutated((rules) => delete alertNamed(rules, name).for);
      assert.notEqual(r.code, 0, r.output);
      assert.match(r.output, new RegExp(`alertname: ${name}, time: `));
    });
  }

  it('metrics: a misspelt metric, a label it lacks, a value it never has, a histogram suffix on a gauge', () => {
    const known = knownMetrics();
    const check = (expr: string) => expressionProblems('e', expr, known).join('\n');
    assert.equal(check('histogram_quantile(0.99, sum by (le, route) (rate(service_ca_http_request_duration_seconds_bucket{job=~"$job",route!=""}[$__rate_interval])))'), '', 'a good expression passes');
    assert.equal(check('sum without (instance) (rate(service_ca_issuances_total{result!~"issued|retried"}[10m])) / on (job) group_left sum by (job) (rate(service_ca_issuances_total[10m]))'), '');
    assert.match(check('sum(rate(service_ca_issuance_total[5m]))'), /service_ca_issuance_total is not a metric/);
    assert.match(check('service_ca_crl_bytes{route="/v1/crl"}'), /service_ca_crl_bytes has no label route/);
    assert.match(check('service_ca_identities{state="missed"}'), /service_ca_identities's state is never "missed"/);
    assert.match(check('service_ca_certificates_expiring{severity=~"critical|urgent"}'), /severity is never "urgent"/);
    assert.match(check('rate(service_ca_issuances_total{result="issuedOk"}[5m])'), /result is never "issuedOk"/);
    assert.match(check('service_ca_crl_bytes_bucket'), /service_ca_crl_bytes_bucket is not a metric/);
    assert.match(check('vector(1)'), /names no metric/);
    assert.match(check('{__name__="service_ca_crl_size"}'), /service_ca_crl_size is not a metric/);
    assert.deepEqual(selectors('max by (job) (x{a="1"}) > 0 or absent(up{job="ca"}) unless on(job) y offset 5m'), [
      { name: 'x', matchers: [{ label: 'a', op: '=', value: '1' }] },
      { name: 'up', matchers: [{ label: 'job', op: '=', value: 'ca' }] },
      { name: 'y', matchers: [] },
    ]);
  });

  it('metrics: src/metrics.ts is read with types, labels and the error kinds', () => {
    const catalogue = metricCatalogue(
      "new Counter({ name: 'a_total', help: 'x', labelNames: ['result'], registers: [r] }),\n" +
        "new Histogram({ name: 'b_seconds', help: 'it\\'s {', buckets: [1], registers: [r] }),\n" +
        "new Gauge({ name: 'c', help: 'x', collect() { this.set(1); } }),\n" +
        "poolGauge(registry, 'service_ca_pool', 'help')",
      "export type ErrorKind =\n  | 'malformed'\n  | 'unauthorized';",
    );
    assert.deepEqual(Object.fromEntries(catalogue), {
      a_total: { type: 'counter', labels: ['result'] },
      b_seconds: { type: 'histogram', labels: [] },
      c: { type: 'gauge', labels: [] },
      service_ca_pool: { type: 'unknown' },
    });
    const real = metricCatalogue(readText('src/metrics.ts'), readText('src/errors.ts'));
    assert.deepEqual(real.get('service_ca_issuances_total')?.values?.result?.slice(0, 3), ['issued', 'retried', 'malformed']);
    assert.equal(real.get('service_ca_http_request_duration_seconds')?.type, 'histogram');
  });

  it('alerts: no severity, no description, a runbook section that does not exist or is another alert\'s, no for', () => {
    const runbook = readText(RUNBOOK);
    const problems = (mutate: (a: Rule) => void) => {
      const rules = readRules();
      mutate(alertNamed(rules, 'ServiceCaMissedRenewals'));
      return alertProblems(rules, runbook).join('\n');
    };
    assert.match(problems((a) => delete a.labels!.severity), /ServiceCaMissedRenewals: severity is undefined/);
    assert.match(problems((a) => (a.labels!.severity = 'page')), /severity is page/);
    assert.match(problems((a) => delete a.annotations!.description), /no description annotation/);
    assert.match(problems((a) => (a.annotations!.runbook_url = 'docs/monitoring.md#missed')), /a section docs\/monitoring\.md does not have/);
    assert.match(problems((a) => (a.annotations!.runbook_url = 'docs/monitoring.md#servicecadown')), /not the alert's own section/);
    assert.match(problems((a) => (a.annotations!.runbook_url = 'https://runbooks.invalid/x')), /is not docs\/monitoring\.md#<section>/);
    assert.match(problems((a) => delete a.for), /no for duration/);
    assert.match(alertProblems(readRules(), runbook.replace('### ServiceCaCrlStale', '### CRL too old')).join('\n'), /ServiceCaCrlStale: runbook_url names #servicecacrlstale, a section/);
  });

  it('coverage: an alert with no firing case, or no silent case', () => {
    const rules = readRules();
    const ruleTests = readRuleTests();
    const without = (keep: (c: AlertTest) => boolean) => ({
      ...ruleTests,
      tests: ruleTests.tests.map((t) => ({ ...t, alert_rule_test: (t.alert_rule_test ?? []).filter(keep) })),
    });
    assert.match(coverageProblems(rules, without((c) => !(c.alertname === 'ServiceCaCrlStale' && (c.exp_alerts ?? []).length > 0))).join('\n'), /^ServiceCaCrlStale: no test case where it fires$/);
    assert.match(coverageProblems(rules, without((c) => !(c.alertname === 'ServiceCaDown' && (c.exp_alerts ?? []).length === 0))).join('\n'), /^ServiceCaDown: no test case where it stays silent$/);
  });

  it('CRL threshold: another number than crl.refresh + crl.maxDelay', () => {
    const rules = readRules();
    const alert = alertNamed(rules, 'ServiceCaCrlStale');
    alert.expr = alert.expr.replace('3600 + 5', '3600');
    assert.equal(crlThreshold(rules), 3600);
    assert.notEqual(crlThreshold(rules), crlStaleAfter());
  });

  it('PrometheusRule: another expression, a group missing, another namespace, another kind', () => {
    const rules = readRules();
    const ns = readDeployment().metadata.namespace!;
    const problems = (mutate: (r: PrometheusRuleDoc & { spec: { groups: RuleGroup[] } }) => void) => {
      const rule = parseYaml(readText(PROMETHEUS_RULE)) as PrometheusRuleDoc & { spec: { groups: RuleGroup[] } };
      mutate(rule);
      return prometheusRuleProblems(rule, rules, ns).join('\n');
    };
    assert.equal(problems(() => {}), '');
    assert.match(problems((r) => (r.spec.groups[1]!.rules[0]!.expr = 'vector(1)')), /does not hold the groups/);
    assert.match(problems((r) => r.spec.groups.pop()), /does not hold the groups/);
    assert.match(problems((r) => (r.metadata!.namespace = 'monitoring')), /namespace monitoring, not the CA's/);
    assert.match(problems((r) => (r.kind = 'ConfigMap')), /not a monitoring\.coreos\.com\/v1 PrometheusRule/);
  });

  it('PodMonitor: another port, another path, pods of another app, another job', () => {
    const deployment = readDeployment();
    const jobs = upJobs(readRules());
    assert.deepEqual([...jobs], ['service-ca']);
    const problems = (mutate: (pm: PodMonitorDoc) => void) => {
      const pm = parseYaml(readText(POD_MONITOR)) as PodMonitorDoc;
      mutate(pm);
      return podMonitorProblems(pm, deployment, jobs).join('\n');
    };
    assert.match(problems((pm) => (pm.spec.podMetricsEndpoints![0]!.port = 'api')), /does not scrape \/metrics on the public port \(public\)/);
    assert.match(problems((pm) => (pm.spec.podMetricsEndpoints![0]!.path = '/metricz')), /does not scrape \/metrics/);
    assert.match(problems((pm) => (pm.spec.selector!.matchLabels = { app: 'other' })), /does not select the CA's pods/);
    assert.match(problems((pm) => delete pm.spec.jobLabel), /scrapes the pods as job <namespace>\/<name>/);
    assert.match(problems((pm) => (pm.metadata!.namespace = 'monitoring')), /namespace monitoring/);
  });

  it('dashboard: a fixed data source, an unknown metric, an undefined variable, overlapping or missing panels', () => {
    const known = knownMetrics();
    const problems = (mutate: (d: Dashboard, panels: Panel[]) => void) => {
      const d = readDashboard();
      mutate(d, allPanels(d).filter((p) => p.type !== 'row'));
      return dashboardProblems(d, known).join('\n');
    };
    assert.equal(problems(() => {}), '');
    assert.match(problems((_d, p) => (p[0]!.datasource = { type: 'prometheus', uid: 'prometheus' })), /data source .*"uid":"prometheus".*not \$\{DS_PROMETHEUS\}/);
    assert.match(problems((d) => (d.__inputs = [])), /__inputs does not declare/);
    assert.match(problems((_d, p) => (p[1]!.targets![0]!.expr = 'sum(service_ca_certs_expiring)')), /service_ca_certs_expiring is not a metric/);
    assert.match(problems((_d, p) => (p[1]!.targets![0]!.expr = 'sum(service_ca_crl_bytes{instance=~"$instance"})')), /\$instance is not a variable/);
    assert.match(problems((_d, p) => (p[1]!.gridPos = { ...p[0]!.gridPos! })), /overlap/);
    assert.match(problems((_d, p) => (p[1]!.gridPos = { x: 20, y: 0, w: 8, h: 4 })), /not inside the 24 columns/);
    assert.match(problems((_d, p) => (p[1]!.id = p[0]!.id)), /panel ids are not unique/);
    assert.match(problems((d) => (d.templating!.list![0]!.query = { query: 'label_values(service_ca_crl, job)' })), /variable job: service_ca_crl is not a metric/);
    assert.match(
      problems((_d, panels) => {
        for (const p of panels) for (const t of p.targets ?? []) t.expr = (t.expr ?? '').replace(/service_ca_http_request_duration_seconds_bucket/g, 'service_ca_crl_generation_seconds_bucket');
      }),
      /no panel shows service_ca_http_request_duration_seconds_bucket/,
    );
  });

  it('dashboard: promtool refuses a query that is not PromQL', { skip: NO_PROMTOOL }, async () => {
    const d = readDashboard();
    allPanels(d).find((p) => p.targets?.length)!.targets![0]!.expr = 'sum by (route (rate(service_ca_http_request_duration_seconds_count[5m]))';
    const file = join(scratch(), 'dashboard.rules.yml');
    writeFileSync(file, dashboardAsRules(d));
    const r = await promtool(['check', 'rules', file]);
    assert.notEqual(r.code, 0, r.output);
  });
});

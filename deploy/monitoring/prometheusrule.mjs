#!/usr/bin/env node
// Writes prometheusrule.yaml, the Prometheus Operator's form of service-ca.rules.yml: the same
// groups, comments included, inside a PrometheusRule. Run it after editing the rules file:
//   node deploy/monitoring/prometheusrule.mjs           (writes the file)
//   node deploy/monitoring/prometheusrule.mjs --check   (exit 1 when the file is not up to date)
// test/unit/monitoring.test.ts runs the check, and compares the groups of both files itself.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Document, parseDocument } from 'yaml';

const here = (name) => fileURLToPath(new URL(name, import.meta.url));
export const RULES_FILE = here('service-ca.rules.yml');
export const PROMETHEUS_RULE_FILE = here('prometheusrule.yaml');

const HEADER = [
  ' The Prometheus Operator form of service-ca.rules.yml, made from it by prometheusrule.mjs:',
  ' edit the rules file, then run `node deploy/monitoring/prometheusrule.mjs`.',
  ' kubectl apply -f deploy/monitoring/prometheusrule.yaml (docs/monitoring.md). The labels',
  ' must match the ruleSelector of your Prometheus resource (kube-prometheus-stack selects',
  ' release: <its release name> by default): add yours with kubectl label or a kustomization.',
].join('\n');

/** The PrometheusRule text for the rules file's text. */
export function renderPrometheusRule(rulesText) {
  const rules = parseDocument(rulesText);
  if (rules.errors.length > 0) throw rules.errors[0];
  const doc = new Document({
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'service-ca',
      namespace: 'service-ca',
      labels: { 'app.kubernetes.io/name': 'service-ca', 'app.kubernetes.io/part-of': 'service-ca' },
    },
    spec: {},
  });
  doc.commentBefore = HEADER;
  doc.setIn(['spec', 'groups'], rules.get('groups', true));
  return doc.toString({ lineWidth: 0 });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const want = renderPrometheusRule(readFileSync(RULES_FILE, 'utf8'));
  if (process.argv.includes('--check')) {
    let have = '';
    try {
      have = readFileSync(PROMETHEUS_RULE_FILE, 'utf8');
    } catch {
      // missing: not up to date
    }
    if (have !== want) {
      console.error('deploy/monitoring/prometheusrule.yaml is not up to date: run node deploy/monitoring/prometheusrule.mjs');
      process.exit(1);
    }
  } else {
    writeFileSync(PROMETHEUS_RULE_FILE, want);
  }
}

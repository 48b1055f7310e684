/**
 * One identity: its fleet row (state, severity, last poll, last refusal), its certificates
 * (GET /v1/certificates?identity=, newest first) and what it did itself: the audit rows whose
 * actor it is (GET /v1/audit?actor=; the audit trail has no identity filter, and a revocation
 * by an admin is on the certificate's own page, found by serial).
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { api } from '../api';
import { relative, stateLabel, utc } from '../format';
import { LoadStatus, SeverityBadge, useLoad } from './common';
import { AuditTable, CertificatesTable } from './tables';

export function IdentityPage(props: { name: string }): VNode {
  const name = props.name;
  const fleet = useLoad(async () => (await api.fleet({ identityPrefix: name, limit: 100 })).items.find((i) => i.identity === name) ?? null, [name]);
  const certificates = useLoad(() => api.certificates({ identity: name, limit: 100 }), [name]);
  const trail = useLoad(() => api.audit({ actor: name, limit: 50 }), [name]);
  const row = fleet.status === 'ok' ? fleet.data : null;
  return html`<div class="page">
    <p class="kicker">Identity</p>
    <h1 tabindex="-1" class="break">${name}</h1>
    <section aria-labelledby="state-heading" class="panel">
      <h2 id="state-heading">Fleet state</h2>
      <${LoadStatus} state=${fleet} what="the fleet state" />
      ${fleet.status === 'ok' && !row ? html`<p>The fleet view does not list this identity.</p>` : null}
      ${row
        ? html`<dl class="facts" data-fleet-row data-state=${row.state}>
            <dt>State</dt>
            <dd data-fleet-state>${stateLabel(row.state)}</dd>
            <dt>Severity</dt>
            <dd><${SeverityBadge} severity=${row.severity} /></dd>
            <dt>Renewal window</dt>
            <dd>${row.certificate ? html`${utc(row.certificate.renewalInfo.start)} to ${utc(row.certificate.renewalInfo.end)} (ends ${relative(row.certificate.renewalInfo.end)})` : '—'}</dd>
            <dt>Last renewal-info poll</dt>
            <dd>${row.lastPoll ? html`${utc(row.lastPoll.at)}${row.lastPoll.address ? html` from <code>${row.lastPoll.address}</code>` : null}` : 'never'}</dd>
            <dt>Last refusal</dt>
            <dd>${row.lastRefusal ? html`<code>${row.lastRefusal.code}</code> at ${utc(row.lastRefusal.at)}` : 'none'}</dd>
          </dl>`
        : null}
    </section>
    <section aria-labelledby="certs-heading" class="panel wide">
      <h2 id="certs-heading">Certificates</h2>
      <${LoadStatus} state=${certificates} what="the certificates" />
      ${certificates.status === 'ok'
        ? certificates.data.items.length
          ? html`<${CertificatesTable} items=${certificates.data.items} showIdentity=${false}
              caption=${`${certificates.data.items.length}${certificates.data.nextCursor ? ' newest' : ''} certificates of this identity, newest first`} />`
          : html`<p>No certificate.</p>`
        : null}
    </section>
    <section aria-labelledby="trail-heading" class="panel wide">
      <h2 id="trail-heading">Audit trail of this identity</h2>
      <${LoadStatus} state=${trail} what="the audit trail" />
      ${trail.status === 'ok'
        ? trail.data.items.length
          ? html`<${AuditTable} items=${trail.data.items} caption="What this identity did, newest first" />`
          : html`<p>No audit row with this identity as actor.</p>`
        : null}
    </section>
  </div>`;
}

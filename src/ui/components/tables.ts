/** The console's three tables: fleet rows, certificate records and audit events. */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { relative, shortSerial, stateLabel, utc } from '../format';
import { links } from '../router';
import type { AuditEvent, CertificateRecord, FleetItem } from '../types';
import { Breakable, Link, SeverityBadge } from './common';

function When(props: { at: string }): VNode {
  return html`<time datetime=${props.at} title=${utc(props.at)}>${relative(props.at)}</time>`;
}

export function FleetTable(props: { items: FleetItem[]; caption: string }): VNode {
  return html`<div class="table-wrap">
    <table class="fleet">
      <caption>${props.caption}</caption>
      <thead>
        <tr>
          <th scope="col">Severity</th>
          <th scope="col">Identity</th>
          <th scope="col">State</th>
          <th scope="col">Certificate</th>
          <th scope="col">Renewal window ends</th>
          <th scope="col">Expires</th>
          <th scope="col">Last renewal-info poll</th>
          <th scope="col">Last refusal</th>
        </tr>
      </thead>
      <tbody>
        ${props.items.map(
          (i) => html`<tr key=${i.identity} data-identity=${i.identity} data-state=${i.state}>
            <td><${SeverityBadge} severity=${i.severity} /></td>
            <th scope="row"><${Link} href=${links.identity(i.identity)}><${Breakable} text=${i.identity} /></${Link}></th>
            <td class="state state-${i.state}">${stateLabel(i.state)}</td>
            <td>
              ${i.certificate
                ? html`<${Link} href=${links.certificate(i.certificate.serial)} label=${`Certificate ${i.certificate.serial}`} title=${i.certificate.serial}
                    ><code>${shortSerial(i.certificate.serial)}</code></${Link}
                  >`
                : html`<span class="muted">none</span>`}
            </td>
            <td>${i.certificate ? html`<${When} at=${i.certificate.renewalInfo.end} />` : '—'}</td>
            <td>${i.certificate ? html`<${When} at=${i.certificate.notAfter} />` : '—'}</td>
            <td>${i.lastPoll ? html`<${When} at=${i.lastPoll.at} />${i.lastPoll.address ? html` from <code>${i.lastPoll.address}</code>` : null}` : html`<span class="muted">never</span>`}</td>
            <td>${i.lastRefusal ? html`<code>${i.lastRefusal.code}</code>, <${When} at=${i.lastRefusal.at} />` : html`<span class="muted">none</span>`}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

export function statusText(r: CertificateRecord): string {
  if (r.status === 'revoked') return `Revoked${r.revocationReason ? ` (${r.revocationReason})` : ''}`;
  return r.status === 'valid' ? 'Valid' : 'Expired';
}

export function CertificatesTable(props: { items: CertificateRecord[]; caption: string; showIdentity?: boolean }): VNode {
  return html`<div class="table-wrap">
    <table class="certificates">
      <caption>${props.caption}</caption>
      <thead>
        <tr>
          <th scope="col">Serial</th>
          ${props.showIdentity !== false ? html`<th scope="col">Identity</th>` : null}
          <th scope="col">Status</th>
          <th scope="col">Not before</th>
          <th scope="col">Not after</th>
          <th scope="col">DNS names</th>
          <th scope="col">Renewed from</th>
        </tr>
      </thead>
      <tbody>
        ${props.items.map(
          (r) => html`<tr key=${r.serial} data-serial=${r.serial} data-status=${r.status}>
            <th scope="row"><${Link} href=${links.certificate(r.serial)} label=${`Certificate ${r.serial}`} title=${r.serial}><code>${shortSerial(r.serial)}</code></${Link}></th>
            ${props.showIdentity !== false ? html`<td><${Link} href=${links.identity(r.identity)}><${Breakable} text=${r.identity} /></${Link}></td>` : null}
            <td class="status status-${r.status}">${statusText(r)}</td>
            <td>${utc(r.notBefore)}</td>
            <td>${utc(r.notAfter)} (<${When} at=${r.notAfter} />)</td>
            <td>${r.sans.dns.length ? r.sans.dns.join(', ') : html`<span class="muted">none</span>`}</td>
            <td>${r.renewedFrom ? html`<code title=${r.renewedFrom}>${shortSerial(r.renewedFrom)}</code>` : html`<span class="muted">—</span>`}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

export function AuditTable(props: { items: AuditEvent[]; caption: string }): VNode {
  return html`<div class="table-wrap">
    <table class="audit">
      <caption>${props.caption}</caption>
      <thead>
        <tr>
          <th scope="col">Time</th>
          <th scope="col">Action</th>
          <th scope="col">Outcome</th>
          <th scope="col">Actor</th>
          <th scope="col">Serial</th>
        </tr>
      </thead>
      <tbody>
        ${props.items.map(
          (e) => html`<tr key=${e.id} data-action=${e.action} data-outcome=${e.outcome}>
            <td><time datetime=${e.at}>${utc(e.at)}</time></td>
            <td><code>${e.action}</code></td>
            <td class=${e.outcome === 'success' ? 'outcome-ok' : 'outcome-refused'}>${e.outcome === 'success' ? 'success' : html`refused: <code>${e.outcome}</code>`}</td>
            <td><${Breakable} text=${e.actor} /></td>
            <td>${e.serial ? html`<${Link} href=${links.certificate(e.serial)} label=${`Certificate ${e.serial}`} title=${e.serial}><code>${shortSerial(e.serial)}</code></${Link}>` : '—'}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

/**
 * One certificate: names, validity and renewal window (docs/api.md "Renewal window": ⅔ and ⅚ of
 * the lifetime), lineage as the records show it (the renewedFrom of this record, and the records
 * of the same identity renewed from this one), its audit trail (GET /v1/audit?serial=), and,
 * while valid, revocation.
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api';
import { duration, relative, shortSerial, utc } from '../format';
import { links } from '../router';
import type { CertificateRecord, Revoked } from '../types';
import { announce, Link, LoadStatus, useLoad } from './common';
import { RevokeForm } from './revoke';
import { AuditTable, statusText } from './tables';

function Names(props: { record: CertificateRecord }): VNode {
  const { sans } = props.record;
  const groups: [string, string[]][] = [
    ['DNS', sans.dns],
    ['IP', sans.ip],
    ['URI', sans.uri],
    ['Email', sans.email],
  ];
  return html`<dl class="facts" data-names>
    ${groups
      .filter(([, v]) => v.length > 0)
      .map(([k, v]) => html`<dt key=${k}>${k}</dt><dd key=${`${k}-v`}><ul class="plain">${v.map((n) => html`<li key=${n}><code>${n}</code></li>`)}</ul></dd>`)}
  </dl>`;
}

function Lineage(props: { record: CertificateRecord }): VNode {
  const r = props.record;
  const family = useLoad(() => api.certificates({ identity: r.identity, limit: 1000 }), [r.identity, r.serial]);
  const renewals = family.status === 'ok' ? family.data.items.filter((c) => c.renewedFrom === r.serial) : [];
  return html`<section aria-labelledby="lineage-heading" class="panel">
    <h2 id="lineage-heading">Lineage</h2>
    <dl class="facts" data-lineage>
      <dt>Renewed from</dt>
      <dd data-renewed-from>
        ${r.renewedFrom
          ? html`<${Link} href=${links.certificate(r.renewedFrom)} label=${`Certificate ${r.renewedFrom}`}><code>${r.renewedFrom}</code></${Link}>`
          : 'nothing: issued with an identity token'}
      </dd>
      <dt>Renewed by</dt>
      <dd data-renewals>
        ${family.status === 'ok'
          ? renewals.length
            ? html`<ul class="plain">${renewals.map((c) => html`<li key=${c.serial}><${Link} href=${links.certificate(c.serial)} label=${`Certificate ${c.serial}`}><code>${c.serial}</code></${Link}> (${statusText(c)})</li>`)}</ul>`
            : `no renewal${family.data.nextCursor ? ' among the newest 1000 certificates of this identity' : ''}`
          : html`<${LoadStatus} state=${family} what="the renewals" />`}
      </dd>
    </dl>
  </section>`;
}

export function CertificatePage(props: { serial: string }): VNode {
  const [version, setVersion] = useState(0);
  const [revoked, setRevoked] = useState<Revoked | null>(null);
  const result = useRef<HTMLParagraphElement>(null);
  const loaded = useLoad(() => api.certificate(props.serial), [props.serial, version]);
  const trail = useLoad(() => api.audit({ serial: props.serial, limit: 100 }), [props.serial, version]);
  useEffect(() => setRevoked(null), [props.serial]);
  useLayoutEffect(() => {
    if (revoked) result.current?.focus();
  }, [revoked]);

  const onRevoked = (r: Revoked) => {
    setRevoked(r);
    setVersion((v) => v + 1);
    announce(`Certificate ${r.serial} revoked${r.alsoRevoked.length ? `, and ${r.alsoRevoked.length} renewed from it` : ''}`);
  };

  const r = loaded.status === 'ok' ? loaded.data : (revoked ?? null);
  const lifetime = r ? Date.parse(r.notAfter) - Date.parse(r.notBefore) : 0;
  const nb = r ? Date.parse(r.notBefore) : 0;
  return html`<div class="page">
    <p class="kicker">Certificate</p>
    <h1 tabindex="-1" class="break"><code>${props.serial}</code></h1>
    ${revoked
      ? html`<p class="notice" tabindex="-1" ref=${result} data-revoked-notice>
          Revoked ${revoked.serial} (${revoked.revocationReason ?? 'unspecified'}).${revoked.alsoRevoked.length
            ? html` Also revoked, as renewed from it: ${revoked.alsoRevoked.map((s) => html`<code key=${s}>${shortSerial(s)}</code> `)}`
            : null}
        </p>`
      : null}
    ${!r ? html`<${LoadStatus} state=${loaded} what="the certificate" />` : null}
    ${r
      ? html`<div class="grid">
            <section aria-labelledby="about-heading" class="panel">
              <h2 id="about-heading">About</h2>
              <dl class="facts" data-certificate=${r.serial}>
                <dt>Identity</dt>
                <dd><${Link} href=${links.identity(r.identity)}>${r.identity}</${Link}></dd>
                <dt>Status</dt>
                <dd class="status status-${r.status}" data-status=${r.status}>${statusText(r)}</dd>
                ${r.revokedAt ? html`<dt>Revoked at</dt><dd>${utc(r.revokedAt)}</dd>` : null}
                <dt>Not before</dt>
                <dd>${utc(r.notBefore)}</dd>
                <dt>Not after</dt>
                <dd>${utc(r.notAfter)} (${relative(r.notAfter)})</dd>
                <dt>Lifetime</dt>
                <dd>${duration(lifetime)}</dd>
                <dt>Renewal window</dt>
                <dd>
                  ${r.status === 'revoked'
                    ? 'open now: a revoked certificate is renewed at once'
                    : html`${utc(new Date(nb + (lifetime * 2) / 3))} to ${utc(new Date(nb + (lifetime * 5) / 6))}`}
                </dd>
              </dl>
              <h3>Names</h3>
              <${Names} record=${r} />
            </section>
            <${Lineage} record=${r} />
          </div>
          ${r.status === 'valid'
            ? html`<section class="panel danger-zone"><${RevokeForm} record=${r} onRevoked=${onRevoked} onStale=${() => setVersion((v) => v + 1)} /></section>`
            : null}
          <details class="panel">
            <summary>Certificate (PEM)</summary>
            <pre class="pem">${r.certificate}</pre>
          </details>`
      : null}
    <section aria-labelledby="cert-trail-heading" class="panel wide">
      <h2 id="cert-trail-heading">Audit trail of this certificate</h2>
      <${LoadStatus} state=${trail} what="the audit trail" />
      ${trail.status === 'ok'
        ? trail.data.items.length
          ? html`<${AuditTable} items=${trail.data.items} caption="Audit rows naming this serial, newest first" />`
          : html`<p>No audit row names this serial.</p>`
        : null}
    </section>
  </div>`;
}

/**
 * Search by identity (a prefix, through GET /v1/fleet?identityPrefix=), by serial (GET
 * /v1/certificates/{serial}) or by DNS name (GET /v1/certificates?dns=). The query is in the URL
 * (/ui/search?by=…&q=…), so back and reload repeat it; the count is announced.
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api';
import { links, navigate, type SearchKind } from '../router';
import type { CertificateRecord, FleetItem } from '../types';
import { announce, LoadStatus, useLoad } from './common';
import { CertificatesTable, FleetTable } from './tables';

const LIMIT = 100;

type Found = { kind: 'fleet'; items: FleetItem[]; more: boolean } | { kind: 'certificates'; items: CertificateRecord[]; more: boolean };

async function find(by: SearchKind, q: string): Promise<Found> {
  if (by === 'identity') {
    const page = await api.fleet({ identityPrefix: q, limit: LIMIT });
    return { kind: 'fleet', items: page.items, more: page.nextCursor !== null };
  }
  if (by === 'serial') {
    try {
      return { kind: 'certificates', items: [await api.certificate(q.replace(/[\s:]/g, ''))], more: false };
    } catch (err) {
      if (err instanceof ApiError && (err.code === 'notFound' || err.code === 'malformed')) return { kind: 'certificates', items: [], more: false };
      throw err;
    }
  }
  const page = await api.certificates({ dns: q, limit: LIMIT });
  return { kind: 'certificates', items: page.items, more: page.nextCursor !== null };
}

const KIND_LABEL: Record<SearchKind, string> = { identity: 'identity (prefix)', serial: 'serial', dns: 'DNS name' };

function Results(props: { by: SearchKind; q: string }): VNode {
  const found = useLoad(() => find(props.by, props.q), [props.by, props.q]);
  useEffect(() => {
    if (found.status !== 'ok') return;
    const n = found.data.items.length;
    announce(`${n}${found.data.more ? ' or more' : ''} ${n === 1 ? 'result' : 'results'} for ${KIND_LABEL[props.by]} ${props.q}`);
  }, [found.status]);
  const count = found.status === 'ok' ? `${found.data.items.length}${found.data.more ? '+' : ''} ${found.data.items.length === 1 ? 'result' : 'results'}` : 'Results';
  return html`<section aria-labelledby="results-heading" aria-busy=${found.status === 'loading' ? 'true' : 'false'} class="panel wide">
    <h2 id="results-heading">${count} for ${KIND_LABEL[props.by]} “${props.q}”</h2>
    <${LoadStatus} state=${found} what="the results" />
    ${found.status === 'ok' && found.data.items.length === 0 ? html`<p>Nothing found.</p>` : null}
    ${found.status === 'ok' && found.data.items.length > 0
      ? found.data.kind === 'fleet'
        ? html`<${FleetTable} items=${found.data.items} caption=${`Identities starting with “${props.q}”`} />`
        : html`<${CertificatesTable} items=${found.data.items} caption=${`Certificates for ${KIND_LABEL[props.by]} “${props.q}”, newest first`} />`
      : null}
  </section>`;
}

export function SearchPage(props: { by: SearchKind; q: string }): VNode {
  const [by, setBy] = useState<SearchKind>(props.by);
  const [q, setQ] = useState(props.q);
  // The form follows the URL when it changes (back, forward), and only then: what was typed
  // since the page opened is kept.
  const opened = useRef(true);
  useLayoutEffect(() => {
    if (opened.current) {
      opened.current = false;
      return;
    }
    setBy(props.by);
    setQ(props.q);
  }, [props.by, props.q]);
  const submit = (e: Event) => {
    e.preventDefault();
    if (q.trim()) navigate(links.search(by, q.trim()), { keepFocus: true });
  };
  const placeholder = by === 'identity' ? 'spiffe://example.org/ns/shop/' : by === 'serial' ? '0f1c0a…' : 'web.shop.svc';
  return html`<div class="page">
    <h1 tabindex="-1">Search</h1>
    <form class="search" role="search" onSubmit=${submit}>
      <div class="field">
        <label for="search-by">Search by</label>
        <select id="search-by" value=${by} onChange=${(e: Event) => setBy((e.currentTarget as HTMLSelectElement).value as SearchKind)}>
          <option value="identity">Identity (prefix)</option>
          <option value="serial">Serial</option>
          <option value="dns">DNS name</option>
        </select>
      </div>
      <div class="field grow">
        <label for="search-q">Search for</label>
        <input id="search-q" type="search" value=${q} placeholder=${placeholder} required autocomplete="off" spellcheck=${false}
          onInput=${(e: Event) => setQ((e.currentTarget as HTMLInputElement).value)} />
      </div>
      <button type="submit">Search</button>
    </form>
    ${props.q ? html`<${Results} by=${props.by} q=${props.q} />` : null}
  </div>`;
}

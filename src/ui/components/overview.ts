/**
 * The fleet overview: counts by state and severity (GET /v1/fleet/summary), the current CRL
 * (GET /v1/crl on this same origin), and the identities that need attention first (GET
 * /v1/fleet, which answers them in that order), with filters and "Load more".
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api, currentCrl, type FleetQuery } from '../api';
import { readCrl } from '../crl-info';
import { bytes, duration, problemText, relative, stateLabel, utc } from '../format';
import { FLEET_STATES, SEVERITIES, type FleetItem } from '../types';
import { announce, LoadStatus, SeverityBadge, useLoad } from './common';
import { FleetTable } from './tables';

const PAGE = 50;

function Summary(props: { version: number }): VNode {
  const summary = useLoad(() => api.summary(), [props.version]);
  return html`<section aria-labelledby="summary-heading" class="panel">
    <h2 id="summary-heading">Identities by state</h2>
    <${LoadStatus} state=${summary} what="the fleet summary" />
    ${summary.status === 'ok'
      ? html`<ul class="counts" data-summary="states">
            ${FLEET_STATES.map(
              (s) => html`<li key=${s} data-state=${s} class="state-${s}"><span class="count">${summary.data.states[s] ?? 0}</span> <span class="count-label">${stateLabel(s)}</span></li>`,
            )}
          </ul>
          <h3>By severity</h3>
          <ul class="counts" data-summary="severities">
            ${SEVERITIES.map(
              (s) => html`<li key=${s} data-severity=${s}><span class="count">${summary.data.severities[s] ?? 0}</span> <${SeverityBadge} severity=${s} /></li>`,
            )}
          </ul>`
      : null}
  </section>`;
}

function CrlPanel(props: { version: number }): VNode {
  const crl = useLoad(async () => readCrl((await currentCrl()).der), [props.version]);
  return html`<section aria-labelledby="crl-heading" class="panel">
    <h2 id="crl-heading">Current CRL</h2>
    <${LoadStatus} state=${crl} what="the CRL" />
    ${crl.status === 'ok'
      ? html`<dl class="facts" data-crl>
          <dt>Number</dt>
          <dd data-crl-number>${crl.data.number === null ? 'none' : crl.data.number.toString()}</dd>
          <dt>Size</dt>
          <dd data-crl-size>${bytes(crl.data.bytes)}, <span data-crl-entries>${crl.data.entries}</span> ${crl.data.entries === 1 ? 'entry' : 'entries'}</dd>
          <dt>Age</dt>
          <dd data-crl-age>issued ${duration(Date.now() - crl.data.thisUpdate.getTime())} ago (<time datetime=${crl.data.thisUpdate.toISOString()}>${utc(crl.data.thisUpdate)}</time>)</dd>
          <dt>Next update</dt>
          <dd>${crl.data.nextUpdate ? html`<time datetime=${crl.data.nextUpdate.toISOString()}>${utc(crl.data.nextUpdate)}</time> (${relative(crl.data.nextUpdate)})` : 'none'}</dd>
        </dl>`
      : null}
  </section>`;
}

function Attention(props: { version: number }): VNode {
  const [filter, setFilter] = useState<FleetQuery>({});
  const [draft, setDraft] = useState<FleetQuery>({});
  const [more, setMore] = useState<{ items: FleetItem[]; cursor: string | null } | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [moreError, setMoreError] = useState<string | null>(null);
  const first = useLoad(async () => {
    setMore(null);
    const page = await api.fleet({ ...filter, limit: PAGE });
    announce(`${page.items.length}${page.nextCursor ? ' or more' : ''} identities listed`);
    return page;
  }, [filter, props.version]);
  const items = first.status === 'ok' ? [...first.data.items, ...(more?.items ?? [])] : [];
  const cursor = more ? more.cursor : first.status === 'ok' ? first.data.nextCursor : null;

  const loadMore = async () => {
    if (!cursor) return;
    setLoadingMore(true);
    setMoreError(null);
    try {
      const page = await api.fleet({ ...filter, limit: PAGE, cursor });
      setMore({ items: [...(more?.items ?? []), ...page.items], cursor: page.nextCursor });
      announce(`${page.items.length} more identities listed`);
    } catch (err) {
      setMoreError(problemText(err));
    } finally {
      setLoadingMore(false);
    }
  };
  const apply = (e: Event) => {
    e.preventDefault();
    setFilter({ ...draft });
  };
  const onSelect = (key: 'state' | 'severity') => (e: Event) => setDraft({ ...draft, [key]: (e.currentTarget as HTMLSelectElement).value || undefined });

  return html`<section aria-labelledby="attention-heading" class="panel wide">
    <h2 id="attention-heading">Identities needing attention first</h2>
    <form class="filters" onSubmit=${apply} aria-label="Filter the identities">
      <div class="field">
        <label for="filter-state">State</label>
        <select id="filter-state" value=${draft.state ?? ''} onChange=${onSelect('state')}>
          <option value="">Any state</option>
          ${FLEET_STATES.map((s) => html`<option key=${s} value=${s}>${stateLabel(s)}</option>`)}
        </select>
      </div>
      <div class="field">
        <label for="filter-severity">Severity</label>
        <select id="filter-severity" value=${draft.severity ?? ''} onChange=${onSelect('severity')}>
          <option value="">Any severity</option>
          ${SEVERITIES.map((s) => html`<option key=${s} value=${s}>${s === 'none' ? 'None' : s[0]!.toUpperCase() + s.slice(1)}</option>`)}
        </select>
      </div>
      <button type="submit">Apply filters</button>
    </form>
    <${LoadStatus} state=${first} what="the fleet" />
    ${first.status === 'ok'
      ? items.length === 0
        ? html`<p>No identity matches.</p>`
        : html`<${FleetTable} items=${items} caption=${`${items.length} identities${cursor ? ' (more to load)' : ''}, most urgent first`} />`
      : null}
    ${moreError ? html`<p class="error" role="alert">Could not load more: ${moreError}</p>` : null}
    ${cursor ? html`<button type="button" onClick=${loadMore} disabled=${loadingMore}>${loadingMore ? 'Loading…' : 'Load more'}</button>` : null}
  </section>`;
}

export function OverviewPage(): VNode {
  const [version, setVersion] = useState(0);
  return html`<div class="page">
    <div class="page-head">
      <h1 tabindex="-1">Fleet overview</h1>
      <button type="button" onClick=${() => { setVersion((v) => v + 1); announce('Refreshing'); }}>Refresh</button>
    </div>
    <div class="grid">
      <${Summary} version=${version} />
      <${CrlPanel} version=${version} />
    </div>
    <${Attention} version=${version} />
  </div>`;
}

/**
 * Revoking one certificate: a reason (the RFC 5280 names the API accepts), then a modal
 * confirmation that names the certificate by serial and identity before anything is sent.
 * The native <dialog> keeps the focus inside while open and closes on Escape; the focus starts
 * on Cancel (the harmless choice) and comes back to the button that opened it.
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { api } from '../api';
import { problemText } from '../format';
import { REVOCATION_REASONS, type CertificateRecord, type Revoked } from '../types';
import { announce } from './common';

export function RevokeForm(props: { record: CertificateRecord; onRevoked: (r: Revoked) => void; onStale: () => void }): VNode {
  const { record } = props;
  const [reason, setReason] = useState('unspecified');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const dialog = useRef<HTMLDialogElement>(null);
  const opener = useRef<HTMLButtonElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const label = REVOCATION_REASONS.find((r) => r.value === reason)?.label ?? reason;

  // Set once the revocation went through, so that the dialog's closing is not read as a cancel.
  const settled = useRef(false);

  // The dialog is opened and closed on the element itself, not through a state that a render
  // would apply later: its close event comes in a task after it closed, and a quick Escape then
  // Enter must open it again rather than be undone by that late event.
  const ask = (e: Event) => {
    e.preventDefault();
    setError(null);
    const d = dialog.current;
    if (d && !d.open) {
      d.showModal();
      cancel.current?.focus();
    }
  };

  const onClose = () => {
    // Opened again since it closed: this close event is stale.
    if (dialog.current?.open) return;
    setError(null);
    if (settled.current) return;
    announce('Revocation cancelled');
    if (opener.current?.isConnected) opener.current.focus();
  };

  const confirm = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const revoked = await api.revoke(record.serial, reason);
      settled.current = true;
      dialog.current?.close();
      props.onRevoked(revoked);
    } catch (err) {
      setError(problemText(err));
      if ((err as { code?: string }).code === 'alreadyRevoked') props.onStale();
    } finally {
      setBusy(false);
    }
  };

  return html`<form class="revoke" onSubmit=${ask} aria-labelledby="revoke-heading">
      <h2 id="revoke-heading">Revoke</h2>
      <div class="field">
        <label for="revoke-reason">Reason</label>
        <select id="revoke-reason" value=${reason} onChange=${(e: Event) => setReason((e.currentTarget as HTMLSelectElement).value)}>
          ${REVOCATION_REASONS.map((r) => html`<option key=${r.value} value=${r.value}>${r.label}</option>`)}
        </select>
      </div>
      <button type="submit" class="danger" ref=${opener}>Revoke…</button>
    </form>
    <dialog ref=${dialog} role="alertdialog" aria-modal="true" aria-labelledby="confirm-heading" aria-describedby="confirm-what" onClose=${onClose} data-confirm-revoke>
      <form onSubmit=${confirm}>
        <h2 id="confirm-heading">Revoke this certificate?</h2>
        <div id="confirm-what">
          <dl class="facts">
            <dt>Serial</dt>
            <dd><code data-confirm-serial>${record.serial}</code></dd>
            <dt>Identity</dt>
            <dd data-confirm-identity>${record.identity}</dd>
            <dt>Reason</dt>
            <dd data-confirm-reason>${label}</dd>
          </dl>
          <p>
            This cannot be undone: the certificate goes into the next CRL within seconds${reason === 'keyCompromise'
              ? ', and so does every certificate renewed from it'
              : ''}.
          </p>
        </div>
        ${error ? html`<p class="error" role="alert">Not revoked: ${error}</p>` : null}
        <div class="actions">
          <button type="button" ref=${cancel} onClick=${() => dialog.current?.close()}>Cancel</button>
          <button type="submit" class="danger" disabled=${busy}>${busy ? 'Revoking…' : 'Revoke certificate'}</button>
        </div>
      </form>
    </dialog>`;
}

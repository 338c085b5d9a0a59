// Freshly issued invite links. The server keeps only hashes, so this is the one time the links
// can be seen: say so, and make copying easy.

import { useState } from 'preact/hooks';
import { formatWhen } from '../time';
import type { InviteLink } from '../types';

export function InviteLinks({ links }: { links: InviteLink[] }) {
  const [copied, setCopied] = useState<string | null>(null);
  if (links.length === 0) return null;
  const copy = async (link: InviteLink) => {
    try {
      await navigator.clipboard.writeText(link.url);
      setCopied(link.participant_id);
    } catch {
      setCopied(null);
    }
  };
  return (
    <section aria-labelledby="invites-heading" class="invites">
      <h2 id="invites-heading">Candidate invite links</h2>
      <p class="hint">
        Send each candidate their link. It works once, until the interview ends, and is shown only now; you can
        issue a new one from the interview page.
      </p>
      <ul>
        {links.map((link) => (
          <li key={link.participant_id}>
            <span class="invite-email">{link.email}</span>
            <input class="invite-url" readOnly value={link.url} aria-label={`Invite link for ${link.email}`}
              onFocus={(e) => (e.currentTarget as HTMLInputElement).select()} />
            <button type="button" class="secondary" onClick={() => copy(link)}>
              Copy link
            </button>
            <span class="hint">Valid until {formatWhen(link.expires_at)}</span>
          </li>
        ))}
      </ul>
      <p aria-live="polite" class="muted">
        {copied ? 'Link copied.' : ''}
      </p>
    </section>
  );
}

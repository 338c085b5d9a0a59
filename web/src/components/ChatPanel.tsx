// The room's chat: the lines so far and a box to write the next one. The length limit is the
// server's (sent in `joined`), so the box never accepts what the server would refuse.
import { useState } from 'preact/hooks';
import type { ChatLine } from '../rtc';

export function ChatPanel({ lines, maxLength, onSend }: {
  lines: ChatLine[];
  /** Longest message, in UTF-16 code units (what `maxLength` counts, as the server does). */
  maxLength: number;
  onSend: (text: string) => void;
}) {
  const [draft, setDraft] = useState('');
  const send = (event: Event) => {
    event.preventDefault();
    const text = draft.trim();
    if (!text) return;
    onSend(text);
    setDraft('');
  };
  return (
    <section class="chat" aria-labelledby="chat-heading">
      <h2 id="chat-heading">Chat</h2>
      <ol aria-live="polite">
        {lines.map((line) => (
          <li key={`${line.at}-${line.from}`}>
            <strong>{line.name}:</strong> {line.text}
          </li>
        ))}
      </ol>
      <form onSubmit={send}>
        <label for="chat-input">Message</label>
        <input id="chat-input" value={draft} maxLength={maxLength}
          onInput={(e) => setDraft((e.currentTarget as HTMLInputElement).value)} />
        <button type="submit">Send</button>
      </form>
    </section>
  );
}

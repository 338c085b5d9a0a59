// Markdown text (a question's prompt) as HTML; see markdown.ts for why this is safe.
import { useMemo } from 'preact/hooks';
import { renderMarkdown } from '../markdown';

export function Markdown({ text, class: className }: { text: string; class?: string }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  return <div class={className} dangerouslySetInnerHTML={{ __html: html }} />;
}

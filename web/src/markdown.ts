// Question prompts are Markdown written by interviewers and read by candidates. They are turned
// into HTML with raw HTML switched off (any `<tag>` in the text is shown as text, never parsed)
// and markdown-it's link check (no `javascript:`, `vbscript:`, `file:` or non-image `data:`
// links), so a prompt can never run script in a reader's page. Links open in a new tab
// without handing it this page.
import MarkdownIt from 'markdown-it';

const md = new MarkdownIt({ html: false, linkify: false, typographer: false });

const defaultLinkOpen =
  md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  tokens[idx].attrSet('target', '_blank');
  tokens[idx].attrSet('rel', 'noopener noreferrer');
  return defaultLinkOpen(tokens, idx, options, env, self);
};

/** The HTML of a Markdown text, safe to put in the page. */
export function renderMarkdown(text: string): string {
  return md.render(text);
}

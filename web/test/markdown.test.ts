import { describe, expect, it } from 'vitest';
import { renderMarkdown } from '../src/markdown';

describe('renderMarkdown', () => {
  it('renders the Markdown a prompt is written in', () => {
    const html = renderMarkdown('Print it **reversed**.\n\n```\nabc -> cba\n```\n\n- one\n- two');
    expect(html).toContain('<strong>reversed</strong>');
    expect(html).toContain('<pre><code>abc -&gt; cba\n</code></pre>');
    expect(html).toContain('<li>one</li>');
  });

  it('shows raw HTML as text, never as markup', () => {
    const html = renderMarkdown('<img src=x onerror="alert(1)"> <script>alert(2)</script>');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<script');
    expect(html).toContain('&lt;script&gt;');
  });

  it('drops script links and opens others in a new tab without an opener', () => {
    expect(renderMarkdown('[x](javascript:alert(1))')).not.toContain('href="javascript');
    const html = renderMarkdown('[docs](https://example.com/a)');
    expect(html).toContain('href="https://example.com/a"');
    expect(html).toContain('target="_blank"');
    expect(html).toContain('rel="noopener noreferrer"');
  });
});

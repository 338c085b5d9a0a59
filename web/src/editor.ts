// What every CodeMirror editor of the app shares: highlighting by language id, read-only
// switching, and the style nonce our Content Security Policy asks for.

import { EditorView } from 'codemirror';
import { EditorState, type Extension } from '@codemirror/state';
import { python } from '@codemirror/lang-python';
import { javascript } from '@codemirror/lang-javascript';
import { java } from '@codemirror/lang-java';
import { cpp } from '@codemirror/lang-cpp';
import { go } from '@codemirror/lang-go';
import { rust } from '@codemirror/lang-rust';

/** Syntax highlighting by language id; languages without one are plain text. */
export function highlighting(language: string): Extension {
  switch (language) {
    case 'python':
      return python();
    case 'javascript':
      return javascript();
    case 'typescript':
      return javascript({ typescript: true });
    case 'java':
      return java();
    case 'cpp':
      return cpp();
    case 'go':
      return go();
    case 'rust':
      return rust();
    default:
      return [];
  }
}

export function readOnly(on: boolean): Extension {
  return [EditorState.readOnly.of(on), EditorView.editable.of(!on)];
}

/**
 * The nonce our Content Security Policy gives this page's style elements (the server puts it
 * in a meta tag of the app shell); CodeMirror's own styles are style elements.
 */
export function cspNonce(): Extension {
  const nonce = document.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content;
  return nonce && !nonce.startsWith('__') ? EditorView.cspNonce.of(nonce) : [];
}

// A component loaded on first use: the editor (CodeMirror, Yjs) is most of the app's code, so
// the pages that show it load it after they render, and joining a call never waits for it.

import type { ComponentType } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export function Lazy<P extends object>({ load, props, what }: {
  load: () => Promise<ComponentType<P>>;
  props: P;
  what: string;
}) {
  const [Loaded, setLoaded] = useState<ComponentType<P> | null>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    load().then((component) => setLoaded(() => component), () => setFailed(true));
  }, []);
  if (Loaded) return <Loaded {...props} />;
  return (
    <p role="status" class="muted">
      {failed ? `${what} could not load; reload the page to try again.` : `Loading ${what}…`}
    </p>
  );
}

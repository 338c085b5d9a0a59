// Who is signed in, shared by every page. Restored from the refresh cookie on load.

import { createContext } from 'preact';
import type { ComponentChildren } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import { refreshSession, type Me } from './api';

interface SessionState {
  me: Me | null;
  ready: boolean;
  setMe: (me: Me | null) => void;
}

const SessionContext = createContext<SessionState>({ me: null, ready: false, setMe: () => {} });

export function SessionProvider({ children }: { children: ComponentChildren }) {
  const [me, setMe] = useState<Me | null>(null);
  const [ready, setReady] = useState(false);
  useEffect(() => {
    refreshSession()
      .then(setMe)
      .finally(() => setReady(true));
  }, []);
  return <SessionContext.Provider value={{ me, ready, setMe }}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionState {
  return useContext(SessionContext);
}

export function isStaff(me: Me | null): boolean {
  return me?.kind === 'user' && (me.role === 'interviewer' || me.role === 'admin');
}

// Who is signed in, shared by every page. Restored from the refresh cookie on load.

import { createContext } from 'preact';
import type { ComponentChildren } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import { api, refreshSession, type Me } from './api';
import { localZone } from './time';

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
  // An account without a time zone takes its browser's, once, so email about interviews tells
  // times the way its owner reads them (a zone the server does not know is left unset).
  const zoneAsked = useRef<string | null>(null);
  useEffect(() => {
    if (me?.kind !== 'user' || me.time_zone || zoneAsked.current === me.id) return;
    const id = me.id;
    zoneAsked.current = id;
    api<Me>('PUT', '/api/me/time-zone', { time_zone: localZone() }).then(
      // Only onto the same session: not after a sign-out or onto another account.
      (next) => setMe((current) => (current?.kind === 'user' && current.id === id ? next : current)),
      () => undefined,
    );
  }, [me]);
  return <SessionContext.Provider value={{ me, ready, setMe }}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionState {
  return useContext(SessionContext);
}

export function isStaff(me: Me | null): boolean {
  return me?.kind === 'user' && (me.role === 'interviewer' || me.role === 'admin');
}

// The app shell: header with navigation, and client-side routes.

import type { ComponentChildren } from 'preact';
import { LocationProvider, Route, Router, useLocation } from 'preact-iso';
import { signOut } from './api';
import { SessionProvider, isStaff, useSession } from './session';
import { AdminUsers } from './pages/AdminUsers';
import { AdminNodes } from './pages/AdminNodes';
import { ScorecardTemplates } from './pages/ScorecardTemplates';
import { QuestionBank } from './pages/QuestionBank';
import { Dashboard } from './pages/Dashboard';
import { InterviewPage } from './pages/Interview';
import { JoinInvite } from './pages/JoinInvite';
import { NewInterview } from './pages/NewInterview';
import { NotFound } from './pages/NotFound';
import { Pair } from './pages/Pair';
import { Player } from './pages/Player';
import { AdminOutbox } from './pages/AdminOutbox';
import { AdminWebhooks } from './pages/AdminWebhooks';
import { AdminRooms } from './pages/AdminRooms';
import { AdminRecordings } from './pages/AdminRecordings';
import { AdminCandidates } from './pages/AdminCandidates';
import { VerifyEmail } from './pages/VerifyEmail';
import { AdminAudit } from './pages/AdminAudit';
import { ForgotPassword } from './pages/ForgotPassword';
import { Register } from './pages/Register';
import { ResetPassword } from './pages/ResetPassword';
import { Room } from './pages/Room';
import { SignIn } from './pages/SignIn';

function Header() {
  const { me, setMe } = useSession();
  const { route } = useLocation();
  const onSignOut = async () => {
    await signOut().catch(() => undefined);
    setMe(null);
    route('/signin');
  };
  return (
    <header class="topbar">
      <a class="brand" href="/">
        Sightline
      </a>
      <nav aria-label="Main">
        {me && <a href="/">Interviews</a>}
        {isStaff(me) && <a href="/interviews/new">Schedule</a>}
        {isStaff(me) && <a href="/questions">Questions</a>}
        {me?.kind === 'user' && me.role === 'admin' && <a href="/admin/rooms">Live rooms</a>}
        {me?.kind === 'user' && me.role === 'admin' && <a href="/admin/recordings">Recordings</a>}
        {me?.kind === 'user' && me.role === 'admin' && <a href="/admin/users">Users</a>}
        {me?.kind === 'user' && me.role === 'admin' && <a href="/admin/scorecards">Scorecards</a>}
        {me?.kind === 'user' && me.role === 'admin' && <a href="/admin/nodes">Nodes</a>}
        {me?.kind === 'user' && me.role === 'admin' && <a href="/admin/outbox">Email</a>}
        {me?.kind === 'user' && me.role === 'admin' && <a href="/admin/webhooks">Webhooks</a>}
        {me?.kind === 'user' && me.role === 'admin' && <a href="/admin/candidates">Candidate data</a>}
        {me?.kind === 'user' && me.role === 'admin' && <a href="/admin/audit">Audit</a>}
      </nav>
      <div class="who">
        {me ? (
          <>
            <span>
              {me.display_name}
              <span class="muted"> · {me.kind === 'user' ? me.role : 'guest'}</span>
            </span>
            <button type="button" class="link" onClick={onSignOut}>
              Sign out
            </button>
          </>
        ) : (
          <a href="/signin">Sign in</a>
        )}
      </div>
    </header>
  );
}

/** Shows its children once the session is known; sends signed-out visitors to sign in. */
export function RequireSession({ children }: { children: ComponentChildren }) {
  const { me, ready } = useSession();
  const { route, url } = useLocation();
  if (!ready) return <p class="muted" role="status">Loading…</p>;
  if (!me) {
    route(`/signin?next=${encodeURIComponent(url)}`, true);
    return null;
  }
  return <>{children}</>;
}

export function App() {
  return (
    <LocationProvider>
      <SessionProvider>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <Header />
        <main id="main">
          <Router>
            <Route path="/" component={Dashboard} />
            <Route path="/signin" component={SignIn} />
            <Route path="/register" component={Register} />
            <Route path="/forgot-password" component={ForgotPassword} />
            <Route path="/reset-password" component={ResetPassword} />
            <Route path="/verify-email" component={VerifyEmail} />
            <Route path="/interviews/new" component={NewInterview} />
            <Route path="/interviews/:id" component={InterviewPage} />
            <Route path="/interviews/:id/room" component={Room} />
            <Route path="/join/:token" component={JoinInvite} />
            <Route path="/pair" component={Pair} />
            <Route path="/pair/:token" component={Pair} />
            <Route path="/recordings/:id" component={Player} />
            <Route path="/admin/recordings" component={AdminRecordings} />
            <Route path="/admin/users" component={AdminUsers} />
            <Route path="/admin/scorecards" component={ScorecardTemplates} />
            <Route path="/admin/nodes" component={AdminNodes} />
            <Route path="/admin/outbox" component={AdminOutbox} />
            <Route path="/admin/webhooks" component={AdminWebhooks} />
            <Route path="/admin/rooms" component={AdminRooms} />
            <Route path="/admin/candidates" component={AdminCandidates} />
            <Route path="/admin/audit" component={AdminAudit} />
            <Route path="/questions" component={QuestionBank} />
            <Route default component={NotFound} />
          </Router>
        </main>
      </SessionProvider>
    </LocationProvider>
  );
}

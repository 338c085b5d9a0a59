import { useEffect, useState } from 'preact/hooks';
import { api, type AccountRole } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, Loading, PageTitle, Unavailable, isUnavailable } from '../components/ui';
import { useSession } from '../session';

interface UserView {
  id: string;
  email: string;
  display_name: string;
  role: AccountRole;
  created_at: string;
  /** False once an admin deactivated the account. */
  active: boolean;
  /** Whether its owner confirmed the address. */
  email_verified: boolean;
}

const ROLES: AccountRole[] = ['candidate', 'interviewer', 'reviewer', 'admin'];

function UsersTable() {
  const { me } = useSession();
  const [users, setUsers] = useState<UserView[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [status, setStatus] = useState('');
  useEffect(() => {
    api<UserView[]>('GET', '/api/admin/users').then(setUsers, setError);
  }, []);
  const setRole = async (user: UserView, role: AccountRole) => {
    setError(null);
    try {
      const updated = await api<UserView>('PATCH', `/api/admin/users/${encodeURIComponent(user.id)}`, { role });
      setUsers((current) => current?.map((u) => (u.id === updated.id ? updated : u)) ?? null);
      setStatus(`${updated.display_name} is now ${updated.role}.`);
    } catch (err) {
      setError(err);
    }
  };
  const setActive = async (user: UserView, active: boolean) => {
    setError(null);
    try {
      const updated = await api<UserView>('PUT', `/api/admin/users/${encodeURIComponent(user.id)}/active`, {
        active,
      });
      setUsers((current) => current?.map((u) => (u.id === updated.id ? updated : u)) ?? null);
      setStatus(
        updated.active
          ? `${updated.display_name} can sign in again.`
          : `${updated.display_name} is deactivated and signed out everywhere.`,
      );
    } catch (err) {
      setError(err);
    }
  };
  if (!users && isUnavailable(error)) {
    return (
      <Unavailable title="This page isn't available to you" audience="Only administrators manage user accounts." />
    );
  }
  return (
    <section class="card">
      <PageTitle>Users</PageTitle>
      <ErrorAlert error={error} />
      <p aria-live="polite" class="muted">
        {status}
      </p>
      {!users && !error && <Loading what="users" />}
      {users && (
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Email</th>
              <th scope="col">Role</th>
              <th scope="col">Account</th>
            </tr>
          </thead>
          <tbody>
            {users.map((user) => (
              <tr key={user.id}>
                <td>{user.display_name}</td>
                <td>
                  {user.email}
                  {!user.email_verified && <span class="muted"> (not confirmed)</span>}
                </td>
                <td>
                  <label class="visually-hidden" for={`role-${user.id}`}>
                    Role of {user.display_name}
                  </label>
                  <select id={`role-${user.id}`} value={user.role} disabled={me?.id === user.id}
                    onChange={(e) => setRole(user, (e.currentTarget as HTMLSelectElement).value as AccountRole)}>
                    {ROLES.map((role) => (
                      <option key={role} value={role}>
                        {role}
                      </option>
                    ))}
                  </select>
                </td>
                <td>
                  <span>{user.active ? 'Active' : 'Deactivated'}</span>{' '}
                  {me?.id !== user.id && (
                    <button type="button" class="link" onClick={() => setActive(user, !user.active)}>
                      {user.active ? `Deactivate ${user.display_name}` : `Reactivate ${user.display_name}`}
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function AdminUsers() {
  const { me } = useSession();
  return (
    <RequireSession>
      {me?.kind === 'user' && me.role === 'admin' ? (
        <UsersTable />
      ) : (
        <section class="card narrow">
          <PageTitle>Users</PageTitle>
          <p role="alert">Only admins can manage users.</p>
        </section>
      )}
    </RequireSession>
  );
}

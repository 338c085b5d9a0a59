import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, Loading, PageTitle, Unavailable, isUnavailable } from '../components/ui';
import { useSession } from '../session';

/** A room placed on a node, as `GET /api/admin/nodes` lists it. */
export interface PlacedRoomView {
  interview_id: string;
  title: string | null;
  node: string;
}

/** One node, from its last heartbeat. */
export interface NodeView {
  node: string;
  region: string;
  state: 'serving' | 'draining';
  cpu: number;
  rooms: number;
  peer_connections: number;
  advertise_url: string;
  started_at: string;
  placed_rooms: PlacedRoomView[];
}

/** The cluster as one node sees it. */
export interface ClusterView {
  clustered: boolean;
  this_node: string | null;
  nodes: NodeView[];
  orphaned_rooms: PlacedRoomView[];
}

/** How often the view reads the nodes again while it is open. */
const REFRESH_MS = 10_000;

function RoomList({ rooms, empty, showNode = false }: { rooms: PlacedRoomView[]; empty: string; showNode?: boolean }) {
  if (rooms.length === 0) {
    return <span class="muted">{empty}</span>;
  }
  return (
    <ul>
      {rooms.map((room) => (
        <li key={room.interview_id}>
          <a href={`/interviews/${encodeURIComponent(room.interview_id)}`}>{room.title ?? room.interview_id}</a>
          {showNode && <span class="muted"> (on {room.node})</span>}
        </li>
      ))}
    </ul>
  );
}

/** The cluster's nodes and the rooms placed on each; read again every few seconds. */
export function NodesView({ view }: { view: ClusterView }) {
  if (!view.clustered) {
    return <p>This server runs alone (no <code>[cluster] nats_url</code>): every room runs here.</p>;
  }
  return (
    <>
      <p class="muted">Answered by node {view.this_node}.</p>
      <table>
        <caption class="visually-hidden">Nodes of the cluster and the rooms placed on each</caption>
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">Region</th>
            <th scope="col">State</th>
            <th scope="col">CPU</th>
            <th scope="col">Media connections</th>
            <th scope="col">Rooms placed here</th>
          </tr>
        </thead>
        <tbody>
          {view.nodes.length === 0 && (
            <tr>
              <td colSpan={6}>No node has a live heartbeat.</td>
            </tr>
          )}
          {view.nodes.map((node) => (
            <tr key={node.node}>
              <th scope="row">
                {node.node}
                {node.node === view.this_node && <span class="muted"> (this node)</span>}
              </th>
              <td>{node.region}</td>
              <td>{node.state === 'serving' ? 'Serving' : 'Draining (takes no new rooms)'}</td>
              <td>{Math.round(node.cpu * 100)}%</td>
              <td>{node.peer_connections}</td>
              <td>
                <RoomList rooms={node.placed_rooms} empty="None" />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {view.orphaned_rooms.length > 0 && (
        <>
          <h2>Rooms whose node is gone</h2>
          <p class="muted">They move to a live node when someone next enters. Their last node is named after each.</p>
          <RoomList rooms={view.orphaned_rooms} empty="" showNode />
        </>
      )}
    </>
  );
}

function Nodes() {
  const [view, setView] = useState<ClusterView | null>(null);
  const [readAt, setReadAt] = useState<Date | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let live = true;
    const read = () =>
      api<ClusterView>('GET', '/api/admin/nodes').then(
        (next) => {
          if (live) {
            setView(next);
            setReadAt(new Date());
            setError(null);
          }
        },
        (err) => live && setError(err),
      );
    void read();
    const timer = window.setInterval(read, REFRESH_MS);
    return () => {
      live = false;
      window.clearInterval(timer);
    };
  }, []);
  if (!view && isUnavailable(error)) {
    return <Unavailable title="This page isn't available to you" audience="Only administrators see the servers." />;
  }
  return (
    <section class="card">
      <PageTitle>Nodes</PageTitle>
      <ErrorAlert error={error} />
      {view && error !== null && readAt && <p class="muted">Showing the nodes as of {readAt.toLocaleTimeString()}.</p>}
      {!view && !error && <Loading what="nodes" />}
      {view && <NodesView view={view} />}
    </section>
  );
}

export function AdminNodes() {
  const { me } = useSession();
  return (
    <RequireSession>
      {me?.kind === 'user' && me.role === 'admin' ? (
        <Nodes />
      ) : (
        <section class="card narrow">
          <PageTitle>Nodes</PageTitle>
          <p>Only admins can see the servers.</p>
        </section>
      )}
    </RequireSession>
  );
}

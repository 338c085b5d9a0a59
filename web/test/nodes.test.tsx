import { render } from 'preact';
import { afterEach, describe, expect, it } from 'vitest';
import { type ClusterView, NodesView } from '../src/pages/AdminNodes';

afterEach(() => {
  document.body.innerHTML = '';
});

function shown(view: ClusterView): HTMLElement {
  const root = document.createElement('div');
  document.body.appendChild(root);
  render(<NodesView view={view} />, root);
  return root;
}

const node = (name: string, state: 'serving' | 'draining', rooms: [string, string | null][]) => ({
  node: name,
  region: 'eu',
  state,
  cpu: 0.25,
  rooms: rooms.length,
  peer_connections: 4,
  advertise_url: `http://${name}.internal`,
  started_at: '2026-12-06T04:00:00Z',
  placed_rooms: rooms.map(([id, title]) => ({ interview_id: id, title, node: name })),
});

describe('NodesView', () => {
  it('lists each node with its state and the rooms placed on it, linked to their interviews', () => {
    const root = shown({
      clustered: true,
      this_node: 'eu-1',
      nodes: [node('eu-1', 'serving', [['i-1', 'Backend pairing']]), node('eu-2', 'draining', [])],
      orphaned_rooms: [{ interview_id: 'i-2', title: null, node: 'eu-9' }],
    });
    const rows = [...root.querySelectorAll('tbody tr')];
    expect(rows.map((r) => r.querySelector('th')?.textContent)).toEqual(['eu-1 (this node)', 'eu-2']);
    const link = rows[0].querySelector('a');
    expect(link?.textContent).toBe('Backend pairing');
    expect(link?.getAttribute('href')).toBe('/interviews/i-1');
    expect(rows[0].textContent).toContain('25%');
    expect(rows[1].textContent).toContain('Draining (takes no new rooms)');
    expect(rows[1].textContent).toContain('None');
    // A room whose node is gone is listed apart, by id when its interview has no title.
    expect(root.querySelector('h2')?.textContent).toBe('Rooms whose node is gone');
    expect([...root.querySelectorAll('ul a')].map((a) => a.textContent)).toContain('i-2');
    expect(root.textContent).toContain('i-2 (on eu-9)');
  });

  it('says so when the server runs alone', () => {
    const root = shown({ clustered: false, this_node: null, nodes: [], orphaned_rooms: [] });
    expect(root.textContent).toContain('This server runs alone');
    expect(root.querySelector('table')).toBeNull();
  });
});

// For a moderator: the people they removed from the room, who stay out until let back in.

export function RemovedList({ removed, onReadmit }: {
  /** Identity to name. */
  removed: Map<string, string>;
  onReadmit: (identity: string) => void;
}) {
  if (removed.size === 0) return null;
  return (
    <section class="card" aria-labelledby="removed-heading">
      <h2 id="removed-heading">Removed from the room</h2>
      <ul>
        {[...removed].map(([identity, name]) => (
          <li key={identity}>
            {name}{' '}
            <button type="button" class="secondary small" aria-label={`Let ${name} back in`}
              onClick={() => onReadmit(identity)}>
              Let back in
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

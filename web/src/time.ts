// Time helpers. Interviews are stored as instants (UTC) plus the IANA zone they were planned in;
// people enter and read wall-clock times. No date library: Intl knows every zone.

/** Offset of `zone` from UTC at `instant`, in milliseconds. */
export function zoneOffsetMs(instant: number, zone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(instant));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return asUtc - Math.floor(instant / 1000) * 1000;
}

/**
 * The instant at which the clocks in `zone` show `wall` (`YYYY-MM-DDTHH:MM` from a
 * datetime-local input), as an ISO string. Returns null for malformed input.
 */
export function wallTimeToInstant(wall: string, zone: string): string | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(wall);
  if (!match) return null;
  const [, y, mo, d, h, mi] = match.map(Number);
  const asUtc = Date.UTC(y, mo - 1, d, h, mi);
  // The offset depends on the instant we are looking for; two rounds settle DST edges.
  let instant = asUtc - zoneOffsetMs(asUtc, zone);
  instant = asUtc - zoneOffsetMs(instant, zone);
  return new Date(instant).toISOString();
}

/** A readable date and time of `iso` in `zone` (the viewer's own zone when omitted). */
export function formatWhen(iso: string, zone?: string): string {
  return new Intl.DateTimeFormat(undefined, {
    timeZone: zone,
    weekday: 'short',
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    timeZoneName: 'short',
  }).format(new Date(iso));
}

/** The viewer's IANA zone. */
export function localZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** Every zone the browser knows, for pickers. */
export function allZones(): string[] {
  const withSupported = Intl as typeof Intl & { supportedValuesOf?: (key: string) => string[] };
  return withSupported.supportedValuesOf?.('timeZone') ?? [localZone()];
}

/**
 * Where "now" stands against a scheduled slot, as a room header says it: "starts in 5 min",
 * "25 min left", "5 min over". Minutes round towards the end of the slot.
 */
export function slotNote(startIso: string, endIso: string, now: number): string {
  const start = Date.parse(startIso);
  const end = Date.parse(endIso);
  const minutes = (ms: number) => Math.ceil(ms / 60_000);
  if (now < start) return `starts in ${minutes(start - now)} min`;
  if (now <= end) return `${minutes(end - now)} min left`;
  return `${Math.floor((now - end) / 60_000)} min over`;
}

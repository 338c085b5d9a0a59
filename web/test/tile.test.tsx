import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Media } from '../src/components/room/Media';
import { ParticipantTile } from '../src/components/room/ParticipantTile';
import type { RoomConnection } from '../src/rtc';

/** An observer the test drives: `deliver` hands the callback a batch of entries, as the browser does. */
class FakeObserver {
  static all: FakeObserver[] = [];
  constructor(readonly callback: (entries: object[]) => void) {
    FakeObserver.all.push(this);
  }
  observe() {}
  disconnect() {}
  deliver(entries: object[]) {
    this.callback(entries);
  }
}

afterEach(() => {
  render(null, document.body);
  vi.unstubAllGlobals();
  FakeObserver.all = [];
});

/** A remote camera tile; returns what it told the connection and the observers it made. */
function tile() {
  vi.stubGlobal('IntersectionObserver', FakeObserver);
  vi.stubGlobal('ResizeObserver', FakeObserver);
  const reports: [string, boolean, number][] = [];
  const connection = {
    tileShown: (track: string, visible: boolean, width: number) => reports.push([track, visible, width]),
  } as unknown as RoomConnection;
  act(() => {
    render(
      <Media track={{} as MediaStreamTrack} kind="video" label="Casey's camera" shown={{ connection, trackId: 't1' }} />,
      document.body,
    );
  });
  const [intersection, resize] = FakeObserver.all;
  return { reports, intersection, resize };
}

const seen = (isIntersecting: boolean, width: number) => ({ isIntersecting, boundingClientRect: { width } });

describe('a remote video tile', () => {
  it('says nothing before it is first laid out, then how it is shown', () => {
    const { reports, intersection, resize } = tile();
    resize.deliver([{ contentRect: { width: 320 } }]);
    expect(reports).toEqual([]);
    intersection.deliver([seen(true, 320)]);
    expect(reports.at(-1)).toEqual(['t1', true, 320 * window.devicePixelRatio]);
  });

  it('takes the last of several visibility entries in one batch: the tile as it is now', () => {
    const { reports, intersection, resize } = tile();
    intersection.deliver([seen(true, 640)]);
    // The layout changed twice before the callback ran: hidden, then shown again.
    intersection.deliver([seen(false, 640), seen(true, 320)]);
    expect(reports.at(-1)).toEqual(['t1', true, 320 * window.devicePixelRatio]);
    resize.deliver([{ contentRect: { width: 1280 } }]);
    expect(reports.at(-1)).toEqual(['t1', true, 1280 * window.devicePixelRatio]);
  });
});

describe("a participant's tile", () => {
  it('says when their video stopped reaching the server, and no longer once it flows', () => {
    vi.stubGlobal('IntersectionObserver', FakeObserver);
    vi.stubGlobal('ResizeObserver', FakeObserver);
    const connection = { tileShown() {} } as unknown as RoomConnection;
    const show = (stalled: boolean, reconnecting = false) =>
      act(() => {
        render(
          <ParticipantTile
            person={{ identity: 'p2', name: 'Casey', role: 'candidate', reconnecting }}
            camera={{ info: { id: 't1', participant: 'p2', source: 'camera', muted: false, stalled }, track: {} as MediaStreamTrack }}
            connection={connection}
            speaking={false}
            phoneBadge={null}
          />,
          document.body,
        );
      });
    show(true);
    expect(document.querySelector('figcaption')?.textContent).toContain('video paused');
    expect(document.querySelector(`video[aria-label="Casey's camera"]`)).not.toBeNull();
    show(false);
    expect(document.querySelector('figcaption')?.textContent).not.toContain('video paused');
    // Reconnecting says it all: their video stops because they are away.
    show(true, true);
    expect(document.querySelector('figcaption')?.textContent).toContain('reconnecting');
    expect(document.querySelector('figcaption')?.textContent).not.toContain('video paused');
  });
});

import { describe, expect, it } from 'vitest';
import { phoneStatus } from '../src/phone';
import type { ParticipantInfo, TrackInfo } from '../src/rtc';

const phone: ParticipantInfo = {
  identity: 'phone-c1',
  name: 'Casey',
  role: 'candidate',
  reconnecting: false,
  phone_of: 'c1',
};
const camera: TrackInfo = { id: 't1', participant: 'phone-c1', source: 'secondary_camera', muted: false };

describe('phoneStatus', () => {
  it('says connected only while the phone is there and its video reaches the server', () => {
    expect(phoneStatus(phone, camera, true)).toBe('connected');
    expect(phoneStatus(phone, { ...camera, stalled: true }, true)).toBe('no_feed');
    expect(phoneStatus(phone, undefined, true)).toBe('no_feed');
    expect(phoneStatus({ ...phone, reconnecting: true }, camera, true)).toBe('reconnecting');
  });

  it('says disconnected for a phone that went, and nothing before any phone came', () => {
    expect(phoneStatus(undefined, undefined, true)).toBe('disconnected');
    expect(phoneStatus(undefined, undefined, false)).toBeNull();
  });
});

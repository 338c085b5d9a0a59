import { describe, expect, it } from 'vitest';
import { backoffMs, qualityFor, rateConnection, readStats, rtcUrl, sourceFor } from '../src/rtc';

describe('qualityFor', () => {
  it('sends no video to hidden tiles and more to bigger ones', () => {
    expect(qualityFor(false, 1000)).toBe('off');
    expect(qualityFor(true, 160)).toBe('low');
    expect(qualityFor(true, 320)).toBe('medium');
    expect(qualityFor(true, 1280)).toBe('high');
  });
});

describe('rtcUrl', () => {
  it('follows the page scheme', () => {
    expect(rtcUrl('r1', { protocol: 'https:', host: 'x.example' } as Location)).toBe('wss://x.example/rtc/r1');
    expect(rtcUrl('a b', { protocol: 'http:', host: '127.0.0.1:8080' } as Location)).toBe(
      'ws://127.0.0.1:8080/rtc/a%20b',
    );
  });
});

describe('backoffMs', () => {
  it('retries quickly at first, then every three seconds at most', () => {
    expect(backoffMs(0)).toBe(250);
    expect(backoffMs(1)).toBe(500);
    expect(backoffMs(3)).toBe(2000);
    expect(backoffMs(10)).toBe(3000);
  });
});

describe('rateConnection', () => {
  it('rates loss and round-trip time as a caller would feel them', () => {
    expect(rateConnection(0, 0.01)).toBe('good');
    expect(rateConnection(0, undefined)).toBe('good');
    expect(rateConnection(0.03, 0.05)).toBe('fair');
    expect(rateConnection(0, 0.4)).toBe('fair');
    expect(rateConnection(0.1, 0.05)).toBe('poor');
    expect(rateConnection(0, 0.8)).toBe('poor');
  });
});

describe('readStats', () => {
  it('sums inbound counters and takes the nominated pair round-trip time', () => {
    const entries = [
      { type: 'inbound-rtp', packetsReceived: 90, packetsLost: 10 },
      { type: 'inbound-rtp', packetsReceived: 10, packetsLost: -2 },
      { type: 'remote-inbound-rtp', fractionLost: 0.04 },
      { type: 'candidate-pair', nominated: false, currentRoundTripTime: 9 },
      { type: 'candidate-pair', nominated: true, currentRoundTripTime: 0.02 },
    ];
    const report = { forEach: (f: (s: unknown) => void) => entries.forEach(f) } as unknown as RTCStatsReport;
    expect(readStats(report)).toEqual({ counters: { received: 100, lost: 10 }, rtt: 0.02, remoteLoss: 0.04 });
  });
});

describe('sourceFor', () => {
  it('publishes a person as camera and microphone, a phone only as the secondary camera', () => {
    expect(sourceFor('video', 'person')).toBe('camera');
    expect(sourceFor('audio', 'person')).toBe('microphone');
    expect(sourceFor('video', 'phone')).toBe('secondary_camera');
    expect(sourceFor('audio', 'phone')).toBeNull();
  });
});

import { describe, expect, it } from 'vitest';
import { qualityFor, rtcUrl } from '../src/rtc';

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

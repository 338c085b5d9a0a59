import { describe, expect, it } from 'vitest';
import { constraintsFor, levelOf } from '../src/media';

describe('levelOf', () => {
  it('is zero for silence and grows with loudness, capped at one', () => {
    expect(levelOf(new Float32Array(0))).toBe(0);
    expect(levelOf(new Float32Array(512))).toBe(0);
    const quiet = levelOf(new Float32Array(512).fill(0.01));
    const loud = levelOf(new Float32Array(512).fill(0.2));
    expect(quiet).toBeGreaterThan(0);
    expect(loud).toBeGreaterThan(quiet);
    expect(levelOf(new Float32Array(512).fill(1))).toBe(1);
  });
});

describe('constraintsFor', () => {
  it('asks for exactly the picked devices, or the defaults', () => {
    const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
    expect(constraintsFor({})).toEqual({ video, audio: true });
    expect(constraintsFor({ camera: 'c1', microphone: 'm1' })).toEqual({
      video: { ...video, deviceId: { exact: 'c1' } },
      audio: { deviceId: { exact: 'm1' } },
    });
  });
});

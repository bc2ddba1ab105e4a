import assert from 'node:assert/strict';
import type { PullProgress } from '@gguf-gateway/shared';
import { ProgressMeter } from '../../src/progress-meter.js';

describe('progress meter', () => {
  it('asks for a report once per interval however many chunks arrive, with a rate and an ETA', async () => {
    const reports: PullProgress[] = [];
    const meter = new ProgressMeter(50, async (p) => void reports.push(p));
    meter.bytesTotal = 10 ** 12;
    let due = 0;
    const until = Date.now() + 220;
    while (Date.now() < until) {
      if (meter.add(1000)) {
        due++;
        await meter.report();
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(due >= 3 && due <= 5, `${due} reports in 220 ms at a 50 ms interval`);
    const last = reports.at(-1)!;
    assert.ok(last.bytesPerSec > 0);
    const expected = (last.bytesTotal - last.bytesDone) / last.bytesPerSec;
    assert.ok(Math.abs(last.etaSec! - expected) <= 1, `ETA ${last.etaSec} s, expected about ${expected} s`);
  });
});

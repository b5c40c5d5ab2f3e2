import type { EncodedRow } from '@bales/model-registry';
import { INLINE_ROW_BYTES, OWN_COMMAND_BYTES, OutgoingRow, ROW_BYTES_GRACE_MS, attachRowBytes, decodeJob, encodeJob, versionQueue } from './job-codec';

const NOW = 1_700_000_000_000;

function floats(n: number, start = 0): Buffer {
  return Buffer.from(Float32Array.from({ length: n }, (_, i) => start + i).buffer);
}

function outgoing(id: string, row: EncodedRow, deadline = NOW + 5000): OutgoingRow {
  return { requestId: id, enqueuedAt: NOW, deadline, row };
}

/** Encodes, then decodes as the consumer would, through JSON as BullMQ stores the job. */
function roundTrip(rows: OutgoingRow[], inlineBelow?: number) {
  let keys = 0;
  const encoded = encodeJob('stub_v1', '3', 'replica-a', rows, () => `bales:infer:rows:replica-a:${keys++}`, NOW, inlineBelow);
  const decoded = decodeJob(JSON.parse(JSON.stringify(encoded.data)), 2);
  return { encoded, decoded };
}

describe('job codec', () => {
  it('keeps small rows inline as base64 and decodes them back unchanged', () => {
    const row: EncodedRow = { buffers: [floats(128)], dims: [[128]] };
    const { encoded, decoded } = roundTrip([outgoing('a', row), outgoing('b', { ...row, raw: true })]);
    expect(encoded.bytes).toBeUndefined();
    expect(encoded.data.b).toBeUndefined();
    expect(decoded.bytesKey).toBeUndefined();
    expect(decoded.rows.map((r) => [r.requestId, r.modelId, r.version, r.origin, r.priority, r.enqueuedAt, r.deadline, r.row.raw])).toEqual([
      ['a', 'stub_v1', '3', 'replica-a', 2, NOW, NOW + 5000, undefined],
      ['b', 'stub_v1', '3', 'replica-a', 2, NOW, NOW + 5000, true],
    ]);
    expect(decoded.rows.map((r) => r.row.buffers.map((b) => b.equals(row.buffers[0])))).toEqual([[true], [true]]);
  });

  it('puts the bytes of big rows in one key, back to back, the job keeping only their lengths', () => {
    const image: EncodedRow = { buffers: [floats(3 * 48 * 192)], dims: [[3, 48, 192]] };
    const two: EncodedRow = { buffers: [floats(4, 10), floats(2, 20)], dims: [[4], [2]], raw: true };
    const { encoded, decoded } = roundTrip([outgoing('a', image, NOW + 2000), outgoing('b', two, NOW + 9000)]);
    expect(encoded.data.b).toBe('bales:infer:rows:replica-a:0');
    expect(encoded.data.r.map((r) => r[3])).toEqual([[110_592], [16, 8]]);
    expect([encoded.bytes?.key, encoded.bytes?.ttlMs]).toEqual([encoded.data.b, 9000 + ROW_BYTES_GRACE_MS]);
    expect(Buffer.concat(encoded.bytes!.parts).equals(Buffer.concat([image.buffers[0], ...two.buffers]))).toBe(true);
    // The job's JSON is a few dozen bytes per row, whatever the rows' size.
    expect(JSON.stringify(encoded.data).length).toBeLessThan(200);
    expect(decoded.bytesKey).toBe(encoded.data.b);
    expect(decoded.rows.map((r) => r.version)).toEqual(['3', '3']);
    expect(decoded.rows.every((r) => r.row.buffers.length === 0)).toBe(true);
    expect(attachRowBytes(decoded, Buffer.concat(encoded.bytes!.parts))).toBeUndefined();
    expect(decoded.rows[0].row.buffers[0].equals(image.buffers[0])).toBe(true);
    expect(decoded.rows[1].row.buffers.map((b, i) => b.equals(two.buffers[i]))).toEqual([true, true]);
    expect(decoded.rows.map((r) => [r.row.dims, r.row.raw])).toEqual([
      [[[3, 48, 192]], undefined],
      [[[4], [2]], true],
    ]);
  });

  it('sends a big row\'s bytes as they are, one part each, and runs of small rows between them as one part', () => {
    const big = (fill: number) => Buffer.alloc(OWN_COMMAND_BYTES, fill);
    const small = (fill: number) => Buffer.alloc(512, fill);
    const rows = [small(1), small(2), big(3), big(4), small(5)].map((b, i) => outgoing(`r${i}`, { buffers: [b], dims: [[b.byteLength / 4]] }));
    const { encoded } = roundTrip(rows);
    const parts = encoded.bytes!.parts;
    expect(parts.map((p) => p.byteLength)).toEqual([1024, OWN_COMMAND_BYTES, OWN_COMMAND_BYTES, 512]);
    expect(parts[1]).toBe(rows[2].row.buffers[0]);
    expect(parts[2]).toBe(rows[3].row.buffers[0]);
    expect(Buffer.concat(parts).equals(Buffer.concat(rows.map((r) => r.row.buffers[0])))).toBe(true);
    // A job of small rows alone is one part: one command, as inline rows would be.
    expect(roundTrip(Array.from({ length: 32 }, (_, i) => outgoing(`s${i}`, { buffers: [small(i)], dims: [[128]] }))).encoded.bytes!.parts).toHaveLength(1);
  });

  it('fills the rows from the parts their producer wrote them from, as views of them, and from parts cut anywhere else', () => {
    const big = (fill: number) => Buffer.alloc(OWN_COMMAND_BYTES, fill);
    const rows = [big(1), big(2), big(3)].map((b, i) => outgoing(`r${i}`, { buffers: [b], dims: [[b.byteLength / 4]] }));
    const { encoded, decoded } = roundTrip(rows);
    expect(attachRowBytes(decoded, encoded.bytes!.parts)).toBeUndefined();
    decoded.rows.forEach((r, i) => {
      expect(r.row.buffers[0].buffer).toBe(rows[i].row.buffers[0].buffer);
      expect(r.row.buffers[0].equals(rows[i].row.buffers[0])).toBe(true);
    });
    // Parts that split an input: the rows still get their own bytes.
    const joined = Buffer.concat(encoded.bytes!.parts);
    const again = roundTrip(rows).decoded;
    expect(attachRowBytes(again, [joined.subarray(0, 100), joined.subarray(100)])).toBeUndefined();
    again.rows.forEach((r, i) => expect(r.row.buffers[0].equals(rows[i].row.buffers[0])).toBe(true));
    expect(attachRowBytes(roundTrip(rows).decoded, encoded.bytes!.parts.slice(1))).toBe(`the rows' input bytes in Redis are ${2 * OWN_COMMAND_BYTES} bytes, the job declares ${3 * OWN_COMMAND_BYTES}`);
  });

  it('chooses by the job\'s total bytes: inline below INLINE_ROW_BYTES, apart from there on', () => {
    const row = (bytes: number): EncodedRow => ({ buffers: [Buffer.alloc(bytes)], dims: [[bytes / 4]] });
    expect(roundTrip([outgoing('a', row(INLINE_ROW_BYTES - 4))]).encoded.bytes).toBeUndefined();
    expect(roundTrip([outgoing('a', row(INLINE_ROW_BYTES))]).encoded.bytes?.parts[0].byteLength).toBe(INLINE_ROW_BYTES);
    const half = INLINE_ROW_BYTES / 2;
    expect(roundTrip([outgoing('a', row(half)), outgoing('b', row(half))]).encoded.data.b).toBeDefined();
  });

  it('gives the key a whole number of milliseconds to live, as PX requires, from fractional clock times', () => {
    const row: EncodedRow = { buffers: [Buffer.alloc(INLINE_ROW_BYTES)], dims: [[INLINE_ROW_BYTES / 4]] };
    const encoded = encodeJob('stub_v1', '1', 'replica-a', [{ requestId: 'a', enqueuedAt: NOW + 0.25, deadline: NOW + 3000.75 }].map((r) => ({ ...r, row })), () => 'k', NOW + 0.5);
    expect(encoded.bytes!.ttlMs).toBe(3001 + ROW_BYTES_GRACE_MS);
  });

  it('refuses row bytes that are missing, or that do not add up to the lengths the job declares', () => {
    const rows = [outgoing('a', { buffers: [floats(8)], dims: [[8]] }), outgoing('b', { buffers: [floats(8)], dims: [[8]] })];
    const { encoded, decoded } = roundTrip(rows, 0);
    expect(attachRowBytes(decoded, null)).toBe("the rows' input bytes are no longer in Redis (expired or removed)");
    expect(attachRowBytes(decoded, Buffer.concat(encoded.bytes!.parts).subarray(4))).toBe("the rows' input bytes in Redis are 60 bytes, the job declares 64");
    expect(attachRowBytes(decoded, Buffer.concat([...encoded.bytes!.parts, Buffer.alloc(1)]))).toBe("the rows' input bytes in Redis are 65 bytes, the job declares 64");
    expect(decoded.rows.every((r) => r.row.buffers.length === 0)).toBe(true);
  });

  it('names a queue per model version, without the colon BullMQ refuses in a queue name', () => {
    expect(versionQueue('stub_v1', '2')).toBe('infer/stub_v1/2');
    expect(versionQueue('stub_v1', '2')).not.toBe(versionQueue('stub_v1', '3'));
    expect(versionQueue('resnet-50.v1', '12')).not.toContain(':');
  });

  it('throws on every malformed job, naming what is wrong', () => {
    const ok = ['a', NOW, NOW + 5000, ['AAAAAA=='], [[1]]];
    const okBinary = ['a', NOW, NOW + 5000, [4], [[1]]];
    const cases: [unknown, string][] = [
      [null, 'malformed infer job: expected {m, v, o, r[]}'],
      ['text', 'malformed infer job: expected {m, v, o, r[]}'],
      [{ v: '1', o: 'x', r: [] }, 'malformed infer job: expected {m, v, o, r[]}'],
      [{ m: 'stub_v1', o: 'x', r: [] }, 'malformed infer job: expected {m, v, o, r[]}'],
      [{ m: 'stub_v1', v: 1, o: 'x', r: [] }, 'malformed infer job: expected {m, v, o, r[]}'],
      [{ m: 'stub_v1', v: '1', r: [] }, 'malformed infer job: expected {m, v, o, r[]}'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: {} }, 'malformed infer job: expected {m, v, o, r[]}'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [], b: 7 }, 'malformed infer job: bytes key'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [], b: '' }, 'malformed infer job: bytes key'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: ['row'] }, 'malformed infer job row 0'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [ok.slice(0, 4)] }, 'malformed infer job row 0'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [[...ok, 2]] }, 'malformed infer job row 0'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [[...ok, 1, 1]] }, 'malformed infer job row 0'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [ok, [7, NOW, NOW, [], []]] }, 'malformed infer job row 1: id or times'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [['a', 'now', NOW, [], []]] }, 'malformed infer job row 0: id or times'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [['a', NOW, null, [], []]] }, 'malformed infer job row 0: id or times'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [['a', NOW, NOW, 'AAAA', [[1]]]] }, 'malformed infer job row 0: inputs'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [['a', NOW, NOW, [4], [[1]]]] }, 'malformed infer job row 0: inputs'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [['a', NOW, NOW, ['AAAA'], [[1], [1]]]] }, 'malformed infer job row 0: dims'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [['a', NOW, NOW, ['AAAA'], [[0]]]] }, 'malformed infer job row 0: dims'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [['a', NOW, NOW, ['AAAA'], [[1.5]]]] }, 'malformed infer job row 0: dims'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [['a', NOW, NOW, ['AAAA'], 'dims']] }, 'malformed infer job row 0: dims'],
      // With a bytes key, inputs are byte lengths: whole and not negative.
      [{ m: 'stub_v1', v: '1', o: 'x', r: [ok], b: 'k' }, 'malformed infer job row 0: inputs'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [['a', NOW, NOW, [-4], [[1]]]], b: 'k' }, 'malformed infer job row 0: inputs'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [['a', NOW, NOW, [2.5], [[1]]]], b: 'k' }, 'malformed infer job row 0: inputs'],
      [{ m: 'stub_v1', v: '1', o: 'x', r: [['a', NOW, NOW, [4, 4], [[1]]]], b: 'k' }, 'malformed infer job row 0: dims'],
    ];
    for (const [data, message] of cases) expect(() => decodeJob(data, 2)).toThrow(message);
    expect(decodeJob({ m: 'stub_v1', v: '1', o: 'x', r: [ok] }, 2).rows).toHaveLength(1);
    expect(decodeJob({ m: 'stub_v1', v: '1', o: 'x', r: [okBinary], b: 'k' }, 2).lengths).toEqual([[4]]);
  });
});

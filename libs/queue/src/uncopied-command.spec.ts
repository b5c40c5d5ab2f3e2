import { Command } from 'ioredis';
import { UncopiedCommand } from './uncopied-command';

/** A socket that records what is written to it, in order. */
function recordingSocket() {
  const chunks: (string | Buffer)[] = [];
  return { chunks, write: (chunk: string | Buffer) => chunks.push(chunk) > 0 };
}

const bytesOf = (chunks: (string | Buffer)[]) => Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)));

describe('UncopiedCommand', () => {
  const image = Buffer.from(Float32Array.from({ length: 27_648 }, (_, i) => i).buffer);

  it('writes the same RESP bytes as ioredis’s own command, with each Buffer argument itself rather than a copy', () => {
    for (const args of [['rows:1', image, 'PX', '4000'], ['rows:1', image], ['k', Buffer.alloc(0), image, 'tail']] as (string | Buffer)[][]) {
      const socket = recordingSocket();
      const last = new UncopiedCommand('set', args).toWritable(socket);
      const written = [...socket.chunks, last];
      const own = new Command('set', args).toWritable(recordingSocket());
      expect(bytesOf(written).equals(Buffer.isBuffer(own) ? own : Buffer.from(own))).toBe(true);
      expect(written.filter((c) => c === image)).toHaveLength(args.filter((a) => a === image).length);
    }
  });

  it('writes a command without Buffer arguments as one string, as ioredis does', () => {
    const socket = recordingSocket();
    expect(new UncopiedCommand('append', ['k', 'v']).toWritable(socket)).toBe(new Command('append', ['k', 'v']).toWritable(recordingSocket()));
    expect(socket.chunks).toEqual([]);
  });
});

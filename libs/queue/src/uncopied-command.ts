import { Command } from 'ioredis';

interface Writable {
  write(chunk: string | Buffer): boolean;
}

/**
 * An ioredis command whose Buffer arguments go to the connection's socket as they are. ioredis's own commands copy
 * every argument into one buffer first, an image row's 110 KB of external memory each time, which brings V8's next
 * full GC closer; a socket keeps a reference to a Buffer it cannot write at once instead of copying it.
 *
 * ioredis writes a command with `socket.write(command.toWritable(socket))`, right when it sends it (again after a
 * reconnect), so the parts written here go first and in order. Send it with `sendCommand`, never in a pipeline or
 * MULTI, whose commands are written later as one buffer, and on a connection where no pipeline can wait in the
 * offline queue while it is sent: the queue's connection has no offline queue (queue.module.ts).
 */
export class UncopiedCommand extends Command {
  override toWritable(socket: object): string | Buffer {
    const out = socket as Writable;
    const args = this.args as (string | Buffer)[];
    let text = `*${args.length + 1}\r\n$${Buffer.byteLength(this.name)}\r\n${this.name}\r\n`;
    for (const arg of args) {
      if (!Buffer.isBuffer(arg)) {
        text += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
        continue;
      }
      out.write(`${text}$${arg.length}\r\n`);
      out.write(arg);
      text = '\r\n';
    }
    return text;
  }
}

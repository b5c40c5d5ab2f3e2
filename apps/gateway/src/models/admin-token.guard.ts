import { CanActivate, ExecutionContext, Injectable, Logger } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';

const digest = (s: string) => createHash('sha256').update(s).digest();

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** 127.0.0.0/8 and ::1, IPv4-mapped forms (::ffff:127.0.0.1) included, as a dual-stack socket reports them. */
export function isLoopback(address: string | undefined): boolean {
  const family = address ? isIP(address) : 0;
  return family !== 0 && LOOPBACK.check(address!, family === 6 ? 'ipv6' : 'ipv4');
}

/**
 * Guards the mutating Models API. With ADMIN_TOKEN set, the request must carry `Authorization: Bearer
 * <ADMIN_TOKEN>`; without one, only loopback clients may call it, so a fresh install bound to 0.0.0.0 does not
 * hand model control to the network.
 */
@Injectable()
export class AdminTokenGuard implements CanActivate {
  private readonly expected?: Buffer;

  constructor(config: BalesConfig) {
    if (config.ADMIN_TOKEN) this.expected = digest(config.ADMIN_TOKEN);
    else new Logger('Models').warn('ADMIN_TOKEN is not set: the Models API answers register, reload and delete only from loopback until it is');
  }

  canActivate(ctx: ExecutionContext): boolean {
    const request = ctx.switchToHttp().getRequest<FastifyRequest>();
    if (!this.expected) {
      // The socket's own peer, not request.ip: a forwarded-for header must not make a remote client local.
      if (isLoopback(request.raw.socket.remoteAddress)) return true;
      throw new BalesError(ErrorCode.FORBIDDEN, 'this endpoint is answered only from loopback while ADMIN_TOKEN is not set; set ADMIN_TOKEN and send Authorization: Bearer <ADMIN_TOKEN>');
    }
    const token = /^Bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1] ?? '';
    // Comparing fixed-length digests in constant time leaks neither the token nor its length.
    if (!timingSafeEqual(digest(token), this.expected)) {
      throw new BalesError(ErrorCode.UNAUTHORIZED, 'this endpoint needs Authorization: Bearer <ADMIN_TOKEN>');
    }
    return true;
  }
}

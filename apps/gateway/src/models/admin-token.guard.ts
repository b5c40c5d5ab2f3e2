import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** When ADMIN_TOKEN is set, the request must carry `Authorization: Bearer <ADMIN_TOKEN>`. */
@Injectable()
export class AdminTokenGuard implements CanActivate {
  private readonly expected?: Buffer;

  constructor(config: BalesConfig) {
    if (config.ADMIN_TOKEN) this.expected = digest(config.ADMIN_TOKEN);
  }

  canActivate(ctx: ExecutionContext): boolean {
    if (!this.expected) return true;
    const header = ctx.switchToHttp().getRequest<FastifyRequest>().headers.authorization ?? '';
    const token = /^Bearer (.+)$/i.exec(header)?.[1] ?? '';
    // Comparing fixed-length digests in constant time leaks neither the token nor its length.
    if (!timingSafeEqual(digest(token), this.expected)) {
      throw new BalesError(ErrorCode.UNAUTHORIZED, 'this endpoint needs Authorization: Bearer <ADMIN_TOKEN>');
    }
    return true;
  }
}

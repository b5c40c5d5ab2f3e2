import { BadRequestException, CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import type { Observable } from 'rxjs';

// Deeper than any tensor's rank plus the body's own two levels; class-transformer recurses once per level
// and overflows the stack (a 500) a few thousand levels down.
export const MAX_BODY_DEPTH = 32;

/** True when a parsed JSON value nests objects or arrays deeper than maxDepth; walked without recursion. */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > maxDepth) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * Refuses, with 400, bodies the validation pipe would crash on (a 500) before it can refuse them: nesting
 * deeper than MAX_BODY_DEPTH, and a top-level `constructor` key, which class-transformer copies onto the DTO
 * instance, where class-validator then reads `constructor.prototype`. Interceptors run before pipes.
 */
@Injectable()
export class NestingLimitInterceptor implements NestInterceptor {
  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    const body = ctx.switchToHttp().getRequest<{ body?: unknown }>().body;
    if (nestsDeeperThan(body, MAX_BODY_DEPTH)) throw new BadRequestException(`the request body nests deeper than ${MAX_BODY_DEPTH} levels`);
    if (body !== null && typeof body === 'object' && Object.hasOwn(body, 'constructor')) throw new BadRequestException('property constructor should not exist');
    return next.handle();
  }
}

import { ExecutionContext, Logger } from '@nestjs/common';
import { loadConfig } from '@bales/config';
import { ErrorCode } from '@bales/errors';
import { rejection } from '../../../../test/support/rejection';
import { AdminTokenGuard, isLoopback } from './admin-token.guard';

describe('isLoopback', () => {
  it.each(['127.0.0.1', '127.255.255.254', '127.1.2.3', '::1', '::ffff:127.0.0.1', '::ffff:127.9.9.9'])('counts %s as loopback', (address) => {
    expect(isLoopback(address)).toBe(true);
  });

  it.each(['10.0.0.1', '128.0.0.1', '0.0.0.0', '::ffff:10.0.0.1', '::2', 'fe80::1', 'localhost', '', undefined])('does not count %p as loopback', (address) => {
    expect(isLoopback(address)).toBe(false);
  });
});

describe('AdminTokenGuard', () => {
  beforeEach(() => jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined));
  afterEach(() => jest.restoreAllMocks());

  /** The request as the guard reads it: the socket's peer, and a request.ip that a forwarded-for header could have set. */
  const context = ({ peer = '10.0.0.7', headers = {} }: { peer?: string; headers?: Record<string, string> }) => {
    const request = { headers, ip: '127.0.0.1', raw: { socket: { remoteAddress: peer } } };
    return { switchToHttp: () => ({ getRequest: () => request }) } as unknown as ExecutionContext;
  };
  const allows = (guard: AdminTokenGuard, over: Parameters<typeof context>[0]) => guard.canActivate(context(over));
  const refusal = (guard: AdminTokenGuard, over: Parameters<typeof context>[0]) => rejection(() => guard.canActivate(context(over)));

  it('without ADMIN_TOKEN, lets loopback peers in and refuses others with FORBIDDEN, whatever request.ip says', async () => {
    const guard = new AdminTokenGuard(loadConfig({}));
    expect(allows(guard, { peer: '::ffff:127.0.0.1' })).toBe(true);
    expect((await refusal(guard, { peer: '10.0.0.7', headers: { 'x-forwarded-for': '127.0.0.1' } })).code).toBe(ErrorCode.FORBIDDEN);
  });

  it('with ADMIN_TOKEN, wants the bearer token from every peer, loopback included', async () => {
    const guard = new AdminTokenGuard(loadConfig({ ADMIN_TOKEN: 's3cret-token' }));
    expect(allows(guard, { headers: { authorization: 'Bearer s3cret-token' } })).toBe(true);
    expect(allows(guard, { headers: { authorization: 'bearer s3cret-token' } })).toBe(true);
    for (const authorization of ['Bearer s3cret', 'Bearer s3cret-token2', 's3cret-token', 'Basic s3cret-token']) {
      expect((await refusal(guard, { headers: { authorization } })).code).toBe(ErrorCode.UNAUTHORIZED);
    }
    expect((await refusal(guard, { peer: '127.0.0.1' })).code).toBe(ErrorCode.UNAUTHORIZED);
  });
});

import { redisOptionsFromUrl } from './redis-options';

describe('redisOptionsFromUrl', () => {
  it('reads host, port and database', () => {
    expect(redisOptionsFromUrl('redis://localhost:6379/0')).toMatchObject({ host: 'localhost', port: 6379, db: 0, tls: undefined });
  });

  it('reads a user, a password and TLS from a managed-Redis URL', () => {
    expect(redisOptionsFromUrl('rediss://app:s%40cret@cache.example:6380/3')).toMatchObject({
      host: 'cache.example',
      port: 6380,
      db: 3,
      username: 'app',
      password: 's@cret',
      tls: {},
    });
  });
});

import { availableParallelism } from 'node:os';
import { ConfigError, loadConfig } from './bales-config';

describe('loadConfig', () => {
  it('keeps every default of the original BALES but THREAD_POOL_SIZE and MAX_BODY_BYTES', () => {
    expect(loadConfig({})).toMatchObject({
      REDIS_URL: 'redis://localhost:6379/0',
      MAX_BATCH_SIZE: 32,
      BATCH_WINDOW_MS: 5,
      BATCHER_TIMEOUT_S: 5,
      DEFAULT_MODEL_ID: 'stub_v1',
      HOST: '0.0.0.0',
      PORT: 8000,
      LOG_LEVEL: 'info',
      ENABLE_PROMETHEUS: true,
      MODELS_DIR: './models',
      PRIORITY_LEVELS: 3,
    });
  });

  it('admits a 3x224x224 float32 image as JSON by default: 8 MiB of body, not the original 1 MiB', () => {
    expect(loadConfig({}).MAX_BODY_BYTES).toBe(8 * 1024 * 1024);
  });

  it('runs one worker thread per core unless THREAD_POOL_SIZE says otherwise', () => {
    expect(loadConfig({}).THREAD_POOL_SIZE).toBe(Math.min(64, availableParallelism()));
    expect(loadConfig({ THREAD_POOL_SIZE: '4' }).THREAD_POOL_SIZE).toBe(4);
  });

  it('exports times in seconds unless METRICS_TIME_UNIT=ms asks for the original millisecond metric names', () => {
    expect(loadConfig({}).METRICS_TIME_UNIT).toBe('seconds');
    expect(loadConfig({ METRICS_TIME_UNIT: 'ms' }).METRICS_TIME_UNIT).toBe('ms');
    expect(() => loadConfig({ METRICS_TIME_UNIT: 'milliseconds' })).toThrow('METRICS_TIME_UNIT="milliseconds" must be one of seconds, ms');
  });

  it('holds readiness to every model in the repository unless STRICT_READINESS=false', () => {
    expect(loadConfig({}).STRICT_READINESS).toBe(true);
    expect(loadConfig({ STRICT_READINESS: 'false' }).STRICT_READINESS).toBe(false);
    expect(() => loadConfig({ STRICT_READINESS: 'sometimes' })).toThrow('STRICT_READINESS="sometimes" must be true or false');
  });

  it('reads typed values from environment strings', () => {
    const c = loadConfig({ MAX_BATCH_SIZE: '8', BATCH_WINDOW_MS: '2.5', ENABLE_PROMETHEUS: 'false', REDIS_URL: 'rediss://:pw@cache:6380/2' });
    expect(c).toMatchObject({ MAX_BATCH_SIZE: 8, BATCH_WINDOW_MS: 2.5, ENABLE_PROMETHEUS: false, REDIS_URL: 'rediss://:pw@cache:6380/2' });
  });

  it('stops with one line naming each bad variable and what it accepts', () => {
    let error: unknown;
    try {
      loadConfig({ MAX_BATCH_SIZE: 'lots', PORT: '70000', LOG_LEVEL: 'loud', REDIS_URL: 'http://x' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message.split('\n')).toHaveLength(1);
    expect(message).toContain('MAX_BATCH_SIZE="lots" must be an integer from 1 to 4096');
    expect(message).toContain('PORT="70000" must be a port from 0 to 65535');
    expect(message).toContain('LOG_LEVEL="loud" must be one of fatal, error, warn, info, debug, trace');
    expect(message).toContain('REDIS_URL="http://x" must be a redis:// or rediss:// URL');
  });
});

import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';

const DEFAULT_PRIORITY = 2;

/** The model a request is for: the one it names, else DEFAULT_MODEL_ID. */
export const requestedModel = (config: BalesConfig, named: string | undefined): string => named ?? config.DEFAULT_MODEL_ID;

/**
 * A request's priority and deadline, with the same rules for every endpoint: priority 1..PRIORITY_LEVELS
 * (default 2), timeout_ms 1..BATCHER_TIMEOUT_S (default BATCHER_TIMEOUT_S). `prefix` names where the
 * fields sit in the body, for the error message.
 */
export function requestOptions(config: BalesConfig, priority: number | undefined, timeoutMs: number | undefined, prefix = ''): { priority: number; timeoutMs: number } {
  const levels = config.PRIORITY_LEVELS;
  const resolvedPriority = priority ?? Math.min(DEFAULT_PRIORITY, levels);
  if (resolvedPriority > levels) throw new BalesError(ErrorCode.INVALID_REQUEST, `${prefix}priority must be an integer from 1 to ${levels}`);
  const maxTimeoutMs = Math.floor(config.BATCHER_TIMEOUT_S * 1000);
  if (timeoutMs !== undefined && timeoutMs > maxTimeoutMs) throw new BalesError(ErrorCode.INVALID_REQUEST, `${prefix}timeout_ms must be an integer from 1 to ${maxTimeoutMs}`);
  return { priority: resolvedPriority, timeoutMs: timeoutMs ?? config.BATCHER_TIMEOUT_S * 1000 };
}

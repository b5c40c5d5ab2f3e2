import { Injectable } from '@nestjs/common';
import { BalesError, ErrorCode } from '@bales/errors';
import type { RowResult } from '@bales/model-registry';

/**
 * When a row's work happened on the replica that ran it (epoch ms), for the stage timings of its answer. Absent from
 * a replica of an older release, so the answer then goes without them.
 */
export interface RowTiming {
  fetchedAt: number;
  startedAt: number;
  inferenceMs: number;
}

/** What a request's row came back with, as it travels from the processing replica to the one holding the client. */
export type ResultMessage =
  | { id: string; ok: true; model_id: string; model_version: string; result: RowResult; batch_size: number; queued_ms: number; timing?: RowTiming }
  | { id: string; ok: false; code: ErrorCode; message: string; details?: Record<string, string> };

/** The error body's own fields, which details from a result message never replace. */
const BODY_FIELDS = new Set(['statusCode', 'error', 'message']);

/**
 * An error's details as they came through Redis, outside any validation: string fields only, never one that would
 * replace the error body's own; undefined when none is left.
 */
function detailsFrom(value: unknown): Record<string, string> | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const fields = Object.entries(value).filter(([k, v]) => typeof v === 'string' && !BODY_FIELDS.has(k));
  return fields.length > 0 ? Object.fromEntries(fields) : undefined;
}

export type InferOutcome = Extract<ResultMessage, { ok: true }>;

interface Pending {
  resolve: (outcome: InferOutcome) => void;
  reject: (err: BalesError) => void;
  timer: NodeJS.Timeout;
  /** Told once the request settles; `served` is true when a processor answered it (result or batch error). */
  onSettled?: (served: boolean) => void;
}

/**
 * The only place request promises live, keyed by request_id. Each settles exactly once:
 * with its result, an error, or TIMEOUT when its deadline passes; whatever comes later is dropped.
 * It also holds the gate that closes when shutdown begins, and waits for the accepted requests to drain.
 */
@Injectable()
export class PendingRequests {
  private readonly pending = new Map<string, Pending>();
  private draining = false;

  /** Requests this replica accepted and has not answered yet. */
  get size(): number {
    return this.pending.size;
  }

  /** False once shutdown has begun: readiness turns false and new requests get 503. */
  get accepting(): boolean {
    return !this.draining;
  }

  /** Stops taking new requests; those already accepted are still answered. */
  beginShutdown(): void {
    this.draining = true;
  }

  /** Resolves true once every accepted request is answered, or false when timeoutMs passes first. */
  async drained(timeoutMs: number): Promise<boolean> {
    const until = performance.now() + timeoutMs;
    while (this.pending.size > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
    return this.pending.size === 0;
  }

  has(id: string): boolean {
    return this.pending.has(id);
  }

  /** Registers a request; its promise rejects with TIMEOUT after timeoutMs unless settled first. */
  add(id: string, timeoutMs: number): Promise<InferOutcome> {
    return new Promise<InferOutcome>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(id, new BalesError(ErrorCode.TIMEOUT, `not served within ${timeoutMs} ms`)), timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  /** Settles a request from its result message. Returns false when it was already settled (or never known here). */
  settle(msg: ResultMessage): boolean {
    const p = this.take(msg.id, true);
    if (msg.ok) p?.resolve(msg);
    else p?.reject(new BalesError(msg.code, msg.message, detailsFrom(msg.details)));
    return p !== undefined;
  }

  /** Settles a request with an error raised on this replica (deadline, client gone, Redis unreachable). */
  fail(id: string, err: BalesError): boolean {
    const p = this.take(id, false);
    p?.reject(err);
    return p !== undefined;
  }

  /** Calls back once the request settles; at once (not served) when it already has. */
  onSettled(id: string, callback: (served: boolean) => void): void {
    const p = this.pending.get(id);
    if (p) p.onSettled = callback;
    else callback(false);
  }

  private take(id: string, served: boolean): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.onSettled?.(served);
    return p;
  }
}

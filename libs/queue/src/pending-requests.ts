import { Injectable } from '@nestjs/common';
import { BalesError, ErrorCode } from '@bales/errors';
import type { RowResult } from '@bales/model-registry';

/** What a request's row came back with, as it travels from the processing replica to the one holding the client. */
export type ResultMessage =
  | { id: string; ok: true; model_id: string; model_version: string; result: RowResult; batch_size: number; queued_ms: number }
  | { id: string; ok: false; code: ErrorCode; message: string };

export type InferOutcome = Extract<ResultMessage, { ok: true }>;

interface Pending {
  resolve: (outcome: InferOutcome) => void;
  reject: (err: BalesError) => void;
  timer: NodeJS.Timeout;
}

/**
 * The only place request promises live, keyed by request_id. Each settles exactly once:
 * with its result, an error, or TIMEOUT when its deadline passes; whatever comes later is dropped.
 */
@Injectable()
export class PendingRequests {
  private readonly pending = new Map<string, Pending>();

  get size(): number {
    return this.pending.size;
  }

  has(id: string): boolean {
    return this.pending.has(id);
  }

  /** Registers a request; its promise rejects with TIMEOUT after timeoutMs unless settled first. */
  add(id: string, timeoutMs: number): Promise<InferOutcome> {
    return new Promise<InferOutcome>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(id, new BalesError(ErrorCode.TIMEOUT, `not served within ${timeoutMs} ms`, id)), timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  /** Settles a request from its result message. Returns false when it was already settled (or never known here). */
  settle(msg: ResultMessage): boolean {
    if (msg.ok) {
      const p = this.take(msg.id);
      p?.resolve(msg);
      return p !== undefined;
    }
    return this.fail(msg.id, new BalesError(msg.code, msg.message, msg.id));
  }

  fail(id: string, err: BalesError): boolean {
    const p = this.take(id);
    p?.reject(err);
    return p !== undefined;
  }

  private take(id: string): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    return p;
  }
}

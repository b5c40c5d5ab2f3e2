/** What went wrong, independent of transport. The gateway maps each code to an HTTP status in one place. */
export enum ErrorCode {
  INVALID_REQUEST = 'INVALID_REQUEST',
  INVALID_INPUT = 'INVALID_INPUT',
  MODEL_NOT_FOUND = 'MODEL_NOT_FOUND',
  MODEL_CONFLICT = 'MODEL_CONFLICT',
  /** The model is known but takes no requests: it failed to load, or is loading again. */
  MODEL_UNAVAILABLE = 'MODEL_UNAVAILABLE',
  FILE_NOT_FOUND = 'FILE_NOT_FOUND',
  PATH_NOT_ALLOWED = 'PATH_NOT_ALLOWED',
  INVALID_MODEL = 'INVALID_MODEL',
  QUEUE_FULL = 'QUEUE_FULL',
  QUEUE_UNAVAILABLE = 'QUEUE_UNAVAILABLE',
  SHUTTING_DOWN = 'SHUTTING_DOWN',
  TIMEOUT = 'TIMEOUT',
  /** A replica did not answer a fleet-wide Models API call in time: nothing changed. */
  FLEET_TIMEOUT = 'FLEET_TIMEOUT',
  /** The client closed the connection before its answer: nobody is told, but it is counted apart from timeouts. */
  CLIENT_CLOSED = 'CLIENT_CLOSED',
  INFERENCE_FAILED = 'INFERENCE_FAILED',
  UNAUTHORIZED = 'UNAUTHORIZED',
  FORBIDDEN = 'FORBIDDEN',
}

export class BalesError extends Error {
  override name = 'BalesError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Fields the error body carries beside the message, e.g. the model and state of MODEL_UNAVAILABLE. */
    readonly details?: Record<string, string>,
  ) {
    super(message);
  }
}

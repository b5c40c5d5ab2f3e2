import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import { BalesError, ErrorCode } from '@bales/errors';
import { BalesMetrics } from '@bales/observability';

/** The one place domain error codes become HTTP statuses. */
export const STATUS_BY_CODE: Record<ErrorCode, number> = {
  [ErrorCode.INVALID_REQUEST]: 400,
  [ErrorCode.PATH_NOT_ALLOWED]: 400,
  [ErrorCode.UNAUTHORIZED]: 401,
  [ErrorCode.FORBIDDEN]: 403,
  [ErrorCode.MODEL_NOT_FOUND]: 404,
  [ErrorCode.FILE_NOT_FOUND]: 404,
  [ErrorCode.MODEL_CONFLICT]: 409,
  [ErrorCode.INVALID_INPUT]: 422,
  [ErrorCode.INVALID_MODEL]: 422,
  [ErrorCode.QUEUE_FULL]: 429,
  [ErrorCode.INFERENCE_FAILED]: 500,
  [ErrorCode.QUEUE_UNAVAILABLE]: 503,
  [ErrorCode.MODEL_UNAVAILABLE]: 503,
  [ErrorCode.SHUTTING_DOWN]: 503,
  [ErrorCode.TIMEOUT]: 504,
  [ErrorCode.FLEET_TIMEOUT]: 504,
  // nginx's status for a request whose client left first: it is never sent, only counted.
  [ErrorCode.CLIENT_CLOSED]: 499,
};

/** The reason phrase of a status, including the one non-standard status above. */
const statusText = (statusCode: number): string => STATUS_CODES[statusCode] ?? (statusCode === 499 ? 'Client Closed Request' : 'Error');

/** The Open Inference Protocol's binary tensor extension, which V2 infer also takes whatever the content type. */
const BINARY_HEADER = 'Inference-Header-Content-Length';

const RETRY_LATER = new Set([ErrorCode.QUEUE_FULL, ErrorCode.QUEUE_UNAVAILABLE, ErrorCode.SHUTTING_DOWN]);

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
  /** A domain error's details, e.g. model_id, state and reason of MODEL_UNAVAILABLE. */
  [detail: string]: string | number;
}

/**
 * Fastify answers a body of any type but JSON with a bare "Unsupported Media Type" (415), which Nest turns into
 * an HttpException: this says what to send instead. The header is echoed cut short, as it may be kilobytes long.
 */
function unsupportedMediaType(contentType: string | undefined): string {
  const given = contentType ? `content-type '${contentType.slice(0, 80)}'` : 'no content-type';
  return `the request body must be application/json, got ${given}`;
}

/**
 * Builds the stable error body every failure answers with: never a stack trace. `contentType` is the request's
 * header, named back to the client when Fastify refused the body's type.
 */
export function errorBody(exception: unknown, logError: (message: string) => void, contentType?: string): ErrorBody {
  if (exception instanceof BalesError) {
    const statusCode = STATUS_BY_CODE[exception.code];
    if (statusCode >= 500 && statusCode !== 503 && statusCode !== 504) logError(`${exception.code}: ${exception.message}`);
    return { statusCode, error: statusText(statusCode), message: exception.message, ...exception.details };
  }
  if (exception instanceof HttpException) {
    const statusCode = exception.getStatus();
    const response = exception.getResponse() as string | { message?: string | string[] };
    const message = typeof response === 'string' ? response : Array.isArray(response.message) ? response.message.join('; ') : (response.message ?? exception.message);
    return { statusCode, error: statusText(statusCode), message: statusCode === 415 ? unsupportedMediaType(contentType) : message };
  }
  // Errors Fastify raises itself (bad JSON, body too large, wrong content type) carry a 4xx statusCode.
  const fastifyStatus = (exception as { statusCode?: number })?.statusCode;
  if (typeof fastifyStatus === 'number' && fastifyStatus >= 400 && fastifyStatus < 500) {
    return { statusCode: fastifyStatus, error: statusText(fastifyStatus), message: (exception as Error).message };
  }
  logError(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
  return { statusCode: HttpStatus.INTERNAL_SERVER_ERROR, error: 'Internal Server Error', message: 'internal error; see the gateway log' };
}

/**
 * Fastify's 413 says only "Request body is too large": this names the limit's setting and what came, from the
 * Content-Length when the client sent one (a chunked body is cut off at the limit, so only "more" is known).
 */
export function bodyTooLargeMessage(contentLength: string | undefined, maxBodyBytes: number): string {
  const size = contentLength !== undefined && /^\d+$/.test(contentLength) ? `${Number(contentLength).toLocaleString('en-US')} bytes` : 'more bytes';
  return `the request body is too large: ${size}, over MAX_BODY_BYTES=${maxBodyBytes}`;
}

/** bales_rejected_total's reason: the domain code when there is one, else the status text (bad_request, payload_too_large, ...). */
export function rejectionReason(exception: unknown, body: ErrorBody): string {
  return exception instanceof BalesError ? exception.code.toLowerCase() : body.error.toLowerCase().replace(/[^a-z]+/g, '_');
}

@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(
    private readonly metrics: BalesMetrics,
    private readonly maxBodyBytes: number,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const request = host.switchToHttp().getRequest<FastifyRequest>();
    // The request's own child logger: the line carries its request_id.
    const body = errorBody(exception, (message) => request.log.error({ context: 'Errors' }, message), request.headers['content-type']);
    if (body.statusCode === 413) body.message = bodyTooLargeMessage(request.headers['content-length'], this.maxBodyBytes);
    // Every error answer is counted here, the one place they all pass.
    this.metrics.rejected(rejectionReason(exception, body));
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    // Overload and outages are brief by design: tell clients when to come back rather than let them hammer.
    if (exception instanceof BalesError && RETRY_LATER.has(exception.code)) reply.header('retry-after', '1');
    // The Open Inference Protocol has its own error body; the status codes are the same.
    const v2 = request.url.startsWith('/v2');
    if (v2 && body.statusCode === 415) body.message += `, or binary tensor data with an ${BINARY_HEADER} header`;
    // Every request has its id from Fastify (see fastifyLogging), so every error answer names it.
    reply.status(body.statusCode).send(v2 ? { error: body.message } : { ...body, request_id: request.id });
  }
}

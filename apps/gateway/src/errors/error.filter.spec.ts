import { ArgumentsHost, BadRequestException, HttpException, NotFoundException } from '@nestjs/common';
import { errorCodes } from 'fastify';
import { loadConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { BalesMetrics } from '@bales/observability';
import { sample } from '../../../../test/support/observability';
import { ErrorFilter, STATUS_BY_CODE, errorBody, rejectionReason } from './error.filter';

/** The status each code answers with, as docs/api.md lists them. */
const DOCUMENTED: Record<ErrorCode, [number, string]> = {
  [ErrorCode.INVALID_REQUEST]: [400, 'Bad Request'],
  [ErrorCode.PATH_NOT_ALLOWED]: [400, 'Bad Request'],
  [ErrorCode.UNAUTHORIZED]: [401, 'Unauthorized'],
  [ErrorCode.FORBIDDEN]: [403, 'Forbidden'],
  [ErrorCode.MODEL_NOT_FOUND]: [404, 'Not Found'],
  [ErrorCode.FILE_NOT_FOUND]: [404, 'Not Found'],
  [ErrorCode.MODEL_CONFLICT]: [409, 'Conflict'],
  [ErrorCode.INVALID_INPUT]: [422, 'Unprocessable Entity'],
  [ErrorCode.INVALID_MODEL]: [422, 'Unprocessable Entity'],
  [ErrorCode.QUEUE_FULL]: [429, 'Too Many Requests'],
  [ErrorCode.INFERENCE_FAILED]: [500, 'Internal Server Error'],
  [ErrorCode.QUEUE_UNAVAILABLE]: [503, 'Service Unavailable'],
  [ErrorCode.MODEL_UNAVAILABLE]: [503, 'Service Unavailable'],
  [ErrorCode.SHUTTING_DOWN]: [503, 'Service Unavailable'],
  [ErrorCode.TIMEOUT]: [504, 'Gateway Timeout'],
  [ErrorCode.FLEET_TIMEOUT]: [504, 'Gateway Timeout'],
  [ErrorCode.CLIENT_CLOSED]: [499, 'Client Closed Request'],
};
const CODES = Object.values(ErrorCode);
const RETRY_LATER: ErrorCode[] = [ErrorCode.QUEUE_FULL, ErrorCode.QUEUE_UNAVAILABLE, ErrorCode.SHUTTING_DOWN];

/** errorBody with its log lines collected. */
function bodyOf(exception: unknown, contentType?: string) {
  const logged: string[] = [];
  const body = errorBody(exception, (line) => logged.push(line), contentType);
  return { body, logged };
}

describe('errorBody', () => {
  it('maps every ErrorCode to its documented status and reason phrase, with the error’s own message', () => {
    expect(Object.keys(STATUS_BY_CODE).sort()).toEqual([...CODES].sort());
    for (const code of CODES) {
      const [statusCode, error] = DOCUMENTED[code];
      expect([code, bodyOf(new BalesError(code, `${code} happened`)).body]).toEqual([code, { statusCode, error, message: `${code} happened` }]);
    }
  });

  it('logs domain errors answered with a 5xx other than 503 and 504, and no other', () => {
    for (const code of CODES) {
      const { logged } = bodyOf(new BalesError(code, 'what went wrong'));
      expect([code, logged]).toEqual([code, code === ErrorCode.INFERENCE_FAILED ? ['INFERENCE_FAILED: what went wrong'] : []]);
    }
  });

  it('answers an unexpected error with a 500 that says nothing of it, and logs its stack', () => {
    const err = new TypeError('secret is undefined');
    const { body, logged } = bodyOf(err);
    expect(body).toEqual({ statusCode: 500, error: 'Internal Server Error', message: 'internal error; see the gateway log' });
    expect(JSON.stringify(body)).not.toContain('secret');
    expect(logged).toEqual([err.stack]);
    expect(logged[0]).toContain('error.filter.spec.ts');
  });

  it('logs a thrown value that is not an Error as text', () => {
    const { body, logged } = bodyOf('plain string');
    expect(body.statusCode).toBe(500);
    expect(logged).toEqual(['plain string']);
  });

  it('keeps the status and message of an HttpException, joining validation messages, without logging', () => {
    expect(bodyOf(new BadRequestException(['priority must be an integer', 'payload is required']))).toEqual({
      body: { statusCode: 400, error: 'Bad Request', message: 'priority must be an integer; payload is required' },
      logged: [],
    });
    expect(bodyOf(new NotFoundException('Cannot GET /nope')).body).toEqual({ statusCode: 404, error: 'Not Found', message: 'Cannot GET /nope' });
    expect(bodyOf(new HttpException('plain text', 403)).body).toEqual({ statusCode: 403, error: 'Forbidden', message: 'plain text' });
  });

  it('names the content type sent, cut short, when the body is not JSON (415)', () => {
    const refused = new HttpException('Unsupported Media Type', 415);
    expect(bodyOf(refused, 'text/plain').body).toEqual({
      statusCode: 415,
      error: 'Unsupported Media Type',
      message: "the request body must be application/json, got content-type 'text/plain'",
    });
    expect(bodyOf(refused, `text/${'x'.repeat(500)}`).body.message).toBe(`the request body must be application/json, got content-type 'text/${'x'.repeat(75)}'`);
    expect(bodyOf(refused).body.message).toBe('the request body must be application/json, got no content-type');
  });

  it('keeps the 4xx status and message of errors Fastify raises itself, without logging', () => {
    expect(bodyOf(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE())).toEqual({
      body: { statusCode: 413, error: 'Payload Too Large', message: 'Request body is too large' },
      logged: [],
    });
    expect(bodyOf(new errorCodes.FST_ERR_CTP_EMPTY_JSON_BODY()).body).toMatchObject({ statusCode: 400, error: 'Bad Request', message: expect.stringContaining('Body cannot be empty') });
  });

  it('treats an error carrying a 5xx statusCode as unexpected: a logged 500', () => {
    const err = Object.assign(new Error('upstream exploded'), { statusCode: 502 });
    const { body, logged } = bodyOf(err);
    expect(body).toEqual({ statusCode: 500, error: 'Internal Server Error', message: 'internal error; see the gateway log' });
    expect(logged).toHaveLength(1);
  });
});

describe('rejectionReason', () => {
  it('is the domain code in lower case for a BalesError', () => {
    for (const code of CODES) {
      const err = new BalesError(code, 'm');
      expect(rejectionReason(err, errorBody(err, () => undefined))).toBe(code.toLowerCase());
    }
  });

  it('is the status text in snake case for anything else', () => {
    const reason = (exception: unknown) => rejectionReason(exception, errorBody(exception, () => undefined));
    expect(reason(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE())).toBe('payload_too_large');
    expect(reason(new HttpException('Unsupported Media Type', 415))).toBe('unsupported_media_type');
    expect(reason(new NotFoundException())).toBe('not_found');
    expect(reason(new Error('boom'))).toBe('internal_server_error');
  });
});

describe('ErrorFilter', () => {
  /** One HTTP exchange as the filter sees it: a request and a reply that records what was sent. */
  function exchange(url: string, headers: Record<string, string> = {}) {
    const logged: { bindings: unknown; line: string }[] = [];
    const request = { id: 'req-9', url, headers, log: { error: (bindings: unknown, line: string) => logged.push({ bindings, line }) } };
    const reply = {
      statusCode: 200,
      headers: {} as Record<string, string>,
      body: undefined as unknown,
      status(code: number) {
        this.statusCode = code;
        return this;
      },
      header(name: string, value: string) {
        this.headers[name] = value;
        return this;
      },
      send(body: unknown) {
        this.body = body;
        return this;
      },
    };
    const host = { switchToHttp: () => ({ getRequest: () => request, getResponse: () => reply }) } as unknown as ArgumentsHost;
    return { host, reply, logged };
  }

  function setup() {
    const metrics = new BalesMetrics(loadConfig({ ENABLE_PROMETHEUS: 'false' }));
    const filter = new ErrorFilter(metrics, 65536);
    const answer = (exception: unknown, url = '/infer', headers?: Record<string, string>) => {
      const x = exchange(url, headers);
      filter.catch(exception, x.host);
      return x;
    };
    const rejected = async (reason: string) => sample(await metrics.registry.metrics(), 'bales_rejected_total', { reason });
    return { answer, rejected };
  }

  it('answers with the status and the stable body, stamped with the request’s own id', () => {
    const { answer } = setup();
    const { reply } = answer(new BalesError(ErrorCode.MODEL_NOT_FOUND, "model 'x' is not registered"));
    expect(reply.statusCode).toBe(404);
    expect(reply.body).toEqual({ statusCode: 404, error: 'Not Found', message: "model 'x' is not registered", request_id: 'req-9' });
  });

  it('adds the details a domain error carries to the stable body, and keeps the protocol body of V2 to its message', () => {
    const { answer } = setup();
    const unavailable = () => new BalesError(ErrorCode.MODEL_UNAVAILABLE, "model 'vad' is failed: bad file", { model_id: 'vad', state: 'failed', reason: 'bad file' });
    const { reply } = answer(unavailable());
    expect(reply.statusCode).toBe(503);
    expect(reply.body).toEqual({ statusCode: 503, error: 'Service Unavailable', message: "model 'vad' is failed: bad file", model_id: 'vad', state: 'failed', reason: 'bad file', request_id: 'req-9' });
    expect(answer(unavailable(), '/v2/models/vad/infer').reply.body).toEqual({ error: "model 'vad' is failed: bad file" });
  });

  it('answers a body over the limit with 413 naming MAX_BODY_BYTES and the size that came', () => {
    const { answer } = setup();
    const sized = answer(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE(), '/infer', { 'content-length': '3145728' }).reply;
    expect(sized.statusCode).toBe(413);
    expect(sized.body).toMatchObject({ message: 'the request body is too large: 3,145,728 bytes, over MAX_BODY_BYTES=65536' });
    const chunked = answer(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE(), '/v2/models/stub_v1/infer').reply;
    expect(chunked.body).toEqual({ error: 'the request body is too large: more bytes, over MAX_BODY_BYTES=65536' });
  });

  it('answers the Open Inference Protocol routes with its own body, {error}, and the same status', () => {
    const { answer } = setup();
    const { reply } = answer(new BalesError(ErrorCode.INVALID_REQUEST, "unknown output 'c'"), '/v2/models/stub_v1/infer');
    expect(reply.statusCode).toBe(400);
    expect(reply.body).toEqual({ error: "unknown output 'c'" });
    expect(answer(new Error('boom'), '/v2/health/ready').reply.body).toEqual({ error: 'internal error; see the gateway log' });
  });

  it('logs an unexpected error through the request’s own logger, and answers it with a bare 500', () => {
    const { answer } = setup();
    const err = new Error('boom');
    const { reply, logged } = answer(err, '/models');
    expect(logged).toEqual([{ bindings: { context: 'Errors' }, line: err.stack }]);
    expect(reply.body).toEqual({ statusCode: 500, error: 'Internal Server Error', message: 'internal error; see the gateway log', request_id: 'req-9' });
  });

  it('names the request’s content type in a 415', () => {
    const { answer } = setup();
    const { reply } = answer(new HttpException('Unsupported Media Type', 415), '/infer', { 'content-type': 'text/csv' });
    expect(reply.body).toMatchObject({ statusCode: 415, message: "the request body must be application/json, got content-type 'text/csv'" });
    const v2 = answer(new HttpException('Unsupported Media Type', 415), '/v2/models/stub_v1/infer', { 'content-type': 'application/octet-stream' }).reply;
    expect(v2.body).toEqual({ error: "the request body must be application/json, got content-type 'application/octet-stream', or binary tensor data with an Inference-Header-Content-Length header" });
  });

  it('tells clients to retry after 1 s on QUEUE_FULL, QUEUE_UNAVAILABLE and SHUTTING_DOWN, and on nothing else', () => {
    const { answer } = setup();
    for (const code of CODES) {
      const { reply } = answer(new BalesError(code, 'm'));
      expect([code, reply.headers]).toEqual([code, RETRY_LATER.includes(code) ? { 'retry-after': '1' } : {}]);
    }
    expect(answer(new Error('boom')).reply.headers).toEqual({});
  });

  it('counts every error it answers in bales_rejected_total, by reason', async () => {
    const { answer, rejected } = setup();
    answer(new BalesError(ErrorCode.QUEUE_FULL, 'm'));
    answer(new BalesError(ErrorCode.QUEUE_FULL, 'm'), '/v2/models/stub_v1/infer');
    answer(new BalesError(ErrorCode.CLIENT_CLOSED, 'm'));
    answer(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
    answer(new Error('boom'));
    expect(await rejected('queue_full')).toBe(2);
    expect(await rejected('client_closed')).toBe(1);
    expect(await rejected('payload_too_large')).toBe(1);
    expect(await rejected('internal_server_error')).toBe(1);
  });
});

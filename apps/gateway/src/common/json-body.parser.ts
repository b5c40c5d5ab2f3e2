import type { FastifyRequest } from 'fastify';
import { parse } from 'secure-json-parse';

/** A 400 carried the way Fastify carries its own body errors: the error filter answers with its message. */
class BodyError extends Error {
  readonly statusCode = 400;
}

// The JSON error names the offending character and quotes a little of the body around it; a few lines at most.
const MAX_MESSAGE = 200;

/**
 * Parses JSON request bodies as Fastify does, refusing a `__proto__` key or a `constructor` key holding
 * `prototype` (prototype poisoning), but says what is wrong: Fastify's own parser answers "Body is not valid
 * JSON" to all of it, valid JSON included. It is also one function for every request, where the parser Nest
 * registers builds Fastify's parser anew per request.
 */
export function parseJsonBody(_req: FastifyRequest, body: Buffer, done: (err: Error | null, value?: unknown) => void): void {
  if (body.length === 0) {
    done(new BodyError('the request body is empty; send a JSON object'));
    return;
  }
  let value: unknown;
  try {
    value = parse(body.toString('utf8'), undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    const reason = (err as Error).message;
    done(
      new BodyError(
        reason.startsWith('Object contains forbidden prototype property')
          ? 'the request body must not hold a __proto__ key, nor a constructor key holding prototype'
          : `the request body is not valid JSON: ${reason}`.slice(0, MAX_MESSAGE),
      ),
    );
    return;
  }
  done(null, value);
}

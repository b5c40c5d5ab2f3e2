import type { FastifyRequest } from 'fastify';
import { parse } from 'secure-json-parse';
import { LIFT_MIN_BODY_BYTES, liftNumberArrays } from '@bales/model-registry';

/** A 400 carried the way Fastify carries its own body errors: the error filter answers with its message. */
export class BodyError extends Error {
  readonly statusCode = 400;
}

// The JSON error names the offending character and quotes a little of the body around it; a few lines at most.
const MAX_MESSAGE = 200;

/**
 * Parses JSON as Fastify does, refusing a `__proto__` key or a `constructor` key holding `prototype` (prototype
 * poisoning), but says what is wrong. `what` names the text in the message. Throws a BodyError (400).
 * A large body's numeric arrays come back as LiftedArrays, read straight from its bytes.
 */
export function parseJson(text: Buffer, what = 'the request body'): unknown {
  if (text.length === 0) throw new BodyError(`${what} is empty; send a JSON object`);
  try {
    // secure-json-parse scans the whole text with a regex; a body that holds neither key, nor any \u escape that
    // could spell one, cannot poison a prototype, and the byte search that proves it is native.
    const plain = text.indexOf('__proto__') < 0 && text.indexOf('constructor') < 0 && text.indexOf('\\u') < 0;
    // Only a plain body is lifted: secure-json-parse's scan would walk each lifted array's bytes and values key by key.
    const lifted = plain && text.length >= LIFT_MIN_BODY_BYTES ? liftNumberArrays(text) : undefined;
    if (lifted) {
      try {
        return JSON.parse(lifted.text, lifted.reviver);
      } catch {
        // The message must name the body's own text, not what lifting left of it: the whole body says it below.
      }
    }
    return plain ? JSON.parse(text.toString('utf8')) : parse(text.toString('utf8'), undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    const reason = (err as Error).message;
    throw new BodyError(
      reason.startsWith('Object contains forbidden prototype property')
        ? `${what} must not hold a __proto__ key, nor a constructor key holding prototype`
        : `${what} is not valid JSON: ${reason}`.slice(0, MAX_MESSAGE),
    );
  }
}

/**
 * Parses JSON request bodies with parseJson: Fastify's own parser answers "Body is not valid JSON" to all of it,
 * valid JSON included. It is also one function for every request, where the parser Nest registers builds
 * Fastify's parser anew per request.
 */
export function parseJsonBody(_req: FastifyRequest, body: Buffer, done: (err: Error | null, value?: unknown) => void): void {
  let value: unknown;
  try {
    value = parseJson(body);
  } catch (err) {
    done(err as Error);
    return;
  }
  done(null, value);
}
